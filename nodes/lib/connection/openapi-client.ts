// A small client of the IoT Platform's OpenAPI for the actions the cloud-application mode uses.
import { AliyunIotError } from '../errors';
import { ApiCredentials, signedParams } from '../protocol/openapi-signature';

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
