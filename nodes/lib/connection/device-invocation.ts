// What a cloud application asks of one device through the OpenAPI: set properties, invoke a service, or an RRPC call
// that waits for the device's answer.
import { AliyunIotError } from '../errors';
import { deviceKey } from '../protocol/alink';
import { DEFAULTS, RANGES } from '../protocol/limits';
import { decodePayload, encodePayload, jsonText } from '../protocol/payload';
import type { OpenApiClient } from './openapi-client';

export type InvokeAction = 'set' | 'service' | 'rrpc';

export interface InvokeRequest {
  action: InvokeAction;
  productKey: string;
  deviceName: string;
  /** The service identifier (action `service`). */
  identifier?: string;
  /** Property items, service arguments, or the RRPC request (Buffer as is, text as UTF-8, else JSON). */
  payload: unknown;
  /** RRPC on a custom topic of the device, /${productKey}/${deviceName}/user/... */
  topic?: string;
  /** RRPC: how long the platform waits for the device. */
  timeoutMs?: number;
}

export interface InvokeResult {
  /** The device's answer: RRPC payload (parsed as JSON when it is JSON), a synchronous service's data, or nothing. */
  payload: unknown;
  messageId?: string;
  rrpcCode?: string;
}

/** SetDeviceProperty, InvokeThingService or RRpc; rejects with the platform's code, or TIMEOUT/OFFLINE for RRPC. */
export async function invokeDevice(api: OpenApiClient, request: InvokeRequest): Promise<InvokeResult> {
  const device = { ProductKey: request.productKey, DeviceName: request.deviceName };
  if (!request.productKey || !request.deviceName) throw new AliyunIotError('DEVICE_MISSING');
  if (request.action === 'set' || request.action === 'service') {
    const object = request.payload ?? {};
    if (typeof object !== 'object' || Array.isArray(object) || Buffer.isBuffer(object)) {
      throw new AliyunIotError(request.action === 'set' ? 'ITEMS_INVALID' : 'ARGS_INVALID');
    }
    if (request.action === 'set') {
      const answer = await api.call('SetDeviceProperty', { ...device, Items: jsonText(object) });
      return { payload: object, messageId: String((answer.Data as { MessageId?: unknown } | undefined)?.MessageId ?? '') };
    }
    if (!request.identifier) throw new AliyunIotError('IDENTIFIER_MISSING');
    const answer = await api.call('InvokeThingService', { ...device, Identifier: request.identifier, Args: jsonText(object) });
    const data = (answer.Data ?? {}) as { Result?: unknown; MessageId?: unknown; Code?: unknown };
    if (data.Code !== undefined && Number(data.Code) !== 200) {
      throw new AliyunIotError('SERVICE_FAILED', { identifier: request.identifier, code: String(data.Code) });
    }
    const result = typeof data.Result === 'string' && data.Result !== '' ? decodePayload(Buffer.from(data.Result), 'auto-detect') : {};
    return { payload: result, messageId: String(data.MessageId ?? '') };
  }
  if (request.action !== 'rrpc') throw new AliyunIotError('INVOKE_ACTION_INVALID', { value: String(request.action) });
  const timeout = request.timeoutMs ?? DEFAULTS.rrpcTimeoutMs;
  const range = RANGES.rrpcTimeoutMs;
  if (!Number.isInteger(timeout) || timeout < range.min || timeout > range.max) {
    throw new AliyunIotError('RRPC_TIMEOUT_RANGE', { value: String(timeout), ...range });
  }
  const answer = await api.call(
    'RRpc',
    {
      ...device,
      RequestBase64Byte: Buffer.from(encodePayload(request.payload)).toString('base64'),
      Timeout: timeout,
      Topic: request.topic || undefined,
    },
    timeout + 5000,
  );
  const rrpcCode = String(answer.RrpcCode ?? '');
  const messageId = String(answer.MessageId ?? '');
  if (rrpcCode !== 'SUCCESS')
    throw Object.assign(new AliyunIotError('RRPC_FAILED', { code: rrpcCode, device: deviceKey(request) }), {
      rrpcCode,
    });
  const bytes = Buffer.from(String(answer.PayloadBase64Byte ?? ''), 'base64');
  return { payload: decodePayload(bytes, 'auto-detect'), messageId, rrpcCode };
}
