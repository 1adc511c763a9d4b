// A small client of the IoT Platform's OpenAPI: signed calls over kept-alive connections (an http(s) Agent of its own,
// one socket per call in flight; node:http, about twice the calls per second of fetch), a bound on the calls in
// flight, and retries with backoff when the platform throttles.
import * as http from 'node:http';
import * as https from 'node:https';
import { AliyunIotError } from '../errors';
import { ApiCredentials, signedParams } from '../protocol/openapi-signature';

export type ApiResponse = Record<string, unknown>;
export type ApiParams = Record<string, string | number | undefined>;

export interface ApiRetryPolicy {
  /** Calls after the first one. */
  retries: number;
  /** The wait before the first retry; doubled for each next one, with jitter, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_API_RETRY: ApiRetryPolicy = { retries: 3, baseDelayMs: 200, maxDelayMs: 2000 };

/** Calls in flight per connection by default: beyond it they wait their turn, in order. */
export const DEFAULT_API_CONCURRENCY = 32;

export interface OpenApiClientOptions extends ApiCredentials {
  /** e.g. https://iot.cn-shanghai.aliyuncs.com */
  endpoint: string;
  regionId: string;
  iotInstanceId?: string;
  timeoutMs?: number;
  maxConcurrent?: number;
  retry?: Partial<ApiRetryPolicy>;
}

/**
 * Whether the platform refused a call without acting on it, so that sending it again is safe for any action: the
 * gateway's throttling codes (Throttling, Throttling.User, Throttling.Api), HTTP 429, and 503 ServiceUnavailable.
 * Other 5xx answers are not retried: the action may have taken effect (a Pub delivered, an RRpc sent to the device).
 */
export function isRetryable(status: number, code: string): boolean {
  return /^Throttling(\.|$)/.test(code) || status === 429 || status === 503;
}

/** Admits at most `limit` holders at once; the others wait in arrival order. */
class Gate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async enter(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  leave(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
}

interface Attempt {
  answer?: ApiResponse;
  error?: AliyunIotError;
  retryable: boolean;
}

/** Calls IoT Platform actions by POST; an answer with Success false, or a gateway error, rejects with the code. */
interface HttpAnswer {
  status: number;
  statusText: string;
  body: string;
}

export class OpenApiClient {
  private readonly gate: Gate;
  private readonly retry: ApiRetryPolicy;
  private readonly url: URL;
  private readonly agent: http.Agent;

  constructor(private readonly options: OpenApiClientOptions) {
    const concurrency = Math.max(1, options.maxConcurrent ?? DEFAULT_API_CONCURRENCY);
    this.gate = new Gate(concurrency);
    this.retry = { ...DEFAULT_API_RETRY, ...options.retry };
    this.url = new URL(options.endpoint);
    const agentOptions = { keepAlive: true, maxSockets: concurrency };
    this.agent = this.url.protocol === 'https:' ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
  }

  /** Ends the kept-alive connections; calls after it open new ones. */
  close(): void {
    this.agent.destroy();
  }

  private post(body: string, timeoutMs: number): Promise<HttpAnswer> {
    const send = this.url.protocol === 'https:' ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const request = send(
        this.url,
        {
          method: 'POST',
          agent: this.agent,
          timeout: timeoutMs,
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            resolve({
              status: response.statusCode ?? 0,
              statusText: response.statusMessage ?? '',
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          response.on('error', reject);
        },
      );
      request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      request.on('error', reject);
      request.end(body);
    });
  }

  /**
   * One action; `timeoutMs` bounds each attempt. A throttled call is signed and sent again (new nonce and timestamp)
   * after a backoff; the last refusal is the error.
   */
  async call(action: string, params: ApiParams, timeoutMs = this.options.timeoutMs ?? 10_000): Promise<ApiResponse> {
    for (let attempt = 0; ; attempt++) {
      await this.gate.enter();
      let result: Attempt;
      try {
        result = await this.attempt(action, params, timeoutMs);
      } finally {
        this.gate.leave();
      }
      if (result.answer) return result.answer;
      if (!result.retryable || attempt >= this.retry.retries) throw result.error;
      await new Promise((resolve) => setTimeout(resolve, this.backoffMs(attempt)));
    }
  }

  private backoffMs(attempt: number): number {
    const ceiling = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** attempt);
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  private async attempt(action: string, params: ApiParams, timeoutMs: number): Promise<Attempt> {
    const body = new URLSearchParams(
      signedParams({
        ...this.options,
        action,
        method: 'POST',
        params: { IotInstanceId: this.options.iotInstanceId || undefined, ...params },
      }),
    ).toString();
    let response: HttpAnswer;
    try {
      response = await this.post(body, timeoutMs);
    } catch (err) {
      return { error: new AliyunIotError('API_UNREACHABLE', { action, reason: (err as Error).message }), retryable: false };
    }
    let answer: ApiResponse;
    try {
      answer = JSON.parse(response.body) as ApiResponse;
      if (answer === null || typeof answer !== 'object') throw new Error('not a JSON object');
    } catch {
      return { error: apiFailure(action, String(response.status), response.statusText), retryable: isRetryable(response.status, '') };
    }
    const ok = response.status >= 200 && response.status < 300;
    if (ok && answer.Success !== false) return { answer, retryable: false };
    const code = String(answer.Code ?? response.status);
    return {
      error: apiFailure(action, code, String(answer.ErrorMessage ?? answer.Message ?? '')),
      retryable: isRetryable(response.status, code),
    };
  }
}

/** API_FAILED, with the platform's code also as `apiCode` for flows to branch on. */
function apiFailure(action: string, code: string, message: string): AliyunIotError {
  return Object.assign(new AliyunIotError('API_FAILED', { action, code, message }), { apiCode: code });
}
