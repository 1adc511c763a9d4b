// One device's MQTT connection (IoT Platform or ApsaraMQ), shared by every node of a config node. Longer than the
// other files because it is the one place that drives the mqtt.js client: its life cycle, subscriptions on the wire,
// and the token upload; what leaves waits in the outbox beside it, and the decisions are made in the smaller files.
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import mqtt, { IClientOptions, MqttClient } from 'mqtt';
import { AliyunIotError, LogMessage } from '../errors';
import { endpointUrl, isWebSocketProtocol } from '../protocol/endpoints';
import { TOKEN_TOPICS } from '../protocol/mq-login';
import { encodePayload, exceedsBytes } from '../protocol/payload';
import { Qos, expandPlaceholders, isPointToPointFilter, parseQos, validateFilter, validatePublishTopic } from '../protocol/topics';
import { readTokenNotice, tokenUploadBody } from './apsaramq-token';
import type { QueuedPublish } from './offline-queue';
import { HistoryListener, Outbox } from './outbox';
import {
  NO_FAILURES,
  ProblemLog,
  ReconnectPolicy,
  RetryCounters,
  TLS_CERTIFICATE_ERROR,
  backoffDelay,
  classifyClose,
  reconnectPolicy,
} from './reconnect-policy';
import type { ConnectionProfile } from './settings';
import { StatusBroadcaster } from './status-broadcaster';
import { FilterEntry, SubscriptionTable } from './subscription-table';
import type {
  ConnectionLogger,
  ConnectionStatus,
  ConnectionUser,
  MessageMeta,
  MessageReceiver,
  PublishCallback,
  PublishOptions,
  SharedConnection,
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
  private readonly outbox: Outbox;
  /**
   * Filters with an UNSUBSCRIBE on the wire and no UNSUBACK yet. A new SUBSCRIBE of one waits for the UNSUBACK:
   * a broker may finish the UNSUBSCRIBE after a SUBSCRIBE sent right behind it (aedes does), leaving no subscription.
   */
  private readonly unsubscribing = new Set<string>();
  /** The stream corked until the end of this event-loop turn, if any. */
  private corked?: Writable;
  /**
   * The mqtt.js client of the current run, if any. A run starts when the connection is wanted and no client exists;
   * it reconnects its own client (stores kept) after a lost connection, and ends when the connection is halted or
   * closed. An ended client is never used again, and a new run starts only once the previous client's socket is closed:
   * one MQTT session per connection, and no CONNACK ever reaches a client whose stores are closed.
   */
  private run?: ClientRun;
  private reconnectTimer?: NodeJS.Timeout;
  private closed = false;
  /**
   * Why the connection is deliberately down: not yet used, a `disconnect` action (until a `connect` action) or the
   * last user removed (until a user registers). No run meanwhile.
   */
  private halted?: 'action' | 'unused' = 'unused';
  private refusalCode?: number;
  /** Why the last TLS handshake failed: the server certificate was not accepted (Node's error code). */
  private tlsFailure?: string;
  private failures: RetryCounters = { ...NO_FAILURES };
  /** A token upload between its PUBLISH and the end of its confirmation window. */
  private pendingUpload?: PendingUpload;
  private readonly problems: ProblemLog;
  /** Filters the broker delivers without a SUBSCRIBE besides ApsaraMQ's point-to-point one (a gateway's auto-subscription). */
  private readonly localFilterRules: Array<(filter: string) => boolean> = [];
  /** Topics besides the device's own it may publish on (a gateway: those of its sub-devices). */
  private readonly publishRules: Array<(topic: string) => boolean> = [];

  /**
   * `queueDirectory`: where a disk queue (`queueStore` disk) keeps its files. Opening it recovers what an earlier run
   * stored; it throws STORE_UNWRITABLE, STORE_DISK_FULL or STORE_IO when it cannot.
   */
  constructor(profile: ConnectionProfile, log: ConnectionLogger, policy: Partial<ReconnectPolicy> = {}, queueDirectory?: string) {
    this.profile = profile;
    this.log = log;
    this.policy = reconnectPolicy(policy);
    this.users = new StatusBroadcaster({ state: 'idle', reason: 'idle' }, log);
    const wire = {
      isLive: () => this.liveClient() !== undefined,
      send: (message: QueuedPublish) => this.send(message),
      onShownChange: () => this.setStatus(this.status),
    };
    this.outbox = new Outbox(profile, wire, log, queueDirectory);
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
    return this.outbox.length;
  }

  /** Whether queued publishes are kept on disk (their callbacks run when stored). */
  get durableQueue(): boolean {
    return this.outbox.durable;
  }

  expandTopic(topic: string): string {
    return expandPlaceholders(topic, this.profile.variables);
  }

  /** A user starts the connection, unless a `disconnect` action holds it down. */
  register(user: ConnectionUser): void {
    if (this.closed) return;
    this.users.add(user);
    if (this.halted === 'unused') {
      this.halted = undefined;
      this.reconcile();
    }
  }

  /** `removed`: the node was deleted (not just redeployed); the connection ends when its last user is removed. */
  deregister(user: ConnectionUser, removed: boolean): void {
    this.users.delete(user);
    if (removed && this.users.size === 0 && !this.closed && !this.halted) {
      this.halted = 'unused';
      this.stopRun(() => {
        if (this.halted === 'unused' && !this.run) this.setStatus({ state: 'idle', reason: 'idle' });
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
    } else if (this.liveClient() && !entry.local && entry.sentQos !== entry.qos) {
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
    const client = this.liveClient();
    if (!client || entry.sentQos === undefined) return;
    this.unsubscribing.add(filter);
    client.unsubscribe(filter, (err) => {
      this.unsubscribing.delete(filter);
      if (err) this.log.debug(new LogMessage('UNSUBSCRIBE_FAILED', { topic: filter, reason: err.message }));
      // Subscribed again meanwhile: its SUBSCRIBE waited for this UNSUBACK.
      const next = this.subscriptions.get(filter);
      if (next && this.liveClient() && !next.local && !next.denied && next.owners.size > 0 && next.sentQos === undefined) {
        this.sendSubscribe(filter, next);
      }
    });
  }

  private isLocalFilter(filter: string): boolean {
    return (
      (this.profile.mode === 'mq' && isPointToPointFilter(filter, this.profile.clientId)) ||
      this.localFilterRules.some((rule) => rule(filter))
    );
  }

  /** From now on, filters `rule` takes get no SUBSCRIBE: the broker delivers them by itself. */
  addLocalFilterRule(rule: (filter: string) => boolean): void {
    this.localFilterRules.push(rule);
  }

  /** A publish on a topic `rule` accepts passes the own-topic check (a gateway publishes for its sub-devices). */
  addPublishRule(rule: (topic: string) => boolean): void {
    this.publishRules.push(rule);
  }

  /** From now on, a queued message for a topic `gate` refuses waits (with all behind it) until flush() is called. */
  addSendGate(gate: (topic: string) => boolean): void {
    this.outbox.addSendGate(gate);
  }

  /** `listener` learns of every publish as it leaves, straight away or from the queue. */
  addSendListener(listener: (message: Readonly<QueuedPublish>) => void): void {
    this.outbox.addSendListener(listener);
  }

  /** Sends what waits, if the connection is up: after a send gate opened. */
  flush(): void {
    this.outbox.flush();
  }

  /** `listener` learns of every history post made of queued property posts; returns what removes it. */
  addHistoryListener(listener: HistoryListener): () => void {
    return this.outbox.addHistoryListener(listener);
  }

  private sendSubscribe(filter: string, entry: FilterEntry): void {
    const client = this.liveClient();
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
    const upload = this.pendingUpload;
    if (notice.kind === 'token-invalid' && upload) {
      // The answer to the upload under way: the service refused the new token and keeps the tokens it had.
      this.log.warn(new LogMessage('TOKEN_UPLOAD_REFUSED', { target }));
      this.finishUpload(upload, new AliyunIotError('TOKEN_UPLOAD_REFUSED'));
      return;
    }
    this.log.warn(new LogMessage(notice.kind === 'token-expiring' ? 'TOKEN_EXPIRING' : 'TOKEN_INVALID', { target }));
    this.setStatus({ state: notice.kind === 'token-expiring' ? 'connected' : 'refused', reason: notice.kind });
    this.users.notice({ kind: notice.kind, target, topic, payload: notice.payload });
  }

  /**
   * Gives the server a new token on the live connection (`$SYS/uploadToken`) and signs later logins with it once it
   * is known good. The service has no positive answer to an upload: its PUBACK only says that the publish arrived, and
   * a token it refuses (unknown, expired, revoked, of another AccessKey) is answered with `$SYS/tokenInvalidNotice` on
   * the same connection, which stays up on the tokens it had. So the new token replaces the working one, and the
   * callback runs, only when no such notice came between the upload and `tokenConfirmMs` after its PUBACK; a notice
   * in that window fails the upload with TOKEN_UPLOAD_REFUSED and the working token stays.
   */
  uploadToken(token: unknown, type: unknown, callback: PublishCallback): void {
    const replace = this.profile.mode === 'mq' ? this.profile.replaceToken : undefined;
    let body: string;
    try {
      if (!replace) throw new AliyunIotError('TOKEN_MODE_ONLY');
      if (this.closed) throw new AliyunIotError('CONNECTION_CLOSED');
      if (this.pendingUpload) throw new AliyunIotError('TOKEN_UPLOAD_BUSY');
      body = tokenUploadBody(token, type);
    } catch (err) {
      callback(err as Error);
      return;
    }
    const upload: PendingUpload = { token: token as string, body, replace, callback };
    this.pendingUpload = upload;
    if (this.liveClient()) {
      this.uploadOnWire(upload);
    } else if (this.run?.stop) {
      this.finishUpload(upload, new AliyunIotError('DISCONNECTED'));
    } else {
      // Not connected: the next login signs with the new token, and its CONNACK says whether it is good; a refused
      // login goes back to the working token. Now rather than after a back-off, unless a disconnect holds the connection.
      upload.previous = replace(upload.token);
      if (!this.halted) this.connect();
    }
  }

  private uploadOnWire(upload: PendingUpload): void {
    this.send({
      topic: TOKEN_TOPICS.upload,
      payload: upload.body,
      qos: 1,
      retain: false,
      callback: (error) => {
        if (upload.done) return;
        if (error) this.finishUpload(upload, error);
        else upload.confirmTimer = setTimeout(() => this.finishUpload(upload), this.policy.tokenConfirmMs);
      },
    });
  }

  private finishUpload(upload: PendingUpload, error?: Error): void {
    if (upload.done) return;
    upload.done = true;
    clearTimeout(upload.confirmTimer);
    if (this.pendingUpload === upload) this.pendingUpload = undefined;
    if (error && upload.previous !== undefined) upload.replace(upload.previous);
    if (!error) {
      upload.replace(upload.token);
      if (this.status.reason === 'token-expiring' || this.status.reason === 'token-invalid') {
        this.setStatus({ state: 'connected', reason: 'connected' });
      }
    }
    upload.callback(error);
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
      const topic = validatePublishTopic(
        typeof topicTemplate === 'string' ? this.expandTopic(topicTemplate) : topicTemplate,
        this.profile.limits,
      );
      if (!this.publishRules.some((rule) => rule(topic))) this.profile.checkPublishTopic?.(topic);
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
      return;
    }
    this.outbox.submit(message, options);
  }

  /** Publishes on the live client; the callback runs once, at the PUBACK, the write, or when the run ends. */
  private send(message: QueuedPublish): void {
    const run = this.run as ClientRun;
    // One entry per send: a caller may pass the same function for many publishes.
    const settle: PublishCallback = (error) => message.callback(error);
    run.inFlight.add(settle);
    this.corkUntilNextTurn(run.client);
    run.client.publish(message.topic, message.payload, { qos: message.qos, retain: message.retain }, (err) => {
      if (!run.inFlight.delete(settle)) return;
      settle(err ? new AliyunIotError('PUBLISH_FAILED', { reason: err.message }) : undefined);
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

  /** The current run's client while it has a session (CONNACK received, not ending); publishes and SUBSCRIBEs go there. */
  private liveClient(): MqttClient | undefined {
    const run = this.run;
    return run && run.session && !run.stop && run.client.connected ? run.client : undefined;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Connecting, reconnecting, status

  /**
   * The `connect` action: resume after a `disconnect` action (at once, or as soon as a `disconnect` still under way has
   * closed the client), or retry at once while waiting to reconnect.
   */
  connect(): void {
    if (this.closed) return;
    this.halted = undefined;
    const run = this.run;
    if (run && !run.stop && this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
      this.reconnectRun(run);
    }
    this.reconcile();
  }

  /** The `disconnect` action: a graceful end; publishes queue up until `connect()`. The callback runs once it ended. */
  disconnect(callback: () => void = () => undefined): void {
    if (this.closed) {
      callback();
      return;
    }
    this.halted = 'action';
    this.stopRun(() => {
      if (this.halted === 'action' && !this.closed && !this.run) this.setStatus({ state: 'disconnected', reason: 'disconnected' });
      callback();
    });
  }

  /** Ends for good within closeTimeoutMs; queued and unacknowledged publishes fail with CONNECTION_CLOSED. */
  close(callback: () => void = () => undefined): void {
    if (this.closed) {
      this.stopRun(callback);
      return;
    }
    this.closed = true;
    for (const [, entry] of this.subscriptions.entries()) clearTimeout(entry.unsubscribeTimer);
    this.outbox.stop();
    if (this.pendingUpload) this.finishUpload(this.pendingUpload, new AliyunIotError('CONNECTION_CLOSED'));
    this.stopRun(() => {
      this.outbox.failQueued();
      this.setStatus({ state: 'closed', reason: 'closed' });
      this.users.clear();
      this.subscriptions.clear();
      this.outbox.closeStore(callback);
    });
  }

  /** Starts a run when one is wanted and none exists (a run being stopped calls this again once its client closed). */
  private reconcile(): void {
    if (this.closed || this.halted || this.run) return;
    this.refusalCode = undefined;
    this.tlsFailure = undefined;
    if (this.status.state !== 'refused' && this.status.state !== 'kicked') {
      this.setStatus({ state: 'connecting', reason: 'connecting' });
    }
    let client: MqttClient;
    const trial = this.tokenTrial();
    try {
      client = mqtt.connect(this.clientOptions(this.profile.sign()));
    } catch (err) {
      this.failToStart(err as Error);
      return;
    }
    const run: ClientRun = { client, inFlight: new Set(), session: false, connectedAt: 0, trial };
    this.run = run;
    client.on('connect', () => this.onConnect(run));
    client.on('message', (topic, payload, packet) => {
      if (this.run === run) this.onMessage(topic, payload, packet);
    });
    client.on('error', (err) => {
      if (this.run === run) this.onError(err);
    });
    client.on('close', () => this.onClose(run));
    try {
      client.connect();
    } catch (err) {
      // A stream that cannot even be built (a WebSocket URL the ws library refuses): nothing is open yet.
      this.run = undefined;
      this.failToStart(err as Error);
    }
  }

  /** The upload whose new token the next login signs with, if any. */
  private tokenTrial(): PendingUpload | undefined {
    return this.pendingUpload?.previous !== undefined ? this.pendingUpload : undefined;
  }

  /** The client could not be made from this configuration: say so and try again later, never throw at the caller. */
  private failToStart(err: Error): void {
    this.problems.write('error', new LogMessage('CLIENT_FAILED', { target: this.profile.label, reason: err.message }));
    this.setStatus({ state: 'refused', reason: 'config-error' });
    const delayMs = backoffDelay(this.failures.refusals++, this.policy.refusedBaseMs, this.policy.refusedMaxMs);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.reconcile();
    }, delayMs);
  }

  /** The next attempt of a run whose connection was lost: a fresh login, the same client and its unacknowledged packets. */
  private reconnectRun(run: ClientRun): void {
    if (this.run !== run || run.stop || this.closed || this.halted) return;
    this.refusalCode = undefined;
    this.tlsFailure = undefined;
    const { client } = run;
    run.trial = this.tokenTrial();
    Object.assign(client.options, this.profile.sign());
    client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
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
    // mqtt.js builds the WebSocket URL from the bare host: an IPv6 address needs its brackets there.
    if (isWebSocketProtocol(endpoint.protocol)) options.transformWsUrl = () => endpointUrl(endpoint);
    // Extra CAs are trusted besides Node's own roots, not instead of them.
    if (this.profile.ca) options.ca = [...rootCertificates, this.profile.ca];
    return options;
  }

  private onConnect(run: ClientRun): void {
    if (this.run !== run || run.stop) return;
    const { client } = run;
    // Small packets should leave at once; Nagle's algorithm would hold them for the peer's delayed ACK.
    const socket = client.stream as Partial<Socket> | undefined;
    if (typeof socket?.setNoDelay === 'function') socket.setNoDelay(true);
    run.session = true;
    run.connectedAt = Date.now();
    const upload = this.pendingUpload;
    if (upload && upload.previous !== undefined) {
      if (run.trial === upload) {
        // A login signed with the new token proves it good.
        this.finishUpload(upload);
      } else {
        // This login was signed before the new token came: the working token logged in; upload the new one.
        upload.replace(upload.previous);
        upload.previous = undefined;
        this.uploadOnWire(upload);
      }
    }
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
    this.outbox.flush();
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

  private onClose(run: ClientRun): void {
    run.session = false;
    if (this.run !== run || run.stop || this.closed || this.halted) return;
    const upload = this.pendingUpload;
    if (upload && upload.previous !== undefined && run.trial === upload && this.refusalCode !== undefined) {
      // The login with the new token was refused: back to the working one.
      this.finishUpload(upload, new AliyunIotError('TOKEN_UPLOAD_REFUSED'));
    } else if (upload && upload.previous === undefined) {
      // An upload on the wire without its answer cannot be confirmed any more; the working token stays.
      this.finishUpload(upload, new AliyunIotError('DISCONNECTED'));
    }
    const decision = classifyClose(
      {
        mode: this.profile.mode,
        target: this.profile.label,
        returnCode: this.refusalCode,
        tlsFailure: this.tlsFailure,
        current: this.status,
        livedMs: Date.now() - run.connectedAt,
        detectKick: true,
      },
      this.failures,
      this.policy,
    );
    this.failures = decision.counters;
    if (decision.status !== this.status) this.setStatus(decision.status);
    this.problems.writeDecision(decision);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.reconnectRun(run);
    }, decision.delayMs);
  }

  /**
   * Ends the current run: gracefully (DISCONNECT, then the socket ends; at most closeTimeoutMs for PUBACKs) when it has
   * a session, at once otherwise, so that no CONNACK can arrive at an ended client. `done` runs once the socket is
   * closed and the run's unacknowledged publishes failed; then a run starts again if one is wanted by now.
   */
  private stopRun(done: () => void): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const run = this.run;
    if (!run) {
      done();
      return;
    }
    if (run.stop) {
      run.stop.push(done);
      return;
    }
    run.stop = [done];
    const { client } = run;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(forceTimer);
      if (this.run === run) this.run = undefined;
      if (this.pendingUpload) this.finishUpload(this.pendingUpload, new AliyunIotError(this.closed ? 'CONNECTION_CLOSED' : 'DISCONNECTED'));
      const pending = [...run.inFlight];
      run.inFlight.clear();
      for (const callback of pending) callback(new AliyunIotError(this.closed ? 'CONNECTION_CLOSED' : 'DISCONNECTED'));
      for (const waiter of run.stop ?? []) waiter();
      this.reconcile();
    };
    const destroy = (): void => {
      // end(true) destroys the socket and cancels mqtt.js's own reconnect; during a graceful end only the socket is left.
      if (!client.disconnecting) client.end(true, {}, () => undefined);
      else (client.stream as { destroy?(): void } | undefined)?.destroy?.();
      finish();
    };
    const forceTimer = setTimeout(destroy, this.policy.closeTimeoutMs);
    if (run.session && client.connected) client.end(false, {}, finish);
    else destroy();
  }

  private setStatus(status: ConnectionStatus): void {
    const { queued: _previous, storeProblem: _problem, ...rest } = status;
    const { reportedQueued, storeProblem } = this.outbox;
    const shown: ConnectionStatus = reportedQueued > 0 && status.state !== 'closed' ? { ...rest, queued: reportedQueued } : rest;
    if (storeProblem && status.state !== 'closed') shown.storeProblem = storeProblem;
    this.users.set(shown);
  }
}

export type { HistoryListener } from './outbox';

interface ClientRun {
  client: MqttClient;
  /** Publishes written on this client and not yet answered. */
  inFlight: Set<PublishCallback>;
  /** The token upload whose new token signed the latest login, if any. */
  trial?: PendingUpload;
  /** A CONNACK accepted the login and the connection has not closed since. */
  session: boolean;
  connectedAt: number;
  /** Set once the run is being ended: who waits for the end. */
  stop?: Array<() => void>;
}

interface PendingUpload {
  token: string;
  /** The `$SYS/uploadToken` payload. */
  body: string;
  /** Set when the new token is tried by a login rather than uploaded: the working token to go back to. */
  previous?: string;
  replace(token: string): string;
  callback: PublishCallback;
  confirmTimer?: NodeJS.Timeout;
  done?: boolean;
}
