// Consumer groups of the server-side subscription (docs/protocol.md §5): every group gets every device message;
// inside a group the messages go round robin to its connected consumers, and what a consumer does not accept
// (released, rejected, modified, not accepted within the accept deadline, or still unsettled when it goes away) is
// delivered again, to another consumer when the group has one. Independent of AMQP: sim/amqp.ts adapts rhea links
// to `Consumer`.

export interface GroupMessage {
  messageId: string;
  topic: string;
  payload: Buffer;
  productKey: string;
  deviceName: string;
  /** When the platform received it, ms since the epoch. */
  generateTime: number;
}

export interface Consumer {
  /** For logs: the client id. */
  readonly name: string;
  /** How many more messages it takes now (the link credit). */
  capacity(): number;
  /** Hands a message over, with how often it was delivered before; the outcome comes back through `GroupMember.settle`. */
  deliver(message: GroupMessage, previousDeliveries: number): void;
}

export type Outcome = 'accepted' | 'released' | 'rejected' | 'modified';

/** A consumer's membership of its group. */
export interface GroupMember {
  readonly groupId: string;
  settle(messageId: string, outcome: Outcome): void;
  /** The consumer has credit again. */
  pump(): void;
  /** The consumer went away: whatever it did not accept goes back to the group. */
  leave(): void;
}

export interface ConsumerGroupsOptions {
  /** Groups that exist from the start and keep messages while no consumer is connected; absent: any group id. */
  known?: readonly string[];
  /** Messages a group keeps for later (the oldest go first); default MAX_BACKLOG_MESSAGES. */
  maxBacklog?: number;
  /** Bytes (payload and topic) of the messages a group keeps for later (the oldest go first); default MAX_BACKLOG_BYTES. */
  maxBacklogBytes?: number;
  /** A message its only consumer gave back is offered to that consumer again after this delay; default 1000 ms. */
  retryDelayMs?: number;
  /** A delivered message not accepted within this time is delivered again; the platform's 30 s by default. */
  acceptTimeoutMs?: number;
  log?: (line: string) => void;
}

/** The simulator's bounds of a consumer group's backlog, in messages and in bytes (10,000 messages of 256 KB would be 2.5 GB). */
export const MAX_BACKLOG_MESSAGES = 10_000;
export const MAX_BACKLOG_BYTES = 64 * 1024 * 1024;

/** The platform's accept deadline of server-side subscription. */
export const ACCEPT_TIMEOUT_MS = 30_000;

interface Queued {
  message: GroupMessage;
  /** The consumer that gave it back: another one gets it when the group has another. */
  avoid?: Consumer;
  deliveries: number;
  /** While delivered and unsettled: the accept deadline. */
  deadline?: NodeJS.Timeout;
}

function sizeOf(message: GroupMessage): number {
  return message.payload.length + Buffer.byteLength(message.topic);
}

class ConsumerGroup {
  readonly consumers: Consumer[] = [];
  /** Waiting for a consumer, the next to deliver first; change it only through add/take so that `queuedBytes` holds. */
  readonly queue: Queued[] = [];
  queuedBytes = 0;
  readonly unsettled = new Map<Consumer, Map<string, Queued>>();
  private next = 0;
  private retryTimer?: NodeJS.Timeout;
  dropped = 0;

  constructor(
    readonly id: string,
    private readonly options: Required<Omit<ConsumerGroupsOptions, 'known'>>,
  ) {}

  add(consumer: Consumer): void {
    this.consumers.push(consumer);
    this.unsettled.set(consumer, new Map());
    this.dispatch();
  }

  remove(consumer: Consumer): void {
    const index = this.consumers.indexOf(consumer);
    if (index < 0) return;
    this.consumers.splice(index, 1);
    if (this.next > index) this.next--;
    const open = [...(this.unsettled.get(consumer)?.values() ?? [])];
    for (const entry of open) clearTimeout(entry.deadline);
    this.unsettled.delete(consumer);
    if (open.length > 0)
      this.options.log(`consumer group ${this.id}: ${consumer.name} left with ${open.length} unaccepted message(s); delivering them again`);
    this.requeue(...open.map((entry) => ({ ...entry, avoid: consumer })));
    this.dispatch();
  }

  /** Messages to deliver before the rest: given back, or not accepted. */
  private requeue(...entries: Queued[]): void {
    this.queue.unshift(...entries);
    for (const entry of entries) this.queuedBytes += sizeOf(entry.message);
  }

  private take(index: number): Queued {
    const [entry] = this.queue.splice(index, 1);
    this.queuedBytes -= sizeOf(entry.message);
    return entry;
  }

  enqueue(entry: Queued): void {
    this.queue.push(entry);
    this.queuedBytes += sizeOf(entry.message);
    const { maxBacklog, maxBacklogBytes } = this.options;
    while (this.queue.length > maxBacklog || (this.queue.length > 0 && this.queuedBytes > maxBacklogBytes)) {
      const overBytes = this.queue.length <= maxBacklog;
      this.take(0);
      this.dropped++;
      if (this.dropped === 1 || this.dropped % 1000 === 0) {
        const bound = overBytes ? `${maxBacklogBytes} bytes` : `${maxBacklog} messages`;
        this.options.log(`consumer group ${this.id}: backlog over ${bound}, ${this.dropped} oldest dropped so far`);
      }
    }
    this.dispatch();
  }

  settle(consumer: Consumer, messageId: string, outcome: Outcome): void {
    const open = this.unsettled.get(consumer);
    const entry = open?.get(messageId);
    if (!open || !entry) return;
    open.delete(messageId);
    clearTimeout(entry.deadline);
    if (outcome !== 'accepted') {
      this.options.log(`consumer group ${this.id}: ${consumer.name} ${outcome} message ${messageId}; delivering it again`);
      this.requeue({ message: entry.message, deliveries: entry.deliveries, avoid: consumer });
    }
    this.dispatch();
  }

  /** Not accepted in time: delivered again; a late outcome for this delivery is ignored. */
  private expire(consumer: Consumer, messageId: string): void {
    const open = this.unsettled.get(consumer);
    const entry = open?.get(messageId);
    if (!open || !entry) return;
    open.delete(messageId);
    this.options.log(
      `consumer group ${this.id}: ${consumer.name} did not accept message ${messageId} within ${this.options.acceptTimeoutMs} ms; delivering it again`,
    );
    this.requeue({ message: entry.message, deliveries: entry.deliveries, avoid: consumer });
    this.dispatch();
  }

  /** Round robin over the consumers with credit; each queued message goes to the next one that may take it. */
  dispatch(): void {
    let index = 0;
    while (index < this.queue.length && this.consumers.some((consumer) => consumer.capacity() > 0)) {
      const entry = this.queue[index];
      const consumer = this.pick(entry);
      if (!consumer) {
        index++;
        continue;
      }
      this.take(index);
      const messageId = entry.message.messageId;
      const deadline = setTimeout(() => this.expire(consumer, messageId), this.options.acceptTimeoutMs);
      this.unsettled.get(consumer)?.set(messageId, { message: entry.message, deliveries: entry.deliveries + 1, deadline });
      consumer.deliver(entry.message, entry.deliveries);
    }
    this.scheduleRetry();
  }

  private pick(entry: Queued): Consumer | undefined {
    const count = this.consumers.length;
    for (let step = 0; step < count; step++) {
      const consumer = this.consumers[(this.next + step) % count];
      if (consumer === entry.avoid || consumer.capacity() <= 0) continue;
      this.next = (this.next + step + 1) % count;
      return consumer;
    }
    return undefined;
  }

  /** Messages only their own refuser could take are offered to it again after a pause, not in a tight loop. */
  private scheduleRetry(): void {
    if (this.retryTimer) return;
    const stuck = this.queue.some((entry) => entry.avoid && this.consumers.length === 1 && this.consumers[0] === entry.avoid);
    if (!stuck) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      for (const entry of this.queue) entry.avoid = undefined;
      this.dispatch();
    }, this.options.retryDelayMs);
  }

  stop(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const open of this.unsettled.values()) for (const entry of open.values()) clearTimeout(entry.deadline);
  }
}

export class ConsumerGroups {
  private readonly groups = new Map<string, ConsumerGroup>();
  private readonly open: boolean;
  private readonly options: Required<Omit<ConsumerGroupsOptions, 'known'>>;

  constructor(options: ConsumerGroupsOptions = {}) {
    this.options = {
      maxBacklog: options.maxBacklog ?? MAX_BACKLOG_MESSAGES,
      maxBacklogBytes: options.maxBacklogBytes ?? MAX_BACKLOG_BYTES,
      retryDelayMs: options.retryDelayMs ?? 1000,
      acceptTimeoutMs: options.acceptTimeoutMs ?? ACCEPT_TIMEOUT_MS,
      log: options.log ?? (() => undefined),
    };
    this.open = options.known === undefined;
    for (const id of options.known ?? []) this.groups.set(id, new ConsumerGroup(id, this.options));
  }

  /** Whether a consumer may join this group. */
  exists(groupId: string): boolean {
    return this.open ? groupId !== '' : this.groups.has(groupId);
  }

  join(groupId: string, consumer: Consumer): GroupMember {
    if (!this.exists(groupId)) throw new Error(`no consumer group ${groupId}`);
    let group = this.groups.get(groupId);
    if (!group) this.groups.set(groupId, (group = new ConsumerGroup(groupId, this.options)));
    const member = group;
    member.add(consumer);
    let left = false;
    return {
      groupId,
      settle: (messageId, outcome) => member.settle(consumer, messageId, outcome),
      pump: () => member.dispatch(),
      leave: () => {
        if (left) return;
        left = true;
        member.remove(consumer);
      },
    };
  }

  /** A device message: one copy for every group. */
  publish(message: GroupMessage): void {
    for (const group of this.groups.values()) group.enqueue({ message, deliveries: 0 });
  }

  /** Messages waiting for a consumer, and delivered but not yet accepted, of one group. */
  stats(groupId: string): { consumers: number; queued: number; queuedBytes: number; unsettled: number; dropped: number } {
    const group = this.groups.get(groupId);
    if (!group) return { consumers: 0, queued: 0, queuedBytes: 0, unsettled: 0, dropped: 0 };
    const unsettled = [...group.unsettled.values()].reduce((sum, open) => sum + open.size, 0);
    return {
      consumers: group.consumers.length,
      queued: group.queue.length,
      queuedBytes: group.queuedBytes,
      unsettled,
      dropped: group.dropped,
    };
  }

  stop(): void {
    for (const group of this.groups.values()) group.stop();
  }
}
