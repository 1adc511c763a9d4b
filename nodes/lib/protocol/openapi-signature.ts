// Alibaba Cloud OpenAPI (RPC style) for the IoT Platform: signature version 1 (docs/protocol.md §5).
import { createHmac, randomUUID } from 'node:crypto';
import { safeEqual } from './hmac';

export const IOT_API_VERSION = '2018-01-20';

/** encodeURIComponent, plus the characters RFC 3986 reserves that it leaves alone. */
export function percentEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function canonicalQuery(params: Record<string, string>): string {
  return Object.keys(params)
    .sort()
    .map((key) => `${percentEncode(key)}=${percentEncode(params[key])}`)
    .join('&');
}

/** Signature v1 over every parameter except Signature itself. */
export function signatureV1(method: string, params: Record<string, string>, accessKeySecret: string): string {
  const { Signature: _ignored, ...signed } = params;
  const stringToSign = `${method.toUpperCase()}&${percentEncode('/')}&${percentEncode(canonicalQuery(signed))}`;
  return createHmac('sha1', `${accessKeySecret}&`).update(stringToSign, 'utf8').digest('base64');
}

export function verifySignatureV1(method: string, params: Record<string, string>, accessKeySecret: string): boolean {
  return safeEqual(params.Signature ?? '', signatureV1(method, params, accessKeySecret));
}

/** `YYYY-MM-DDThh:mm:ssZ`, as the gateway wants it. */
export function apiTimestamp(date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface ApiCredentials {
  accessKeyId: string;
  accessKeySecret: string;
}

export interface SignedRequestOptions extends ApiCredentials {
  action: string;
  regionId: string;
  params: Record<string, string | number | undefined>;
  method?: 'GET' | 'POST';
  nonce?: string;
  timestamp?: string;
}

/** Every parameter of a signed request, Signature included. */
/** The parameters signedParams sets itself: a caller's parameters must not name them. */
export const COMMON_API_PARAMS: readonly string[] = Object.freeze([
  'Format',
  'Version',
  'AccessKeyId',
  'SignatureMethod',
  'SignatureVersion',
  'SignatureNonce',
  'Timestamp',
  'RegionId',
  'Action',
  'Signature',
]);

export function signedParams(options: SignedRequestOptions): Record<string, string> {
  const params: Record<string, string> = {
    Format: 'JSON',
    Version: IOT_API_VERSION,
    AccessKeyId: options.accessKeyId,
    SignatureMethod: 'HMAC-SHA1',
    SignatureVersion: '1.0',
    SignatureNonce: options.nonce ?? randomUUID(),
    Timestamp: options.timestamp ?? apiTimestamp(),
    RegionId: options.regionId,
    Action: options.action,
  };
  for (const [key, value] of Object.entries(options.params)) if (value !== undefined) params[key] = String(value);
  params.Signature = signatureV1(options.method ?? 'POST', params, options.accessKeySecret);
  return params;
}
