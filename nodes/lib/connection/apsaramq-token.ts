// ApsaraMQ's token mode on a live connection (docs/protocol.md §4): the notices the service sends about a token, and
// what an upload of a new token carries.
import { AliyunIotError } from '../errors';
import { TOKEN_TOPICS } from '../protocol/mq-login';
import type { ConnectionNotice } from './types';

/** A `$SYS/` message read as a token notice; undefined for any other system topic. */
export function readTokenNotice(topic: string, payload: Buffer): { kind: ConnectionNotice['kind']; payload: unknown } | undefined {
  const kind = topic === TOKEN_TOPICS.expireNotice ? 'token-expiring' : topic === TOKEN_TOPICS.invalidNotice ? 'token-invalid' : undefined;
  if (!kind) return undefined;
  const text = payload.toString('utf8');
  try {
    return { kind, payload: JSON.parse(text) as unknown };
  } catch {
    return { kind, payload: text };
  }
}

/** The body of a `$SYS/uploadToken` publish; throws on a token or type the service cannot take. */
export function tokenUploadBody(token: unknown, type: unknown): string {
  if (typeof token !== 'string' || token === '' || token.includes('|')) throw new AliyunIotError('TOKEN_INVALID_INPUT');
  const tokenType = type === undefined || type === '' ? 'RW' : type;
  if (tokenType !== 'R' && tokenType !== 'W' && tokenType !== 'RW') {
    throw new AliyunIotError('TOKEN_TYPE_INVALID', { value: String(tokenType) });
  }
  return JSON.stringify({ token, type: tokenType });
}
