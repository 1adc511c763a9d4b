import {
  Endpoint, MqAuthMode, MqttLogin, Protocol, SignMethod,
  defaultIotClientId, endpointUrl, iotEndpoint, isMqAuthMode, isProtocol, isSignMethod, mqClientId, mqEndpoint,
  securemodeFor, signIotLogin, signMqLogin, validateDeviceName, validateIotClientId, validateProductKey,
} from './auth';
import { AliyunIotError } from './errors';
import { SERVICE_LIMITS, ServiceLimits, ServiceMode, TopicVariables } from './topics';

/** The secrets of a connection; they stay inside `sign()` and are never logged or reported. */
export interface ConnectionSecrets {
  deviceSecret?: string;
  accessKeyId?: string;
  accessKeySecret?: string;
  token?: string;
}

/**
 * A connection as the config node describes it (DESIGN.md, `aliyun-iot-connection` properties). Numbers may come
 * as text, as the editor stores them; empty text means the default.
 */
export interface ConnectionSettings {
  mode: ServiceMode;
  productKey?: string;
  deviceName?: string;
  region?: string;
  instanceId?: string;
  signMethod?: SignMethod;
  clientId?: string;
  groupId?: string;
  deviceId?: string;
  authMode?: MqAuthMode;
  protocol?: Protocol;
  host?: string;
  port?: number | string;
  keepalive?: number | string;
  cleanSession?: boolean | string;
  queueSize?: number | string;
  ca?: string;
  credentials: ConnectionSecrets;
}

/** Everything needed to connect, validated; `sign()` returns freshly signed credentials on every call. */
export interface ConnectionProfile {
  mode: ServiceMode;
  endpoint: Endpoint;
  /** The client id without the `|...|` parameters (IoT Platform) or `GroupID@@@DeviceID` (ApsaraMQ). */
  clientId: string;
  variables: TopicVariables;
  limits: ServiceLimits;
  keepalive: number;
  cleanSession: boolean;
  queueSize: number;
  ca?: string;
  /** Who and where, for logs: never a secret. */
  label: string;
  sign(): MqttLogin;
}

export const DEFAULT_KEEPALIVE = 60;
export const DEFAULT_QUEUE_SIZE = 1000;
export const IOT_KEEPALIVE_RANGE = { min: 30, max: 1200 } as const;
const MQ_KEEPALIVE_RANGE = { min: 1, max: 65535 } as const;

/** Optional numeric fields arrive from the editor as '' or strings. */
function optionalNumber(value: unknown): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  return typeof value === 'number' ? value : Number(value);
}

function checkKeepalive(mode: ServiceMode, value: unknown): number {
  const keepalive = optionalNumber(value) ?? DEFAULT_KEEPALIVE;
  const range = mode === 'iot' ? IOT_KEEPALIVE_RANGE : MQ_KEEPALIVE_RANGE;
  if (!Number.isInteger(keepalive) || keepalive < range.min || keepalive > range.max) {
    throw new AliyunIotError('KEEPALIVE_RANGE', { value: String(value), min: range.min, max: range.max });
  }
  return keepalive;
}

function checkQueueSize(value: unknown): number {
  const size = optionalNumber(value) ?? DEFAULT_QUEUE_SIZE;
  if (!Number.isInteger(size) || size < 0) throw new AliyunIotError('QUEUE_SIZE_INVALID', { value: String(value) });
  return size;
}

function trimmed(value: string | undefined): string | undefined {
  const text = value?.trim();
  return text === '' ? undefined : text;
}

/** Validates the settings and derives endpoint, client id and signing; throws AliyunIotError on the first problem. */
export function resolveConnection(settings: ConnectionSettings): ConnectionProfile {
  const protocol = settings.protocol ?? 'mqtts';
  if (!isProtocol(protocol)) throw new AliyunIotError('PROTOCOL_INVALID', { value: String(protocol) });
  const host = trimmed(settings.host);
  const port = optionalNumber(settings.port);
  const common = {
    keepalive: checkKeepalive(settings.mode, settings.keepalive),
    cleanSession: settings.cleanSession !== false && settings.cleanSession !== 'false',
    queueSize: checkQueueSize(settings.queueSize),
    ca: trimmed(settings.ca),
  };
  const secrets = settings.credentials ?? {};

  if (settings.mode === 'iot') {
    const productKey = validateProductKey(trimmed(settings.productKey));
    const deviceName = validateDeviceName(trimmed(settings.deviceName));
    const clientId = validateIotClientId(trimmed(settings.clientId) ?? defaultIotClientId(productKey, deviceName));
    const signMethod = settings.signMethod || 'hmacsha256';
    if (!isSignMethod(signMethod)) throw new AliyunIotError('SIGN_METHOD_INVALID', { value: String(signMethod) });
    if (!secrets.deviceSecret) throw new AliyunIotError('CREDENTIAL_MISSING', { field: 'deviceSecret' });
    const endpoint = iotEndpoint({
      productKey, protocol, host, port, region: trimmed(settings.region), instanceId: trimmed(settings.instanceId),
    });
    const device = { productKey, deviceName, deviceSecret: secrets.deviceSecret };
    const securemode = securemodeFor(protocol);
    return {
      ...common,
      mode: 'iot',
      endpoint,
      clientId,
      variables: { productKey, deviceName, clientId },
      limits: SERVICE_LIMITS.iot,
      label: `${productKey}/${deviceName} at ${endpointUrl(endpoint)}`,
      // ext=1: this client takes synchronous service calls on /ext/rrpc/... (aliyun-protocol.md §1, §2).
      sign: () => signIotLogin(device, { clientId, signMethod, securemode, extra: { ext: '1' } }),
    };
  }

  if (settings.mode === 'mq') {
    const authMode = settings.authMode || 'signature';
    if (!isMqAuthMode(authMode)) throw new AliyunIotError('AUTH_MODE_INVALID', { value: String(authMode) });
    const instanceId = trimmed(settings.instanceId);
    if (!instanceId) throw new AliyunIotError('CONFIG_MISSING', { field: 'instanceId' });
    const groupId = trimmed(settings.groupId);
    const deviceId = trimmed(settings.deviceId);
    const clientId = mqClientId(groupId, deviceId);
    if (!secrets.accessKeyId) throw new AliyunIotError('CREDENTIAL_MISSING', { field: 'accessKeyId' });
    if (authMode === 'token' && !secrets.token) throw new AliyunIotError('CREDENTIAL_MISSING', { field: 'token' });
    if (authMode !== 'token' && !secrets.accessKeySecret) {
      throw new AliyunIotError('CREDENTIAL_MISSING', { field: 'accessKeySecret' });
    }
    const endpoint = mqEndpoint({ instanceId, protocol, host, port });
    const credentials = { authMode, instanceId, clientId, ...secrets };
    return {
      ...common,
      mode: 'mq',
      endpoint,
      clientId,
      variables: { clientId, groupId: groupId as string, deviceId: deviceId as string, instanceId },
      limits: SERVICE_LIMITS.mq,
      label: `${clientId} at ${endpointUrl(endpoint)}`,
      sign: () => signMqLogin(credentials),
    };
  }

  throw new AliyunIotError('MODE_INVALID', { value: String(settings.mode) });
}
