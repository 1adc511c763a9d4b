// Alibaba Cloud OpenAPI (RPC style) for the IoT Platform: signature version 1, and a small client for the actions the
// cloud-application mode uses (aliyun-protocol.md §5).
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { AliyunIotError } from './errors';

export const IOT_API_VERSION = '2018-01-20';

/** encodeURIComponent, plus the characters RFC 3986 reserves that it leaves alone. */
export function percentEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function canonicalQuery(params: Record<string, string>): string {
  return Object.keys(params).sort().map((key) => `${percentEncode(key)}=${percentEncode(params[key])}`).join('&');
}

/** Signature v1 over every parameter except Signature itself. */
export function signatureV1(method: string, params: Record<string, string>, accessKeySecret: string): string {
  const { Signature: _ignored, ...signed } = params;
  const stringToSign = `${method.toUpperCase()}&${percentEncode('/')}&${percentEncode(canonicalQuery(signed))}`;
  return createHmac('sha1', `${accessKeySecret}&`).update(stringToSign, 'utf8').digest('base64');
}

export function verifySignatureV1(method: string, params: Record<string, string>, accessKeySecret: string): boolean {
  const expected = Buffer.from(signatureV1(method, params, accessKeySecret));
  const actual = Buffer.from(params.Signature ?? '');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
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

export type ApiResponse = Record<string, unknown>;

export interface OpenApiClientOptions extends ApiCredentials {
  /** e.g. https://iot.cn-shanghai.aliyuncs.com */
  endpoint: string;
  regionId: string;
  iotInstanceId?: string;
  timeoutMs?: number;
}

/** Calls IoT Platform actions by POST; an answer with Success false, or a gateway error, rejects with the code. */
export class OpenApiClient {
  constructor(private readonly options: OpenApiClientOptions) {}

  async call(action: string, params: Record<string, string | number | undefined>, timeoutMs = this.options.timeoutMs ?? 10_000): Promise<ApiResponse> {
    const body = new URLSearchParams(signedParams({
      ...this.options, action, method: 'POST', params: { IotInstanceId: this.options.iotInstanceId || undefined, ...params },
    }));
    let response: Response;
    try {
      response = await fetch(this.options.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new AliyunIotError('API_UNREACHABLE', { action, reason: (err as Error).message });
    }
    let answer: ApiResponse;
    try {
      answer = (await response.json()) as ApiResponse;
    } catch {
      throw new AliyunIotError('API_FAILED', { action, code: String(response.status), message: response.statusText });
    }
    if (!response.ok || answer.Success === false) {
      const error = new AliyunIotError('API_FAILED', {
        action, code: String(answer.Code ?? response.status), message: String(answer.ErrorMessage ?? answer.Message ?? ''),
      });
      throw Object.assign(error, { apiCode: String(answer.Code ?? response.status) });
    }
    return answer;
  }
}
