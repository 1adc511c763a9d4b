// A cloud application's connection: every device message of a consumer group by server-side subscription (AMQP 1.0),
// and the OpenAPI to publish to any device topic, set properties, invoke services and make RRPC calls.
import { rootCertificates } from 'node:tls';
import rhea, { Connection as AmqpConnection, EventContext } from 'rhea';
import { AliyunIotError, LogMessage } from '../errors';
import { bodyBytes, encodePayload, exceedsBytes } from '../protocol/payload';
import { Qos, deviceOfTopic, expandPlaceholders, parseQos, productOfTopic, validateFilter, validatePublishTopic } from '../protocol/topics';
import { callApi } from './api-call';
import { InvokeRequest, InvokeResult, invokeDevice } from './device-invocation';
import type { ApiResponse } from './openapi-client';
import {
  NO_FAILURES,
  ProblemLog,
  ReconnectPolicy,
  RetryCounters,
  TLS_CERTIFICATE_ERROR,
  classifyClose,
  reconnectPolicy,
} from './reconnect-policy';
import type { CloudProfile } from './settings';
import { StatusBroadcaster } from './status-broadcaster';
import { DISPATCH_CACHE_SIZE, SubscriptionTable } from './subscription-table';
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

const API_READY: ConnectionStatus = { state: 'idle', reason: 'api-ready' };

export class CloudApplicationConnection implements SharedConnection {
  readonly mode = 'cloud' as const;
  readonly profile: CloudProfile;
  readonly log: ConnectionLogger;
  private readonly policy: ReconnectPolicy;
  private readonly users: StatusBroadcaster;
  /** Filters are local: the consumer group delivers every device message, and the index picks the listeners. */
  private readonly subscriptions = new SubscriptionTable();
  /** The device of each recently seen topic, so that a busy topic is not split per message. */
  private readonly devicesOfTopics = new Map<string, { productKey?: string; deviceName?: string }>();
  private amqp?: AmqpConnection;
  private reconnectTimer?: NodeJS.Timeout;
  private closed = false;
  private halted = false;
  private failures: RetryCounters = { ...NO_FAILURES };
  private refused = false;
  private readonly problems: ProblemLog;

  constructor(profile: CloudProfile, log: ConnectionLogger, policy: Partial<ReconnectPolicy> = {}) {
    this.profile = profile;
    this.log = log;
    this.policy = reconnectPolicy(policy);
    this.users = new StatusBroadcaster(API_READY, log);
    this.problems = new ProblemLog(log);
  }

  get status(): ConnectionStatus {
    return this.users.status;
  }

  register(user: ConnectionUser): void {
    if (this.closed) return;
    this.users.add(user);
  }

  deregister(user: ConnectionUser): void {
    this.users.delete(user);
  }

  expandTopic(topic: string): string {
    return expandPlaceholders(topic, this.profile.variables);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Hearing devices: a local topic index over the consumer group's messages

  checkSubscriptions(requests: Array<{ topic: string; qos?: unknown }>): string[] {
    if (this.closed) throw new AliyunIotError('CONNECTION_CLOSED');
    if (!this.profile.consumerGroupId) throw new AliyunIotError('CONSUMER_GROUP_MISSING');
    return requests.map((request) => {
      parseQos(request.qos);
      return validateFilter(this.expandTopic(request.topic), this.profile.limits);
    });
  }

  /** The AMQP link is open exactly while some node listens, so that no message is taken that nobody wants. */
  subscribe(receiver: MessageReceiver, filterTemplate: string, qosValue: unknown = 0): string {
    const [filter] = this.checkSubscriptions([{ topic: filterTemplate, qos: qosValue }]);
    this.subscriptions.add(receiver, filter, parseQos(qosValue), true);
    if (!this.amqp && !this.reconnectTimer && !this.halted) this.start();
    return filter;
  }

  unsubscribe(receiver: MessageReceiver, filterTemplate: string): void {
    let filter: string;
    try {
      filter = this.expandTopic(filterTemplate);
    } catch {
      return;
    }
    const entry = this.subscriptions.remove(receiver, filter);
    if (!entry) return;
    if (entry.owners.size === 0) this.subscriptions.drop(filter, entry);
    if (this.subscriptions.receiverCount === 0) this.stopAmqp(() => this.setStatus(API_READY));
  }

  unsubscribeAll(receiver: MessageReceiver): void {
    for (const filter of this.subscriptions.filtersOf(receiver)) this.unsubscribe(receiver, filter);
  }

  subscriptionsOf(receiver: MessageReceiver): Array<{ topic: string; qos: Qos }> {
    return this.subscriptions.subscriptionsOf(receiver);
  }

  private onAmqpMessage(context: EventContext): void {
    const message = context.message;
    if (!message) return;
    const properties = (message.application_properties ?? {}) as Record<string, unknown>;
    const topic = String(properties.topic ?? '');
    const messageId = String(properties.messageId ?? message.message_id ?? '');
    let device = this.devicesOfTopics.get(topic);
    if (!device) {
      if (this.devicesOfTopics.size >= DISPATCH_CACHE_SIZE) this.devicesOfTopics.clear();
      device = deviceOfTopic(topic);
      this.devicesOfTopics.set(topic, device);
    }
    const meta: MessageMeta = {
      qos: 1,
      retain: false,
      device: { productKey: device.productKey, deviceName: device.deviceName, messageId },
    };
    this.subscriptions.dispatch(topic, bodyBytes(message.body), meta, (err) => {
      this.log.error(new LogMessage('RECEIVER_FAILED', { topic, reason: err.message }));
    });
    // Accepted once the flow has it: a message lost before this point is delivered again, to this or another client.
    context.delivery?.accept();
  }

  // -------------------------------------------------------------------------------------------------------------
  // Talking to devices: the OpenAPI

  /** Like the out node on a device connection, but by the OpenAPI's Pub: done when the platform accepted it. */
  publish(topicTemplate: unknown, value: unknown, options: PublishOptions, callback: PublishCallback): void {
    let params: Record<string, string | number>;
    try {
      const topic = validatePublishTopic(
        typeof topicTemplate === 'string' ? this.expandTopic(topicTemplate) : topicTemplate,
        this.profile.limits,
      );
      const productKey = productOfTopic(topic);
      if (!productKey) throw new AliyunIotError('PUB_TOPIC_INVALID', { topic });
      const payload = encodePayload(value);
      const bytes = exceedsBytes(payload, this.profile.limits.maxPayloadBytes);
      if (bytes !== undefined) throw new AliyunIotError('PAYLOAD_TOO_LARGE', { bytes, max: this.profile.limits.maxPayloadBytes });
      params = {
        ProductKey: productKey,
        TopicFullName: topic,
        MessageContent: Buffer.from(payload).toString('base64'),
        Qos: parseQos(options.qos),
      };
    } catch (err) {
      callback(err as Error);
      return;
    }
    if (this.closed) {
      callback(new AliyunIotError('CONNECTION_CLOSED'));
      return;
    }
    this.profile.api.call('Pub', params).then(
      () => callback(),
      (err: Error) => callback(err),
    );
  }

  async invoke(request: InvokeRequest): Promise<InvokeResult> {
    if (this.closed) throw new AliyunIotError('CONNECTION_CLOSED');
    return invokeDevice(this.profile.api, request);
  }

  /** Any OpenAPI action by name, `payload` its parameters (see apiParams); resolves with the whole answer. */
  async callApi(action: unknown, payload: unknown): Promise<ApiResponse> {
    if (this.closed) throw new AliyunIotError('CONNECTION_CLOSED');
    return callApi(this.profile.api, action, payload);
  }

  // -------------------------------------------------------------------------------------------------------------
  // The AMQP link

  connect(): void {
    this.halted = false;
    if (!this.amqp && this.subscriptions.receiverCount > 0 && !this.closed) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
      this.start();
    }
  }

  disconnect(callback: () => void = () => undefined): void {
    this.halted = true;
    this.stopAmqp(() => {
      this.setStatus({ state: 'disconnected', reason: 'disconnected' });
      callback();
    });
  }

  close(callback: () => void = () => undefined): void {
    if (this.closed) {
      callback();
      return;
    }
    this.closed = true;
    this.profile.api.close();
    this.stopAmqp(() => {
      this.setStatus({ state: 'closed', reason: 'closed' });
      this.users.clear();
      this.subscriptions.clear();
      this.devicesOfTopics.clear();
      callback();
    });
  }

  private start(): void {
    const { amqp, clientId } = this.profile;
    const login = this.profile.amqpLogin();
    if (this.status.state !== 'refused') this.setStatus({ state: 'connecting', reason: 'connecting' });
    this.refused = false;
    const container = rhea.create_container({ id: clientId });
    const options = {
      host: amqp.host,
      port: amqp.port,
      hostname: amqp.host,
      container_id: clientId,
      username: login.username,
      password: login.password,
      reconnect: false,
      ...(this.policy.amqpIdleTimeoutMs > 0 ? { idle_time_out: this.policy.amqpIdleTimeoutMs } : {}),
      ...(amqp.tls
        ? {
            transport: 'tls' as const,
            servername: amqp.host,
            rejectUnauthorized: true,
            ...(this.profile.ca ? { ca: [...rootCertificates, this.profile.ca] } : {}),
          }
        : { transport: 'tcp' as const }),
    };
    const connection = container.connect(options);
    this.amqp = connection;
    container.on('error', (err: Error) =>
      this.log.debug(new LogMessage('CONNECTION_ERROR', { target: this.profile.label, reason: err.message })),
    );
    connection.on('connection_open', () => {
      connection.open_receiver({ autoaccept: false, credit_window: 100 });
      this.failures = { ...NO_FAILURES };
      this.problems.reset();
      this.log.info(new LogMessage('CONNECTED', { target: this.profile.label }));
      this.setStatus({ state: 'connected', reason: 'connected' });
    });
    connection.on('message', (context: EventContext) => this.onAmqpMessage(context));
    connection.on('connection_error', (context: EventContext) => {
      // A refused SASL login is only in context.error; a close with an error also in connection.error.
      const condition =
        (context.error as { condition?: string } | undefined)?.condition ??
        (context.connection.error as { condition?: string } | undefined)?.condition ??
        '';
      if (/unauthorized|auth/i.test(condition)) this.refused = true;
    });
    connection.on('disconnected', (context: EventContext) => this.onDisconnected(connection, context));
  }

  private onDisconnected(connection: AmqpConnection, context: EventContext): void {
    if (connection !== this.amqp) return;
    this.amqp = undefined;
    if (this.closed || this.halted || this.subscriptions.receiverCount === 0) return;
    const error = context.error as (Error & { code?: unknown }) | undefined;
    const reason = error?.message ?? '';
    const certificate = typeof error?.code === 'string' && TLS_CERTIFICATE_ERROR.test(error.code);
    const decision = classifyClose(
      {
        mode: 'cloud',
        target: this.profile.label,
        refused: this.refused || /unauthori[sz]ed|authentication|sasl/i.test(reason),
        tlsFailure: certificate ? `${String(error?.code)}: ${reason}` : undefined,
        current: this.status,
        livedMs: 0,
        detectKick: false,
      },
      this.failures,
      this.policy,
    );
    this.failures = decision.counters;
    if (decision.status !== this.status) this.setStatus(decision.status);
    this.problems.writeDecision(decision);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.closed && !this.halted && this.subscriptions.receiverCount > 0) this.start();
    }, decision.delayMs);
  }

  private stopAmqp(done: () => void): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const connection = this.amqp;
    this.amqp = undefined;
    if (!connection || !connection.is_open()) {
      connection?.close();
      done();
      return;
    }
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      done();
    };
    // Unaccepted deliveries go back to the consumer group when the link closes; a peer that does not answer the
    // close in time has its socket destroyed.
    const timer = setTimeout(() => {
      (connection as unknown as { socket?: { destroy(): void } }).socket?.destroy();
      finish();
    }, this.policy.closeTimeoutMs);
    connection.once('connection_close', finish);
    connection.once('disconnected', finish);
    connection.close();
  }

  private setStatus(status: ConnectionStatus): void {
    this.users.set(status);
  }
}
