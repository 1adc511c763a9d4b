import { hostname } from 'node:os';
import { AliyunIotError } from '../errors';
import { signAmqpLogin } from '../protocol/amqp-login';
import {
  AmqpEndpoint,
  Endpoint,
  amqpEndpoint,
  amqpEndpointUrl,
  checkApiEndpoint,
  endpointUrl,
  iotEndpoint,
  mqEndpoint,
  openApiEndpoint,
  parseAmqpEndpoint,
  securemodeFor,
} from '../protocol/endpoints';
import {
  MqAuthMode,
  Protocol,
  SignMethod,
  isMqAuthMode,
  isProtocol,
  isSignMethod,
  matches,
  validateDeviceName,
  validateInstanceId,
  validateIotClientId,
  validateProductKey,
  validateRegion,
} from '../protocol/identifiers';
import { MqttLogin, defaultIotClientId, signIotLogin } from '../protocol/iot-login';
import { DEFAULTS, RANGES, SERVICE_LIMITS, ServiceLimits, ServiceMode, UPLINK_RATE_LIMITS, checkTimerDuration } from '../protocol/limits';
import { mqClientId, signMqLogin } from '../protocol/mq-login';
import { TopicVariables, checkOwnPublishTopic } from '../protocol/topics';
import { OpenApiClient } from './openapi-client';
import { ReconnectPolicy, reconnectPolicy } from './reconnect-policy';

/** The secrets of a connection; they stay inside `sign()` and are never logged or reported. */
export interface ConnectionSecrets {
  deviceSecret?: string;
  accessKeyId?: string;
  accessKeySecret?: string;
  token?: string;
}

/**
 * A connection as the config node describes it (the `aliyun-iot-connection` properties). Numbers may come
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
  /** Where the queue is kept: `memory` (default) or `disk` (under the directory the node layer gives). */
  queueStore?: QueueStore | string;
  /** The disk queue's bound in payload bytes; blank: DEFAULTS.queueMaxBytes, 0: none. */
  queueMaxBytes?: number | string;
  /** Publishes per second, live and queued; blank: the service's uplink limit, 0: no pacing. */
  maxRate?: number | string;
  /** Seconds after which a queued property post goes as a history post; 0 or blank: never. */
  historyAfter?: number | string;
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
  queueStore: QueueStore;
  /** The disk queue's bound in payload bytes; 0: none. */
  queueMaxBytes: number;
  /** The least time between two publishes, by QoS, in ms; 0: no pacing. */
  publishIntervalMs: { qos0: number; qos1: number };
  /** A property post that waited longer than this in the queue goes as a history post; 0: never. */
  historyAfterMs: number;
  ca?: string;
  /** Who and where, for logs: never a secret. */
  label: string;
  sign(): MqttLogin;
  /** IoT Platform: refuses a topic the platform would not take from this device (another device's). */
  checkPublishTopic?(topic: string): void;
  /** IoT Platform: `key=value` items the client id announces at the next login (a gateway adds `_ss=1`). */
  clientParams?: Record<string, string>;
  /** ApsaraMQ token mode: later logins use this token (once it is known good); returns the token it replaces. */
  replaceToken?(token: string): string;
}

/** The environment variables of the simulator that `npm start` and `aliyun-iot-sim` hand to Node-RED. */
export const SIMULATOR_VARIABLE_PREFIX = 'ALIYUN_IOT_SIM_';

/**
 * Node-RED replaces a field that is `${NAME}` as a whole with the environment variable NAME when the flow starts, and
 * leaves it as it is when NAME is not set (flows/util.js, mapEnvVarProperties). Such a field names an unset variable.
 */
function checkEnvironmentVariables(settings: ConnectionSettings): void {
  for (const [field, value] of Object.entries(settings)) {
    if (!matches('environmentVariable', value)) continue;
    const name = value.slice(2, -1);
    throw new AliyunIotError(name.startsWith(SIMULATOR_VARIABLE_PREFIX) ? 'SIMULATOR_VARIABLE_UNSET' : 'VARIABLE_UNSET', { name, field });
  }
}

export type QueueStore = 'memory' | 'disk';

/** Optional numeric fields arrive from the editor as '' or strings. */
function optionalNumber(value: unknown): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  return typeof value === 'number' ? value : Number(value);
}

function checkKeepalive(mode: ServiceMode, value: unknown): number {
  const keepalive = optionalNumber(value) ?? DEFAULTS.keepalive;
  const range = mode === 'iot' ? RANGES.iotKeepalive : RANGES.mqKeepalive;
  if (!Number.isInteger(keepalive) || keepalive < range.min || keepalive > range.max) {
    throw new AliyunIotError('KEEPALIVE_RANGE', { value: String(value), min: range.min, max: range.max });
  }
  return keepalive;
}

function checkQueueSize(value: unknown): number {
  const size = optionalNumber(value) ?? DEFAULTS.queueSize;
  if (!Number.isInteger(size) || size < 0) throw new AliyunIotError('QUEUE_SIZE_INVALID', { value: String(value) });
  return size;
}

/** The offline queue's time limit in milliseconds (given in seconds). */
function checkQueueTimeout(value: unknown): number {
  const seconds = optionalNumber(value) ?? 0;
  if (!Number.isFinite(seconds) || seconds < 0) throw new AliyunIotError('QUEUE_TIMEOUT_INVALID', { value: String(value) });
  return checkTimerDuration(seconds, 'queueTimeout', 's');
}

function checkQueueStore(value: unknown): QueueStore {
  if (value === undefined || value === '' || value === 'memory') return 'memory';
  if (value === 'disk') return 'disk';
  throw new AliyunIotError('QUEUE_STORE_INVALID', { value: String(value) });
}

function checkQueueMaxBytes(value: unknown): number {
  const bytes = optionalNumber(value) ?? DEFAULTS.queueMaxBytes;
  if (!Number.isInteger(bytes) || bytes < 0) throw new AliyunIotError('QUEUE_MAX_BYTES_INVALID', { value: String(value) });
  return bytes;
}

/** `historyAfter` in milliseconds (given in seconds, within RANGES.historyAfter). */
function checkHistoryAfter(value: unknown): number {
  const seconds = optionalNumber(value) ?? 0;
  const range = RANGES.historyAfter;
  if (!Number.isFinite(seconds) || seconds < range.min || seconds > range.max) {
    throw new AliyunIotError('HISTORY_AFTER_RANGE', { value: String(value), min: range.min, max: range.max });
  }
  return seconds * 1000;
}

/** `maxRate` as intervals: a set rate paces every publish alike, the default follows the service's limit per QoS. */
function publishIntervals(mode: ServiceMode, value: unknown): { qos0: number; qos1: number } {
  const rate = optionalNumber(value);
  if (rate === undefined) {
    const limit = UPLINK_RATE_LIMITS[mode];
    return limit ? { qos0: 1000 / limit.qos0, qos1: 1000 / limit.qos1 } : { qos0: 0, qos1: 0 };
  }
  if (!Number.isFinite(rate) || rate < 0) throw new AliyunIotError('MAX_RATE_INVALID', { value: String(value) });
  const interval = rate === 0 ? 0 : 1000 / rate;
  return { qos0: interval, qos1: interval };
}

/** A text setting without surrounding blanks; undefined when blank or absent; CONFIG_TYPE_INVALID when not text. */
function trimmed(settings: object, field: string): string | undefined {
  const value = (settings as Record<string, unknown>)[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new AliyunIotError('CONFIG_TYPE_INVALID', { field, type: typeof value });
  const text = value.trim();
  return text === '' ? undefined : text;
}

/** Validates the settings and derives endpoint, client id and signing; throws AliyunIotError on the first problem. */
export function resolveConnection(settings: ConnectionSettings): ConnectionProfile {
  checkEnvironmentVariables(settings);
  const mode = settings.mode;
  if (mode !== 'iot' && mode !== 'mq') throw new AliyunIotError('MODE_INVALID', { value: String(mode) });
  const protocol = settings.protocol ?? 'mqtts';
  if (!isProtocol(protocol)) throw new AliyunIotError('PROTOCOL_INVALID', { value: String(protocol) });
  const host = trimmed(settings, 'host');
  const port = optionalNumber(settings.port);
  const common = {
    keepalive: checkKeepalive(mode, settings.keepalive),
    cleanSession: settings.cleanSession !== false && settings.cleanSession !== 'false',
    queueSize: checkQueueSize(settings.queueSize),
    queueTimeoutMs: checkQueueTimeout(settings.queueTimeout),
    queueStore: checkQueueStore(settings.queueStore),
    queueMaxBytes: checkQueueMaxBytes(settings.queueMaxBytes),
    publishIntervalMs: publishIntervals(mode, settings.maxRate),
    historyAfterMs: checkHistoryAfter(settings.historyAfter),
    ca: trimmed(settings, 'ca'),
  };
  const secrets = settings.credentials ?? {};

  if (mode === 'iot') {
    const productKey = validateProductKey(trimmed(settings, 'productKey'));
    const deviceName = validateDeviceName(trimmed(settings, 'deviceName'));
    const clientId = validateIotClientId(trimmed(settings, 'clientId') ?? defaultIotClientId(productKey, deviceName));
    const signMethod = settings.signMethod || 'hmacsha256';
    if (!isSignMethod(signMethod)) throw new AliyunIotError('SIGN_METHOD_INVALID', { value: String(signMethod) });
    if (!secrets.deviceSecret) throw new AliyunIotError('CREDENTIAL_MISSING', { field: 'deviceSecret' });
    const endpoint = iotEndpoint({
      productKey,
      protocol,
      host,
      port,
      region: trimmed(settings, 'region'),
      instanceId: trimmed(settings, 'instanceId'),
    });
    const device = { productKey, deviceName, deviceSecret: secrets.deviceSecret };
    const securemode = securemodeFor(protocol);
    // ext=1: this client takes synchronous service calls on /ext/rrpc/... (docs/protocol.md §1, §2).
    const clientParams: Record<string, string> = { ext: '1' };
    return {
      ...common,
      mode: 'iot',
      endpoint,
      clientId,
      variables: { productKey, deviceName, clientId },
      limits: SERVICE_LIMITS.iot,
      label: `${productKey}/${deviceName} at ${endpointUrl(endpoint)}`,
      clientParams,
      // ext=1 (in clientParams): this client takes synchronous service calls on /ext/rrpc/... (docs/protocol.md §1, §2).
      sign: () => signIotLogin(device, { clientId, signMethod, securemode, extra: clientParams }),
      checkPublishTopic: (topic) => checkOwnPublishTopic(topic, productKey, deviceName),
    };
  }

  const authMode = settings.authMode || 'signature';
  if (!isMqAuthMode(authMode)) throw new AliyunIotError('AUTH_MODE_INVALID', { value: String(authMode) });
  const instanceId = trimmed(settings, 'instanceId');
  if (!instanceId) throw new AliyunIotError('CONFIG_MISSING', { field: 'instanceId' });
  const groupId = trimmed(settings, 'groupId');
  const deviceId = trimmed(settings, 'deviceId');
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
    ...(authMode === 'token'
      ? {
          replaceToken: (token: string) => {
            const previous = credentials.token as string;
            credentials.token = token;
            return previous;
          },
        }
      : {}),
  };
}

/** A cloud application: server-side subscription over AMQP 1.0 and the OpenAPI (docs/protocol.md §5). */
export interface CloudProfile {
  mode: 'cloud';
  regionId: string;
  iotInstanceId?: string;
  consumerGroupId?: string;
  /** The AMQP client id; clients of one consumer group need distinct ids. */
  clientId: string;
  amqp: AmqpEndpoint;
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

/** A default AMQP client id that differs between hosts and between processes of one host. */
export function defaultCloudClientId(): string {
  return `nodered-${hostname().replace(/[^A-Za-z0-9_.-]/g, '-')}-${process.pid}`;
}

export function resolveCloud(settings: ConnectionSettings): CloudProfile {
  checkEnvironmentVariables(settings);
  const secrets = settings.credentials ?? {};
  if (!secrets.accessKeyId) throw new AliyunIotError('CREDENTIAL_MISSING', { field: 'accessKeyId' });
  if (!secrets.accessKeySecret) throw new AliyunIotError('CREDENTIAL_MISSING', { field: 'accessKeySecret' });
  const regionId = validateRegion(trimmed(settings, 'region') ?? DEFAULTS.region);
  const iotInstanceId = trimmed(settings, 'instanceId');
  if (iotInstanceId !== undefined) validateInstanceId(iotInstanceId);
  const consumerGroupId = trimmed(settings, 'consumerGroupId');
  const clientId = trimmed(settings, 'clientId') ?? defaultCloudClientId();
  if (!matches('cloudClientId', clientId)) throw new AliyunIotError('CLIENT_ID_INVALID', { value: clientId });
  const amqpOverride = trimmed(settings, 'amqpEndpoint');
  const amqp = amqpOverride
    ? parseAmqpEndpoint(amqpOverride, 'amqpEndpoint')
    : amqpEndpoint({ iotInstanceId, uid: trimmed(settings, 'uid'), regionId });
  const apiOverride = trimmed(settings, 'apiEndpoint');
  const apiEndpoint = apiOverride ? checkApiEndpoint(apiOverride, 'apiEndpoint') : openApiEndpoint(regionId);
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
    ca: trimmed(settings, 'ca'),
    label: `${clientId} (${consumerGroupId ?? 'no consumer group'}) at ${amqpEndpointUrl(amqp)} and ${apiEndpoint}`,
    amqpLogin: () =>
      signAmqpLogin({
        clientId,
        accessKeyId,
        accessKeySecret,
        consumerGroupId: consumerGroupId ?? '',
        iotInstanceId,
      }),
    api: new OpenApiClient({ endpoint: apiEndpoint, regionId, iotInstanceId, accessKeyId, accessKeySecret }),
  };
}

/** What the runtime's settings file may say under `aliyunIot` (read once per config node). */
export interface RuntimeOptions {
  /** Reconnect and close timings for every connection of the runtime (tests shorten them). */
  reconnect: Partial<ReconnectPolicy>;
  /**
   * Raises the client-side limit on distinct subscriptions of a device connection: for brokers other than Alibaba
   * Cloud's and for benchmarks. Never lower than the service's own limit.
   */
  maxSubscriptions?: number;
}

export function runtimeOptions(value: unknown): RuntimeOptions {
  const options = (value !== null && typeof value === 'object' ? value : {}) as { reconnect?: unknown; maxSubscriptions?: unknown };
  const reconnect = reconnectPolicy(options.reconnect);
  const max = options.maxSubscriptions;
  return {
    reconnect,
    ...(typeof max === 'number' && Number.isInteger(max) && max > 0 ? { maxSubscriptions: max } : {}),
  };
}

/** The profile's limits with the runtime's raised subscription limit, if any. */
export function withRuntimeLimits(profile: ConnectionProfile, options: RuntimeOptions): ConnectionProfile {
  const max = options.maxSubscriptions;
  if (max === undefined || max <= profile.limits.maxSubscriptions) return profile;
  return { ...profile, limits: Object.freeze({ ...profile.limits, maxSubscriptions: max }) };
}
