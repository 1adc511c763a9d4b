// The connection's queue on disk: every publish is stored first (its callback runs when it is durable), sent from the
// store in order, and removed when the broker took it (PUBACK for QoS 1, the write for QoS 0). What was stored and
// not removed is sent after a restart.
import { LogMessage } from '../errors';
import type { Qos } from '../protocol/topics';
import { DurableLog } from '../store';
import type { PublishQueue, QueuedPublish } from './offline-queue';
import type { ConnectionLogger, PublishCallback } from './types';

/** Record layout: u8 flags (bit 0 QoS 1, bit 1 retain) | f64 enqueue time (ms) | u16 topic bytes | topic | payload. */
const FIXED_BYTES = 11;

export interface StoredPublish {
  topic: string;
  payload: Buffer | string;
  qos: Qos;
  retain: boolean;
  enqueuedAt: number;
}

export function decodeStoredPublish(record: Buffer): StoredPublish {
  const flags = record.readUInt8(0);
  const topicBytes = record.readUInt16BE(9);
  return {
    qos: (flags & 1) as Qos,
    retain: (flags & 2) !== 0,
    enqueuedAt: record.readDoubleBE(1),
    topic: record.toString('utf8', FIXED_BYTES, FIXED_BYTES + topicBytes),
    payload: record.subarray(FIXED_BYTES + topicBytes),
  };
}

export interface DiskQueueOptions {
  dir: string;
  maxRecords: number;
  maxBytes: number;
  /** A stored message older than this is dropped instead of sent; 0: no limit. */
  timeoutMs: number;
  log: ConnectionLogger;
  /** A stored message can be sent. */
  onReady(): void;
  /** Every store's outcome, before the message's own callback: an error, or undefined for stored. */
  onStoreResult?(error?: Error): void;
}

interface ReadyPublish extends StoredPublish {
  seq: number;
  /** Until the message is durable: whom to tell. */
  callback?: PublishCallback;
}

/** Puts a message's record in place: one function for all records (the log passes the message). */
function writeRecord(target: Buffer, offset: number, message: ReadyPublish & { topicBytes: number }): void {
  target.writeUInt8((message.qos === 1 ? 1 : 0) | (message.retain ? 2 : 0), offset);
  target.writeDoubleBE(message.enqueuedAt, offset + 1);
  target.writeUInt16BE(message.topicBytes, offset + 9);
  const payloadAt = offset + FIXED_BYTES + target.write(message.topic, offset + FIXED_BYTES, message.topicBytes, 'utf8');
  if (typeof message.payload === 'string') target.write(message.payload, payloadAt, 'utf8');
  else message.payload.copy(target, payloadAt);
}

export class DiskQueue implements PublishQueue {
  readonly durable = true;
  private readonly store: DurableLog;
  /** Durable and waiting to be sent, by sequence number. */
  private ready: ReadyPublish[] = [];
  private head = 0;
  private readyScheduled = false;
  /** What peek() gave: shift() gives the same, even if its time limit ran out in between. */
  private peeked?: ReadyPublish;

  /** Opens and recovers the store; throws STORE_UNWRITABLE, STORE_DISK_FULL or STORE_IO. */
  constructor(private readonly options: DiskQueueOptions) {
    this.store = DurableLog.open(options.dir, { maxRecords: options.maxRecords, maxBytes: options.maxBytes });
    const { damage } = this.store;
    if (damage) options.log.warn(new LogMessage('STORE_DAMAGED', { dir: options.dir, ...damage }));
    for (const record of this.store.recovered) this.ready.push({ ...decodeStoredPublish(record.payload), seq: record.seq });
  }

  /** Messages held: being stored, waiting, or sent and not yet acknowledged. */
  get length(): number {
    return this.store.count;
  }

  /** Stored messages that wait to be sent. */
  get waiting(): number {
    return this.ready.length - this.head;
  }

  /** Stores `message`; its callback runs when it is durable (or with the store's error). */
  push(message: QueuedPublish): void {
    const { topic, payload, qos, retain, callback } = message;
    const topicBytes = Buffer.byteLength(topic);
    const payloadBytes = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
    const ready = { topic, payload, qos, retain, enqueuedAt: Date.now(), seq: 0, callback, topicBytes };
    // A refused record has no sequence number and comes to the callback with its error.
    ready.seq = this.store.appendItem(FIXED_BYTES + topicBytes + payloadBytes, writeRecord, ready, this.onStored) ?? 0;
  }

  private readonly onStored = (message: ReadyPublish, error?: Error): void => {
    const callback = message.callback as PublishCallback;
    message.callback = undefined;
    this.options.onStoreResult?.(error);
    if (error) {
      callback(error);
      return;
    }
    this.ready.push(message);
    callback();
    // One call for a batch of records made durable together.
    if (!this.readyScheduled) {
      this.readyScheduled = true;
      queueMicrotask(() => {
        this.readyScheduled = false;
        this.options.onReady();
      });
    }
  };

  /** The oldest stored message that is not past the time limit (older ones are dropped here), left in place. */
  peek(): Readonly<QueuedPublish> | undefined {
    const next = this.next();
    this.peeked = next;
    return next && { ...next, callback: () => undefined };
  }

  /** The oldest stored message; its callback removes it from the store, or (on an error) puts it back in place. */
  shift(): QueuedPublish | undefined {
    const next = this.next();
    this.peeked = undefined;
    if (!next) return undefined;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.ready.length) {
      this.ready = this.ready.slice(this.head);
      this.head = 0;
    }
    return {
      topic: next.topic,
      payload: next.payload,
      qos: next.qos,
      retain: next.retain,
      enqueuedAt: next.enqueuedAt,
      callback: (error) => (error ? this.putBack(next) : this.store.ack(next.seq)),
    };
  }

  /** The first waiting message within the time limit; those past it are removed from the store with a warning. */
  private next(): ReadyPublish | undefined {
    const { timeoutMs } = this.options;
    while (this.head < this.ready.length) {
      const next = this.ready[this.head];
      if (next === this.peeked) return next;
      if (timeoutMs > 0 && Date.now() - next.enqueuedAt > timeoutMs) {
        this.head++;
        this.store.ack(next.seq);
        this.options.log.warn(new LogMessage('STORE_EXPIRED', { topic: next.topic, seconds: timeoutMs / 1000 }));
        continue;
      }
      return next;
    }
    return undefined;
  }

  /** Stored messages stay stored: they are sent after the next start. */
  failAll(): void {
    return undefined;
  }

  close(callback: () => void): void {
    this.store.close(callback);
  }

  /** A send that failed: the message goes back where its sequence number puts it. */
  private putBack(message: ReadyPublish): void {
    let index = this.ready.length;
    while (index > this.head && this.ready[index - 1].seq > message.seq) index--;
    if (index === this.head && this.head > 0) this.ready[--this.head] = message;
    else this.ready.splice(index, 0, message);
  }
}
