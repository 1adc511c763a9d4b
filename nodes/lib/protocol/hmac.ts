import { createHmac, timingSafeEqual } from 'node:crypto';
import { SignMethod } from './identifiers';

const HMAC_ALGORITHM: Record<SignMethod, string> = { hmacsha256: 'sha256', hmacsha1: 'sha1', hmacmd5: 'md5' };

export function hmacHex(method: SignMethod, key: string, text: string): string {
  return createHmac(HMAC_ALGORITHM[method], key).update(text, 'utf8').digest('hex');
}

export function hmacSha1Base64(key: string, text: string): string {
  return createHmac('sha1', key).update(text, 'utf8').digest('base64');
}

/** Compares in constant time; texts of different lengths are unequal. */
export function safeEqual(actual: string, expected: string): boolean {
  const a = Buffer.from(actual, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}
