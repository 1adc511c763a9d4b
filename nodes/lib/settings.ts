import { hostname } from 'node:os';
import {
  Endpoint, INSTANCE_ID_PATTERN, MqAuthMode, MqttLogin, Protocol, REGION_PATTERN, SignMethod,
  defaultIotClientId, endpointUrl, iotEndpoint, isMqAuthMode, isProtocol, isSignMethod, mqClientId, mqEndpoint,
  securemodeFor, signAmqpLogin, signIotLogin, signMqLogin, validateDeviceName, validateIotClientId, validateProductKey,
} from './auth';
import { OpenApiClient } from './openapi';
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
  mode: ServiceMode | 'cloud';
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
  /** Seconds a publish may wait in the offline queue; 0 or blank: no limit. */
  queueTimeout?: number | string;
  ca?: string;
  /** cloud: the consumer group of the server-side subscription. */
  consumerGroupId?: string;
  /** cloud, old public instance: the Alibaba Cloud account id in the AMQP host name. */
  uid?: string;
  /** cloud: `amqps://host:port` or `amqp://host:port` instead of the derived AMQP endpoint. */
  amqpEndpoint?: string;
  /** cloud: the OpenAPI endpoint instead of https://iot.${region}.aliyuncs.com. */
  apiEndpoint?: string;
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
  /** How long a publish may wait in the offline queue before it fails; 0: no limit. */
  queueTimeoutMs: number;
  ca?: string;
  /** Who and where, for logs: never a secret. */
  label: string;
  sign(): MqttLogin;
  /** ApsaraMQ token mode: later logins use this token (after it was uploaded on the live connection). */
  replaceToken?(token: string): void;
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

function checkQueueTimeout(value: unknown): number {
  const seconds = optionalNumber(value) ?? 0;
  if (!Number.isFinite(seconds) || seconds < 0) throw new AliyunIotError('QUEUE_TIMEOUT_INVALID', { value: String(value) });
  return seconds;
}

function trimmed(value: string | undefined): string | undefined {
  const text = value?.trim();
  return text === '' ? undefined : text;
}

/** Validates the settings and derives endpoint, client id and signing; throws AliyunIotError on the first problem. */
export function resolveConnection(settings: ConnectionSettings): ConnectionProfile {
  const mode = settings.mode;
  if (mode !== 'iot' && mode !== 'mq') throw new AliyunIotError('MODE_INVALID', { value: String(mode) });
  const protocol = settings.protocol ?? 'mqtts';
  if (!isProtocol(protocol)) throw new AliyunIotError('PROTOCOL_INVALID', { value: String(protocol) });
  const host = trimmed(settings.host);
  const port = optionalNumber(settings.port);
  const common = {
    keepalive: checkKeepalive(mode, settings.keepalive),
    cleanSession: settings.cleanSession !== false && settings.cleanSession !== 'false',
    queueSize: checkQueueSize(settings.queueSize),
    queueTimeoutMs: checkQueueTimeout(settings.queueTimeout) * 1000,
    ca: trimmed(settings.ca),
  };
  const secrets = settings.credentials ?? {};

  if (mode === 'iot') {
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
    ...(authMode === 'token' ? { replaceToken: (token: string) => { credentials.token = token; } } : {}),
  };
}

/** A cloud application: server-side subscription over AMQP 1.0 and the OpenAPI (aliyun-protocol.md §5). */
export interface CloudProfile {
  mode: 'cloud';
  regionId: string;
  iotInstanceId?: string;
  consumerGroupId?: string;
  /** The AMQP client id; clients of one consumer group need distinct ids. */
  clientId: string;
  amqp: { tls: boolean; host: string; port: number };
  apiEndpoint: string;
  limits: ServiceLimits;
  variables: TopicVariables;
  ca?: string;
  /** Who and where, for logs: never a secret. */
  label: string;
  /** A fresh AMQP login (new timestamp) on every call. */
  amqpLogin(): { username: string; password: string };
  api: OpenApiClient;
}

const AMQP_TLS_PORT = 5671;
const AMQP_PORT = 5672;

function parseEndpointUrl(text: string, field: string, protocols: Record<string, number>): { protocol: string; host: string; port: number } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new AliyunIotError('ENDPOINT_INVALID', { field, value: text });
  }
  const protocol = url.protocol.replace(/:$/, '');
  if (!(protocol in protocols) || url.hostname === '') throw new AliyunIotError('ENDPOINT_INVALID', { field, value: text });
  return { protocol, host: url.hostname, port: url.port ? Number(url.port) : protocols[protocol] };
}

/** A default AMQP client id that differs between hosts and between processes of one host. */
export function defaultCloudClientId(): string {
  return `nodered-${hostname().replace(/[^A-Za-z0-9_.-]/g, '-')}-${process.pid}`;
}

export function resolveCloud(settings: ConnectionSettings): CloudProfile {
  const secrets = settings.credentials ?? {};
  if (!secrets.accessKeyId) throw new AliyunIotError('CREDENTIAL_MISSING', { field: 'accessKeyId' });
  if (!secrets.accessKeySecret) throw new AliyunIotError('CREDENTIAL_MISSING', { field: 'accessKeySecret' });
  const regionId = trimmed(settings.region) ?? 'cn-shanghai';
  if (!REGION_PATTERN.test(regionId)) throw new AliyunIotError('REGION_INVALID', { value: regionId });
  const iotInstanceId = trimmed(settings.instanceId);
  if (iotInstanceId !== undefined && !INSTANCE_ID_PATTERN.test(iotInstanceId)) throw new AliyunIotError('INSTANCE_ID_INVALID', { value: iotInstanceId });
  const consumerGroupId = trimmed(settings.consumerGroupId);
  const clientId = trimmed(settings.clientId) ?? defaultCloudClientId();
  if (!/^[A-Za-z0-9_.:@-]{1,64}$/.test(clientId)) throw new AliyunIotError('CLIENT_ID_INVALID', { value: clientId });

  let amqp: CloudProfile['amqp'];
  const amqpOverride = trimmed(settings.amqpEndpoint);
  if (amqpOverride) {
    const parsed = parseEndpointUrl(amqpOverride, 'amqpEndpoint', { amqps: AMQP_TLS_PORT, amqp: AMQP_PORT });
    amqp = { tls: parsed.protocol === 'amqps', host: parsed.host, port: parsed.port };
  } else if (iotInstanceId) {
    amqp = { tls: true, host: `${iotInstanceId}.amqp.iothub.aliyuncs.com`, port: AMQP_TLS_PORT };
  } else {
    const uid = trimmed(settings.uid);
    if (!uid) throw new AliyunIotError('CONFIG_MISSING', { field: 'uid' });
    if (!/^[0-9]{1,32}$/.test(uid)) throw new AliyunIotError('UID_INVALID', { value: uid });
    amqp = { tls: true, host: `${uid}.iot-amqp.${regionId}.aliyuncs.com`, port: AMQP_TLS_PORT };
  }
  const apiOverride = trimmed(settings.apiEndpoint);
  if (apiOverride) parseEndpointUrl(apiOverride, 'apiEndpoint', { https: 443, http: 80 });
  const apiEndpoint = apiOverride ?? `https://iot.${regionId}.aliyuncs.com`;
  const { accessKeyId, accessKeySecret } = secrets;
  return {
    mode: 'cloud',
    regionId,
    iotInstanceId,
    consumerGroupId,
    clientId,
    amqp,
    apiEndpoint,
    limits: SERVICE_LIMITS.iot,
    variables: { clientId, ...(consumerGroupId ? { consumerGroupId } : {}), ...(iotInstanceId ? { instanceId: iotInstanceId } : {}) },
    ca: trimmed(settings.ca),
    label: `${clientId} (${consumerGroupId ?? 'no consumer group'}) at ${amqp.tls ? 'amqps' : 'amqp'}://${amqp.host}:${amqp.port} and ${apiEndpoint}`,
    amqpLogin: () => signAmqpLogin({
      clientId, accessKeyId, accessKeySecret, consumerGroupId: consumerGroupId ?? '', iotInstanceId,
    }),
    api: new OpenApiClient({ endpoint: apiEndpoint, regionId, iotInstanceId, accessKeyId, accessKeySecret }),
  };
}
