import { AliyunIotError } from './errors';

export type ServiceMode = 'iot' | 'mq';

export interface ServiceLimits {
  maxTopicLength: number;
  maxPayloadBytes: number;
  maxSubscriptions: number;
}

/** Limits of aliyun-protocol.md §1 and §4 that the nodes enforce before anything reaches the wire. */
export const SERVICE_LIMITS: Readonly<Record<ServiceMode, ServiceLimits>> = {
  iot: { maxTopicLength: 128, maxPayloadBytes: 256 * 1024, maxSubscriptions: 100 },
  mq: { maxTopicLength: 64, maxPayloadBytes: 64 * 1024, maxSubscriptions: 30 },
};

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
