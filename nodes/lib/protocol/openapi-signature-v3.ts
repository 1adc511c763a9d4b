// Alibaba Cloud OpenAPI signature V3 (ACS3-HMAC-SHA256), the default of the current SDKs (@alicloud/openapi-client):
// the canonical request, the string to sign, the Authorization header, and its verification (docs/protocol.md §5).
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { percentEncode } from './openapi-signature';

export const ACS3_HMAC_SHA256 = 'ACS3-HMAC-SHA256';

/** The headers a V3 request carries besides Authorization, lower-cased. */
export const V3_HEADERS = {
  action: 'x-acs-action',
  version: 'x-acs-version',
  nonce: 'x-acs-signature-nonce',
  date: 'x-acs-date',
  contentSha256: 'x-acs-content-sha256',
} as const;

/** Headers a client must sign: every `x-acs-*` header it sends, and these. */
const ALWAYS_SIGNED = ['host', 'content-type'];

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export type HeaderValue = string | readonly string[] | undefined;

export interface V3Request {
  method: string;
  /** The URL path as sent, `/` for RPC-style APIs. */
  path: string;
  /** Decoded query parameters. */
  query: Readonly<Record<string, string>>;
  /** Header values by lower-cased name. */
  headers: Readonly<Record<string, HeaderValue>>;
  /** Lower-cased names of the signed headers. */
  signedHeaders: readonly string[];
  /** Hex SHA-256 of the body bytes. */
  bodySha256: string;
}

function headerText(value: HeaderValue): string {
  if (value === undefined) return '';
  return (typeof value === 'string' ? [value] : [...value])
    .map((item) => item.trim())
    .sort()
    .join(',');
}

export function canonicalQueryV3(query: Readonly<Record<string, string>>): string {
  return Object.keys(query)
    .map((key) => [percentEncode(key), percentEncode(query[key])])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`)
    .join('&');
}

export function canonicalRequestV3(request: V3Request): string {
  const names = [...new Set(request.signedHeaders.map((name) => name.toLowerCase()))].sort();
  const headers = names.map((name) => `${name}:${headerText(request.headers[name])}\n`).join('');
  return [
    request.method.toUpperCase(),
    request.path || '/',
    canonicalQueryV3(request.query),
    headers,
    names.join(';'),
    request.bodySha256,
  ].join('\n');
}

export function stringToSignV3(canonicalRequest: string): string {
  return `${ACS3_HMAC_SHA256}\n${sha256Hex(canonicalRequest)}`;
}

export function signatureV3(request: V3Request, accessKeySecret: string): string {
  return createHmac('sha256', accessKeySecret)
    .update(stringToSignV3(canonicalRequestV3(request)), 'utf8')
    .digest('hex');
}

export interface V3Authorization {
  algorithm: string;
  accessKeyId: string;
  signedHeaders: string[];
  signature: string;
}

/** Reads `ALGORITHM Credential=ID,SignedHeaders=a;b,Signature=HEX`; undefined when it is not of that form. */
export function parseAuthorizationV3(header: string): V3Authorization | undefined {
  const match = /^(ACS3-[A-Z0-9-]+)\s+(.*)$/.exec(header.trim());
  if (!match) return undefined;
  const fields: Record<string, string> = {};
  for (const part of match[2].split(',')) {
    const equals = part.indexOf('=');
    if (equals <= 0) return undefined;
    fields[part.slice(0, equals).trim()] = part.slice(equals + 1).trim();
  }
  const { Credential: accessKeyId, SignedHeaders: signedHeaders, Signature: signature } = fields;
  if (!accessKeyId || !signedHeaders || !signature) return undefined;
  return { algorithm: match[1], accessKeyId, signedHeaders: signedHeaders.split(';').map((name) => name.toLowerCase()), signature };
}

export function authorizationV3(accessKeyId: string, signedHeaders: readonly string[], signature: string): string {
  return `${ACS3_HMAC_SHA256} Credential=${accessKeyId},SignedHeaders=${signedHeaders.join(';')},Signature=${signature}`;
}

/** The request headers the caller sent that should have been signed and were not: x-acs-*, host, content-type. */
export function unsignedHeadersV3(request: Pick<V3Request, 'headers' | 'signedHeaders'>): string[] {
  const signed = new Set(request.signedHeaders.map((name) => name.toLowerCase()));
  return Object.keys(request.headers)
    .map((name) => name.toLowerCase())
    .filter(
      (name) => (name.startsWith('x-acs-') || ALWAYS_SIGNED.includes(name)) && request.headers[name] !== undefined && !signed.has(name),
    );
}

export function verifySignatureV3(request: V3Request, accessKeySecret: string, signature: string): boolean {
  const expected = Buffer.from(signatureV3(request, accessKeySecret));
  const actual = Buffer.from(signature.toLowerCase());
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

export interface SignV3Options {
  method: string;
  path?: string;
  query?: Readonly<Record<string, string>>;
  /** Headers to send and sign besides the ones made here (host, content-type ...). */
  headers?: Readonly<Record<string, string>>;
  body?: string | Buffer;
  action: string;
  version: string;
  accessKeyId: string;
  accessKeySecret: string;
  nonce: string;
  /** `YYYY-MM-DDThh:mm:ssZ` */
  date: string;
}

/** The headers of a V3-signed request, Authorization included, every one of them signed. */
export function signRequestV3(options: SignV3Options): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value;
  Object.assign(headers, {
    [V3_HEADERS.action]: options.action,
    [V3_HEADERS.version]: options.version,
    [V3_HEADERS.nonce]: options.nonce,
    [V3_HEADERS.date]: options.date,
    [V3_HEADERS.contentSha256]: sha256Hex(options.body ?? ''),
  });
  const signedHeaders = Object.keys(headers).sort();
  const signature = signatureV3(
    {
      method: options.method,
      path: options.path ?? '/',
      query: options.query ?? {},
      headers,
      signedHeaders,
      bodySha256: headers[V3_HEADERS.contentSha256],
    },
    options.accessKeySecret,
  );
  return { ...headers, authorization: authorizationV3(options.accessKeyId, signedHeaders, signature) };
}
