// An OpenAPI-compatible HTTP endpoint on loopback (docs/protocol.md §5): RPC style, GET query or POST form,
// signature v1 or V3, ACS3-HMAC-SHA256 (both in nodes/lib/protocol), a time window and
// single-use nonces, errors shaped like the gateway's: {RequestId, Success: false, Code, Message}. The actions live
// in sim/openapi-actions.ts.
import { createHash, randomUUID } from 'node:crypto';
import * as http from 'node:http';
import {
  IOT_API_VERSION,
  canonicalQuery,
  percentEncode,
  verifySignatureV1,
  ACS3_HMAC_SHA256,
  V3_HEADERS,
  V3Request,
  canonicalRequestV3,
  parseAuthorizationV3,
  sha256Hex,
  stringToSignV3,
  unsignedHeadersV3,
  verifySignatureV3,
} from '../nodes/lib/protocol';
import { SimCloudConfig } from './config';

/** How far a request's Timestamp may be from the server's clock, as on the real gateway. */
export const TIMESTAMP_WINDOW_MS = 15 * 60 * 1000;

/** A refused call: gateway errors carry HTTP 400/403/404, business errors HTTP 200 with Success false. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function missing(name: string): ApiFailure {
  return new ApiFailure(400, `Missing${name}`, `${name} is mandatory for this action.`);
}

export function business(code: string, message: string): ApiFailure {
  return new ApiFailure(200, code, message);
}

export type ApiParams = Readonly<Record<string, string>>;
export type ActionHandler = (params: ApiParams) => Promise<Record<string, unknown>>;

export interface OpenApiServerOptions {
  cloud: SimCloudConfig;
  actions: Readonly<Record<string, ActionHandler>>;
  log: (line: string) => void;
  now?: () => number;
}

const COMMON_REQUIRED = [
  'Action',
  'AccessKeyId',
  'Signature',
  'SignatureMethod',
  'SignatureVersion',
  'SignatureNonce',
  'Timestamp',
  'Version',
];
const TIMESTAMP_FORMAT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;

/**
 * Nonces seen within the Timestamp window, with their expiry; older ones are forgotten. A nonce is kept as the
 * digest of its AccessKey and text: strings parsed out of a request body can be slices that keep the whole body
 * alive, and a nonce can be long.
 */
class NonceStore {
  private readonly seen = new Map<string, number>();

  /** False when the nonce was used already. */
  take(accessKeyId: string, nonce: string, now: number): boolean {
    if (this.seen.size > 1000) for (const [digest, until] of this.seen) if (until < now) this.seen.delete(digest);
    const digest = createHash('sha256').update(accessKeyId).update('\n').update(nonce).digest('base64');
    const until = this.seen.get(digest);
    if (until !== undefined && until >= now) return false;
    this.seen.set(digest, now + 2 * TIMESTAMP_WINDOW_MS);
    return true;
  }
}

function parseTimestamp(text: string): number | undefined {
  const match = TIMESTAMP_FORMAT.exec(text);
  if (!match) return undefined;
  const time = Date.parse(text);
  return Number.isNaN(time) ? undefined : time;
}

function checkVersion(version: string): void {
  if (version !== IOT_API_VERSION)
    throw new ApiFailure(400, 'InvalidParameter.Version', `Specified parameter Version is not valid: use ${IOT_API_VERSION}.`);
}

/** The request time within the window; returns the server's now. */
function checkTime(text: string, options: OpenApiServerOptions): number {
  const time = parseTimestamp(text);
  if (time === undefined)
    throw new ApiFailure(
      400,
      'InvalidTimeStamp.Format',
      'Specified time stamp or date value is not well formatted (YYYY-MM-DDThh:mm:ssZ).',
    );
  const now = options.now?.() ?? Date.now();
  if (Math.abs(now - time) > TIMESTAMP_WINDOW_MS)
    throw new ApiFailure(400, 'InvalidTimeStamp.Expired', 'Specified time stamp or date value is expired.');
  return now;
}

function secretOf(accessKeyId: string, options: OpenApiServerOptions): string {
  const key = options.cloud.accessKeys.find((entry) => entry.accessKeyId === accessKeyId);
  if (!key) throw new ApiFailure(404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.');
  return key.accessKeySecret;
}

function signatureMismatch(stringToSign: string): ApiFailure {
  return new ApiFailure(
    400,
    'SignatureDoesNotMatch',
    `Specified signature is not matched with our calculation. server string to sign is:${stringToSign}`,
  );
}

function takeNonce(nonces: NonceStore, accessKeyId: string, nonce: string, now: number): void {
  if (!nonces.take(accessKeyId, nonce, now)) throw new ApiFailure(400, 'SignatureNonceUsed', 'Specified signature nonce was used already.');
}

/** Signature v1: checks the common parameters and the signature; throws the gateway's error. */
function authenticateV1(method: string, params: ApiParams, options: OpenApiServerOptions, nonces: NonceStore): void {
  for (const name of COMMON_REQUIRED) if (!params[name]) throw missing(name);
  if (params.Format !== undefined && params.Format.toUpperCase() !== 'JSON') {
    throw new ApiFailure(400, 'InvalidParameter.Format', 'Specified parameter Format is not valid: this simulator answers JSON only.');
  }
  if (params.SignatureMethod !== 'HMAC-SHA1')
    throw new ApiFailure(400, 'InvalidParameter.SignatureMethod', 'Specified signature method is not supported: use HMAC-SHA1.');
  if (params.SignatureVersion !== '1.0')
    throw new ApiFailure(400, 'InvalidParameter.SignatureVersion', 'Specified signature version is not supported: use 1.0.');
  checkVersion(params.Version);
  const now = checkTime(params.Timestamp, options);
  const secret = secretOf(params.AccessKeyId, options);
  if (!verifySignatureV1(method, params, secret)) {
    const { Signature: _ignored, ...signed } = params;
    throw signatureMismatch(`${method}&${percentEncode('/')}&${percentEncode(canonicalQuery(signed))}`);
  }
  takeNonce(nonces, params.AccessKeyId, params.SignatureNonce, now);
}

/**
 * The V3 header standing for each v1 common parameter. A missing one gets the v1 code (MissingAction, MissingVersion,
 * MissingSignatureNonce, MissingTimestamp): inferred, the gateway's codes for absent V3 headers are not documented.
 */
const V3_REQUIRED: ReadonlyArray<[header: string, param: string]> = [
  [V3_HEADERS.action, 'Action'],
  [V3_HEADERS.version, 'Version'],
  [V3_HEADERS.nonce, 'SignatureNonce'],
  [V3_HEADERS.date, 'Timestamp'],
];

interface RawRequest {
  method: string;
  path: string;
  query: Readonly<Record<string, string>>;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function header(request: RawRequest, name: string): string {
  const value = request.headers[name];
  return (Array.isArray(value) ? value.join(',') : (value ?? '')).trim();
}

/** Signature V3 (ACS3-HMAC-SHA256); returns the action named by x-acs-action, throws the gateway's error. */
function authenticateV3(request: RawRequest, options: OpenApiServerOptions, nonces: NonceStore): string {
  const authorization = parseAuthorizationV3(header(request, 'authorization'));
  if (!authorization) {
    throw new ApiFailure(
      400,
      'IncompleteSignature',
      `The request signature does not conform to Aliyun standards: Authorization is not ${ACS3_HMAC_SHA256} Credential=...,SignedHeaders=...,Signature=...`,
    );
  }
  if (authorization.algorithm !== ACS3_HMAC_SHA256) {
    throw new ApiFailure(400, 'InvalidParameter.SignatureMethod', `Specified signature method is not supported: use ${ACS3_HMAC_SHA256}.`);
  }
  for (const [name, param] of V3_REQUIRED)
    if (!header(request, name)) throw new ApiFailure(400, `Missing${param}`, `${name} is mandatory for this action.`);
  checkVersion(header(request, V3_HEADERS.version));
  const now = checkTime(header(request, V3_HEADERS.date), options);
  const secret = secretOf(authorization.accessKeyId, options);
  const signed: V3Request = {
    method: request.method,
    path: request.path,
    query: request.query,
    headers: request.headers,
    signedHeaders: authorization.signedHeaders,
    bodySha256: sha256Hex(request.body),
  };
  const unsigned = unsignedHeadersV3(signed);
  if (unsigned.length > 0)
    throw new ApiFailure(
      400,
      'IncompleteSignature',
      `The request signature does not conform to Aliyun standards: sign the headers ${unsigned.join(', ')}.`,
    );
  const claimed = header(request, V3_HEADERS.contentSha256);
  if (claimed !== '' && claimed.toLowerCase() !== signed.bodySha256) {
    throw new ApiFailure(
      400,
      'SignatureDoesNotMatch',
      `Specified signature is not matched with our calculation: ${V3_HEADERS.contentSha256} is not the hex SHA-256 of the body.`,
    );
  }
  if (!verifySignatureV3(signed, secret, authorization.signature)) {
    const canonical = canonicalRequestV3(signed);
    throw signatureMismatch(`${stringToSignV3(canonical)} (canonical request: ${JSON.stringify(canonical)})`);
  }
  takeNonce(nonces, authorization.accessKeyId, header(request, V3_HEADERS.nonce), now);
  return header(request, V3_HEADERS.action);
}

function readBody(request: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > 2 * 1024 * 1024) {
        reject(new ApiFailure(400, 'InvalidParameter.Body', 'The request body is larger than 2 MB.'));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('error', reject);
    request.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

/** The request handler of the OpenAPI endpoint, for an HTTP or an HTTPS server. */
export function openApiHandler(options: OpenApiServerOptions): http.RequestListener {
  const nonces = new NonceStore();
  const handle = async (request: http.IncomingMessage): Promise<Record<string, unknown>> => {
    const method = (request.method ?? 'GET').toUpperCase();
    if (method !== 'GET' && method !== 'POST')
      throw new ApiFailure(400, 'InvalidParameter.Method', `HTTP ${method} is not supported: use GET or POST.`);
    // The request target is split by hand: new URL() throws on targets such as `//`, which are only a wrong path.
    const target = request.url ?? '/';
    const queryStart = target.indexOf('?');
    const raw: RawRequest = {
      method,
      path: (queryStart < 0 ? target : target.slice(0, queryStart)) || '/',
      query: Object.fromEntries(new URLSearchParams(queryStart < 0 ? '' : target.slice(queryStart + 1))),
      headers: request.headers,
      body: method === 'POST' ? await readBody(request) : Buffer.alloc(0),
    };
    // Both signatures take the parameters from the query and from a form body (the SDKs put some in each).
    const params: Record<string, string> = { ...raw.query, ...Object.fromEntries(new URLSearchParams(raw.body.toString('utf8'))) };
    let actionName: string;
    if (header(raw, 'authorization').startsWith('ACS3-')) {
      actionName = authenticateV3(raw, options, nonces);
    } else {
      authenticateV1(method, params, options, nonces);
      actionName = params.Action;
    }
    const action = options.actions[actionName];
    if (!Object.prototype.hasOwnProperty.call(options.actions, actionName) || !action) {
      throw new ApiFailure(404, 'InvalidAction.NotFound', `Specified api ${actionName} is not found, please check your url and method.`);
    }
    return action(params);
  };
  return (request, response) => {
    const requestId = randomUUID().toUpperCase();
    const send = (status: number, body: Record<string, unknown>): void => {
      response.writeHead(status, { 'content-type': 'application/json;charset=utf-8' });
      response.end(JSON.stringify({ RequestId: requestId, ...body }));
    };
    handle(request).then(
      (result) => send(200, { Success: true, ...result }),
      (err: Error) => {
        if (!(err instanceof ApiFailure)) options.log(`openapi: ${err.stack ?? err.message}`);
        const failure =
          err instanceof ApiFailure
            ? err
            : new ApiFailure(500, 'InternalError', 'The request processing has failed due to some unknown error.');
        options.log(`openapi ${failure.code}: ${failure.message}`);
        // The gateway's own errors say Message (what the SDKs read), the IoT Platform's say ErrorMessage.
        send(failure.status, {
          Success: false,
          Code: failure.code,
          ErrorMessage: failure.message,
          ...(failure.status === 200 ? {} : { Message: failure.message }),
        });
      },
    );
  };
}

export function createOpenApiServer(options: OpenApiServerOptions): http.Server {
  return http.createServer(openApiHandler(options));
}
