// The device side of thing-model posts on one connection: ids, one subscription for all post replies, and
// matching each reply to its request.
import { AliyunIotError, LogMessage, isLogCode } from '../errors';
import { AlinkReply, Device, METHODS, PostRequest, buildPost, readReply, thingTopics } from '../protocol/alink';
import type { QueuedPropertyPost } from '../protocol/history';
import { checkTimerDuration } from '../protocol/limits';
import type { DeviceConnection } from './device-connection';
import { AlinkIds, PendingRequests } from './pending-requests';
import type { MessageReceiver, PublishCallback, PublishOptions } from './types';

/** How a post client publishes: on its connection, or (for a sub-device) through the gateway's sub-device manager. */
export type Publisher = (topic: string, payload: string, options: PublishOptions, callback: PublishCallback) => void;

export interface PostResult {
  id: string;
  method: string;
  /** Absent when the post asked for no reply (sys.ack 0). */
  reply?: AlinkReply;
  /** Set when the post waited longer than `historyAfter` and went in a history post: that post's id and method. */
  history?: { id: string; method: string };
}

/** History posts whose reply may still come, per post client. */
const MAX_HISTORY_WAITING = 1000;

export class PostClient implements MessageReceiver {
  private readonly ids = new AlinkIds();
  private readonly pending = new PendingRequests<AlinkReply>();
  private readonly device: Device;
  private readonly replyFilter: string;
  /** Replies to the connection's history posts (they carry the gateway's pk/dn for a sub-device too). */
  private readonly historyReplyFilter: string;
  /** Our waiting posts that went in a history post, by that post's id. */
  private readonly inHistory = new Map<string, string[]>();
  private removeHistoryListener?: () => void;
  private users = 0;

  private readonly publish: Publisher;

  /** Posts as `device` (default: the connection's own) through `publish` (default: the connection's). */
  constructor(
    private readonly connection: DeviceConnection,
    device?: Device,
    publish?: Publisher,
  ) {
    const { productKey, deviceName } = connection.profile.variables;
    this.device = device ?? { productKey, deviceName };
    this.replyFilter = thingTopics.postReplies(this.device);
    this.historyReplyFilter = thingTopics.replyTo(thingTopics.historyPost({ productKey, deviceName }));
    this.publish = publish ?? ((topic, payload, options, callback) => connection.publish(topic, payload, options, callback));
  }

  /** A post node starts: the first one subscribes the reply topics. */
  attach(): void {
    if (this.users++ > 0) return;
    this.connection.subscribe(this, this.replyFilter, 1);
    if (this.connection.profile.historyAfterMs > 0) {
      this.connection.subscribe(this, this.historyReplyFilter, 1);
      this.removeHistoryListener = this.connection.addHistoryListener((historyId, posts) => this.onHistory(historyId, posts));
    }
  }

  detach(removed: boolean): void {
    if (--this.users === 0) {
      this.connection.unsubscribe(this, this.replyFilter, removed);
      if (this.removeHistoryListener) {
        this.removeHistoryListener();
        this.removeHistoryListener = undefined;
        this.connection.unsubscribe(this, this.historyReplyFilter, removed);
        this.inHistory.clear();
      }
      this.pending.rejectAll(() => new AliyunIotError('CONNECTION_CLOSED'));
    }
  }

  /**
   * Publishes a post and returns its id and method (throwing on bad input). The callback gets the reply (or, without
   * ack, runs once the broker took the message), or the error: publishing failed, or no reply within timeoutMs.
   */
  post(
    request: PostRequest,
    timeoutMs: number,
    callback: (error: Error | undefined, result?: PostResult) => void,
  ): { id: string; method: string } {
    if (request.ack) checkTimerDuration(timeoutMs, 'timeout');
    const id = this.ids.take();
    const { topic, method, payload } = buildPost(this.device, id, request);
    if (request.ack) {
      this.pending.add(
        id,
        timeoutMs,
        (error, reply) =>
          callback(error, {
            id,
            method,
            reply,
            ...(reply?.method === METHODS.historyPost ? { history: { id: reply.id, method: METHODS.historyPost } } : {}),
          }),
        () => new AliyunIotError('POST_TIMEOUT', { method, id, timeout: timeoutMs }),
      );
    }
    // A post waiting for its reply gives up after timeoutMs, in the offline queue too: never sent after that.
    this.publish(topic, payload, { qos: 1, ...(request.ack ? { queueTimeoutMs: timeoutMs } : {}) }, (error) => {
      if (error) {
        if (request.ack) this.pending.reject(id, error);
        else callback(error);
      } else if (!request.ack) {
        callback(undefined, { id, method });
      }
    });
    return { id, method };
  }

  /** Our posts still waiting for a reply that went in history post `historyId`: its reply answers them. */
  private onHistory(historyId: string, posts: QueuedPropertyPost[]): void {
    const { productKey, deviceName } = this.device;
    const ours = posts
      .filter((post) => post.device.productKey === productKey && post.device.deviceName === deviceName && post.id !== undefined)
      .map((post) => post.id as string)
      .filter((id) => this.pending.has(id));
    if (ours.length === 0) return;
    // History posts whose reply never came: forget the oldest rather than grow.
    if (this.inHistory.size >= MAX_HISTORY_WAITING) this.inHistory.delete(this.inHistory.keys().next().value as string);
    this.inHistory.set(historyId, ours);
  }

  onMessage(topic: string, payload: Buffer): void {
    const reply = readReply(payload);
    if (!reply) {
      this.connection.log.warn(new LogMessage('ALINK_MALFORMED', { topic }));
    } else if (topic === this.historyReplyFilter) {
      const ids = this.inHistory.get(reply.id);
      this.inHistory.delete(reply.id);
      for (const id of ids ?? []) this.pending.resolve(id, { ...reply, method: METHODS.historyPost });
    } else if (!this.pending.resolve(reply.id, reply)) {
      this.connection.log.debug(new LogMessage('REPLY_DROPPED', { id: reply.id, topic }));
    }
  }

  onSubscribeError(_filter: string, error: AliyunIotError): void {
    if (isLogCode(error.code)) this.connection.log.error(new LogMessage(error.code, error.params));
    this.pending.rejectAll(() => error);
  }
}

const clients = new WeakMap<DeviceConnection, PostClient>();

/** The thing client of a connection, made on first use and shared by every post node on it. */
export function postClientOf(connection: DeviceConnection): PostClient {
  let client = clients.get(connection);
  if (!client) clients.set(connection, (client = new PostClient(connection)));
  return client;
}
