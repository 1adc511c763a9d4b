// The server-side subscription (docs/protocol.md §5) as an AMQP 1.0 listener on loopback: a SASL PLAIN login
// signed with aksign, one receiver link per connection, and the device messages of the consumer group on it.
// Plain TCP, and TLS when asked (the real service wants TLS on 5671).
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { AddressInfo } from 'node:net';
import type { TlsOptions } from 'node:tls';
import rhea, { Connection, Container, Delivery, EventContext, Sender } from 'rhea';
import { ParsedAmqpUsername, RANGES, parseAmqpUsername, verifyAmqpPassword } from '../nodes/lib/protocol';
import { messageIds } from './platform';
import { SimCloudConfig } from './config';
import { ConsumerGroups, GroupMember, GroupMessage, Outcome } from './consumer-groups';

export interface AmqpServerEvents {
  login: [info: { clientId: string; consumerGroupId: string }];
  refused: [info: { clientId: string; reason: string }];
}

/** The part of rhea's server mechanisms this file uses (rhea types it as `any`). */
interface PlainServerMechanisms {
  enable_plain(verify: (username: string, password: string) => boolean): void;
}

/**
 * How far the signed timestamp of an AMQP login may be from the server's clock. Inferred: the platform's documents
 * ask for the current time in ms without naming a window; this is the window the OpenAPI gateway applies.
 */
export const AMQP_TIMESTAMP_WINDOW_MS = 15 * 60 * 1000;

/** Why an aksign login is refused, or undefined when it is good. */
export function checkAmqpLogin(
  cloud: SimCloudConfig,
  groups: ConsumerGroups,
  username: string,
  password: string,
  now = Date.now(),
): { login?: ParsedAmqpUsername; reason?: string } {
  const login = parseAmqpUsername(username);
  if (!login) return { reason: 'the username is not ${clientId}|authMode=aksign,...,authId=...,consumerGroupId=...|' };
  if (login.authMode !== 'aksign') return { login, reason: `authMode ${login.authMode || '(none)'} is not aksign` };
  if (login.signMethod !== 'hmacsha1') return { login, reason: `signMethod ${login.signMethod || '(none)'} is not hmacsha1` };
  const key = cloud.accessKeys.find((entry) => entry.accessKeyId === login.accessKeyId);
  if (!key) return { login, reason: `no AccessKey ${login.accessKeyId}` };
  if (login.iotInstanceId !== '' && login.iotInstanceId !== (cloud.instanceId ?? ''))
    return { login, reason: `no instance ${login.iotInstanceId}` };
  if (!groups.exists(login.consumerGroupId)) return { login, reason: `no consumer group ${login.consumerGroupId || '(empty)'}` };
  if (!verifyAmqpPassword(login, key.accessKeySecret, password)) return { login, reason: 'the signature does not match' };
  const timestamp = /^\d+$/.test(login.timestamp) ? Number(login.timestamp) : Number.NaN;
  if (!(Math.abs(now - timestamp) <= AMQP_TIMESTAMP_WINDOW_MS)) {
    return {
      login,
      reason: `the timestamp ${login.timestamp} is not within ${AMQP_TIMESTAMP_WINDOW_MS / 60_000} minutes of the server's clock`,
    };
  }
  return { login };
}

/** The platform closes an AMQP connection not logged in within this time of its start (docs/protocol.md §5). */
export const AMQP_AUTH_TIMEOUT_MS = 15_000;

export interface AmqpServerOptions {
  /** A connection not logged in and open this long after it was made is closed; AMQP_AUTH_TIMEOUT_MS by default. */
  authTimeoutMs?: number;
  /**
   * A connection that sends no frame for this long is closed. Default: the idle-time-out the client announced, within
   * RANGES.amqpIdleTimeoutMs (the longest when it announced none), as the platform does.
   */
  idleTimeoutMs?: number;
}

/** The part of a connection's open frames the idle check reads and sets (rhea types connections loosely). */
interface OpenFrames {
  local: { open: { idle_time_out?: number } };
  remote: { open?: { idle_time_out?: number } };
}

export class AmqpServer extends EventEmitter<AmqpServerEvents> {
  port = 0;
  /** The TLS listener's port, once started with startTls. */
  tlsPort?: number;
  private readonly container: Container;
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  /** Accepted logins by username, until their connection opens. */
  private readonly logins = new Map<string, ParsedAmqpUsername>();
  private readonly connectionLogins = new WeakMap<Connection, ParsedAmqpUsername>();
  private readonly members = new Map<Connection, { sender: Sender; member: GroupMember }>();
  private readonly deliveries = new WeakMap<Delivery, string>();
  private readonly nextMessageId = messageIds();
  /** Sockets not yet logged in and open, with the timer that closes them. */
  private readonly loginDeadlines = new Map<net.Socket, NodeJS.Timeout>();

  constructor(
    private readonly cloud: SimCloudConfig,
    readonly groups: ConsumerGroups,
    private readonly log: (line: string) => void,
    private readonly options: AmqpServerOptions = {},
  ) {
    super();
    this.container = rhea.create_container({ id: 'aliyun-iot-sim' });
    (this.container.sasl_server_mechanisms as PlainServerMechanisms).enable_plain((username, password) => this.verify(username, password));
    this.container.on('connection_open', (context: EventContext) => this.onOpen(context));
    this.container.on('sender_open', (context: EventContext) => this.onSenderOpen(context));
    this.container.on('receiver_open', (context: EventContext) => {
      context.receiver?.close({
        condition: 'amqp:not-allowed',
        description: 'the server-side subscription only sends: open a receiver link',
      });
    });
    this.container.on('sendable', (context: EventContext) => this.memberOf(context)?.pump());
    for (const outcome of ['accepted', 'released', 'rejected', 'modified'] as const) {
      this.container.on(outcome, (context: EventContext) => this.onOutcome(context, outcome));
    }
    this.container.on('sender_close', (context: EventContext) => this.leave(context.connection));
    this.container.on('connection_close', (context: EventContext) => this.leave(context.connection));
    this.container.on('disconnected', (context: EventContext) => this.leave(context.connection));
    this.container.on('error', (err: Error) => this.log(`amqp: ${err.message}`));
  }

  private verify(username: string, password: string): boolean {
    const { login, reason } = checkAmqpLogin(this.cloud, this.groups, username, password);
    const clientId = login?.clientId ?? username.split('|')[0];
    if (reason || !login) {
      this.log(`AMQP login refused for ${clientId}: ${reason}`);
      this.emit('refused', { clientId, reason: reason ?? 'refused' });
      return false;
    }
    this.logins.set(username, login);
    return true;
  }

  private onOpen(context: EventContext): void {
    const login = this.loginOf(context.connection);
    if (!login) {
      context.connection.close({ condition: 'amqp:unauthorized-access', description: 'log in with SASL PLAIN and an aksign username' });
      return;
    }
    const socket = (context.connection as { socket?: net.Socket }).socket;
    if (socket) this.clearLoginDeadline(socket);
    this.watchIdle(context.connection);
    this.log(`AMQP login ${login.clientId} (consumer group ${login.consumerGroupId})`);
    this.emit('login', { clientId: login.clientId, consumerGroupId: login.consumerGroupId });
  }

  /**
   * rhea closes a connection that received nothing for twice its own announced idle-time-out, and its peer sends a
   * frame every half of that: announcing half the limit closes a silent connection after the limit.
   */
  private watchIdle(connection: Connection): void {
    const frames = connection as unknown as OpenFrames;
    const announced = frames.remote.open?.idle_time_out;
    const { min, max } = RANGES.amqpIdleTimeoutMs;
    const limit = this.options.idleTimeoutMs ?? (announced ? Math.min(max, Math.max(min, announced)) : max);
    frames.local.open.idle_time_out = Math.max(1, Math.ceil(limit / 2));
  }

  private awaitLogin(socket: net.Socket): void {
    const authTimeoutMs = this.options.authTimeoutMs ?? AMQP_AUTH_TIMEOUT_MS;
    const deadline = setTimeout(() => {
      this.loginDeadlines.delete(socket);
      this.log(`AMQP connection not logged in within ${authTimeoutMs} ms: closed`);
      socket.destroy();
    }, authTimeoutMs);
    this.loginDeadlines.set(socket, deadline);
    socket.once('close', () => this.clearLoginDeadline(socket));
  }

  private clearLoginDeadline(socket: net.Socket): void {
    clearTimeout(this.loginDeadlines.get(socket));
    this.loginDeadlines.delete(socket);
  }

  /** The login rhea's PLAIN mechanism accepted for this connection. */
  private loginOf(connection: Connection): ParsedAmqpUsername | undefined {
    const known = this.connectionLogins.get(connection);
    if (known) return known;
    const transport = (connection as unknown as { sasl_transport?: { mechanism?: { username?: string } } }).sasl_transport;
    const username = transport?.mechanism?.username;
    const login = username === undefined ? undefined : this.logins.get(username);
    if (username !== undefined && login) {
      this.logins.delete(username);
      this.connectionLogins.set(connection, login);
    }
    return login;
  }

  private onSenderOpen(context: EventContext): void {
    const sender = context.sender;
    const login = this.loginOf(context.connection);
    if (!sender) return;
    if (!login) {
      sender.close({ condition: 'amqp:unauthorized-access', description: 'not logged in' });
      return;
    }
    if (this.members.has(context.connection)) {
      sender.close({ condition: 'amqp:resource-limit-exceeded', description: 'one receiver link per connection' });
      return;
    }
    const member = this.groups.join(login.consumerGroupId, {
      name: login.clientId,
      capacity: () => (sender.is_open() && sender.sendable() ? 1 : 0),
      deliver: (message, previousDeliveries) => this.send(sender, message, previousDeliveries),
    });
    this.members.set(context.connection, { sender, member });
  }

  private send(sender: Sender, message: GroupMessage, previousDeliveries: number): void {
    const delivery = sender.send({
      message_id: message.messageId,
      delivery_count: previousDeliveries,
      application_properties: { topic: message.topic, messageId: message.messageId, generateTime: message.generateTime },
      body: rhea.message.data_section(message.payload),
    });
    this.deliveries.set(delivery, message.messageId);
  }

  private memberOf(context: EventContext): GroupMember | undefined {
    const entry = this.members.get(context.connection);
    return entry && entry.sender === context.sender ? entry.member : undefined;
  }

  private onOutcome(context: EventContext, outcome: Outcome): void {
    const messageId = context.delivery ? this.deliveries.get(context.delivery) : undefined;
    if (messageId !== undefined) this.memberOf(context)?.settle(messageId, outcome);
  }

  private leave(connection: Connection): void {
    const entry = this.members.get(connection);
    if (!entry) return;
    this.members.delete(connection);
    entry.member.leave();
  }

  /** A device message for every consumer group; RRPC answers and NTP requests are the platform's own, not forwarded. */
  publish(info: { productKey: string; deviceName: string; topic: string; payload: Buffer }): void {
    if (/^\/ext\/|^\/sys\/[^/]+\/[^/]+\/rrpc\/response\//.test(info.topic)) return;
    this.groups.publish({ ...info, messageId: this.nextMessageId(), generateTime: Date.now() });
  }

  async start(port: number, host: string): Promise<number> {
    this.port = await this.listen({ port, host });
    return this.port;
  }

  /** Also listens for AMQP over TLS (amqps) with this key and certificate. */
  async startTls(port: number, host: string, tls: Pick<TlsOptions, 'key' | 'cert'>): Promise<number> {
    this.tlsPort = await this.listen({ port, host, transport: 'tls', key: tls.key, cert: tls.cert });
    return this.tlsPort;
  }

  private async listen(options: {
    port: number;
    host: string;
    transport?: 'tls';
    key?: TlsOptions['key'];
    cert?: TlsOptions['cert'];
  }): Promise<number> {
    const server = this.container.listen(options);
    this.servers.push(server);
    // A client that refuses our certificate ends the handshake: nothing to report.
    server.on('tlsClientError', () => undefined);
    server.on('connection', (socket: net.Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    // The socket rhea reads: the TLS one once its handshake is done.
    server.on(options.transport === 'tls' ? 'secureConnection' : 'connection', (socket: net.Socket) => this.awaitLogin(socket));
    return new Promise<number>((resolve, reject) => {
      const ready = (): void => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      };
      if (server.listening) ready();
      else {
        server.once('error', reject);
        server.once('listening', ready);
      }
    });
  }

  async stop(): Promise<void> {
    this.groups.stop();
    for (const connection of [...this.members.keys()]) this.leave(connection);
    for (const socket of this.sockets) socket.destroy();
    for (const socket of [...this.loginDeadlines.keys()]) this.clearLoginDeadline(socket);
    const servers = this.servers.splice(0);
    await Promise.all(
      servers.filter((server) => server.listening).map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
    );
  }
}
