// The simulator's registry file: products with their devices and topic permissions, ApsaraMQ instances.
import * as fs from 'node:fs';
import { isValidFilter, matches } from '../nodes/lib/protocol';
import { compileCondition } from './condition';

export type TopicAccess = 'sub' | 'pub' | 'all';

export interface SimTopic {
  /** May hold ${productKey} and ${deviceName}, and + or # for subscriptions. */
  topic: string;
  access: TopicAccess;
}

export interface SimDevice {
  deviceName: string;
  /** Absent: the simulator makes one at start, as the platform does for a device created without one. */
  deviceSecret?: string;
  /** A gateway's topology at start: its sub-devices (each of a `sub-device` product). */
  subDevices?: Array<{ productKey: string; deviceName: string }>;
}

/** How a product's devices reach the platform: directly, as gateways, or as sub-devices behind a gateway. */
export type SimNodeType = 'device' | 'gateway' | 'sub-device';
export const SIM_NODE_TYPES: readonly SimNodeType[] = ['device', 'gateway', 'sub-device'];

export interface SimProduct {
  productKey: string;
  /** The product's custom topic classes; absent means the basic product's /user/get, /user/update, /user/update/error. */
  topics?: SimTopic[];
  devices: SimDevice[];
  /** Services the cloud calls synchronously (by RRPC, answer in InvokeThingService's Data); others are asynchronous. */
  syncServices?: string[];
  /** Default `device`. */
  nodeType?: SimNodeType;
  /** A sub-device product whose gateways may fetch DeviceSecrets with thing/sub/register. */
  dynamicRegistration?: boolean;
}

/** The platform's gateway limits the simulator enforces, lower for tests; defaults GATEWAY_LIMITS. */
export interface SimGatewayLimits {
  onlinePerGateway?: number;
  topologyPerGateway?: number;
  loginsPerMinute?: number;
}

export interface SimAccessKey {
  accessKeyId: string;
  accessKeySecret: string;
}

export interface SimToken {
  accessKeyId: string;
  token: string;
  /** R: subscribe, W: publish. */
  actions: 'R' | 'W' | 'RW';
  /** Topic filters the token grants, e.g. parent/#. */
  resources: string[];
  /** Milliseconds since the epoch. */
  expireTime: number;
}

export interface SimDeviceCredential {
  clientId: string;
  deviceAccessKeyId: string;
  deviceAccessKeySecret: string;
}

export interface SimMqInstance {
  instanceId: string;
  accessKeys?: SimAccessKey[];
  /** Group IDs that exist; absent or empty accepts any well-formed Group ID. */
  groups?: string[];
  parentTopics: string[];
  tokens?: SimToken[];
  deviceCredentials?: SimDeviceCredential[];
}

/**
 * Makes the cloud answer thing-model posts otherwise than with 200: for a device or product, and for posts that carry
 * a property or are a given event (neither: every post). `drop` sends no reply; `delayMs` delays it.
 */
export interface SimFailure {
  productKey?: string;
  deviceName?: string;
  property?: string;
  event?: string;
  code?: number;
  message?: string;
  delayMs?: number;
  drop?: boolean;
}

/** A forwarding rule, playing the rule engine: see sim/rules.ts. */
export interface SimRule {
  name?: string;
  /** Topic filter of device messages; its + and # captures are ${1}, ${2}, ... in `to`. */
  from: string;
  /** Target topic; ${productKey}, ${deviceName} (of the sending device) and ${1}... expand. */
  to: string;
  /** JSON fields to keep: `path` or `path as name`; absent keeps the whole payload. */
  select?: string[];
  /** A condition on the JSON payload, e.g. `temp > 30 and status == 'on'`. */
  where?: string;
  qos?: 0 | 1;
}

/**
 * The cloud-application side (docs/protocol.md §5): who may call the OpenAPI and log in to the server-side
 * subscription over AMQP. Present: the simulator also serves the OpenAPI and AMQP listeners.
 */
export interface SimCloudConfig {
  /** The account id of the old public instance (only shown; any host name works locally). */
  uid?: string;
  /** The instance of new/Enterprise instances: an IotInstanceId or AMQP iotInstanceId other than this is refused. */
  instanceId?: string;
  accessKeys: SimAccessKey[];
  /** Consumer groups that exist (and keep messages while no client is connected); absent accepts any group id. */
  consumerGroups?: string[];
  /** How long InvokeThingService waits for a synchronous service (default 8000 ms, the platform's limit). */
  syncTimeoutMs?: number;
}

export interface SimulatorConfig {
  products?: SimProduct[];
  mq?: SimMqInstance[];
  failures?: SimFailure[];
  rules?: SimRule[];
  cloud?: SimCloudConfig;
  gatewayLimits?: SimGatewayLimits;
}

export const BASIC_PRODUCT_TOPICS: readonly SimTopic[] = [
  { topic: '/${productKey}/${deviceName}/user/get', access: 'sub' },
  { topic: '/${productKey}/${deviceName}/user/update', access: 'pub' },
  { topic: '/${productKey}/${deviceName}/user/update/error', access: 'pub' },
];

function fail(path: string, problem: string): never {
  throw new Error(`simulator config: ${path} ${problem}`);
}

function requireString(value: unknown, path: string): string {
  if (typeof value !== 'string' || value === '') fail(path, 'must be a non-empty string');
  return value;
}

function requireArray(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) fail(path, 'must be an array');
  return value;
}

function optionalArray(value: unknown, path: string): unknown[] {
  return value === undefined ? [] : requireArray(value, path);
}

/** Checks the shape and returns the same object typed; throws an Error naming the first bad field. */
export function validateConfig(raw: unknown): SimulatorConfig {
  if (!raw || typeof raw !== 'object') fail('', 'must be a JSON object');
  const config = raw as Record<string, unknown>;
  optionalArray(config.products, 'products').forEach((product, p) => {
    const at = `products[${p}]`;
    if (!product || typeof product !== 'object') fail(at, 'must be an object');
    const record = product as Record<string, unknown>;
    requireString(record.productKey, `${at}.productKey`);
    optionalArray(record.topics, `${at}.topics`).forEach((topic, t) => {
      const entry = topic as Record<string, unknown>;
      const topicText = requireString(entry?.topic, `${at}.topics[${t}].topic`);
      if (!isValidFilter(topicText)) fail(`${at}.topics[${t}].topic`, 'is not a valid MQTT topic filter');
      if (!['sub', 'pub', 'all'].includes(entry.access as string)) fail(`${at}.topics[${t}].access`, 'must be sub, pub or all');
    });
    if (record.nodeType !== undefined && !SIM_NODE_TYPES.includes(record.nodeType as SimNodeType)) {
      fail(`${at}.nodeType`, 'must be device, gateway or sub-device');
    }
    requireArray(record.devices, `${at}.devices`).forEach((device, d) => {
      const entry = device as Record<string, unknown>;
      requireString(entry?.deviceName, `${at}.devices[${d}].deviceName`);
      if (entry?.deviceSecret !== undefined) requireString(entry.deviceSecret, `${at}.devices[${d}].deviceSecret`);
      const subDevices = optionalArray(entry.subDevices, `${at}.devices[${d}].subDevices`);
      if (subDevices.length > 0 && record.nodeType !== 'gateway')
        fail(`${at}.devices[${d}].subDevices`, 'belong to devices of a gateway product');
      subDevices.forEach((sub, s) => {
        const named = sub as Record<string, unknown>;
        requireString(named?.productKey, `${at}.devices[${d}].subDevices[${s}].productKey`);
        requireString(named?.deviceName, `${at}.devices[${d}].subDevices[${s}].deviceName`);
      });
    });
    optionalArray(record.syncServices, `${at}.syncServices`).forEach((service, s) => {
      if (!matches('thingIdentifier', requireString(service, `${at}.syncServices[${s}]`))) {
        fail(`${at}.syncServices[${s}]`, 'must be a service identifier (letters, digits, _)');
      }
    });
  });
  optionalArray(config.mq, 'mq').forEach((instance, i) => {
    const at = `mq[${i}]`;
    const record = instance as Record<string, unknown>;
    requireString(record?.instanceId, `${at}.instanceId`);
    requireArray(record.parentTopics, `${at}.parentTopics`).forEach((parent, t) => {
      const text = requireString(parent, `${at}.parentTopics[${t}]`);
      if (/[/+#]/.test(text)) fail(`${at}.parentTopics[${t}]`, 'must be a single topic level');
    });
    optionalArray(record.accessKeys, `${at}.accessKeys`).forEach((key, k) => {
      const entry = key as Record<string, unknown>;
      requireString(entry?.accessKeyId, `${at}.accessKeys[${k}].accessKeyId`);
      requireString(entry?.accessKeySecret, `${at}.accessKeys[${k}].accessKeySecret`);
    });
    optionalArray(record.tokens, `${at}.tokens`).forEach((token, k) => {
      const entry = token as Record<string, unknown>;
      requireString(entry?.accessKeyId, `${at}.tokens[${k}].accessKeyId`);
      requireString(entry?.token, `${at}.tokens[${k}].token`);
      if (!matches('mqTokenActions', entry.actions)) fail(`${at}.tokens[${k}].actions`, 'must be R, W or RW');
      requireArray(entry.resources, `${at}.tokens[${k}].resources`).forEach((resource, r) => {
        if (!isValidFilter(requireString(resource, `${at}.tokens[${k}].resources[${r}]`))) {
          fail(`${at}.tokens[${k}].resources[${r}]`, 'is not a valid MQTT topic filter');
        }
      });
      if (typeof entry.expireTime !== 'number') fail(`${at}.tokens[${k}].expireTime`, 'must be a number (ms since the epoch)');
    });
    optionalArray(record.deviceCredentials, `${at}.deviceCredentials`).forEach((credential, k) => {
      const entry = credential as Record<string, unknown>;
      requireString(entry?.clientId, `${at}.deviceCredentials[${k}].clientId`);
      requireString(entry?.deviceAccessKeyId, `${at}.deviceCredentials[${k}].deviceAccessKeyId`);
      requireString(entry?.deviceAccessKeySecret, `${at}.deviceCredentials[${k}].deviceAccessKeySecret`);
    });
  });
  optionalArray(config.failures, 'failures').forEach((failure, f) => {
    const entry = failure as Record<string, unknown>;
    if (!entry || typeof entry !== 'object') fail(`failures[${f}]`, 'must be an object');
    if (entry.code !== undefined && !Number.isInteger(entry.code)) fail(`failures[${f}].code`, 'must be a whole number');
    if (entry.delayMs !== undefined && !(typeof entry.delayMs === 'number' && entry.delayMs >= 0))
      fail(`failures[${f}].delayMs`, 'must be a number of milliseconds');
  });
  optionalArray(config.rules, 'rules').forEach((rule, r) => validateRule(rule, `rules[${r}]`));
  if (config.cloud !== undefined) validateCloud(config.cloud);
  if (config.gatewayLimits !== undefined) {
    const limits = config.gatewayLimits as Record<string, unknown>;
    if (!limits || typeof limits !== 'object') fail('gatewayLimits', 'must be an object');
    for (const name of ['onlinePerGateway', 'topologyPerGateway', 'loginsPerMinute']) {
      if (limits[name] !== undefined && !(Number.isInteger(limits[name]) && (limits[name] as number) > 0))
        fail(`gatewayLimits.${name}`, 'must be a positive whole number');
    }
  }
  return config as SimulatorConfig;
}

function validateCloud(raw: unknown): void {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail('cloud', 'must be an object');
  const cloud = raw as Record<string, unknown>;
  if (cloud.uid !== undefined && !matches('uid', requireString(cloud.uid, 'cloud.uid'))) fail('cloud.uid', 'must be digits');
  if (cloud.instanceId !== undefined) requireString(cloud.instanceId, 'cloud.instanceId');
  const keys = requireArray(cloud.accessKeys, 'cloud.accessKeys');
  if (keys.length === 0) fail('cloud.accessKeys', 'must hold at least one AccessKey');
  keys.forEach((key, k) => {
    const entry = key as Record<string, unknown>;
    requireString(entry?.accessKeyId, `cloud.accessKeys[${k}].accessKeyId`);
    requireString(entry?.accessKeySecret, `cloud.accessKeys[${k}].accessKeySecret`);
  });
  optionalArray(cloud.consumerGroups, 'cloud.consumerGroups').forEach((group, g) => {
    if (!matches('consumerGroupId', requireString(group, `cloud.consumerGroups[${g}]`))) {
      fail(`cloud.consumerGroups[${g}]`, 'must be a consumer group id (letters, digits, _ . -)');
    }
  });
  if (cloud.syncTimeoutMs !== undefined && !(Number.isInteger(cloud.syncTimeoutMs) && (cloud.syncTimeoutMs as number) > 0)) {
    fail('cloud.syncTimeoutMs', 'must be a positive whole number of milliseconds');
  }
}

/** Checks one forwarding rule, including that its condition parses; throws an Error naming the bad field. */
export function validateRule(raw: unknown, at: string): SimRule {
  if (!raw || typeof raw !== 'object') fail(at, 'must be an object');
  const rule = raw as Record<string, unknown>;
  if (!isValidFilter(requireString(rule.from, `${at}.from`))) fail(`${at}.from`, 'is not a valid MQTT topic filter');
  if (/[+#]/.test(requireString(rule.to, `${at}.to`))) fail(`${at}.to`, 'must be a topic without wildcards');
  optionalArray(rule.select, `${at}.select`).forEach((field, i) => requireString(field, `${at}.select[${i}]`));
  if (rule.where !== undefined) {
    try {
      compileCondition(requireString(rule.where, `${at}.where`));
    } catch (err) {
      fail(`${at}.where`, (err as Error).message);
    }
  }
  if (rule.qos !== undefined && rule.qos !== 0 && rule.qos !== 1) fail(`${at}.qos`, 'must be 0 or 1');
  return rule as unknown as SimRule;
}

export function loadConfigFile(file: string): SimulatorConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`simulator config: cannot read ${file}: ${(err as Error).message}`);
  }
  return validateConfig(parsed);
}
