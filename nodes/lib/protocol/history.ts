// Property posts that waited too long in a queue go again as one thing.event.property.history.post with the times
// they were made at (docs/protocol.md §9.2): reading a queued post, and batching posts within the limits.
import { AlinkObject, Device, METHODS, deviceKey, parseAlink, parseThingTopic, thingTopics } from './alink';
import { THING_POST_LIMITS } from './limits';
import { jsonText } from './payload';

export interface TimedValue {
  value: unknown;
  time: number;
}

/** A queued property post, read back. */
export interface QueuedPropertyPost {
  device: Device;
  /** The post's Alink id, if it had one. */
  id?: string;
  properties: Record<string, TimedValue>;
}

/** `{value, time?}` as a property post may give a value; anything else is a plain value. */
function timedValue(entry: unknown, defaultTime: number): TimedValue {
  if (entry !== null && typeof entry === 'object' && !Array.isArray(entry)) {
    const keys = Object.keys(entry);
    if (keys.includes('value') && keys.every((key) => key === 'value' || key === 'time')) {
      const { value, time } = entry as { value: unknown; time?: unknown };
      const ms = typeof time === 'number' || typeof time === 'string' ? Number(time) : NaN;
      return { value, time: Number.isFinite(ms) && ms > 0 ? ms : defaultTime };
    }
  }
  return { value: entry, time: defaultTime };
}

/**
 * A queued message read as a thing.event.property.post: whose it is, its id and its properties, each with its own
 * time or else `queuedAt`. Undefined for any other message (another topic, not Alink JSON, no properties).
 */
export function readPropertyPost(topic: string, payload: Buffer | string, queuedAt: number): QueuedPropertyPost | undefined {
  const parsed = parseThingTopic(topic);
  if (parsed?.type !== 'post' || parsed.eventId !== 'property') return undefined;
  const body = parseAlink(payload);
  if (!body || (body.method !== undefined && body.method !== METHODS.propertyPost)) return undefined;
  const params = body.params;
  if (params === null || typeof params !== 'object' || Array.isArray(params) || Object.keys(params).length === 0) return undefined;
  const properties: Record<string, TimedValue> = {};
  for (const [name, entry] of Object.entries(params)) properties[name] = timedValue(entry, queuedAt);
  const id = body.id;
  return {
    device: { productKey: parsed.productKey, deviceName: parsed.deviceName },
    id: typeof id === 'string' || typeof id === 'number' ? String(id) : undefined,
    properties,
  };
}

interface DeviceBlock {
  identity: Device;
  properties: Array<Record<string, TimedValue>>;
}

/**
 * Property posts gathered into one history post: one block per device in the order they first came, each post one
 * map of the block's `properties`. Holds at most THING_POST_LIMITS.properties properties and .devices devices, and
 * keeps the payload within `maxBytes`.
 */
export class HistoryBatch {
  private readonly blocks = new Map<string, DeviceBlock>();
  private propertyCount = 0;
  /** The payload's size so far, without the envelope. */
  private bytes = 0;
  readonly posts: QueuedPropertyPost[] = [];

  constructor(private readonly maxBytes: number) {}

  get size(): number {
    return this.posts.length;
  }

  /** Whether `post` still fits; the first post always does (a refusal of it is the platform's to give). */
  fits(post: QueuedPropertyPost): boolean {
    if (this.posts.length === 0) return true;
    const count = Object.keys(post.properties).length;
    const key = deviceKey(post.device);
    if (!this.blocks.has(key) && this.blocks.size >= THING_POST_LIMITS.devices) return false;
    if (this.propertyCount + count > THING_POST_LIMITS.properties) return false;
    return this.bytes + Buffer.byteLength(jsonText(post.properties)) + ENVELOPE_BYTES <= this.maxBytes;
  }

  add(post: QueuedPropertyPost): void {
    const key = deviceKey(post.device);
    let block = this.blocks.get(key);
    if (!block) {
      this.blocks.set(key, (block = { identity: post.device, properties: [] }));
      this.bytes += Buffer.byteLength(jsonText(post.device)) + BLOCK_BYTES;
    }
    block.properties.push(post.properties);
    this.bytes += Buffer.byteLength(jsonText(post.properties)) + 1;
    this.propertyCount += Object.keys(post.properties).length;
    this.posts.push(post);
  }

  /** The history post, published by `poster` (the connection's own device) under `id`. */
  build(poster: Device, id: string, ack: boolean): { topic: string; method: string; payload: string } {
    const params: AlinkObject[] = [...this.blocks.values()].map((block) => ({ identity: block.identity, properties: block.properties }));
    const method = METHODS.historyPost;
    return {
      topic: thingTopics.historyPost(poster),
      method,
      payload: jsonText({ id, version: '1.0', sys: { ack: ack ? 1 : 0 }, params, method }),
    };
  }
}

/** Room for `{"id":…,"version":"1.0","sys":{"ack":1},"params":[],"method":"thing.event.property.history.post"}`. */
const ENVELOPE_BYTES = 128;
/** Room for a block's `{"identity":,"properties":[]}`. */
const BLOCK_BYTES = 32;
