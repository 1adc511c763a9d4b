// One device's MQTT connection (IoT Platform or ApsaraMQ), shared by every node of a config node. Longer than the
// other files because it is the one place that drives the mqtt.js client: its life cycle, subscriptions on the wire,
// publishing, and the token upload; the decisions it takes are made in the smaller files beside it.
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import mqtt, { IClientOptions, MqttClient } from 'mqtt';
import { AliyunIotError, LogMessage } from '../errors';
import { TOKEN_TOPICS } from '../protocol/mq-login';
import { encodePayload, exceedsBytes } from '../protocol/payload';
import { Qos, expandPlaceholders, isPointToPointFilter, parseQos, validateFilter, validatePublishTopic } from '../protocol/topics';
import { readTokenNotice, tokenUploadBody } from './apsaramq-token';
import { OfflineQueue, QueuedPublish } from './offline-queue';
import { NO_FAILURES, ProblemLog, ReconnectPolicy, RetryCounters, TLS_CERTIFICATE_ERROR, classifyClose, reconnectPolicy } from './reconnect-policy';
import type { ConnectionProfile } from './settings';
import { StatusBroadcaster } from './status-broadcaster';
import { FilterEntry, SubscriptionTable } from './subscription-table';
import type {
  ConnectionLogger, ConnectionStatus, ConnectionUser, MessageMeta, MessageReceiver, PublishCallback, PublishOptions, SharedConnection,
} from './types';

/** mqtt.js traces every packet through its `log` option; unless DEBUG asks for that, a no-op spares the hot path. */
const MQTT_JS_LOG = process.env.DEBUG ? undefined : (): void => undefined;

/** mqtt.js never reconnects by itself: this period only keeps it from flushing in-flight QoS 1 callbacks on close. */
const MQTT_JS_RECONNECT_PERIOD = 0x7fffffff;

/**
 * Counted subscriptions, a single message listener that dispatches through a topic index, a bounded offline queue,
 * and reconnects with freshly signed credentials.
 */
export class DeviceConnection implements SharedConnection {
  readonly profile: ConnectionProfile;
  /** The config node's log: for what concerns the connection as a whole. */
  readonly log: ConnectionLogger;
  private readonly policy: ReconnectPolicy;
  private readonly users: StatusBroadcaster;
  private readonly subscriptions = new SubscriptionTable();
  private readonly queue: OfflineQueue;
  /**
   * Filters with an UNSUBSCRIBE on the wire and no UNSUBACK yet. A new SUBSCRIBE of one waits for the UNSUBACK:
   * a broker may finish the UNSUBSCRIBE after a SUBSCRIBE sent right behind it (aedes does), leaving no subscription.
   */
  private readonly unsubscribing = new Set<string>();
  private readonly inFlight = new Set<PublishCallback>();
  /** The stream corked until the end of this event-loop turn, if any. */
  private corked?: Writable;
  private client?: MqttClient;
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
  private failures: RetryCounters = { ...NO_FAILURES };
  private readonly problems: ProblemLog;

  constructor(profile: ConnectionProfile, log: ConnectionLogger, policy: Partial<ReconnectPolicy> = {}) {
    this.profile = profile;
    this.log = log;
    this.policy = reconnectPolicy(policy);
    this.users = new StatusBroadcaster({ state: 'idle', reason: 'idle' }, log);
    this.queue = new OfflineQueue(profile.queueSize);
    this.problems = new ProblemLog(log);
  }

  get mode(): 'iot' | 'mq' {
    return this.profile.mode;
  }

  get status(): ConnectionStatus {
    return this.users.status;
  }

  get connected(): boolean {
    return this.status.state === 'connected';
  }

  /** Filters with a SUBSCRIBE on the wire or waiting for one (not local-only ones): for tests and diagnostics. */
  get brokerSubscriptions(): string[] {
    return this.subscriptions.brokerFilters();
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
    const added = new Set(filters.filter((filter) => !this.subscriptions.has(filter) && !this.isLocalFilter(filter)));
    const max = this.profile.limits.maxSubscriptions;
    if (added.size > 0 && this.brokerSubscriptions.length + added.size > max) {
      throw new AliyunIotError('SUBSCRIBE_LIMIT', { topic: [...added][0], max });
    }
    return filters;
  }

  /** Expands and validates `filter`, records `receiver` as an owner and subscribes on the wire when needed. */
  subscribe(receiver: MessageReceiver, filterTemplate: string, qosValue: unknown = 0): string {
    const [filter] = this.checkSubscriptions([{ topic: filterTemplate, qos: qosValue }]);
    const entry = this.subscriptions.add(receiver, filter, parseQos(qosValue), this.isLocalFilter(filter));
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
    const entry = this.subscriptions.remove(receiver, filter);
    if (!entry || entry.owners.size > 0) return;
    if (entry.local || entry.denied || this.closed || (!removed && !this.profile.cleanSession)) {
      this.subscriptions.drop(filter, entry);
    } else if (!removed) {
      entry.unsubscribeTimer = setTimeout(() => this.dropFilter(filter, entry), this.policy.unsubscribeGraceMs);
      entry.unsubscribeTimer.unref();
    } else {
      this.dropFilter(filter, entry);
    }
  }

  unsubscribeAll(receiver: MessageReceiver, removed = true): void {
    for (const filter of this.subscriptions.filtersOf(receiver)) this.unsubscribe(receiver, filter, removed);
  }

  subscriptionsOf(receiver: MessageReceiver): Array<{ topic: string; qos: Qos }> {
    return this.subscriptions.subscriptionsOf(receiver);
  }

  private dropFilter(filter: string, entry: FilterEntry): void {
    if (entry.owners.size > 0 || !this.subscriptions.drop(filter, entry)) return;
    if (!this.client || !this.connected || entry.sentQos === undefined) return;
    this.unsubscribing.add(filter);
    this.client.unsubscribe(filter, (err) => {
      this.unsubscribing.delete(filter);
      if (err) this.log.debug(new LogMessage('UNSUBSCRIBE_FAILED', { topic: filter, reason: err.message }));
      // Subscribed again meanwhile: its SUBSCRIBE waited for this UNSUBACK.
      const next = this.subscriptions.get(filter);
      if (next && this.connected && !next.local && !next.denied && next.owners.size > 0 && next.sentQos === undefined) {
        this.sendSubscribe(filter, next);
      }
    });
  }

  private isLocalFilter(filter: string): boolean {
    return this.profile.mode === 'mq' && isPointToPointFilter(filter, this.profile.clientId);
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

  private onMessage(topic: string, payload: Buffer, packet: MessageMeta): void {
    if (topic.startsWith('$SYS/')) {
      this.onSystemMessage(topic, payload);
      return;
    }
    this.subscriptions.dispatch(topic, payload, packet, (err) => {
      this.log.error(new LogMessage('RECEIVER_FAILED', { topic, reason: err.message }));
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // ApsaraMQ token mode

  private onSystemMessage(topic: string, payload: Buffer): void {
    const notice = readTokenNotice(topic, payload);
    if (!notice) {
      this.log.debug(new LogMessage('SYSTEM_MESSAGE', { topic }));
      return;
    }
    const target = this.profile.label;
    this.log.warn(new LogMessage(notice.kind === 'token-expiring' ? 'TOKEN_EXPIRING' : 'TOKEN_INVALID', { target }));
    this.setStatus({ state: notice.kind === 'token-expiring' ? 'connected' : 'refused', reason: notice.kind });
    this.users.notice({ kind: notice.kind, target, topic, payload: notice.payload });
  }

  /** Gives the server a new token on the live connection (`$SYS/uploadToken`, done at its PUBACK) and signs later logins with it. */
  uploadToken(token: unknown, type: unknown, callback: PublishCallback): void {
    const replace = this.profile.mode === 'mq' ? this.profile.replaceToken : undefined;
    let body: string;
    try {
      if (!replace) throw new AliyunIotError('TOKEN_MODE_ONLY');
      body = tokenUploadBody(token, type);
    } catch (err) {
      callback(err as Error);
      return;
    }
    const newToken = token as string;
    if (!this.connected) {
      // Not connected: the next login signs with the new token itself, now rather than after a back-off.
      replace(newToken);
      callback();
      if (!this.halted) this.connect();
      return;
    }
    this.send({
      topic: TOKEN_TOPICS.upload, payload: body, qos: 1, retain: false,
      callback: (error) => {
        if (!error) {
          replace(newToken);
          if (this.status.reason === 'token-expiring' || this.status.reason === 'token-invalid') {
            this.setStatus({ state: 'connected', reason: 'connected' });
          }
        }
        callback(error);
      },
    });
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
      this.profile.checkPublishTopic?.(topic);
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
    if (this.closed) callback(new AliyunIotError('CONNECTION_CLOSED'));
    else if (this.connected && this.queue.length === 0) this.send(message);
    else this.queue.push(message, options.queueTimeoutMs ?? this.profile.queueTimeoutMs);
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

  private flushQueue(): void {
    while (this.queue.length > 0 && this.connected) this.send(this.queue.shift() as QueuedPublish);
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
    if (this.status.state === 'connected' || this.status.state === 'connecting') return;
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
    for (const [, entry] of this.subscriptions.entries()) clearTimeout(entry.unsubscribeTimer);
    this.stopClient(() => {
      this.queue.failAll('CONNECTION_CLOSED');
      this.failInFlight('CONNECTION_CLOSED');
      this.setStatus({ state: 'closed', reason: 'closed' });
      this.users.clear();
      this.subscriptions.clear();
      callback();
    });
  }

  private start(): void {
    const login = this.profile.sign();
    const client = this.client;
    this.refusalCode = undefined;
    this.tlsFailure = undefined;
    if (this.status.state !== 'refused' && this.status.state !== 'kicked') {
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
    const created = mqtt.connect(this.clientOptions(login));
    this.client = created;
    created.on('connect', () => this.onConnect(created));
    created.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet));
    created.on('error', (err) => this.onError(err));
    created.on('close', () => this.onClose(created));
    created.connect();
  }

  private clientOptions(login: { clientId: string; username: string; password: string }): IClientOptions {
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
    return options;
  }

  private onConnect(client: MqttClient): void {
    if (client !== this.client) return;
    // Small packets should leave at once; Nagle's algorithm would hold them for the peer's delayed ACK.
    const socket = client.stream as Partial<Socket> | undefined;
    if (typeof socket?.setNoDelay === 'function') socket.setNoDelay(true);
    this.connectedAt = Date.now();
    this.failures = { ...this.failures, networkFailures: 0, refusals: 0 };
    this.problems.reset();
    this.log.info(new LogMessage('CONNECTED', { target: this.profile.label }));
    this.setStatus({ state: 'connected', reason: 'connected' });
    // UNSUBSCRIBEs of the previous connection are moot: nothing waits for their UNSUBACK any more.
    this.unsubscribing.clear();
    for (const [filter, entry] of this.subscriptions.entries()) {
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
    this.problems.write('debug', new LogMessage('CONNECTION_ERROR', { target: this.profile.label, reason: err.message }));
  }

  private onClose(client: MqttClient): void {
    if (client !== this.client || this.closed || this.halted || this.ending) return;
    const decision = classifyClose({
      mode: this.profile.mode,
      target: this.profile.label,
      returnCode: this.refusalCode,
      tlsFailure: this.tlsFailure,
      current: this.status,
      livedMs: Date.now() - this.connectedAt,
      detectKick: true,
    }, this.failures, this.policy);
    this.failures = decision.counters;
    if (decision.status !== this.status) this.setStatus(decision.status);
    this.problems.writeDecision(decision);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.closed && !this.halted) this.start();
    }, decision.delayMs);
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
    this.users.set(status);
  }
}
