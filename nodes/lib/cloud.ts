// A cloud application's connection: every device message of a consumer group by server-side subscription (AMQP 1.0),
// and the OpenAPI to publish to any device topic, set properties, invoke services and make RRPC calls.
import { rootCertificates } from 'node:tls';
import { QlobberDedup } from 'qlobber';
import rhea, { Connection as AmqpConnection, EventContext } from 'rhea';
import {
  ConnectionLogger, ConnectionStatus, ConnectionUser, MessageMeta, MessageReceiver, PublishCallback,
  DEFAULT_RECONNECT_POLICY, PublishOptions, Qos, SharedConnection, TLS_CERTIFICATE_ERROR, backoffDelay, parseQos,
} from './connection';
import { AliyunIotError, LogMessage } from './errors';
import { decodePayload, encodePayload, exceedsBytes } from './payload';
import { CloudProfile } from './settings';
import { expandPlaceholders, validateFilter, validatePublishTopic } from './topics';

export type InvokeAction = 'set' | 'service' | 'rrpc';

export interface InvokeRequest {
  action: InvokeAction;
  productKey: string;
  deviceName: string;
  /** The service identifier (action `service`). */
  identifier?: string;
  /** Property items, service arguments, or the RRPC request (Buffer as is, text as UTF-8, else JSON). */
  payload: unknown;
  /** RRPC on a custom topic of the device, /${productKey}/${deviceName}/user/... */
  topic?: string;
  /** RRPC: how long the platform waits for the device, 1000-8000 ms. */
  timeoutMs?: number;
}

export interface InvokeResult {
  /** The device's answer: RRPC payload (parsed as JSON when it is JSON), a synchronous service's data, or nothing. */
  payload: unknown;
  messageId?: string;
  rrpcCode?: string;
}

export const RRPC_TIMEOUT_RANGE = { min: 1000, max: 8000 } as const;

/** The device a message came from, read from its topic: /${pk}/${dn}/..., /sys/${pk}/${dn}/..., /ext/.../${pk}/${dn}/... */
export function deviceOfTopic(topic: string): { productKey?: string; deviceName?: string } {
  const levels = topic.split('/');
  if (levels[1] === 'sys' || levels[1] === 'shadow') return { productKey: levels[2], deviceName: levels[3] };
  if (levels[1] === 'ext' && levels[2] === 'ntp') return { productKey: levels[3], deviceName: levels[4] };
  if (levels[1] === 'ota') return { productKey: levels[4], deviceName: levels[5] };
  return { productKey: levels[1] || undefined, deviceName: levels[2] || undefined };
}

/** The bytes of an AMQP body: a data section, a Buffer, text, or a value sent as JSON. */
export function bodyBytes(body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body;
  if (body && typeof body === 'object' && Buffer.isBuffer((body as { content?: unknown }).content)) return (body as { content: Buffer }).content;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  return Buffer.from(body === undefined ? '' : JSON.stringify(body), 'utf8');
}

/** The product a Pub goes to: a custom topic /${pk}/..., or a broadcast /broadcast/${pk}/... */
export function productOfTopic(topic: string): string | undefined {
  const levels = topic.split('/');
  return (levels[1] === 'broadcast' ? levels[2] : levels[1]) || undefined;
}

export class CloudConnection implements SharedConnection {
  readonly mode = 'cloud' as const;
  readonly profile: CloudProfile;
  readonly log: ConnectionLogger;
  private readonly users = new Set<ConnectionUser>();
  private readonly receivers = new Map<MessageReceiver, Map<string, Qos>>();
  private readonly index = new QlobberDedup<MessageReceiver>({
    separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true,
  });
  private amqp?: AmqpConnection;
  private current: ConnectionStatus = { state: 'idle', reason: 'api-ready' };
  private reconnectTimer?: NodeJS.Timeout;
  private closed = false;
  private halted = false;
  private failures = 0;
  private refused = false;

  constructor(profile: CloudProfile, log: ConnectionLogger) {
    this.profile = profile;
    this.log = log;
  }

  get status(): ConnectionStatus {
    return this.current;
  }

  register(user: ConnectionUser): void {
    if (this.closed) return;
    this.users.add(user);
    user.onStatus(this.current);
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
    let owned = this.receivers.get(receiver);
    if (!owned) this.receivers.set(receiver, (owned = new Map()));
    owned.set(filter, parseQos(qosValue));
    this.index.add(filter, receiver);
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
    const owned = this.receivers.get(receiver);
    if (!owned?.delete(filter)) return;
    this.index.remove(filter, receiver);
    if (owned.size === 0) this.receivers.delete(receiver);
    if (this.receivers.size === 0) this.stopAmqp(() => this.setStatus({ state: 'idle', reason: 'api-ready' }));
  }

  unsubscribeAll(receiver: MessageReceiver): void {
    for (const filter of [...(this.receivers.get(receiver)?.keys() ?? [])]) this.unsubscribe(receiver, filter);
  }

  subscriptionsOf(receiver: MessageReceiver): Array<{ topic: string; qos: Qos }> {
    return [...(this.receivers.get(receiver) ?? [])].map(([topic, qos]) => ({ topic, qos }));
  }

  private onAmqpMessage(context: EventContext): void {
    const message = context.message;
    if (!message) return;
    const properties = (message.application_properties ?? {}) as Record<string, unknown>;
    const topic = String(properties.topic ?? '');
    const messageId = String(properties.messageId ?? message.message_id ?? '');
    const meta: MessageMeta = { qos: 1, retain: false, device: { ...deviceOfTopic(topic), messageId } };
    const payload = bodyBytes(message.body);
    for (const receiver of this.index.match(topic)) {
      try {
        receiver.onMessage(topic, payload, meta);
      } catch (err) {
        this.log.error(new LogMessage('RECEIVER_FAILED', { topic, reason: (err as Error).message }));
      }
    }
    // Accepted once the flow has it: a message lost before this point is delivered again, to this or another client.
    context.delivery?.accept();
  }

  // -------------------------------------------------------------------------------------------------------------
  // Talking to devices: the OpenAPI

  /** Like the out node on a device connection, but by the OpenAPI's Pub: done when the platform accepted it. */
  publish(topicTemplate: unknown, value: unknown, options: PublishOptions, callback: PublishCallback): void {
    let params: Record<string, string | number>;
    try {
      const topic = validatePublishTopic(typeof topicTemplate === 'string' ? this.expandTopic(topicTemplate) : topicTemplate, this.profile.limits);
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
    this.profile.api.call('Pub', params).then(() => callback(), (err: Error) => callback(err));
  }

  /** SetDeviceProperty, InvokeThingService or RRpc; rejects with the platform's code, or TIMEOUT/OFFLINE for RRPC. */
  async invoke(request: InvokeRequest): Promise<InvokeResult> {
    if (this.closed) throw new AliyunIotError('CONNECTION_CLOSED');
    const device = { ProductKey: request.productKey, DeviceName: request.deviceName };
    if (!request.productKey || !request.deviceName) throw new AliyunIotError('DEVICE_MISSING');
    if (request.action === 'set' || request.action === 'service') {
      const object = request.payload ?? {};
      if (typeof object !== 'object' || Array.isArray(object) || Buffer.isBuffer(object)) {
        throw new AliyunIotError(request.action === 'set' ? 'ITEMS_INVALID' : 'ARGS_INVALID');
      }
      if (request.action === 'set') {
        const answer = await this.profile.api.call('SetDeviceProperty', { ...device, Items: JSON.stringify(object) });
        return { payload: object, messageId: String((answer.Data as { MessageId?: unknown } | undefined)?.MessageId ?? '') };
      }
      if (!request.identifier) throw new AliyunIotError('IDENTIFIER_MISSING');
      const answer = await this.profile.api.call('InvokeThingService', { ...device, Identifier: request.identifier, Args: JSON.stringify(object) });
      const data = (answer.Data ?? {}) as { Result?: unknown; MessageId?: unknown; Code?: unknown };
      if (data.Code !== undefined && Number(data.Code) !== 200) {
        throw new AliyunIotError('SERVICE_FAILED', { identifier: request.identifier, code: String(data.Code) });
      }
      const result = typeof data.Result === 'string' && data.Result !== '' ? decodePayload(Buffer.from(data.Result), 'auto-detect') : {};
      return { payload: result, messageId: String(data.MessageId ?? '') };
    }
    if (request.action !== 'rrpc') throw new AliyunIotError('INVOKE_ACTION_INVALID', { value: String(request.action) });
    const timeout = request.timeoutMs ?? 5000;
    if (!Number.isInteger(timeout) || timeout < RRPC_TIMEOUT_RANGE.min || timeout > RRPC_TIMEOUT_RANGE.max) {
      throw new AliyunIotError('RRPC_TIMEOUT_RANGE', { value: String(timeout), ...RRPC_TIMEOUT_RANGE });
    }
    const answer = await this.profile.api.call('RRpc', {
      ...device,
      RequestBase64Byte: Buffer.from(encodePayload(request.payload)).toString('base64'),
      Timeout: timeout,
      Topic: request.topic || undefined,
    }, timeout + 5000);
    const rrpcCode = String(answer.RrpcCode ?? '');
    const messageId = String(answer.MessageId ?? '');
    if (rrpcCode !== 'SUCCESS') throw Object.assign(new AliyunIotError('RRPC_FAILED', { code: rrpcCode, device: `${request.productKey}/${request.deviceName}` }), { rrpcCode });
    const bytes = Buffer.from(String(answer.PayloadBase64Byte ?? ''), 'base64');
    return { payload: decodePayload(bytes, 'auto-detect'), messageId, rrpcCode };
  }

  // -------------------------------------------------------------------------------------------------------------
  // The AMQP link

  connect(): void {
    this.halted = false;
    if (!this.amqp && this.receivers.size > 0 && !this.closed) {
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
    this.stopAmqp(() => {
      this.setStatus({ state: 'closed', reason: 'closed' });
      this.users.clear();
      this.receivers.clear();
      this.index.clear();
      callback();
    });
  }

  private start(): void {
    const { amqp, clientId } = this.profile;
    const login = this.profile.amqpLogin();
    if (this.current.state !== 'refused') this.setStatus({ state: 'connecting', reason: 'connecting' });
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
      idle_time_out: 60_000,
      ...(amqp.tls
        ? { transport: 'tls' as const, servername: amqp.host, rejectUnauthorized: true, ...(this.profile.ca ? { ca: [...rootCertificates, this.profile.ca] } : {}) }
        : { transport: 'tcp' as const }),
    };
    const connection = container.connect(options);
    this.amqp = connection;
    container.on('error', (err: Error) => this.log.debug(new LogMessage('CONNECTION_ERROR', { target: this.profile.label, reason: err.message })));
    connection.on('connection_open', () => {
      connection.open_receiver({ autoaccept: false, credit_window: 100 });
      this.failures = 0;
      this.log.info(new LogMessage('CONNECTED', { target: this.profile.label }));
      this.setStatus({ state: 'connected', reason: 'connected' });
    });
    connection.on('message', (context: EventContext) => this.onAmqpMessage(context));
    connection.on('connection_error', (context: EventContext) => {
      // A refused SASL login is only in context.error; a close with an error also in connection.error.
      const condition = (context.error as { condition?: string } | undefined)?.condition
        ?? (context.connection.error as { condition?: string } | undefined)?.condition ?? '';
      if (/unauthorized|auth/i.test(condition)) this.refused = true;
    });
    connection.on('disconnected', (context: EventContext) => this.onDisconnected(connection, context));
  }

  private onDisconnected(connection: AmqpConnection, context: EventContext): void {
    if (connection !== this.amqp) return;
    this.amqp = undefined;
    if (this.closed || this.halted || this.receivers.size === 0) return;
    const error = context.error as (Error & { code?: unknown }) | undefined;
    const reason = error?.message ?? '';
    const certificate = typeof error?.code === 'string' && TLS_CERTIFICATE_ERROR.test(error.code);
    const refused = this.refused || certificate || /unauthori[sz]ed|authentication|sasl/i.test(reason);
    const delay = refused
      ? backoffDelay(this.failures++, DEFAULT_RECONNECT_POLICY.refusedBaseMs, DEFAULT_RECONNECT_POLICY.refusedMaxMs)
      : backoffDelay(this.failures++, DEFAULT_RECONNECT_POLICY.networkBaseMs, DEFAULT_RECONNECT_POLICY.networkMaxMs);
    if (certificate) {
      if (this.current.reason !== 'tls-error') {
        this.log.error(new LogMessage('TLS_CERTIFICATE', { target: this.profile.label, reason: `${String(error?.code)}: ${reason}` }));
      }
      this.setStatus({ state: 'refused', reason: 'tls-error' });
    } else if (refused) {
      if (this.current.state !== 'refused') this.log.error(new LogMessage('AMQP_REFUSED', { target: this.profile.label }));
      this.setStatus({ state: 'refused', reason: 'refused-not-authorized' });
    } else {
      if (this.current.state === 'connected') this.log.info(new LogMessage('CONNECTION_LOST', { target: this.profile.label }));
      this.setStatus({ state: 'disconnected', reason: 'disconnected' });
    }
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.closed && !this.halted && this.receivers.size > 0) this.start();
    }, delay);
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
    }, DEFAULT_RECONNECT_POLICY.closeTimeoutMs);
    connection.once('connection_close', finish);
    connection.once('disconnected', finish);
    connection.close();
  }

  private setStatus(status: ConnectionStatus): void {
    this.current = status;
    for (const user of [...this.users]) user.onStatus(status);
  }
}
