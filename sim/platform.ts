// The simulated IoT Platform: answers thing-model posts and NTP, sends property sets, service calls and RRPC
// to devices and waits for their answers, runs the forwarding rules.
import {
  AlinkReply,
  Device,
  IDENTIFIER_PATTERNS,
  MAX_JSON_DEPTH,
  METHODS,
  PROPERTY_LIMITS,
  RANGES,
  TOO_MANY_PROPERTIES_CODE,
  nestsDeeperThan,
  parseAlink,
  parseThingTopic,
  readReply,
  thingTopics,
  deviceKey,
} from '../nodes/lib/protocol';
import { AlinkIds, PendingRequests } from '../nodes/lib/connection';
import { SimFailure, SimRule } from './config';
import { HistoryValue, PropertyHistory, readHistoryParams } from './history';
import type { IotSession } from './registry';
import { RuleEngine } from './rules';

export type Publish = (topic: string, payload: Buffer | string, qos: 0 | 1) => void;

export type RrpcCode = 'SUCCESS' | 'TIMEOUT' | 'OFFLINE';

export interface RrpcResult {
  rrpcCode: RrpcCode;
  messageId: string;
  payload?: Buffer;
}

export interface RequestResult {
  /** SUCCESS with `reply`, TIMEOUT, OFFLINE; SENT when nobody waited for an answer. */
  status: 'SUCCESS' | 'TIMEOUT' | 'OFFLINE' | 'SENT';
  id: string;
  reply?: AlinkReply;
}

export interface PlatformEvents {
  /** Every message a device published and was allowed to. */
  message(info: { productKey: string; deviceName: string; topic: string; payload: Buffer }): void;
  post(info: { productKey: string; deviceName: string; topic: string; id?: string; method?: string; params?: unknown; ack: boolean }): void;
  forward(info: { rule: SimRule; from: string; to: string }): void;
  /** An answer from a device that no request waits for (late, repeated, or never asked for). */
  unmatched(info: { topic: string }): void;
}

/** Longest synchronous call the platform waits for (docs/protocol.md §2). */
export const MAX_SYNC_TIMEOUT_MS = RANGES.rrpcTimeoutMs.max;

function failureFor(failures: SimFailure[], device: Device, eventId: string, params: unknown): SimFailure | undefined {
  return failures.find(
    (failure) =>
      (failure.productKey === undefined || failure.productKey === device.productKey) &&
      (failure.deviceName === undefined || failure.deviceName === device.deviceName) &&
      (failure.event === undefined || failure.event === eventId) &&
      (failure.property === undefined ||
        (eventId === 'property' &&
          params !== null &&
          typeof params === 'object' &&
          Object.prototype.hasOwnProperty.call(params, failure.property))),
  );
}

export interface PropertyCheck {
  /** Set when the platform refuses the properties whole: its reply code. */
  refusedCode?: number;
  /** The properties it takes, as given. */
  kept: Array<[name: string, value: unknown]>;
  /** The ones it drops, each as `name: why` (the name shortened). */
  dropped: string[];
}

/** Why the platform would not keep a property value, or undefined when it would. */
function valueProblem(value: unknown): string | undefined {
  if (nestsDeeperThan(value, MAX_JSON_DEPTH)) return `nested more than ${MAX_JSON_DEPTH} levels deep`;
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    return 'not JSON';
  }
  const bytes = Buffer.byteLength(json ?? '');
  return bytes > PROPERTY_LIMITS.valueBytes ? `${bytes} bytes, more than ${PROPERTY_LIMITS.valueBytes}` : undefined;
}

/**
 * Properties as the platform checks them (docs/protocol.md §15.3, §16): more than PROPERTY_LIMITS.perPost are
 * refused whole (6106); a name that is no property identifier, or a value too deep or too large, is dropped and the
 * rest kept. For posted properties, stored ones and ones set from the cloud alike.
 */
export function checkProperties(params: Record<string, unknown>): PropertyCheck {
  const entries = Object.entries(params);
  if (entries.length > PROPERTY_LIMITS.perPost) return { refusedCode: TOO_MANY_PROPERTIES_CODE, kept: [], dropped: [] };
  const check: PropertyCheck = { kept: [], dropped: [] };
  for (const [name, value] of entries) {
    const problem = propertyProblem(name, value);
    if (problem) check.dropped.push(problem);
    else check.kept.push([name, value]);
  }
  return check;
}

/** Why the platform drops this property (its name and the reason), or undefined when it keeps it. */
export function propertyProblem(name: string, value: unknown): string | undefined {
  const problem = IDENTIFIER_PATTERNS.propertyName.test(name) ? valueProblem(value) : 'not a property identifier';
  return problem && `${name.length > 40 ? `${name.slice(0, 40)}...` : name}: ${problem}`;
}

/** Topics of the platform itself (thing model, NTP, RRPC, shadow, OTA), as opposed to a product's custom topics. */
export function isPlatformTopic(topic: string): boolean {
  return topic.startsWith('/sys/') || topic.startsWith('/ext/') || topic.startsWith('/shadow/') || topic.startsWith('/ota/');
}

/** Message ids as the platform gives them: long digit strings, increasing. */
export function messageIds(): () => string {
  let next = BigInt(Date.now()) * 1000n;
  return () => String((next += 1n));
}

export class SimulatedPlatform {
  readonly rules: RuleEngine;
  private readonly ids = new AlinkIds();
  /** Answers the platform waits for: `alink:<pk>/<dn>/<id>` for sets and services, `rrpc:<pk>/<dn>/<messageId>` for RRPC. */
  private readonly waiting = new PendingRequests<Buffer>();
  private readonly properties = new Map<string, Record<string, { value: unknown; time: number }>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly history = new PropertyHistory();
  /** Whether `poster` may post history for `device`: itself; a gateway, its attached sub-devices (set by the simulator). */
  mayPostFor: (poster: Device, device: Device) => boolean = (poster, device) =>
    poster.productKey === device.productKey && poster.deviceName === device.deviceName;

  constructor(
    private readonly publish: Publish,
    private readonly online: (device: Device) => IotSession | undefined,
    private readonly failures: SimFailure[],
    rules: SimRule[],
    private readonly events: Partial<PlatformEvents>,
    private readonly log: (line: string) => void,
  ) {
    this.rules = new RuleEngine(rules);
  }

  /**
   * Whether a device's publish to `topic` concerns the platform: a platform topic, or one a forwarding rule takes. The
   * hot path of plain custom-topic traffic skips onDevicePublish when nobody listens to `message` events either.
   */
  concerns(topic: string): boolean {
    return isPlatformTopic(topic) || this.rules.matches(topic);
  }

  /**
   * A device published (and was allowed to). Thing-model traffic up to the platform is consumed here and answered;
   * returns true for it, so that it reaches no other client. Every message also passes the forwarding rules.
   */
  onDevicePublish(session: IotSession, topic: string, payload: Buffer, qos: 0 | 1): boolean {
    this.events.message?.({ productKey: session.productKey, deviceName: session.deviceName, topic, payload });
    for (const message of this.rules.apply(session, topic, payload, qos)) {
      this.events.forward?.({ rule: message.rule, from: topic, to: message.topic });
      this.log(`rule ${message.rule.name ?? message.rule.from}: ${topic} -> ${message.topic}`);
      this.publish(message.topic, message.payload, message.qos);
    }
    if (!isPlatformTopic(topic)) return false;
    const parsed = parseThingTopic(topic);
    const own = parsed && parsed.productKey === session.productKey && parsed.deviceName === session.deviceName;
    if (!own)
      return topic.startsWith('/sys/') || topic.startsWith('/ext/') || /^\/(shadow\/update|ota\/device\/(inform|progress))\//.test(topic);
    const key = deviceKey(parsed);
    switch (parsed.type) {
      case 'post':
        this.answerPost(parsed, parsed.eventId, topic, payload);
        break;
      case 'history-post':
        this.answerHistoryPost(parsed, topic, payload);
        break;
      case 'property-set-reply':
      case 'service-reply':
        this.deliverAnswer(`alink:${key}/${readReply(payload)?.id}`, payload, topic);
        break;
      case 'rrpc-response':
      case 'ext-rrpc':
      case 'custom-rrpc':
        this.deliverAnswer(`rrpc:${key}/${parsed.messageId}`, payload, topic);
        break;
      case 'ntp-request':
        this.answerNtp(parsed, payload);
        break;
      default:
        break;
    }
    return true;
  }

  private deliverAnswer(key: string, payload: Buffer, topic: string): void {
    if (!this.waiting.resolve(key, payload)) {
      this.log(`an answer nobody waits for (late?) on ${topic}`);
      this.events.unmatched?.({ topic });
    }
  }

  private answerPost(device: Device, eventId: string, topic: string, payload: Buffer): void {
    const request = parseAlink(payload);
    // The id is echoed as sent; one that is neither text nor a number (an object, say) gets no answer.
    const id = typeof request?.id === 'string' || typeof request?.id === 'number' ? request.id : undefined;
    const method = typeof request?.method === 'string' ? request.method : undefined;
    const sys = request?.sys as { ack?: unknown } | undefined;
    const ack = sys?.ack !== 0 && sys?.ack !== '0';
    this.events.post?.({ ...device, topic, id: typeof id === 'string' ? id : undefined, method, params: request?.params, ack });
    const refusedCode =
      eventId === 'property' && request?.params && typeof request.params === 'object'
        ? this.remember(device, request.params as Record<string, unknown>)
        : undefined;
    if (!ack || id === undefined) return;
    const failure = failureFor(this.failures, device, eventId, request?.params);
    if (failure?.drop) return;
    const code = refusedCode ?? failure?.code ?? 200;
    const body = JSON.stringify({
      code,
      data: {},
      id,
      message:
        refusedCode !== undefined
          ? `map size must less than ${PROPERTY_LIMITS.perPost}`
          : (failure?.message ?? (code === 200 ? 'success' : 'failed')),
      method: method ?? (eventId === 'property' ? METHODS.propertyPost : METHODS.eventPost(eventId)),
      version: '1.0',
    });
    this.later(failure?.delayMs ?? 0, () => this.publish(thingTopics.replyTo(topic), body, 0));
  }

  /** thing.event.property.history.post: checked whole, then each value kept with its time (docs/protocol.md §9.2). */
  private answerHistoryPost(poster: Device, topic: string, payload: Buffer): void {
    const request = parseAlink(payload);
    const id = typeof request?.id === 'string' || typeof request?.id === 'number' ? request.id : undefined;
    const sys = request?.sys as { ack?: unknown } | undefined;
    const ack = sys?.ack !== 0 && sys?.ack !== '0';
    const read = readHistoryParams(request?.params, (device) => this.mayPostFor(poster, device), Date.now());
    this.events.post?.({
      ...poster,
      topic,
      id: typeof id === 'string' ? id : undefined,
      method: METHODS.historyPost,
      params: request?.params,
      ack,
    });
    if ('entries' in read) {
      for (const { device, values } of read.entries) {
        const kept = values.filter(({ name, value }) => {
          const problem = propertyProblem(name, value);
          if (problem) this.log(`history of ${device.productKey}/${device.deviceName} dropped: ${problem}`);
          return problem === undefined;
        });
        this.history.add(device, kept);
        this.rememberTimed(device, kept);
      }
    } else {
      this.log(`${poster.productKey}/${poster.deviceName} ${topic}: refused with ${read.code}`);
    }
    if (!ack || id === undefined) return;
    const body = JSON.stringify({
      code: read.code,
      data: {},
      id,
      message: read.code === 200 ? 'success' : 'failed',
      method: METHODS.historyPost,
      version: '1.0',
    });
    this.later(0, () => this.publish(thingTopics.replyTo(topic), body, 0));
  }

  /** Values with their times: each becomes the last value unless a newer one is known. */
  private rememberTimed(device: Device, values: HistoryValue[]): void {
    const key = deviceKey(device);
    const stored = this.storedProperties(key);
    for (const { name, value, time } of values) {
      const known = Object.prototype.hasOwnProperty.call(stored, name);
      if (!known && Object.keys(stored).length >= PROPERTY_LIMITS.perDevice) {
        this.log(`history of ${key} dropped: ${name}: the device has ${PROPERTY_LIMITS.perDevice} properties already`);
      } else if (!known || stored[name].time <= time) {
        stored[name] = { value, time };
      }
    }
    this.properties.set(key, stored);
  }

  /** A device's last values; no prototype: a property named __proto__ is a property like any other. */
  private storedProperties(key: string): Record<string, { value: unknown; time: number }> {
    return this.properties.get(key) ?? (Object.create(null) as Record<string, { value: unknown; time: number }>);
  }

  /** Values a device's history posts brought, oldest first. */
  historyOf(device: Device): HistoryValue[] {
    return this.history.of(device);
  }

  /**
   * One device's share of a gateway's pack post: recorded, and seen by listeners and the server-side subscription, as
   * if the device had posted its properties and each event itself (with the pack post's id); the gateway gets the answer.
   */
  recordPacked(device: Device, id: string | undefined, properties: Record<string, unknown>, events: Record<string, unknown>): void {
    const posts: Array<{ topic: string; method: string; params: unknown }> = Object.entries(events).map(([eventId, params]) => ({
      topic: thingTopics.eventPost(device, eventId),
      method: METHODS.eventPost(eventId),
      params,
    }));
    if (Object.keys(properties).length > 0) {
      posts.unshift({ topic: thingTopics.propertyPost(device), method: METHODS.propertyPost, params: properties });
      this.remember(device, properties);
    }
    for (const { topic, method, params } of posts) {
      const payload = Buffer.from(JSON.stringify({ id, version: '1.0', params, method }));
      this.events.message?.({ ...device, topic, payload });
      this.events.post?.({ ...device, topic, id, method, params, ack: false });
    }
  }

  /** Keeps what checkProperties lets through, up to PROPERTY_LIMITS.perDevice names; returns the refusal code, if any. */
  private remember(device: Device, params: Record<string, unknown>): number | undefined {
    const key = deviceKey(device);
    const { refusedCode, kept, dropped } = checkProperties(params);
    const stored = this.storedProperties(key);
    if (refusedCode !== undefined) this.log(`properties of ${key} refused (${refusedCode}): more than ${PROPERTY_LIMITS.perPost}`);
    for (const [name, entry] of kept) {
      if (!Object.prototype.hasOwnProperty.call(stored, name) && Object.keys(stored).length >= PROPERTY_LIMITS.perDevice) {
        dropped.push(`${name}: the device has ${PROPERTY_LIMITS.perDevice} properties already`);
        continue;
      }
      const timed = entry !== null && typeof entry === 'object' && 'value' in entry;
      const time = timed ? (entry as { time?: unknown }).time : undefined;
      stored[name] = timed
        ? {
            value: (entry as { value: unknown }).value,
            time: (typeof time === 'number' || typeof time === 'string' ? Number(time) : 0) || Date.now(),
          }
        : { value: entry, time: Date.now() };
    }
    if (dropped.length > 0) this.log(`properties of ${key} dropped: ${dropped.slice(0, 3).join('; ')}${dropped.length > 3 ? '; ...' : ''}`);
    this.properties.set(key, stored);
    return refusedCode;
  }

  private answerNtp(device: Device, payload: Buffer): void {
    const serverRecvTime = Date.now();
    const deviceSendTime = parseAlink(payload)?.deviceSendTime;
    // The device's own time comes back as it sent it: a number or its digits; anything else as an empty string.
    const echoed = typeof deviceSendTime === 'number' || typeof deviceSendTime === 'string' ? String(deviceSendTime) : '';
    this.publish(
      thingTopics.ntpResponse(device),
      JSON.stringify({
        deviceSendTime: echoed,
        serverRecvTime: String(serverRecvTime),
        serverSendTime: String(Date.now()),
      }),
      0,
    );
  }

  private later(ms: number, action: () => void): void {
    if (ms <= 0) {
      setImmediate(action);
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      action();
    }, ms);
    this.timers.add(timer);
  }

  /** Last posted property values of a device, with their times. */
  propertiesOf(device: Device): Record<string, { value: unknown; time: number }> {
    return this.properties.get(deviceKey(device)) ?? {};
  }

  /** Like OpenAPI Pub: a message from the platform to a device topic. */
  pub(topic: string, payload: Buffer, qos: 0 | 1): void {
    this.publish(topic, payload, qos);
  }

  /** Like SetDeviceProperty; with a timeout, waits for the device's set_reply. */
  setProperties(device: Device, items: Record<string, unknown>, timeoutMs?: number): Promise<RequestResult> {
    return this.request(device, thingTopics.propertySet(device), METHODS.propertySet, items, timeoutMs);
  }

  /**
   * Like InvokeThingService. Asynchronous services answer on `${service}_reply` (waited for when a timeout is given);
   * synchronous ones go by RRPC: ext RRPC when the device announced ext=1 in its client id, else classic.
   */
  async invokeService(device: Device, serviceId: string, args: unknown, sync: boolean, timeoutMs?: number): Promise<RequestResult> {
    if (!sync) return this.request(device, thingTopics.service(device, serviceId), METHODS.service(serviceId), args, timeoutMs);
    const id = this.ids.take();
    const body = JSON.stringify({ id, version: '1.0', params: args, method: METHODS.service(serviceId) });
    const session = this.online(device);
    const topicFor = (messageId: string): string =>
      (session?.ext ?? 0) & 1 ? thingTopics.extRrpc(device, messageId, serviceId) : thingTopics.rrpcRequest(device, messageId);
    const result = await this.rrpcTo(device, topicFor, Buffer.from(body), timeoutMs ?? MAX_SYNC_TIMEOUT_MS);
    const reply = result.payload ? readReply(result.payload) : undefined;
    return { status: result.rrpcCode, id, reply };
  }

  /** Like RRpc: raw bytes to /sys/.../rrpc/request/${messageId}, or with `customTopic` to /ext/rrpc/${messageId}${topic}. */
  rrpc(device: Device, payload: Buffer, timeoutMs: number, customTopic?: string): Promise<RrpcResult> {
    const topicFor = (messageId: string): string =>
      customTopic ? thingTopics.customRrpc(messageId, customTopic) : thingTopics.rrpcRequest(device, messageId);
    return this.rrpcTo(device, topicFor, payload, timeoutMs);
  }

  private rrpcTo(device: Device, topicFor: (messageId: string) => string, payload: Buffer, timeoutMs: number): Promise<RrpcResult> {
    const messageId = this.ids.take();
    if (!this.online(device)) return Promise.resolve({ rrpcCode: 'OFFLINE', messageId });
    return new Promise((resolve) => {
      this.waiting.add(
        `rrpc:${device.productKey}/${device.deviceName}/${messageId}`,
        Math.min(timeoutMs, MAX_SYNC_TIMEOUT_MS),
        (error, answer) => resolve(error ? { rrpcCode: 'TIMEOUT', messageId } : { rrpcCode: 'SUCCESS', messageId, payload: answer }),
        () => new Error('TIMEOUT'),
      );
      this.publish(topicFor(messageId), payload, 0);
    });
  }

  private request(device: Device, topic: string, method: string, params: unknown, timeoutMs?: number): Promise<RequestResult> {
    const id = this.ids.take();
    if (!this.online(device)) return Promise.resolve({ status: 'OFFLINE', id });
    const body = JSON.stringify({ id, version: '1.0', params, method });
    if (timeoutMs === undefined) {
      this.publish(topic, body, 1);
      return Promise.resolve({ status: 'SENT', id });
    }
    return new Promise((resolve) => {
      this.waiting.add(
        `alink:${device.productKey}/${device.deviceName}/${id}`,
        timeoutMs,
        (error, answer) => resolve(error ? { status: 'TIMEOUT', id } : { status: 'SUCCESS', id, reply: readReply(answer as Buffer) }),
        () => new Error('TIMEOUT'),
      );
      this.publish(topic, body, 1);
    });
  }

  stop(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.waiting.rejectAll(() => new Error('the simulator stopped'));
  }
}
