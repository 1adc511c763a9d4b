import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import mqtt, { IClientOptions, MqttClient } from 'mqtt';
import { QlobberDedup } from 'qlobber';
import { AliyunIotError, LogMessage } from './errors';
import { encodePayload, exceedsBytes } from './payload';
import { ConnectionProfile } from './settings';
import { expandPlaceholders, validateFilter, validatePublishTopic } from './topics';

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'refused' | 'kicked' | 'closed';

/**
 * What user nodes show. `reason` is a key under `status` in the connection node's catalog, `returnCode` the CONNACK
 * code of a refused login.
 */
export interface ConnectionStatus {
  state: ConnectionState;
  reason: string;
  returnCode?: number;
}

export interface ConnectionUser {
  onStatus(status: ConnectionStatus): void;
  /** ApsaraMQ's notices about the connection's token ($SYS/tokenExpireNotice, $SYS/tokenInvalidNotice). */
  onNotice?(notice: ConnectionNotice): void;
}

export interface ConnectionNotice {
  kind: 'token-expiring' | 'token-invalid';
  /** The connection, as in logs. */
  target: string;
  topic: string;
  payload: unknown;
}

/** Topics of ApsaraMQ's token handling, which reach a client without a subscription (aliyun-protocol.md §4). */
export const TOKEN_TOPICS = {
  upload: '$SYS/uploadToken',
  expireNotice: '$SYS/tokenExpireNotice',
  invalidNotice: '$SYS/tokenInvalidNotice',
} as const;

/** What comes with a message besides topic and payload; a cloud application also learns the device and message id. */
export interface MessageMeta {
  qos: number;
  retain: boolean;
  device?: { productKey?: string; deviceName?: string; messageId: string };
}

export interface MessageReceiver {
  onMessage(topic: string, payload: Buffer, meta: MessageMeta): void;
  onSubscribeError(filter: string, error: AliyunIotError): void;
}

/** Where a connection logs: lines are catalog messages, so the node layer can give them in the user's language. */
export interface ConnectionLogger {
  debug(message: LogMessage): void;
  info(message: LogMessage): void;
  warn(message: LogMessage): void;
  error(message: LogMessage): void;
}

export type Qos = 0 | 1;
export type PublishCallback = (error?: Error) => void;

export interface PublishOptions {
  qos?: unknown;
  retain?: boolean;
  /** How long the message may wait in the offline queue; default the connection's queueTimeoutMs (0: no limit). */
  queueTimeoutMs?: number;
}

/** Tunables of reconnecting and knock-off detection; tests shorten them. */
export interface ReconnectPolicy {
  /** First delay after a lost connection or a failed attempt. */
  networkBaseMs: number;
  networkMaxMs: number;
  /** First delay after a refused login (CONNACK 1-5). */
  refusedBaseMs: number;
  refusedMaxMs: number;
  /** A connection closed by the peer sooner than this after CONNACK counts toward "knocked off". */
  shortSessionMs: number;
  /** How many short sessions in a row mean another client uses the same device. */
  kickedAfter: number;
  kickedBaseMs: number;
  kickedMaxMs: number;
  /** Grace before the UNSUBSCRIBE of a filter whose last owner was redeployed rather than removed. */
  unsubscribeGraceMs: number;
  connectTimeoutMs: number;
  /** Longest wait for a graceful end on close before the socket is destroyed. */
  closeTimeoutMs: number;
}

export const DEFAULT_RECONNECT_POLICY: Readonly<ReconnectPolicy> = {
  networkBaseMs: 1000,
  networkMaxMs: 30_000,
  refusedBaseMs: 2000,
  refusedMaxMs: 300_000,
  shortSessionMs: 20_000,
  kickedAfter: 2,
  kickedBaseMs: 4000,
  kickedMaxMs: 60_000,
  unsubscribeGraceMs: 1000,
  connectTimeoutMs: 10_000,
  closeTimeoutMs: 1500,
};

const REFUSAL_REASONS: Record<'iot' | 'mq', Record<number, string>> = {
  iot: { 1: 'refused-protocol', 2: 'refused-client-id', 3: 'refused-unavailable', 4: 'refused-unknown-device', 5: 'refused-signature' },
  mq: { 1: 'refused-protocol', 2: 'refused-client-id', 3: 'refused-unavailable', 4: 'refused-username', 5: 'refused-not-authorized' },
};

/** Node's codes for a server certificate that failed verification (untrusted, self-signed, expired, wrong name). */
export const TLS_CERTIFICATE_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|HOSTNAME_MISMATCH/;

/** Most topics whose matching receivers the dispatch remembers; past it the memory starts over. */
const DISPATCH_CACHE_SIZE = 10_000;

/** mqtt.js traces every packet through its `log` option; unless DEBUG asks for that, a no-op spares the hot path. */
const MQTT_JS_LOG = process.env.DEBUG ? undefined : (): void => undefined;

/** Exponential with ±20 % jitter, so that many clients do not come back in the same instant. */
export function backoffDelay(attempt: number, base: number, max: number): number {
  const delay = Math.min(max, base * 2 ** Math.min(attempt, 20));
  return Math.round(delay * (0.8 + Math.random() * 0.4));
}

/** mqtt.js never reconnects by itself: this period only keeps it from flushing in-flight QoS 1 callbacks on close. */
const MQTT_JS_RECONNECT_PERIOD = 0x7fffffff;

interface FilterEntry {
  /** Highest QoS any owner asked for, and what was last sent in a SUBSCRIBE. */
  qos: Qos;
  sentQos?: Qos;
  owners: Map<MessageReceiver, Qos>;
  /** Local-only filters (ApsaraMQ p2p) are delivered without a SUBSCRIBE. */
  local: boolean;
  denied: boolean;
  unsubscribeTimer?: NodeJS.Timeout;
}

interface QueuedPublish {
  topic: string;
  payload: Buffer | string;
  qos: Qos;
  retain: boolean;
  callback: PublishCallback;
  /** Fails the message if it is still queued when its time limit is up. */
  expiry?: NodeJS.Timeout;
}

function isQos(value: unknown): value is Qos {
  return value === 0 || value === 1;
}

export function parseQos(value: unknown, fallback: Qos = 0): Qos {
  if (value === undefined || value === null || value === '') return fallback;
  const qos = typeof value === 'string' ? Number(value) : value;
  if (qos === 2) throw new AliyunIotError('QOS_UNSUPPORTED');
  if (!isQos(qos)) throw new AliyunIotError('QOS_INVALID', { value: String(value) });
  return qos;
}

/** What the in and out nodes need of a config node's connection, device (MQTT) or cloud application alike. */
export interface SharedConnection {
  readonly mode: 'iot' | 'mq' | 'cloud';
  readonly status: ConnectionStatus;
  readonly log: ConnectionLogger;
  register(user: ConnectionUser): void;
  deregister(user: ConnectionUser, removed: boolean): void;
  expandTopic(topic: string): string;
  checkSubscriptions(requests: Array<{ topic: string; qos?: unknown }>): string[];
  subscribe(receiver: MessageReceiver, filterTemplate: string, qos?: unknown): string;
  unsubscribe(receiver: MessageReceiver, filterTemplate: string, removed?: boolean): void;
  unsubscribeAll(receiver: MessageReceiver, removed?: boolean): void;
  subscriptionsOf(receiver: MessageReceiver): Array<{ topic: string; qos: Qos }>;
  publish(topicTemplate: unknown, value: unknown, options: PublishOptions, callback: PublishCallback): void;
  connect(): void;
  disconnect(callback?: () => void): void;
  close(callback?: () => void): void;
}

/**
 * One MQTT connection shared by every node of a config node: counted subscriptions, a single message listener that
 * dispatches through a topic index, a bounded offline queue, and reconnects with freshly signed credentials.
 */
export class Connection implements SharedConnection {
  readonly profile: ConnectionProfile;
  /** The config node's log: for what concerns the connection as a whole. */
  readonly log: ConnectionLogger;
  private readonly policy: ReconnectPolicy;
  private readonly users = new Set<ConnectionUser>();
  private readonly filters = new Map<string, FilterEntry>();
  private readonly receivers = new Map<MessageReceiver, Map<string, Qos>>();
  private readonly index = new QlobberDedup<MessageReceiver>({
    separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true,
  });
  /** Receivers matching each recently seen topic; cleared whenever the index changes. */
  private readonly dispatchCache = new Map<string, MessageReceiver[]>();
  /** The stream corked until the end of this event-loop turn, if any. */
  private corked?: Writable;
  private readonly queue: QueuedPublish[] = [];
  /**
   * Filters with an UNSUBSCRIBE on the wire and no UNSUBACK yet. A new SUBSCRIBE of one waits for the UNSUBACK:
   * a broker may finish the UNSUBSCRIBE after a SUBSCRIBE sent right behind it (aedes does), leaving no subscription.
   */
  private readonly unsubscribing = new Set<string>();
  private readonly inFlight = new Set<PublishCallback>();
  private client?: MqttClient;
  private current: ConnectionStatus = { state: 'idle', reason: 'idle' };
  private reconnectTimer?: NodeJS.Timeout;
  private closed = false;
  /**
   * Why the connection is deliberately down: a `disconnect` action (until a `connect` action) or the last user
   * removed (until a user registers). No reconnects meanwhile.
   */
  private halted?: 'action' | 'unused';
  /** An end() of the client is under way: its close is ours, not a lost connection. */
  private ending = false;
  private connectedAt = 0;
  private refusalCode?: number;
  /** Why the last TLS handshake failed: the server certificate was not accepted (Node's error code). */
  private tlsFailure?: string;
  private networkFailures = 0;
  private refusals = 0;
  private shortSessions = 0;
  private lastLoggedProblem = '';

  constructor(profile: ConnectionProfile, log: ConnectionLogger, policy: Partial<ReconnectPolicy> = {}) {
    this.profile = profile;
    this.log = log;
    this.policy = { ...DEFAULT_RECONNECT_POLICY, ...policy };
  }

  get mode(): 'iot' | 'mq' {
    return this.profile.mode;
  }

  get status(): ConnectionStatus {
    return this.current;
  }

  get connected(): boolean {
    return this.current.state === 'connected';
  }

  /** Filters with a SUBSCRIBE on the wire or waiting for one (not local-only ones): for tests and diagnostics. */
  get brokerSubscriptions(): string[] {
    return [...this.filters].filter(([, entry]) => !entry.local && !entry.denied).map(([filter]) => filter);
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  expandTopic(topic: string): string {
    return expandPlaceholders(topic, this.profile.variables);
  }

  register(user: ConnectionUser): void {
    if (this.closed) return;
    this.users.add(user);
    user.onStatus(this.current);
    if (!this.client || this.halted === 'unused') {
      this.halted = undefined;
      this.start();
    }
  }

  /** `removed`: the node was deleted (not just redeployed); the connection ends when its last user is removed. */
  deregister(user: ConnectionUser, removed: boolean): void {
    this.users.delete(user);
    if (removed && this.users.size === 0 && !this.closed && !this.halted) {
      this.halted = 'unused';
      this.stopClient(() => {
        this.failInFlight('DISCONNECTED');
        if (this.halted === 'unused') this.setStatus({ state: 'idle', reason: 'idle' });
      });
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Subscriptions

  /**
   * Checks subscriptions without making them: placeholders, filter syntax and length, QoS, and the service's limit on
   * distinct filters. Returns the expanded filters; throws the first problem.
   */
  checkSubscriptions(requests: Array<{ topic: string; qos?: unknown }>): string[] {
    if (this.closed) throw new AliyunIotError('CONNECTION_CLOSED');
    const filters = requests.map((request) => {
      parseQos(request.qos);
      return validateFilter(this.expandTopic(request.topic), this.profile.limits);
    });
    const added = new Set(filters.filter((filter) => !this.filters.has(filter) && !this.isLocalFilter(filter)));
    const max = this.profile.limits.maxSubscriptions;
    if (added.size > 0 && this.brokerSubscriptions.length + added.size > max) {
      throw new AliyunIotError('SUBSCRIBE_LIMIT', { topic: [...added][0], max });
    }
    return filters;
  }

  /** Expands and validates `filter`, records `receiver` as an owner and subscribes on the wire when needed. */
  subscribe(receiver: MessageReceiver, filterTemplate: string, qosValue: unknown = 0): string {
    const [filter] = this.checkSubscriptions([{ topic: filterTemplate, qos: qosValue }]);
    const qos = parseQos(qosValue);
    let entry = this.filters.get(filter);
    if (!entry) {
      entry = { qos, owners: new Map(), local: this.isLocalFilter(filter), denied: false };
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
    if (entry.denied) {
      receiver.onSubscribeError(filter, new AliyunIotError('SUBSCRIBE_DENIED', { topic: filter }));
    } else if (this.connected && !entry.local && entry.sentQos !== entry.qos) {
      this.sendSubscribe(filter, entry);
    }
    return filter;
  }

  /**
   * `removed` false means the owner is being redeployed: with a persistent session the broker keeps the subscription,
   * otherwise the UNSUBSCRIBE waits a moment in case the new node asks for the same filter.
   */
  unsubscribe(receiver: MessageReceiver, filterTemplate: string, removed = true): void {
    let filter: string;
    try {
      filter = this.expandTopic(filterTemplate);
    } catch {
      return;
    }
    this.receivers.get(receiver)?.delete(filter);
    const entry = this.filters.get(filter);
    if (!entry || !entry.owners.delete(receiver)) return;
    this.index.remove(filter, receiver);
    this.dispatchCache.clear();
    if (entry.owners.size > 0) {
      entry.qos = Math.max(0, ...entry.owners.values()) as Qos;
      return;
    }
    if (entry.local || entry.denied || this.closed) {
      this.filters.delete(filter);
    } else if (!removed && !this.profile.cleanSession) {
      this.filters.delete(filter);
    } else if (!removed) {
      entry.unsubscribeTimer = setTimeout(() => this.dropFilter(filter, entry), this.policy.unsubscribeGraceMs);
      entry.unsubscribeTimer.unref();
    } else {
      this.dropFilter(filter, entry);
    }
  }

  unsubscribeAll(receiver: MessageReceiver, removed = true): void {
    for (const filter of [...(this.receivers.get(receiver)?.keys() ?? [])]) this.unsubscribe(receiver, filter, removed);
    this.receivers.delete(receiver);
  }

  subscriptionsOf(receiver: MessageReceiver): Array<{ topic: string; qos: Qos }> {
    return [...(this.receivers.get(receiver) ?? [])].map(([topic, qos]) => ({ topic, qos }));
  }

  private dropFilter(filter: string, entry: FilterEntry): void {
    if (this.filters.get(filter) !== entry || entry.owners.size > 0) return;
    this.filters.delete(filter);
    if (this.client && this.connected && entry.sentQos !== undefined) {
      this.unsubscribing.add(filter);
      this.client.unsubscribe(filter, (err) => {
        this.unsubscribing.delete(filter);
        if (err) this.log.debug(new LogMessage('UNSUBSCRIBE_FAILED', { topic: filter, reason: err.message }));
        // Subscribed again meanwhile: its SUBSCRIBE waited for this UNSUBACK.
        const next = this.filters.get(filter);
        if (next && this.connected && !next.local && !next.denied && next.owners.size > 0 && next.sentQos === undefined) {
          this.sendSubscribe(filter, next);
        }
      });
    }
  }

  /** ApsaraMQ delivers `${parent}/p2p/${clientId}` without a subscription (aliyun-protocol.md §4). */
  private isLocalFilter(filter: string): boolean {
    if (this.profile.mode !== 'mq') return false;
    const levels = filter.split('/');
    return levels.length === 3 && levels[1] === 'p2p' && levels[2] === this.profile.clientId;
  }

  private sendSubscribe(filter: string, entry: FilterEntry): void {
    const client = this.client;
    if (!client || this.unsubscribing.has(filter)) return;
    const qos = entry.qos;
    entry.sentQos = qos;
    client.subscribe(filter, { qos }, (err, _granted, suback) => {
      const refused = suback?.granted.some((code) => typeof code === 'number' && (code & 0x80) !== 0) ?? false;
      if (!err && !refused) return;
      if (!refused) {
        // The connection went away before the SUBACK; the next connect subscribes again.
        if (entry.sentQos === qos) entry.sentQos = undefined;
        return;
      }
      entry.denied = true;
      entry.sentQos = undefined;
      const code = this.profile.mode === 'iot' ? 'SUBSCRIBE_DENIED' : 'SUBSCRIBE_DENIED_MQ';
      const error = new AliyunIotError(code, { topic: filter });
      this.log.warn(new LogMessage(code, { topic: filter }));
      for (const owner of [...entry.owners.keys()]) owner.onSubscribeError(filter, error);
    });
  }

  private dispatch(topic: string, payload: Buffer, packet: MessageMeta): void {
    let receivers = this.dispatchCache.get(topic);
    if (!receivers) {
      receivers = [...this.index.match(topic)];
      if (this.dispatchCache.size >= DISPATCH_CACHE_SIZE) this.dispatchCache.clear();
      this.dispatchCache.set(topic, receivers);
    }
    for (const receiver of receivers) {
      try {
        receiver.onMessage(topic, payload, packet);
      } catch (err) {
        this.log.error(new LogMessage('RECEIVER_FAILED', { topic, reason: (err as Error).message }));
      }
    }
  }

  private onSystemMessage(topic: string, payload: Buffer): void {
    const kind = topic === TOKEN_TOPICS.expireNotice ? 'token-expiring' : topic === TOKEN_TOPICS.invalidNotice ? 'token-invalid' : undefined;
    if (!kind) {
      this.log.debug(new LogMessage('SYSTEM_MESSAGE', { topic }));
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      body = payload.toString('utf8');
    }
    this.log.warn(new LogMessage(kind === 'token-expiring' ? 'TOKEN_EXPIRING' : 'TOKEN_INVALID', { target: this.profile.label }));
    this.setStatus({ state: kind === 'token-expiring' ? 'connected' : 'refused', reason: kind });
    for (const user of [...this.users]) user.onNotice?.({ kind, target: this.profile.label, topic, payload: body });
  }

  /**
   * ApsaraMQ token mode: gives the server a new token on the live connection (`$SYS/uploadToken`, done at its PUBACK)
   * and signs later logins with it.
   */
  uploadToken(token: unknown, type: unknown, callback: PublishCallback): void {
    if (this.profile.mode !== 'mq' || !this.profile.replaceToken) {
      callback(new AliyunIotError('TOKEN_MODE_ONLY'));
      return;
    }
    if (typeof token !== 'string' || token === '' || token.includes('|')) {
      callback(new AliyunIotError('TOKEN_INVALID_INPUT'));
      return;
    }
    const tokenType = type === undefined || type === '' ? 'RW' : type;
    if (tokenType !== 'R' && tokenType !== 'W' && tokenType !== 'RW') {
      callback(new AliyunIotError('TOKEN_TYPE_INVALID', { value: String(tokenType) }));
      return;
    }
    const replace = this.profile.replaceToken;
    const message: QueuedPublish = {
      topic: TOKEN_TOPICS.upload, payload: JSON.stringify({ token, type: tokenType }), qos: 1, retain: false,
      callback: (error) => {
        if (!error) {
          replace(token);
          if (this.current.reason === 'token-expiring' || this.current.reason === 'token-invalid') {
            this.setStatus({ state: 'connected', reason: 'connected' });
          }
        }
        callback(error);
      },
    };
    if (this.connected) this.send(message);
    else {
      // Not connected: the next login signs with the new token itself, now rather than after a back-off.
      replace(token);
      callback();
      if (!this.halted) this.connect();
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Publishing

  /**
   * Validates and publishes. The callback runs once: when the packet is written (QoS 0) or acknowledged (QoS 1),
   * or with the error that stopped it. While offline, messages wait in a bounded queue, in order.
   */
  publish(topicTemplate: unknown, value: unknown, options: PublishOptions, callback: PublishCallback): void {
    let message: QueuedPublish;
    try {
      const topic = validatePublishTopic(typeof topicTemplate === 'string' ? this.expandTopic(topicTemplate) : topicTemplate, this.profile.limits);
      const qos = parseQos(options.qos);
      const payload = encodePayload(value);
      const bytes = exceedsBytes(payload, this.profile.limits.maxPayloadBytes);
      if (bytes !== undefined) {
        throw new AliyunIotError('PAYLOAD_TOO_LARGE', { bytes, max: this.profile.limits.maxPayloadBytes });
      }
      message = { topic, payload, qos, retain: options.retain === true, callback };
    } catch (err) {
      callback(err as Error);
      return;
    }
    if (this.closed) {
      callback(new AliyunIotError('CONNECTION_CLOSED'));
    } else if (this.connected && this.queue.length === 0) {
      this.send(message);
    } else if (this.queue.length >= this.profile.queueSize) {
      callback(new AliyunIotError('QUEUE_FULL', { size: this.profile.queueSize }));
    } else {
      this.queue.push(message);
      const limitMs = options.queueTimeoutMs ?? this.profile.queueTimeoutMs;
      if (limitMs > 0) message.expiry = setTimeout(() => this.expire(message, limitMs), limitMs);
    }
  }

  private send(message: QueuedPublish): void {
    const client = this.client as MqttClient;
    const { callback } = message;
    this.inFlight.add(callback);
    this.corkUntilNextTurn(client);
    client.publish(message.topic, message.payload, { qos: message.qos, retain: message.retain }, (err) => {
      if (!this.inFlight.delete(callback)) return;
      callback(err ? new AliyunIotError('PUBLISH_FAILED', { reason: err.message }) : undefined);
    });
  }

  /**
   * Holds the socket's writes until the end of this event-loop turn, so that the packets of a burst (publishes and the
   * PUBACKs of what arrived in the same turn) leave in one write rather than one each.
   */
  private corkUntilNextTurn(client: MqttClient): void {
    const stream = client.stream as Writable | undefined;
    if (!stream || this.corked === stream || typeof stream.cork !== 'function') return;
    stream.cork();
    this.corked = stream;
    setImmediate(() => {
      if (this.corked === stream) this.corked = undefined;
      stream.uncork();
    });
  }

  private expire(message: QueuedPublish, limitMs: number): void {
    const index = this.queue.indexOf(message);
    if (index < 0) return;
    this.queue.splice(index, 1);
    message.callback(new AliyunIotError('QUEUE_EXPIRED', { seconds: limitMs / 1000 }));
  }

  private flushQueue(): void {
    while (this.queue.length > 0 && this.connected) {
      const message = this.queue.shift() as QueuedPublish;
      clearTimeout(message.expiry);
      this.send(message);
    }
  }

  /** Publishes written but not acknowledged when the client was ended: their fate is unknown, so they fail. */
  private failInFlight(code: string): void {
    const pending = [...this.inFlight];
    this.inFlight.clear();
    for (const callback of pending) callback(new AliyunIotError(code));
  }

  // -------------------------------------------------------------------------------------------------------------
  // Connecting, reconnecting, status

  /** The `connect` action: resume after a `disconnect` action, or retry at once while waiting to reconnect. */
  connect(): void {
    if (this.closed) return;
    this.halted = undefined;
    if (this.current.state === 'connected' || this.current.state === 'connecting') return;
    clearTimeout(this.reconnectTimer);
    this.start();
  }

  /** The `disconnect` action: a graceful end; publishes queue up until `connect()`. */
  disconnect(callback: () => void = () => undefined): void {
    if (this.closed) {
      callback();
      return;
    }
    this.halted = 'action';
    this.stopClient(() => {
      this.failInFlight('DISCONNECTED');
      this.setStatus({ state: 'disconnected', reason: 'disconnected' });
      callback();
    });
  }

  /** Ends for good within closeTimeoutMs; queued and unacknowledged publishes fail with CONNECTION_CLOSED. */
  close(callback: () => void = () => undefined): void {
    if (this.closed) {
      callback();
      return;
    }
    this.closed = true;
    for (const entry of this.filters.values()) clearTimeout(entry.unsubscribeTimer);
    this.stopClient(() => {
      for (const message of this.queue.splice(0)) {
        clearTimeout(message.expiry);
        message.callback(new AliyunIotError('CONNECTION_CLOSED'));
      }
      this.failInFlight('CONNECTION_CLOSED');
      this.setStatus({ state: 'closed', reason: 'closed' });
      this.users.clear();
      this.filters.clear();
      this.receivers.clear();
      this.index.clear();
      this.dispatchCache.clear();
      callback();
    });
  }

  private start(): void {
    const login = this.profile.sign();
    const client = this.client;
    this.refusalCode = undefined;
    this.tlsFailure = undefined;
    if (this.current.state !== 'refused' && this.current.state !== 'kicked') {
      this.setStatus({ state: 'connecting', reason: 'connecting' });
    }
    if (client) {
      Object.assign(client.options, login);
      // After end() the stores are closed and mqtt.js needs new ones; otherwise keep the unacknowledged QoS 1
      // packets so that they are sent again on the new connection.
      if (client.disconnected || client.disconnecting) client.reconnect();
      else client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
      return;
    }
    const { endpoint } = this.profile;
    const options: IClientOptions = {
      protocol: endpoint.protocol,
      host: endpoint.host,
      port: endpoint.port,
      path: endpoint.path,
      ...login,
      keepalive: this.profile.keepalive,
      clean: this.profile.cleanSession,
      protocolVersion: 4,
      reconnectPeriod: MQTT_JS_RECONNECT_PERIOD,
      connectTimeout: this.policy.connectTimeoutMs,
      resubscribe: false,
      queueQoSZero: false,
      manualConnect: true,
      rejectUnauthorized: true,
      log: MQTT_JS_LOG,
    };
    // Extra CAs are trusted besides Node's own roots, not instead of them.
    if (this.profile.ca) options.ca = [...rootCertificates, this.profile.ca];
    const created = mqtt.connect(options);
    this.client = created;
    created.on('connect', () => this.onConnect(created));
    created.on('message', (topic, payload, packet) => {
      if (topic.startsWith('$SYS/')) this.onSystemMessage(topic, payload);
      else this.dispatch(topic, payload, packet);
    });
    created.on('error', (err) => this.onError(err));
    created.on('close', () => this.onClose(created));
    created.connect();
  }

  private onConnect(client: MqttClient): void {
    if (client !== this.client) return;
    // Small packets should leave at once; Nagle's algorithm would hold them for the peer's delayed ACK.
    const socket = client.stream as Partial<Socket> | undefined;
    if (typeof socket?.setNoDelay === 'function') socket.setNoDelay(true);
    this.connectedAt = Date.now();
    this.networkFailures = 0;
    this.refusals = 0;
    this.lastLoggedProblem = '';
    this.log.info(new LogMessage('CONNECTED', { target: this.profile.label }));
    this.setStatus({ state: 'connected', reason: 'connected' });
    // UNSUBSCRIBEs of the previous connection are moot: nothing waits for their UNSUBACK any more.
    this.unsubscribing.clear();
    for (const [filter, entry] of this.filters) {
      entry.sentQos = undefined;
      if (!entry.local && !entry.denied && entry.owners.size > 0) this.sendSubscribe(filter, entry);
    }
    this.flushQueue();
  }

  private onError(err: Error & { code?: unknown }): void {
    if (err.message.startsWith('Connection refused') && typeof err.code === 'number') {
      this.refusalCode = err.code;
      return;
    }
    if (typeof err.code === 'string' && TLS_CERTIFICATE_ERROR.test(err.code)) {
      this.tlsFailure = `${err.code}: ${err.message}`;
      return;
    }
    this.logProblem(new LogMessage('CONNECTION_ERROR', { target: this.profile.label, reason: err.message }), 'debug');
  }

  private onClose(client: MqttClient): void {
    if (client !== this.client || this.closed || this.halted || this.ending) return;
    const wasConnected = this.current.state === 'connected';
    const lived = Date.now() - this.connectedAt;
    let delay: number;
    if (this.refusalCode !== undefined) {
      const returnCode = this.refusalCode;
      const reason = REFUSAL_REASONS[this.profile.mode][returnCode] ?? 'refused';
      delay = backoffDelay(this.refusals++, this.policy.refusedBaseMs, this.policy.refusedMaxMs);
      this.setStatus({ state: 'refused', reason, returnCode });
      this.logProblem(new LogMessage(`REFUSED_${returnCode}_${this.profile.mode.toUpperCase()}`, { target: this.profile.label }), 'error');
    } else if (this.tlsFailure !== undefined) {
      // Retrying at once cannot help: the certificate stays the same until someone changes the config or the server.
      delay = backoffDelay(this.refusals++, this.policy.refusedBaseMs, this.policy.refusedMaxMs);
      this.setStatus({ state: 'refused', reason: 'tls-error' });
      this.logProblem(new LogMessage('TLS_CERTIFICATE', { target: this.profile.label, reason: this.tlsFailure }), 'error');
    } else if (wasConnected) {
      this.shortSessions = lived < this.policy.shortSessionMs ? this.shortSessions + 1 : 0;
      if (this.shortSessions >= this.policy.kickedAfter) {
        delay = backoffDelay(this.shortSessions - this.policy.kickedAfter, this.policy.kickedBaseMs, this.policy.kickedMaxMs);
        this.setStatus({ state: 'kicked', reason: 'kicked' });
        this.logProblem(new LogMessage('KICKED', { target: this.profile.label, count: this.shortSessions }), 'warn');
      } else {
        delay = backoffDelay(0, this.policy.networkBaseMs, this.policy.networkMaxMs);
        this.setStatus({ state: 'disconnected', reason: 'disconnected' });
        this.log.info(new LogMessage('CONNECTION_LOST', { target: this.profile.label }));
      }
    } else {
      delay = backoffDelay(this.networkFailures++, this.policy.networkBaseMs, this.policy.networkMaxMs);
      if (this.current.state !== 'refused' && this.current.state !== 'kicked') {
        this.setStatus({ state: 'disconnected', reason: 'disconnected' });
      }
    }
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.closed && !this.halted) this.start();
    }, delay);
  }


  /** Logs a problem once per streak rather than at every retry. */
  private logProblem(message: LogMessage, level: 'debug' | 'warn' | 'error'): void {
    const text = message.text;
    if (text === this.lastLoggedProblem) return;
    this.lastLoggedProblem = text;
    this.log[level](message);
  }

  private stopClient(done: () => void): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const client = this.client;
    if (!client) {
      done();
      return;
    }
    let finished = false;
    this.ending = true;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      this.ending = false;
      clearTimeout(forceTimer);
      done();
    };
    const forceTimer = setTimeout(() => client.end(true, {}, finish), this.policy.closeTimeoutMs);
    client.end(false, {}, finish);
  }

  private setStatus(status: ConnectionStatus): void {
    this.current = status;
    for (const user of [...this.users]) {
      try {
        user.onStatus(status);
      } catch (err) {
        this.log.error(new LogMessage('STATUS_FAILED', { reason: (err as Error).message }));
      }
    }
  }
}
