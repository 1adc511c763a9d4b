// An OpenAPI-compatible HTTP endpoint on loopback (docs/protocol.md §5): RPC style, GET query or POST form,
// signature v1 checked with nodes/lib/openapi.ts, a Timestamp window and single-use SignatureNonce, errors shaped
// like the gateway's: {RequestId, Success: false, Code, ErrorMessage}. The actions live in sim/openapi-actions.ts.
import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import { IOT_API_VERSION, canonicalQuery, percentEncode, verifySignatureV1 } from '../nodes/lib/protocol';
import { SimCloudConfig } from './config';

/** How far a request's Timestamp may be from the server's clock, as on the real gateway. */
export const TIMESTAMP_WINDOW_MS = 15 * 60 * 1000;

/** A refused call: gateway errors carry HTTP 400/403/404, business errors HTTP 200 with Success false. */
export class ApiFailure extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
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

const COMMON_REQUIRED = ['Action', 'AccessKeyId', 'Signature', 'SignatureMethod', 'SignatureVersion', 'SignatureNonce', 'Timestamp', 'Version'];
const TIMESTAMP_FORMAT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;

/** Nonces seen within the Timestamp window; older ones are forgotten. */
class NonceStore {
  private readonly seen = new Map<string, number>();

  /** False when the nonce was used already. */
  take(key: string, now: number): boolean {
    if (this.seen.size > 1000) for (const [nonce, until] of this.seen) if (until < now) this.seen.delete(nonce);
    const until = this.seen.get(key);
    if (until !== undefined && until >= now) return false;
    this.seen.set(key, now + 2 * TIMESTAMP_WINDOW_MS);
    return true;
  }
}

function parseTimestamp(text: string): number | undefined {
  const match = TIMESTAMP_FORMAT.exec(text);
  if (!match) return undefined;
  const time = Date.parse(text);
  return Number.isNaN(time) ? undefined : time;
}

/** Checks the common parameters and the signature; throws the gateway's error. */
function authenticate(method: string, params: ApiParams, options: OpenApiServerOptions, nonces: NonceStore): void {
  for (const name of COMMON_REQUIRED) if (!params[name]) throw missing(name);
  if (params.Format !== undefined && params.Format.toUpperCase() !== 'JSON') {
    throw new ApiFailure(400, 'InvalidParameter.Format', 'Specified parameter Format is not valid: this simulator answers JSON only.');
  }
  if (params.SignatureMethod !== 'HMAC-SHA1') throw new ApiFailure(400, 'InvalidParameter.SignatureMethod', 'Specified signature method is not supported: use HMAC-SHA1.');
  if (params.SignatureVersion !== '1.0') throw new ApiFailure(400, 'InvalidParameter.SignatureVersion', 'Specified signature version is not supported: use 1.0.');
  if (params.Version !== IOT_API_VERSION) throw new ApiFailure(400, 'InvalidParameter.Version', `Specified parameter Version is not valid: use ${IOT_API_VERSION}.`);
  const time = parseTimestamp(params.Timestamp);
  if (time === undefined) throw new ApiFailure(400, 'InvalidTimeStamp.Format', 'Specified time stamp or date value is not well formatted (YYYY-MM-DDThh:mm:ssZ).');
  const now = options.now?.() ?? Date.now();
  if (Math.abs(now - time) > TIMESTAMP_WINDOW_MS) throw new ApiFailure(400, 'InvalidTimeStamp.Expired', 'Specified time stamp or date value is expired.');
  const key = options.cloud.accessKeys.find((entry) => entry.accessKeyId === params.AccessKeyId);
  if (!key) throw new ApiFailure(404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.');
  if (!verifySignatureV1(method, params, key.accessKeySecret)) {
    const { Signature: _ignored, ...signed } = params;
    const stringToSign = `${method}&${percentEncode('/')}&${percentEncode(canonicalQuery(signed))}`;
    throw new ApiFailure(400, 'SignatureDoesNotMatch', `Specified signature is not matched with our calculation. server string to sign is:${stringToSign}`);
  }
  if (!nonces.take(`${params.AccessKeyId}/${params.SignatureNonce}`, now)) {
    throw new ApiFailure(400, 'SignatureNonceUsed', 'Specified signature nonce was used already.');
  }
}

function readForm(request: http.IncomingMessage): Promise<URLSearchParams> {
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
    request.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
  });
}

export function createOpenApiServer(options: OpenApiServerOptions): http.Server {
  const nonces = new NonceStore();
  const handle = async (request: http.IncomingMessage): Promise<Record<string, unknown>> => {
    const method = (request.method ?? 'GET').toUpperCase();
    if (method !== 'GET' && method !== 'POST') throw new ApiFailure(400, 'InvalidParameter.Method', `HTTP ${method} is not supported: use GET or POST.`);
    const params: Record<string, string> = {};
    for (const [name, value] of new URL(request.url ?? '/', 'http://localhost').searchParams) params[name] = value;
    if (method === 'POST') for (const [name, value] of await readForm(request)) params[name] = value;
    authenticate(method, params, options, nonces);
    const action = options.actions[params.Action];
    if (!Object.prototype.hasOwnProperty.call(options.actions, params.Action) || !action) {
      throw new ApiFailure(404, 'InvalidAction.NotFound', `Specified api ${params.Action} is not found, please check your url and method.`);
    }
    return action(params);
  };
  return http.createServer((request, response) => {
    const requestId = randomUUID().toUpperCase();
    const send = (status: number, body: Record<string, unknown>): void => {
      response.writeHead(status, { 'content-type': 'application/json;charset=utf-8' });
      response.end(JSON.stringify({ RequestId: requestId, ...body }));
    };
    handle(request).then(
      (result) => send(200, { Success: true, ...result }),
      (err: Error) => {
        if (!(err instanceof ApiFailure)) options.log(`openapi: ${err.stack ?? err.message}`);
        const failure = err instanceof ApiFailure ? err : new ApiFailure(500, 'InternalError', 'The request processing has failed due to some unknown error.');
        options.log(`openapi ${failure.code}: ${failure.message}`);
        send(failure.status, { Success: false, Code: failure.code, ErrorMessage: failure.message });
      },
    );
  });
}
