// Publishes that wait while the connection is down: bounded, in order, each failing when it outlives its time limit.
import { AliyunIotError, ErrorCode } from '../errors';
import { MAX_TIMER_MS } from '../protocol/limits';
import type { Qos } from '../protocol/topics';
import type { PublishCallback } from './types';

export interface QueuedPublish {
  topic: string;
  payload: Buffer | string;
  qos: Qos;
  retain: boolean;
  callback: PublishCallback;
  /** Fails the message if it is still queued when its time limit is up. */
  expiry?: NodeJS.Timeout;
  /** When it was queued (ms since the epoch). */
  enqueuedAt?: number;
}

/** Where publishes wait: in memory (OfflineQueue) or on disk (DiskQueue). */
export interface PublishQueue {
  /** Stored messages run their callback once durable; a memory queue's messages run it when sent. */
  readonly durable: boolean;
  /** Messages held. */
  readonly length: number;
  push(message: QueuedPublish, limitMs: number): void;
  /** The message shift() would return next, left in place. */
  peek(): Readonly<QueuedPublish> | undefined;
  shift(): QueuedPublish | undefined;
  failAll(code: string): void;
  close(callback: () => void): void;
}

export class OfflineQueue implements PublishQueue {
  readonly durable = false;
  private readonly messages: QueuedPublish[] = [];

  constructor(readonly capacity: number) {}

  get length(): number {
    return this.messages.length;
  }

  /** Queues `message`; a full queue fails it with QUEUE_FULL. `limitMs` 0: no time limit. */
  push(message: QueuedPublish, limitMs: number): void {
    if (this.messages.length >= this.capacity) {
      message.callback(new AliyunIotError('QUEUE_FULL', { size: this.capacity }));
      return;
    }
    if (limitMs > MAX_TIMER_MS) {
      message.callback(
        new AliyunIotError('DURATION_TOO_LONG', { field: 'queueTimeoutMs', value: String(limitMs), unit: 'ms', max: MAX_TIMER_MS }),
      );
      return;
    }
    message.enqueuedAt ??= Date.now();
    this.messages.push(message);
    if (limitMs > 0) message.expiry = setTimeout(() => this.expire(message, limitMs), limitMs);
  }

  peek(): Readonly<QueuedPublish> | undefined {
    return this.messages[0];
  }

  /** The oldest message, out of the queue and with its timer stopped. */
  shift(): QueuedPublish | undefined {
    const message = this.messages.shift();
    if (message) clearTimeout(message.expiry);
    return message;
  }

  /** Fails every queued message with `code`. */
  failAll(code: ErrorCode): void {
    for (const message of this.messages.splice(0)) {
      clearTimeout(message.expiry);
      message.callback(new AliyunIotError(code));
    }
  }

  close(callback: () => void): void {
    callback();
  }

  private expire(message: QueuedPublish, limitMs: number): void {
    const index = this.messages.indexOf(message);
    if (index < 0) return;
    this.messages.splice(index, 1);
    message.callback(new AliyunIotError('QUEUE_EXPIRED', { seconds: limitMs / 1000 }));
  }
}
