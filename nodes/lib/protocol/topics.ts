import { AliyunIotError } from '../errors';
import { ServiceLimits } from './limits';

/** The values `${name}` stands for in topics: productKey, deviceName, clientId, groupId, deviceId. */
export type TopicVariables = Readonly<Record<string, string>>;

const PLACEHOLDER = /\$\{([A-Za-z]+)\}/g;

export function hasPlaceholder(topic: string): boolean {
  return topic.includes('${');
}

/** Replaces `${name}`; a name the connection does not define is an error, never left in a topic on the wire. */
export function expandPlaceholders(topic: string, variables: TopicVariables): string {
  if (!hasPlaceholder(topic)) return topic;
  return topic.replace(PLACEHOLDER, (_whole, name: string) => {
    const value = variables[name];
    if (value === undefined) throw new AliyunIotError('PLACEHOLDER_UNKNOWN', { name, topic });
    return value;
  });
}

/** A subscription filter per MQTT 3.1.1: `+` alone in a level, `#` alone and last. */
export function isValidFilter(filter: string): boolean {
  if (typeof filter !== 'string' || filter.length === 0 || filter.includes('\u0000')) return false;
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    if (level === '#') {
      if (i !== levels.length - 1) return false;
    } else if (level === '+') {
      continue;
    } else if (level.includes('#') || level.includes('+')) {
      return false;
    }
  }
  return true;
}

export function validateFilter(filter: unknown, limits: ServiceLimits): string {
  if (typeof filter !== 'string' || filter === '') throw new AliyunIotError('TOPIC_EMPTY');
  if (!isValidFilter(filter)) throw new AliyunIotError('FILTER_INVALID', { topic: filter });
  if (filter.length > limits.maxTopicLength) {
    throw new AliyunIotError('TOPIC_TOO_LONG', { topic: filter, max: limits.maxTopicLength });
  }
  return filter;
}

export function validatePublishTopic(topic: unknown, limits: ServiceLimits): string {
  if (typeof topic !== 'string' || topic === '') throw new AliyunIotError('TOPIC_EMPTY');
  if (topic.includes('+') || topic.includes('#')) throw new AliyunIotError('TOPIC_WILDCARD', { topic });
  if (topic.includes('\u0000')) throw new AliyunIotError('FILTER_INVALID', { topic });
  if (topic.length > limits.maxTopicLength) {
    throw new AliyunIotError('TOPIC_TOO_LONG', { topic, max: limits.maxTopicLength });
  }
  return topic;
}

/**
 * True when every topic that `filter` matches is also matched by `pattern` (both MQTT filters). The simulator uses it
 * to decide whether a device may subscribe a filter, given the filters its product grants.
 */
export function filterCovers(pattern: string, filter: string): boolean {
  const granted = pattern.split('/');
  const wanted = filter.split('/');
  for (let i = 0; i < granted.length; i++) {
    const level = granted[i];
    if (level === '#') return true;
    if (i >= wanted.length) return false;
    if (wanted[i] === '#') return false;
    if (level !== '+' && level !== wanted[i]) return false;
  }
  return granted.length === wanted.length;
}

/** What a device may do on a topic of its own: subscribe, publish or both. */
export type TopicAccess = 'sub' | 'pub' | 'all';

/** The IoT Platform's system topics of a device, as filters over its identity (docs/protocol.md §2, §10, §12). */
export function deviceSystemTopics(productKey: string, deviceName: string): Array<[string, TopicAccess]> {
  return [
    [`/sys/${productKey}/${deviceName}/#`, 'all'],
    [`/ext/ntp/${productKey}/${deviceName}/#`, 'all'],
    [`/ext/rrpc/+/sys/${productKey}/${deviceName}/#`, 'all'],
    [`/ext/rrpc/+/${productKey}/${deviceName}/#`, 'all'],
    [`/shadow/+/${productKey}/${deviceName}`, 'all'],
    [`/ota/device/+/${productKey}/${deviceName}`, 'all'],
    [`/broadcast/${productKey}/#`, 'sub'],
  ];
}

/**
 * Whether an IoT Platform device may publish on `topic` at all: only on its own topics, its custom topics
 * /${pk}/${dn}/... and its system topics (docs/protocol.md §2). The platform drops anything else without telling the
 * device; which custom topics it may publish on is the product's topic list, known to the platform only.
 */
export function isOwnPublishTopic(topic: string, productKey: string, deviceName: string): boolean {
  const levels = topic.split('/');
  if (levels[1] === productKey && levels[2] === deviceName && levels.length > 3) return true;
  // A gateway's sub-device sessions (docs/protocol.md §8.3) go on topics of its own.
  if (levels[1] === 'ext' && levels[2] === 'session' && levels[3] === productKey && levels[4] === deviceName) return true;
  return deviceSystemTopics(productKey, deviceName).some(([filter, access]) => access !== 'sub' && filterCovers(filter, topic));
}

/** Refuses, before it leaves, a publish the platform would drop: a topic of another device. */
export function checkOwnPublishTopic(topic: string, productKey: string, deviceName: string): void {
  if (!isOwnPublishTopic(topic, productKey, deviceName)) {
    throw new AliyunIotError('TOPIC_NOT_OWN', { topic, productKey, deviceName });
  }
}

/** Both services know QoS 0 and 1 only. */
export type Qos = 0 | 1;

function isQos(value: unknown): value is Qos {
  return value === 0 || value === 1;
}

export function parseQos(value: unknown, fallback: Qos = 0): Qos {
  if (value === undefined || value === null || value === '') return fallback;
  const qos = typeof value === 'string' ? Number(value) : value;
  if (qos === 2) throw new AliyunIotError('QOS_UNSUPPORTED');
  if (!isQos(qos)) throw new AliyunIotError('QOS_INVALID', { value: String(value) });
  return qos;
}

/** The device a message came from, read from its topic: /${pk}/${dn}/..., /sys/${pk}/${dn}/..., /ext/.../${pk}/${dn}/... */
export function deviceOfTopic(topic: string): { productKey?: string; deviceName?: string } {
  const levels = topic.split('/');
  if (levels[1] === 'sys' || levels[1] === 'shadow') return { productKey: levels[2], deviceName: levels[3] };
  if (levels[1] === 'ext' && levels[2] === 'ntp') return { productKey: levels[3], deviceName: levels[4] };
  if (levels[1] === 'ota') return { productKey: levels[4], deviceName: levels[5] };
  return { productKey: levels[1] || undefined, deviceName: levels[2] || undefined };
}

/** The product a Pub goes to: a custom topic /${pk}/..., or a broadcast /broadcast/${pk}/... */
export function productOfTopic(topic: string): string | undefined {
  const levels = topic.split('/');
  return (levels[1] === 'broadcast' ? levels[2] : levels[1]) || undefined;
}

/** ApsaraMQ delivers `${parent}/p2p/${clientId}` to its client without a subscription (docs/protocol.md §4). */
export function isPointToPointFilter(filter: string, clientId: string): boolean {
  const levels = filter.split('/');
  return levels.length === 3 && levels[1] === 'p2p' && levels[2] === clientId;
}
