// The services' numeric limits and the package's ranges and defaults: the one source the runtime, the simulator and
// the editor (the build writes them into the editor files) read. docs/protocol.md §1, §4 and §5 give the sources.
import { AliyunIotError } from '../errors';

export type ServiceMode = 'iot' | 'mq';

export interface ServiceLimits {
  readonly maxTopicLength: number;
  readonly maxPayloadBytes: number;
  readonly maxSubscriptions: number;
}

export interface Range {
  readonly min: number;
  readonly max: number;
}

/** Freezes a plain object and every object inside it, so that no caller can change a limit for everybody. */
export function deepFreeze<T extends object>(value: T): Readonly<T> {
  for (const inner of Object.values(value)) {
    if (inner !== null && typeof inner === 'object' && !Object.isFrozen(inner)) deepFreeze(inner as object);
  }
  return Object.freeze(value);
}

/** What the nodes enforce before anything reaches the wire. */
export const SERVICE_LIMITS: Readonly<Record<ServiceMode, ServiceLimits>> = deepFreeze({
  iot: { maxTopicLength: 128, maxPayloadBytes: 256 * 1024, maxSubscriptions: 100 },
  mq: { maxTopicLength: 64, maxPayloadBytes: 64 * 1024, maxSubscriptions: 30 },
});

/**
 * How deep a value sent as JSON may nest. Deeper values overflow the stack of JSON.stringify and of Node-RED's
 * message clone; no thing model comes near it.
 */
export const MAX_JSON_DEPTH = 1000;

/**
 * What a device's properties may be (docs/protocol.md §15, §16): how many one post carries, how long a name and how
 * large a value may be, and how many a device has. The simulator keeps no more than this of what it is sent.
 */
const TSL_TEXT_LENGTH = 10_240;

export const PROPERTY_LIMITS = deepFreeze({
  /** Properties in one thing.event.property.post (or one SetDeviceProperty); more are refused with 6106. */
  perPost: 200,
  /** Characters of a thing-model identifier (property, event, service). */
  identifierLength: 64,
  /** Characters of a text value (the TSL's longest text). */
  textLength: TSL_TEXT_LENGTH,
  /** UTF-8 bytes of a value's JSON text: the longest text at 3 bytes a character, room enough for any TSL value. */
  valueBytes: 3 * TSL_TEXT_LENGTH,
  /** Properties a product defines at most (2020 limits), so the properties one device has. */
  perDevice: 256,
});

/** The code of a property post refused for carrying more than PROPERTY_LIMITS.perPost properties. */
export const TOO_MANY_PROPERTIES_CODE = 6106;

/**
 * Device uplink per second the service takes, by QoS; the IoT Platform drops the excess silently (docs/protocol.md
 * §16). ApsaraMQ states no such per-client limit.
 */
export const UPLINK_RATE_LIMITS: Readonly<Record<ServiceMode, Readonly<{ qos0: number; qos1: number }> | undefined>> = deepFreeze({
  iot: { qos0: 30, qos1: 10 },
  mq: undefined,
});

/** setTimeout's longest delay: a duration beyond it would fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Thing-model posts (docs/protocol.md §8.5, §9.2, §16): a property post carries at most 200 properties (6106), a pack
 * post at most 20 sub-devices; no count limit of the history post is documented, so the package keeps history posts
 * within the same two. Times may be at most 24 h in the future (6326 beyond).
 */
export const THING_POST_LIMITS = deepFreeze({
  properties: PROPERTY_LIMITS.perPost,
  devices: 20,
  maxFutureMs: 24 * 60 * 60 * 1000,
});

/**
 * Checks that a duration fits setTimeout (`unit` 's' for seconds): a longer one would fire after 1 ms. Returns it in
 * milliseconds; throws DURATION_TOO_LONG, which says the limit.
 */
export function checkTimerDuration(value: number, field: string, unit: 'ms' | 's' = 'ms'): number {
  const ms = unit === 's' ? value * 1000 : value;
  if (ms > MAX_TIMER_MS) {
    const max = unit === 's' ? Math.floor(MAX_TIMER_MS / 1000) : MAX_TIMER_MS;
    throw new AliyunIotError('DURATION_TOO_LONG', { field, value: String(value), unit, max });
  }
  return ms;
}

/** The platform's limits on gateway traffic (docs/protocol.md §8.2, §8.3, §8.5, §16). */
export const GATEWAY_LIMITS = deepFreeze({
  /** Sub-devices per batch_login / batch_logout. */
  batchLogin: 50,
  /** Sub-devices per thing/topo/add. */
  topoAdd: 30,
  /** Logins of one sub-device within a minute; the next one is refused with 429. */
  loginsPerMinute: 5,
  /** Sub-devices online through one gateway at a time (428 beyond). */
  onlinePerGateway: 2000,
  /** Sub-devices attached to one gateway (6400 beyond). */
  topologyPerGateway: 1500,
  /** One thing.event.property.pack.post carries at most this many sub-devices, properties and events. */
  packSubDevices: THING_POST_LIMITS.devices,
  packProperties: THING_POST_LIMITS.properties,
  packEvents: 20,
});

export const RANGES = deepFreeze({
  /** Seconds; the IoT Platform refuses a keepalive outside 30-1200. */
  iotKeepalive: { min: 30, max: 1200 },
  mqKeepalive: { min: 1, max: 65535 },
  port: { min: 1, max: 65535 },
  /** How long the platform waits for a device's RRPC answer, in ms. */
  rrpcTimeoutMs: { min: 1000, max: 8000 },
  /** An MQTT client id, in characters. */
  clientIdLength: { min: 1, max: 64 },
  /** The idle-time-out (heartbeat) the server-side subscription takes in a client's AMQP open, in ms. */
  amqpIdleTimeoutMs: { min: 30_000, max: 300_000 },
  /** Seconds a property post may wait in the queue before it goes as a history post; 0: never. */
  historyAfter: { min: 0, max: Math.floor(MAX_TIMER_MS / 1000) },
});

export const DEFAULTS = deepFreeze({
  keepalive: 60,
  queueSize: 1000,
  /** The disk queue's byte bound when none is set. */
  queueMaxBytes: 64 * 1024 * 1024,
  postTimeoutMs: 5000,
  rrpcTimeoutMs: 5000,
  region: 'cn-shanghai',
});
