// Who listens to what on one connection: filters counted by owner, a topic index that finds the owners of a topic,
// and the dispatch of each message to each owner once, however many of its filters match.
import { QlobberDedup } from 'qlobber';
import type { Qos } from '../protocol/topics';
import type { MessageMeta, MessageReceiver } from './types';

export interface FilterEntry {
  /** Highest QoS any owner asked for. */
  qos: Qos;
  /** What was last sent in a SUBSCRIBE; undefined while none is on the wire. */
  sentQos?: Qos;
  owners: Map<MessageReceiver, Qos>;
  /** Delivered without a SUBSCRIBE (ApsaraMQ's point-to-point topic, a cloud application's local filters). */
  local: boolean;
  /** The broker refused it (SUBACK 0x80). */
  denied: boolean;
  unsubscribeTimer?: NodeJS.Timeout;
}

/** Most topics whose matching receivers the dispatch remembers; past it the memory starts over. */
export const DISPATCH_CACHE_SIZE = 10_000;

export class SubscriptionTable {
  private readonly filters = new Map<string, FilterEntry>();
  private readonly receivers = new Map<MessageReceiver, Map<string, Qos>>();
  private readonly index = new QlobberDedup<MessageReceiver>({
    separator: '/',
    wildcard_one: '+',
    wildcard_some: '#',
    match_empty_levels: true,
  });
  /** Receivers matching each recently seen topic; cleared whenever the index changes. */
  private readonly dispatchCache = new Map<string, MessageReceiver[]>();

  get(filter: string): FilterEntry | undefined {
    return this.filters.get(filter);
  }

  has(filter: string): boolean {
    return this.filters.has(filter);
  }

  entries(): IterableIterator<[string, FilterEntry]> {
    return this.filters.entries();
  }

  /** How many receivers own at least one filter. */
  get receiverCount(): number {
    return this.receivers.size;
  }

  /** Filters that need (or have) a SUBSCRIBE on the wire: neither local nor refused. */
  brokerFilters(): string[] {
    return [...this.filters].filter(([, entry]) => !entry.local && !entry.denied).map(([filter]) => filter);
  }

  /** Records `receiver` as an owner of `filter`; a grace timer for its UNSUBSCRIBE stops. */
  add(receiver: MessageReceiver, filter: string, qos: Qos, local: boolean): FilterEntry {
    let entry = this.filters.get(filter);
    if (!entry) {
      entry = { qos, owners: new Map(), local, denied: false };
      this.filters.set(filter, entry);
    }
    if (entry.unsubscribeTimer) {
      clearTimeout(entry.unsubscribeTimer);
      entry.unsubscribeTimer = undefined;
    }
    entry.owners.set(receiver, qos);
    if (qos > entry.qos) entry.qos = qos;
    let owned = this.receivers.get(receiver);
    if (!owned) this.receivers.set(receiver, (owned = new Map()));
    owned.set(filter, qos);
    this.index.add(filter, receiver);
    this.dispatchCache.clear();
    return entry;
  }

  /**
   * Takes `receiver` off `filter`. Returns the entry when the receiver owned it (its QoS lowered to what the other
   * owners ask); the entry stays in the table for the caller to drop once it has no owner.
   */
  remove(receiver: MessageReceiver, filter: string): FilterEntry | undefined {
    const owned = this.receivers.get(receiver);
    owned?.delete(filter);
    if (owned?.size === 0) this.receivers.delete(receiver);
    const entry = this.filters.get(filter);
    if (!entry || !entry.owners.delete(receiver)) return undefined;
    this.index.remove(filter, receiver);
    this.dispatchCache.clear();
    if (entry.owners.size > 0) entry.qos = Math.max(0, ...entry.owners.values()) as Qos;
    return entry;
  }

  /** Forgets `filter` if `entry` is still its entry. */
  drop(filter: string, entry: FilterEntry): boolean {
    if (this.filters.get(filter) !== entry) return false;
    clearTimeout(entry.unsubscribeTimer);
    this.filters.delete(filter);
    return true;
  }

  filtersOf(receiver: MessageReceiver): string[] {
    return [...(this.receivers.get(receiver)?.keys() ?? [])];
  }

  subscriptionsOf(receiver: MessageReceiver): Array<{ topic: string; qos: Qos }> {
    return [...(this.receivers.get(receiver) ?? [])].map(([topic, qos]) => ({ topic, qos }));
  }

  /** Hands the message to every owner of a matching filter once; a receiver that throws does not stop the others. */
  dispatch(topic: string, payload: Buffer, meta: MessageMeta, onError: (error: Error) => void): void {
    let receivers = this.dispatchCache.get(topic);
    if (!receivers) {
      receivers = [...this.index.match(topic)];
      if (this.dispatchCache.size >= DISPATCH_CACHE_SIZE) this.dispatchCache.clear();
      this.dispatchCache.set(topic, receivers);
    }
    for (const receiver of receivers) {
      try {
        receiver.onMessage(topic, payload, meta);
      } catch (err) {
        onError(err as Error);
      }
    }
  }

  clear(): void {
    for (const entry of this.filters.values()) clearTimeout(entry.unsubscribeTimer);
    this.filters.clear();
    this.receivers.clear();
    this.index.clear();
    this.dispatchCache.clear();
  }
}
