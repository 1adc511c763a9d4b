// The way out of a device connection: the bounded queue (memory or disk) while offline or held back, pacing to
// `maxRate`, the send gates of a gateway's sub-devices, and queued property posts sent as history posts.
import { AliyunIotError, LogMessage } from '../errors';
import { HistoryBatch, QueuedPropertyPost, readPropertyPost } from '../protocol/history';
import type { Qos } from '../protocol/topics';
import { DiskQueue } from './disk-queue';
import { OfflineQueue, PublishQueue, QueuedPublish } from './offline-queue';
import { AlinkIds } from './pending-requests';
import type { ConnectionProfile } from './settings';
import type { ConnectionLogger, ConnectionStatus } from './types';

/** The least time between two reports of the queue's size. */
const QUEUE_REPORT_INTERVAL_MS = 250;

/** The status a disk queue's failure to write shows, by its error code. */
const STORE_PROBLEMS: Partial<Record<string, NonNullable<ConnectionStatus['storeProblem']>>> = {
  STORE_DISK_FULL: 'store-disk-full',
  STORE_UNWRITABLE: 'store-unwritable',
  STORE_IO: 'store-io',
};

/** A history post `historyId` was made of `posts` (queued property posts, in order). */
export type HistoryListener = (historyId: string, posts: QueuedPropertyPost[]) => void;

/** What the outbox needs of its connection. */
export interface OutboxWire {
  /** Whether a session is up to send on. */
  isLive(): boolean;
  /** Sends on the live session; the message's callback runs once. */
  send(message: QueuedPublish): void;
  /** The queue's reported size or the store's problem changed: the status shows them. */
  onShownChange(): void;
}

export class Outbox {
  private readonly queue: PublishQueue;
  /** When the next publish may leave (performance.now() ms), for `maxRate`. */
  private nextPublishAt = 0;
  private paceTimer?: NodeJS.Timeout;
  private reportTimer?: NodeJS.Timeout;
  private closed = false;
  /** The queue's size as last reported (at most every QUEUE_REPORT_INTERVAL_MS). */
  reportedQueued = 0;
  /** The status reason of the disk queue's last failed store, until one succeeds again. */
  storeProblem?: ConnectionStatus['storeProblem'];
  /** Whether a queued message for a topic may leave now (a gateway: not before its sub-device is online again). */
  private readonly sendGates: Array<(topic: string) => boolean> = [];
  private readonly sendListeners: Array<(message: Readonly<QueuedPublish>) => void> = [];
  private readonly historyListeners = new Set<HistoryListener>();
  private readonly historyIds = new AlinkIds();

  /** `queueDirectory`: where a disk queue keeps its files; opening it throws STORE_UNWRITABLE, STORE_DISK_FULL or STORE_IO. */
  constructor(
    private readonly profile: ConnectionProfile,
    private readonly wire: OutboxWire,
    private readonly log: ConnectionLogger,
    queueDirectory?: string,
  ) {
    if (profile.queueStore === 'disk') {
      if (!queueDirectory) throw new AliyunIotError('QUEUE_DIRECTORY_MISSING');
      this.queue = new DiskQueue({
        dir: queueDirectory,
        maxRecords: profile.queueSize,
        maxBytes: profile.queueMaxBytes,
        timeoutMs: profile.queueTimeoutMs,
        log,
        onReady: () => this.flush(),
        onStoreResult: (error) => this.afterStore(error),
      });
    } else {
      this.queue = new OfflineQueue(profile.queueSize);
    }
  }

  get length(): number {
    return this.queue.length;
  }

  /** Whether queued publishes are kept on disk (their callbacks run when stored). */
  get durable(): boolean {
    return this.queue.durable;
  }

  /**
   * Sends `message` now if nothing holds it back, else queues it. `control` (a gateway's session requests): sent at
   * once and never stored, since stored posts wait for the logins these requests make.
   */
  submit(message: QueuedPublish, options: { control?: boolean; queueTimeoutMs?: number }): void {
    const live = this.wire.isLive();
    if ((!this.queue.durable && live && this.queue.length === 0 && this.paceDelay() <= 0) || (this.queue.durable && options.control)) {
      if (!live) {
        message.callback(new AliyunIotError('DISCONNECTED'));
        return;
      }
      this.sendPaced(message);
      return;
    }
    // A disk queue's messages leave from the store once durable (it calls flush).
    this.queue.push(message, options.queueTimeoutMs ?? this.profile.queueTimeoutMs);
    this.reportQueue();
    if (!this.queue.durable) this.flush();
  }

  /** From now on, a queued message for a topic `gate` refuses waits (with all behind it) until flush() is called. */
  addSendGate(gate: (topic: string) => boolean): void {
    this.sendGates.push(gate);
  }

  /** `listener` learns of every publish as it leaves, straight away or from the queue. */
  addSendListener(listener: (message: Readonly<QueuedPublish>) => void): void {
    this.sendListeners.push(listener);
  }

  /** `listener` learns of every history post made of queued property posts; returns what removes it. */
  addHistoryListener(listener: HistoryListener): () => void {
    this.historyListeners.add(listener);
    return () => this.historyListeners.delete(listener);
  }

  /** Sends what waits, in order, as fast as `maxRate` lets it; a timer takes up where the rate stops it. */
  flush(): void {
    if (this.paceTimer || this.closed) return;
    while (this.wire.isLive()) {
      const delay = this.paceDelay();
      if (delay > 0) {
        this.paceTimer = setTimeout(() => {
          this.paceTimer = undefined;
          this.flush();
        }, Math.ceil(delay));
        break;
      }
      const head = this.queue.peek();
      if (!head) break;
      const message = this.takeHistory(head) ?? (this.sendGates.every((gate) => gate(head.topic)) ? this.queue.shift() : undefined);
      if (!message) break;
      this.sendPaced(message);
    }
    this.reportQueue();
  }

  /** The connection closes: no more timers. Once its run ended it calls failQueued, then closeStore. */
  stop(): void {
    this.closed = true;
    clearTimeout(this.paceTimer);
    this.paceTimer = undefined;
    clearTimeout(this.reportTimer);
    this.reportTimer = undefined;
  }

  failQueued(): void {
    this.queue.failAll('CONNECTION_CLOSED');
  }

  closeStore(callback: () => void): void {
    this.queue.close(callback);
  }

  private sendPaced(message: QueuedPublish): void {
    for (const listener of this.sendListeners) listener(message);
    this.wire.send(message);
    this.paced(message.qos);
  }

  /** How long until the next publish may leave under `maxRate`, in ms. */
  private paceDelay(): number {
    return this.nextPublishAt - performance.now();
  }

  private paced(qos: Qos): void {
    const interval = qos === 1 ? this.profile.publishIntervalMs.qos1 : this.profile.publishIntervalMs.qos0;
    if (interval > 0) this.nextPublishAt = Math.max(performance.now(), this.nextPublishAt) + interval;
  }

  private reportQueue(): void {
    if (this.reportTimer || this.closed) return;
    this.reportTimer = setTimeout(() => {
      this.reportTimer = undefined;
      const queued = this.queue.length;
      if (queued === this.reportedQueued) return;
      this.reportedQueued = queued;
      this.wire.onShownChange();
      if (queued > 0) this.reportQueue();
    }, QUEUE_REPORT_INTERVAL_MS);
    this.reportTimer.unref();
  }

  /** A disk queue's answer to a store: a failure to write shows in the status until a store succeeds again. */
  private afterStore(error?: Error): void {
    const code = error instanceof AliyunIotError ? error.code : undefined;
    const problem = code === undefined ? undefined : STORE_PROBLEMS[code];
    // A refusal by the bounds (STORE_FULL) says nothing about the disk.
    if ((problem || !error) && problem !== this.storeProblem) {
      if (problem) this.log.error(new LogMessage('STORE_WRITE_FAILED', { reason: (error as Error).message }));
      this.storeProblem = problem;
      this.wire.onShownChange();
    }
  }

  /**
   * With `historyAfter`: the property posts at the head of the queue that waited longer than it, taken out of the queue
   * and made into one history post (within the platform's limits, same QoS); undefined when the head is no such post.
   * The history post's PUBACK or failure answers each of them.
   */
  private takeHistory(head: Readonly<QueuedPublish>): QueuedPublish | undefined {
    const limitMs = this.profile.historyAfterMs;
    if (limitMs <= 0 || this.profile.mode !== 'iot') return undefined;
    const now = Date.now();
    const batch = new HistoryBatch(this.profile.limits.maxPayloadBytes);
    const taken: QueuedPublish[] = [];
    for (let next = this.queue.peek(); next; next = this.queue.peek()) {
      if (next.retain || next.enqueuedAt === undefined || now - next.enqueuedAt <= limitMs || next.qos !== head.qos) break;
      const post = readPropertyPost(next.topic, next.payload, next.enqueuedAt);
      if (!post || !batch.fits(post)) break;
      batch.add(post);
      taken.push(this.queue.shift() as QueuedPublish);
    }
    if (taken.length === 0) return undefined;
    const id = this.historyIds.take();
    const { productKey, deviceName } = this.profile.variables;
    const { topic, payload } = batch.build({ productKey, deviceName }, id, true);
    for (const listener of this.historyListeners) listener(id, batch.posts);
    return {
      topic,
      payload,
      qos: head.qos,
      retain: false,
      callback: (error) => {
        for (const message of taken) message.callback(error);
      },
    };
  }
}
