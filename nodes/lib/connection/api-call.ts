// Any IoT Platform OpenAPI action by name, its parameters from a flow's object: RPC style, lists flattened.
import { AliyunIotError } from '../errors';
import { COMMON_API_PARAMS } from '../protocol/openapi-signature';
import { IDENTIFIER_PATTERNS } from '../protocol/identifiers';
import type { InvokeAction } from './device-invocation';
import type { ApiResponse, OpenApiClient } from './openapi-client';

/** What the invoke node does: one of a device's actions, or any OpenAPI action by name. */
export type CloudAction = InvokeAction | 'api';
export const CLOUD_ACTIONS: readonly CloudAction[] = Object.freeze(['set', 'service', 'rrpc', 'api']);

type Scalar = string | number | boolean;

function scalar(value: unknown): value is Scalar {
  return typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean';
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !Buffer.isBuffer(value);
}

/**
 * The RPC-style parameters of `payload`: a string, number or boolean as it is; a list as `Name.1`, `Name.2`, … (the
 * RepeatList of BatchGetDeviceState's `DeviceName.N`), its objects' fields as `Name.1.Field`; an object that is not
 * in a list as its JSON text (SetDeviceProperty's `Items`, InvokeThingService's `Args`); null and undefined left out.
 */
export function apiParams(payload: unknown): Record<string, string> {
  const source = payload ?? {};
  if (!isPlainObject(source)) throw new AliyunIotError('API_PARAMS_INVALID', { name: 'msg.payload', reason: 'not an object' });
  const params: Record<string, string> = {};
  const put = (name: string, value: unknown, inList: boolean): void => {
    if (value === null || value === undefined) return;
    if (scalar(value)) params[name] = String(value);
    else if (Array.isArray(value)) value.forEach((item, i) => put(`${name}.${i + 1}`, item, true));
    else if (isPlainObject(value) && inList) for (const [field, item] of Object.entries(value)) put(`${name}.${field}`, item, true);
    else if (isPlainObject(value)) params[name] = JSON.stringify(value);
    else throw new AliyunIotError('API_PARAMS_INVALID', { name, reason: 'not a string, number, boolean, list or object' });
  };
  for (const [name, value] of Object.entries(source)) {
    if (COMMON_API_PARAMS.includes(name)) throw new AliyunIotError('API_PARAMS_INVALID', { name, reason: 'set by the connection' });
    put(name, value, false);
  }
  for (const name of Object.keys(params)) {
    if (!IDENTIFIER_PATTERNS.apiParam.test(name)) throw new AliyunIotError('API_PARAMS_INVALID', { name, reason: 'not a parameter name' });
  }
  return params;
}

/** Calls `action` with the parameters of `payload`; resolves with the platform's whole answer. */
export function callApi(api: OpenApiClient, action: unknown, payload: unknown): Promise<ApiResponse> {
  if (typeof action !== 'string' || !IDENTIFIER_PATTERNS.apiAction.test(action)) {
    throw new AliyunIotError('API_ACTION_INVALID', { value: String(action ?? '') });
  }
  return api.call(action, apiParams(payload));
}
