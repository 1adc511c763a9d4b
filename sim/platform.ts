// The simulated IoT Platform: answers thing-model posts and NTP, sends property sets, service calls and RRPC
// to devices and waits for their answers, runs the forwarding rules.
import { AlinkReply, Device, METHODS, parseAlink, parseThingTopic, readReply, thingTopics, RANGES } from '../nodes/lib/protocol';
import { AlinkIds, PendingRequests } from '../nodes/lib/connection';
import { SimFailure, SimRule } from './config';
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
    const key = `${parsed.productKey}/${parsed.deviceName}`;
    switch (parsed.type) {
      case 'post':
        this.answerPost(parsed, parsed.eventId, topic, payload);
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
    if (eventId === 'property' && request?.params && typeof request.params === 'object')
      this.remember(device, request.params as Record<string, unknown>);
    if (!ack || id === undefined) return;
    const failure = failureFor(this.failures, device, eventId, request?.params);
    if (failure?.drop) return;
    const code = failure?.code ?? 200;
    const body = JSON.stringify({
      code,
      data: {},
      id,
      message: failure?.message ?? (code === 200 ? 'success' : 'failed'),
      method: method ?? (eventId === 'property' ? METHODS.propertyPost : METHODS.eventPost(eventId)),
      version: '1.0',
    });
    this.later(failure?.delayMs ?? 0, () => this.publish(thingTopics.replyTo(topic), body, 0));
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

  private remember(device: Device, params: Record<string, unknown>): void {
    const key = `${device.productKey}/${device.deviceName}`;
    const stored = this.properties.get(key) ?? {};
    for (const [name, entry] of Object.entries(params)) {
      const timed = entry !== null && typeof entry === 'object' && 'value' in entry;
      const time = timed ? (entry as { time?: unknown }).time : undefined;
      stored[name] = timed
        ? {
            value: (entry as { value: unknown }).value,
            time: (typeof time === 'number' || typeof time === 'string' ? Number(time) : 0) || Date.now(),
          }
        : { value: entry, time: Date.now() };
    }
    this.properties.set(key, stored);
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
    return this.properties.get(`${device.productKey}/${device.deviceName}`) ?? {};
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
