// A local stand-in for Alibaba Cloud IoT Platform and ApsaraMQ for MQTT, built on the aedes broker.
import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { AddressInfo } from 'node:net';
import type { Aedes, AuthenticateError, Client } from 'aedes';
import createMemoryPersistence, { AedesMemoryPersistence } from 'aedes-persistence';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { SIMULATOR_VARIABLE_PREFIX } from '../nodes/lib/connection';
import { Device } from '../nodes/lib/protocol';
import { createAdminServer } from './admin';
import { AmqpServer } from './amqp';
import { Cloud, CloudEvents } from './cloud';
import { SimCloudConfig, SimulatorConfig, loadConfigFile, validateConfig } from './config';
import { ConsumerGroups } from './consumer-groups';
import { createOpenApiServer } from './openapi';
import { createActions } from './openapi-actions';
import { IotSession, MqSession, Registry, Session, tokensExpireAt } from './registry';

export * from './config';
export type { IotSession, MqSession, Session } from './registry';

export interface SimulatorOptions extends SimulatorConfig {
  /** MQTT over TCP; 0 (the default) lets the OS choose. */
  port?: number;
  host?: string;
  /** MQTT over WebSocket (paths / and /mqtt); undefined for none, 0 to let the OS choose. */
  wsPort?: number;
  /** The admin HTTP API on `host`; 0 (the default) lets the OS choose. */
  adminPort?: number;
  /** How long before a token expires its holders get `$SYS/tokenExpireNotice`; 5 minutes by default. */
  tokenNoticeMs?: number;
  /** MQTT over TLS with `tls` as the server's key and certificate; undefined for none, 0 to let the OS choose. */
  tlsPort?: number;
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** With a `cloud` section: the AMQP listener of the server-side subscription; 0 (the default) lets the OS choose. */
  amqpPort?: number;
  /** With a `cloud` section: the OpenAPI endpoint (http://host:apiPort/); 0 (the default) lets the OS choose. */
  apiPort?: number;
  /** Receives one line per notable event (logins, refusals, denials); silent when absent. */
  log?: (line: string) => void;
}

/** Publishes a device may not make are renamed to this topic, which no subscription can match: dropped. */
const DROPPED_TOPIC = '$SIM/dropped';

const TOKEN_TOPICS = { upload: '$SYS/uploadToken', expire: '$SYS/tokenExpireNotice', invalid: '$SYS/tokenInvalidNotice' };
/** setTimeout's longest delay; expiries further away are not scheduled. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface SimulatorEvents {
  login: [client: Client, session: Session];
  refused: [info: { clientId: string; username?: string; returnCode: number; reason: string }];
  kicked: [info: { clientId: string; by: string }];
  'publish-denied': [info: { clientId: string; topic: string }];
  'subscribe-denied': [info: { clientId: string; topic: string }];
  subscribe: [info: { clientId: string; topics: string[] }];
  unsubscribe: [info: { clientId: string; topics: string[] }];
  message: Parameters<CloudEvents['message']>;
  post: Parameters<CloudEvents['post']>;
  forward: Parameters<CloudEvents['forward']>;
  unmatched: Parameters<CloudEvents['unmatched']>;
}

export class Simulator extends EventEmitter<SimulatorEvents> {
  readonly registry: Registry;
  port = 0;
  host: string;
  wsPort?: number;
  tlsPort?: number;
  adminPort = 0;
  /** Bound only when the config has a `cloud` section. */
  amqpPort = 0;
  apiPort = 0;
  /** The server-side subscription (with a `cloud` section, once started). */
  amqp?: AmqpServer;
  private apiServer?: http.Server;
  private readonly cloudConfig?: SimCloudConfig;
  /** The cloud side: thing-model answers, requests to devices, forwarding rules. */
  readonly cloud: Cloud;
  private broker?: Aedes;
  private readonly sessions = new WeakMap<Client, Session>();
  /** The live connection of each IoT device: a newer login knocks the older one off. */
  private readonly deviceClients = new Map<string, Client>();
  private tcpServer?: net.Server;
  private tlsServer?: tls.Server;
  private httpServer?: http.Server;
  private wsServer?: WebSocketServer;
  private adminServer?: http.Server;
  private readonly options: SimulatorOptions;
  /** Subscriptions and queued QoS 1 messages of persistent sessions; kept when the simulator stops and starts again. */
  private readonly persistence: AedesMemoryPersistence = createMemoryPersistence();
  /** The client id each client sent, where the broker knows it by its session key instead (see persistentSessionKey). */
  private readonly sentClientIds = new WeakMap<Client, string>();
  /** Connected token-mode clients and the timers of their next token notice. */
  private readonly tokenClients = new Map<Client, NodeJS.Timeout | undefined>();

  constructor(options: SimulatorOptions) {
    super();
    this.options = options;
    const config = validateConfig(options);
    if (options.tlsPort !== undefined && !options.tls) throw new Error('tlsPort needs tls: {key, cert}');
    this.registry = new Registry(config);
    this.cloudConfig = config.cloud;
    this.host = options.host ?? '127.0.0.1';
    this.cloud = new Cloud(
      (topic, payload, qos) => this.publishFromCloud(topic, payload, qos),
      (device) => this.onlineSession(device),
      config.failures ?? [],
      config.rules ?? [],
      {
        message: (info) => {
          this.emit('message', info);
          this.amqp?.publish(info);
        },
        post: (info) => this.emit('post', info),
        forward: (info) => this.emit('forward', info),
        unmatched: (info) => this.emit('unmatched', info),
      },
      (line) => this.log(line),
    );
  }

  private publishFromCloud(topic: string, payload: Buffer | string, qos: 0 | 1): void {
    this.broker?.publish({ cmd: 'publish', topic, payload, qos, retain: false, dup: false }, (err) => {
      if (err) this.log(`cloud publish to ${topic} failed: ${err.message}`);
    });
  }

  private onlineSession(device: Device): IotSession | undefined {
    const client = this.deviceClients.get(`${device.productKey}/${device.deviceName}`);
    const session = client ? this.sessions.get(client) : undefined;
    return session?.kind === 'iot' ? session : undefined;
  }

  private log(line: string): void {
    this.options.log?.(line);
  }

  /** The client id as the client sent it. */
  clientIdOf(client: Client): string {
    return this.sentClientIds.get(client) ?? client.id;
  }

  sessionOf(client: Client): Session | undefined {
    return this.sessions.get(client);
  }

  /** MQTT clients connected now, of every kind. */
  get connectedClients(): number {
    return this.broker?.connectedClients ?? 0;
  }

  /** Devices with a live connection, as `${productKey}/${deviceName}`. */
  onlineDevices(): string[] {
    return [...this.deviceClients.keys()];
  }

  /** Starts listening; after stop(), starts again on the same ports with the persistent sessions kept. */
  async start(): Promise<this> {
    const { Aedes: AedesBroker } = await import('aedes');
    const broker = await AedesBroker.createBroker({
      maxClientsIdLength: 1024,
      persistence: this.persistence,
      preConnect: (client, packet, callback) => {
        // Neither service supports will messages under MQTT 3.1.1.
        delete packet.will;
        const key = packet.clean ? undefined : persistentSessionKey(packet.username);
        if (key) {
          this.sentClientIds.set(client, packet.clientId);
          packet.clientId = key;
        }
        callback(null, true);
      },
      authenticate: (client, username, password, callback) => this.authenticate(client, username, password, callback),
      authorizeSubscribe: (client, subscription, callback) => {
        const session = this.sessions.get(client);
        const own = session?.kind === 'mq' && session.p2pTopics.includes(subscription.topic);
        if (!session || (!own && !session.permissions.canSubscribe(subscription.topic))) {
          this.log(`SUBACK 0x80 ${this.clientIdOf(client)}: ${subscription.topic}`);
          this.emit('subscribe-denied', { clientId: this.clientIdOf(client), topic: subscription.topic });
          callback(null, null);
          return;
        }
        // Only QoS 0 and 1 exist on these services.
        if (subscription.qos > 1) subscription.qos = 1;
        callback(null, subscription);
      },
      authorizePublish: (client, packet, callback) => {
        if (packet.qos > 1) packet.qos = 1;
        packet.retain = false;
        const session = client ? this.sessions.get(client) : undefined;
        if (client && session?.kind === 'mq' && packet.topic === TOKEN_TOPICS.upload) {
          this.onUploadToken(client, session, packet.payload);
          packet.topic = DROPPED_TOPIC;
        } else if (client && (!session || !session.permissions.canPublish(packet.topic))) {
          this.log(`No authorization: ${this.clientIdOf(client)} may not publish to ${packet.topic}`);
          this.emit('publish-denied', { clientId: this.clientIdOf(client), topic: packet.topic });
          packet.topic = DROPPED_TOPIC;
        } else if (session?.kind === 'iot' && (this.amqp || this.listenerCount('message') > 0 || this.cloud.concerns(packet.topic))) {
          const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
          // Thing-model messages up to the cloud are the cloud's: answered there, seen by no other client.
          if (this.cloud.onDevicePublish(session, packet.topic, payload, packet.qos as 0 | 1)) packet.topic = DROPPED_TOPIC;
        }
        callback(null);
      },
    });
    this.broker = broker;
    broker.on('clientReady', (client) => this.onClientReady(client));
    broker.on('subscribe', (subscriptions, client) => {
      this.emit('subscribe', { clientId: this.clientIdOf(client), topics: subscriptions.filter((sub) => (sub.qos as number) !== 128).map((sub) => sub.topic) });
    });
    broker.on('unsubscribe', (topics, client) => this.emit('unsubscribe', { clientId: this.clientIdOf(client), topics }));
    broker.on('clientDisconnect', (client) => {
      clearTimeout(this.tokenClients.get(client));
      this.tokenClients.delete(client);
      const session = this.sessions.get(client);
      if (session?.kind === 'iot') {
        const key = `${session.productKey}/${session.deviceName}`;
        if (this.deviceClients.get(key) === client) this.deviceClients.delete(key);
      }
    });

    // No Nagle delay: a broker's small packets (PUBACKs, forwarded messages) should leave at once.
    this.tcpServer = net.createServer({ noDelay: true }, (socket) => broker.handle(socket));
    this.port = await listen(this.tcpServer, this.port || (this.options.port ?? 0), this.host);
    if (this.options.wsPort !== undefined) {
      this.httpServer = http.createServer();
      this.wsServer = new WebSocketServer({ server: this.httpServer });
      this.wsServer.on('connection', (socket, request) => broker.handle(createWebSocketStream(socket), request));
      this.wsPort = await listen(this.httpServer, this.wsPort || this.options.wsPort, this.host);
    }
    if (this.options.tlsPort !== undefined) {
      const { key, cert } = this.options.tls ?? {};
      this.tlsServer = tls.createServer({ key, cert }, (socket) => broker.handle(socket));
      // A client that refuses our certificate ends the handshake: nothing for the broker to know.
      this.tlsServer.on('tlsClientError', () => undefined);
      this.tlsPort = await listen(this.tlsServer, this.tlsPort || this.options.tlsPort, this.host);
    }
    this.adminServer = createAdminServer({
      cloud: this.cloud,
      registry: this.registry,
      online: (device) => this.onlineSession(device),
      revokeToken: (token) => this.revokeToken(token),
      onlineClientId: (device) => {
        const client = this.deviceClients.get(`${device.productKey}/${device.deviceName}`);
        return client && this.clientIdOf(client);
      },
    });
    this.adminPort = await listen(this.adminServer, this.adminPort || (this.options.adminPort ?? 0), this.host);
    if (this.cloudConfig) await this.startCloudApplication(this.cloudConfig);
    this.log(`aliyun-iot-sim listening: mqtt://${this.host}:${this.port}${this.wsPort ? ` ws://${this.host}:${this.wsPort}/mqtt` : ''}`
      + `${this.tlsPort ? ` mqtts://${this.host}:${this.tlsPort}` : ''}`
      + ` admin http://${this.host}:${this.adminPort}`
      + (this.amqp ? ` amqp://${this.host}:${this.amqpPort} api http://${this.host}:${this.apiPort}` : ''));
    return this;
  }

  /** The cloud-application side: server-side subscription over AMQP and the OpenAPI. */
  private async startCloudApplication(config: SimCloudConfig): Promise<void> {
    const log = (line: string): void => this.log(line);
    this.amqp = new AmqpServer(config, new ConsumerGroups({ known: config.consumerGroups, log }), log);
    this.amqpPort = await this.amqp.start(this.amqpPort || (this.options.amqpPort ?? 0), this.host);
    this.apiServer = createOpenApiServer({ cloud: config, actions: createActions({ cloud: this.cloud, registry: this.registry, config }), log });
    this.apiPort = await listen(this.apiServer, this.apiPort || (this.options.apiPort ?? 0), this.host);
  }

  private authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    callback: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    const clientId = this.clientIdOf(client);
    const result = this.registry.login(clientId, username, password?.toString('utf8'));
    if (!result.ok) {
      this.log(`CONNACK ${result.returnCode} (${result.reason}) for ${clientId}`);
      this.emit('refused', { clientId, username, returnCode: result.returnCode, reason: result.reason });
      callback(Object.assign(new Error(`login refused: ${result.reason}`), { returnCode: result.returnCode }) as AuthenticateError, false);
      return;
    }
    this.sessions.set(client, result.session);
    if (result.session.kind === 'iot') {
      // One connection per device: a new login knocks the older one off (before the broker takes over its session).
      const key = `${result.session.productKey}/${result.session.deviceName}`;
      const previous = this.deviceClients.get(key);
      if (previous && previous !== client && !previous.closed) {
        this.log(`${key}: a new login (${clientId}) knocks off ${this.clientIdOf(previous)}`);
        this.emit('kicked', { clientId: this.clientIdOf(previous), by: clientId });
        this.deviceClients.delete(key);
        previous.close();
      }
    }
    callback(null, true);
  }

  private onClientReady(client: Client): void {
    const session = this.sessions.get(client);
    if (!session) return;
    if (session.kind === 'iot') {
      this.deviceClients.set(`${session.productKey}/${session.deviceName}`, client);
    } else {
      client.subscribe(session.p2pTopics.map((topic) => ({ topic, qos: 1 as const })), () => undefined);
      if (session.authMode === 'token') this.scheduleTokenNotice(client, session);
    }
    this.log(`login ${this.clientIdOf(client)}`);
    this.emit('login', client, session);
  }

  private notify(client: Client, topic: string, body: Record<string, unknown>): void {
    client.publish({ cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(body)), qos: 1, retain: false, dup: false }, () => undefined);
  }

  /** The next notice for a token-mode client: expiry ahead, or its tokens invalid now (and the connection closed). */
  private scheduleTokenNotice(client: Client, session: MqSession): void {
    clearTimeout(this.tokenClients.get(client));
    this.tokenClients.set(client, undefined);
    if (!this.registry.tokensValid(session)) {
      this.log(`${session.clientId}: token expired or revoked, disconnecting`);
      this.notify(client, TOKEN_TOPICS.invalid, { clientId: session.clientId, reason: 'token-expired' });
      setTimeout(() => client.close(), 100);
      return;
    }
    const expireAt = tokensExpireAt(session) as number;
    const noticeAt = expireAt - (this.options.tokenNoticeMs ?? 300_000);
    const now = Date.now();
    if (noticeAt <= now) {
      this.notify(client, TOKEN_TOPICS.expire, { clientId: session.clientId, expireTime: expireAt });
    }
    const next = noticeAt > now ? noticeAt : expireAt;
    if (next - now > MAX_TIMER_MS) return;
    this.tokenClients.set(client, setTimeout(() => this.scheduleTokenNotice(client, session), Math.max(0, next - now)));
  }

  private onUploadToken(client: Client, session: MqSession, payload: Buffer | string): void {
    let request: { token?: unknown; type?: unknown } = {};
    try {
      request = JSON.parse(payload.toString()) as typeof request;
    } catch {
      // an unreadable upload is refused below like any bad request
    }
    const refusal = this.registry.uploadToken(session, request.token, request.type ?? 'RW');
    if (refusal) {
      this.log(`${session.clientId}: uploaded token refused (${refusal})`);
      this.notify(client, TOKEN_TOPICS.invalid, { clientId: session.clientId, reason: refusal });
      return;
    }
    this.log(`${session.clientId}: token uploaded`);
    this.scheduleTokenNotice(client, session);
  }

  private revokeToken(token: string): boolean {
    if (!this.registry.revokeToken(token)) return false;
    for (const client of this.tokenClients.keys()) {
      const session = this.sessions.get(client);
      if (session?.kind === 'mq' && session.tokens.some((held) => held.token === token)) this.scheduleTokenNotice(client, session);
    }
    return true;
  }

  async stop(): Promise<void> {
    const broker = this.broker;
    this.broker = undefined;
    this.cloud.stop();
    this.wsServer?.close();
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    await this.amqp?.stop();
    await Promise.all([this.tcpServer, this.tlsServer, this.httpServer, this.adminServer, this.apiServer].map((server) => new Promise<void>((resolve) => {
      if (!server?.listening) return resolve();
      if (server instanceof http.Server) server.closeAllConnections();
      server.close(() => resolve());
    })));
    this.deviceClients.clear();
    for (const timer of this.tokenClients.values()) clearTimeout(timer);
    this.tokenClients.clear();
  }
}

/**
 * The platform keeps one session per device, whatever timestamp its signed client id carries: a persistent IoT
 * session is known to the broker by its username, `${deviceName}&${productKey}`.
 */
function persistentSessionKey(username: string | undefined): string | undefined {
  return username && /^[^&|]+&[^&|]+$/.test(username) ? `iot-session:${username}` : undefined;
}

function listen(server: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Starts a simulator; the promise resolves once it listens, with the bound port(s) and stop(). */
export function startSimulator(options: SimulatorOptions): Promise<Simulator> {
  return new Simulator(options).start();
}

/**
 * The environment variables the examples read (`${ALIYUN_IOT_SIM_PORT}` and the like in their connection nodes): where
 * this simulator listens, for the Node-RED that runs them.
 */
export function simulatorEnvironment(simulator: Simulator): Record<string, string> {
  const host = simulator.host === '0.0.0.0' || simulator.host === '::' ? '127.0.0.1' : simulator.host;
  return {
    [`${SIMULATOR_VARIABLE_PREFIX}PORT`]: String(simulator.port),
    [`${SIMULATOR_VARIABLE_PREFIX}ADMIN_PORT`]: String(simulator.adminPort),
    ...(simulator.amqp ? {
      [`${SIMULATOR_VARIABLE_PREFIX}AMQP_ENDPOINT`]: `amqp://${host}:${simulator.amqpPort}`,
      [`${SIMULATOR_VARIABLE_PREFIX}API_ENDPOINT`]: `http://${host}:${simulator.apiPort}`,
    } : {}),
  };
}

/** The registry `npm start` and `aliyun-iot-sim --demo` serve: the devices, rules and keys the examples use. */
export const DEMO_REGISTRY_FILE = path.join(__dirname, '..', '..', 'sim', 'demo-registry.json');

/** Where the demo simulator listens when these ports are free. */
export const DEMO_PORTS = Object.freeze({ port: 1883, adminPort: 1884, amqpPort: 5672, apiPort: 1885 });

/** `preferred` when nothing listens on it at `host`, else 0 (the OS chooses). */
export function preferredPortIfFree(preferred: number, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve) => {
    const probe = net.createServer().once('error', () => resolve(0));
    probe.listen(preferred, host, () => probe.close(() => resolve(preferred)));
  });
}

/** The demo registry's simulator on the demo ports, or OS-chosen ones where those are taken. */
export async function startDemoSimulator(options: Partial<SimulatorOptions> = {}): Promise<Simulator> {
  const host = options.host ?? '127.0.0.1';
  const port = async (name: keyof typeof DEMO_PORTS): Promise<number> => options[name] ?? preferredPortIfFree(DEMO_PORTS[name], host);
  return startSimulator({
    ...loadConfigFile(DEMO_REGISTRY_FILE),
    ...options,
    host,
    port: await port('port'),
    adminPort: await port('adminPort'),
    amqpPort: await port('amqpPort'),
    apiPort: await port('apiPort'),
  });
}
