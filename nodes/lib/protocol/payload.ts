import { isUtf8 } from 'node:buffer';
import { AliyunIotError } from '../errors';
import { MAX_JSON_DEPTH } from './limits';

export type Datatype = 'auto-detect' | 'json' | 'utf8' | 'buffer' | 'base64';
export const DATATYPES: readonly Datatype[] = ['auto-detect', 'json', 'utf8', 'buffer', 'base64'];

export function isDatatype(value: unknown): value is Datatype {
  return DATATYPES.includes(value as Datatype);
}

/**
 * Whether objects and arrays in `value` nest more than `limit` levels deep, found without recursion. Objects met
 * again (shared or circular) are not walked twice: JSON.stringify reports a cycle itself.
 */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  const pending: Array<[value: unknown, depth: number]> = [[value, 0]];
  const walked = new Set<object>();
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [inner, depth] = next;
    if (inner === null || typeof inner !== 'object' || ArrayBuffer.isView(inner) || walked.has(inner)) continue;
    if (depth >= limit) return true;
    walked.add(inner);
    for (const child of Object.values(inner)) pending.push([child, depth + 1]);
  }
  return false;
}

/** The JSON text of a value, or PAYLOAD_TOO_DEEP / PAYLOAD_UNSERIALIZABLE saying why it has none. */
export function jsonText(value: unknown): string {
  if (nestsDeeperThan(value, MAX_JSON_DEPTH)) throw new AliyunIotError('PAYLOAD_TOO_DEEP', { limit: MAX_JSON_DEPTH });
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw new AliyunIotError('PAYLOAD_UNSERIALIZABLE', { reason: (err as Error).message.split('\n')[0] });
  }
  if (json === undefined) throw new AliyunIotError('PAYLOAD_UNSERIALIZABLE', { reason: typeof value });
  return json;
}

/** Buffer as is, string as UTF-8, anything else as JSON (null and undefined as an empty payload). */
export function encodePayload(value: unknown): Buffer | string {
  if (typeof value === 'string' || Buffer.isBuffer(value)) return value;
  if (value === undefined || value === null) return '';
  return jsonText(value);
}

/** Bytes on the wire; a string is only measured exactly when it could be over `limit`. */
export function exceedsBytes(payload: Buffer | string, limit: number): number | undefined {
  if (typeof payload !== 'string') return payload.length > limit ? payload.length : undefined;
  if (payload.length * 3 <= limit) return undefined;
  const bytes = Buffer.byteLength(payload, 'utf8');
  return bytes > limit ? bytes : undefined;
}

// First characters of a JSON text; anything else is left as a string without paying for a failed JSON.parse.
const JSON_START = new Set('{["-0123456789tfn'.split(''));

function looksLikeJson(text: string): boolean {
  let i = 0;
  while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  return i < text.length && JSON_START.has(text[i]);
}

/**
 * As the core MQTT in node does: `auto-detect` gives parsed JSON when the payload is JSON, else a string when it is
 * UTF-8, else the Buffer; `json` insists on JSON and throws JSON_INVALID otherwise.
 */
export function decodePayload(payload: Buffer, datatype: Datatype): unknown {
  switch (datatype) {
    case 'buffer':
      return payload;
    case 'base64':
      return payload.toString('base64');
    case 'utf8':
      return payload.toString('utf8');
    case 'json':
      try {
        return JSON.parse(payload.toString('utf8'));
      } catch (err) {
        throw new AliyunIotError('JSON_INVALID', { reason: (err as Error).message });
      }
    default: {
      if (!isUtf8(payload)) return payload;
      const text = payload.toString('utf8');
      if (!looksLikeJson(text)) return text;
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    }
  }
}

/** The bytes of an AMQP body: a data section, a Buffer, text, or a value sent as JSON. */
export function bodyBytes(body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body;
  if (body && typeof body === 'object' && Buffer.isBuffer((body as { content?: unknown }).content))
    return (body as { content: Buffer }).content;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  return Buffer.from(body === undefined ? '' : JSON.stringify(body), 'utf8');
}
