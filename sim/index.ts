// A local stand-in for Alibaba Cloud IoT Platform and ApsaraMQ for MQTT, built on the aedes broker.
import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import * as net from 'node:net';
import { AddressInfo } from 'node:net';
import type { Aedes, AuthenticateError, Client } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { Device } from '../nodes/lib/alink';
import { createAdminServer } from './admin';
import { Cloud, CloudEvents } from './cloud';
import { SimulatorConfig, validateConfig } from './config';
import { IotSession, Registry, Session } from './registry';

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
  /** Receives one line per notable event (logins, refusals, denials); silent when absent. */
  log?: (line: string) => void;
}

/** Publishes a device may not make are renamed to this topic, which no subscription can match: dropped. */
const DROPPED_TOPIC = '$SIM/dropped';

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
  adminPort = 0;
  /** The cloud side: thing-model answers, requests to devices, forwarding rules. */
  readonly cloud: Cloud;
  private broker?: Aedes;
  private readonly sessions = new WeakMap<Client, Session>();
  /** The live connection of each IoT device: a newer login knocks the older one off. */
  private readonly deviceClients = new Map<string, Client>();
  private tcpServer?: net.Server;
  private httpServer?: http.Server;
  private wsServer?: WebSocketServer;
  private adminServer?: http.Server;
  private readonly options: SimulatorOptions;

  constructor(options: SimulatorOptions) {
    super();
    this.options = options;
    const config = validateConfig(options);
    this.registry = new Registry(config);
    this.host = options.host ?? '127.0.0.1';
    this.cloud = new Cloud(
      (topic, payload, qos) => this.publishFromCloud(topic, payload, qos),
      (device) => this.onlineSession(device),
      config.failures ?? [],
      config.rules ?? [],
      {
        message: (info) => this.emit('message', info),
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

  async start(): Promise<this> {
    const { Aedes: AedesBroker } = await import('aedes');
    const broker = await AedesBroker.createBroker({
      maxClientsIdLength: 1024,
      preConnect: (_client, packet, callback) => {
        // Neither service supports will messages under MQTT 3.1.1.
        delete packet.will;
        callback(null, true);
      },
      authenticate: (client, username, password, callback) => this.authenticate(client, username, password, callback),
      authorizeSubscribe: (client, subscription, callback) => {
        const session = this.sessions.get(client);
        const own = session?.kind === 'mq' && session.p2pTopics.includes(subscription.topic);
        if (!session || (!own && !session.permissions.canSubscribe(subscription.topic))) {
          this.log(`SUBACK 0x80 ${client.id}: ${subscription.topic}`);
          this.emit('subscribe-denied', { clientId: client.id, topic: subscription.topic });
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
        if (client && (!session || !session.permissions.canPublish(packet.topic))) {
          this.log(`No authorization: ${client.id} may not publish to ${packet.topic}`);
          this.emit('publish-denied', { clientId: client.id, topic: packet.topic });
          packet.topic = DROPPED_TOPIC;
        } else if (session?.kind === 'iot' && (this.listenerCount('message') > 0 || this.cloud.concerns(packet.topic))) {
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
      this.emit('subscribe', { clientId: client.id, topics: subscriptions.filter((sub) => (sub.qos as number) !== 128).map((sub) => sub.topic) });
    });
    broker.on('unsubscribe', (topics, client) => this.emit('unsubscribe', { clientId: client.id, topics }));
    broker.on('clientDisconnect', (client) => {
      const session = this.sessions.get(client);
      if (session?.kind === 'iot') {
        const key = `${session.productKey}/${session.deviceName}`;
        if (this.deviceClients.get(key) === client) this.deviceClients.delete(key);
      }
    });

    // No Nagle delay: a broker's small packets (PUBACKs, forwarded messages) should leave at once.
    this.tcpServer = net.createServer({ noDelay: true }, (socket) => broker.handle(socket));
    this.port = await listen(this.tcpServer, this.options.port ?? 0, this.host);
    if (this.options.wsPort !== undefined) {
      this.httpServer = http.createServer();
      this.wsServer = new WebSocketServer({ server: this.httpServer });
      this.wsServer.on('connection', (socket, request) => broker.handle(createWebSocketStream(socket), request));
      this.wsPort = await listen(this.httpServer, this.options.wsPort, this.host);
    }
    this.adminServer = createAdminServer({
      cloud: this.cloud,
      registry: this.registry,
      online: (device) => this.onlineSession(device),
      onlineClientId: (device) => this.deviceClients.get(`${device.productKey}/${device.deviceName}`)?.id,
    });
    this.adminPort = await listen(this.adminServer, this.options.adminPort ?? 0, this.host);
    this.log(`aliyun-iot-sim listening: mqtt://${this.host}:${this.port}${this.wsPort ? ` ws://${this.host}:${this.wsPort}/mqtt` : ''}`
      + ` admin http://${this.host}:${this.adminPort}`);
    return this;
  }

  private authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    callback: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    const result = this.registry.login(client.id, username, password?.toString('utf8'));
    if (!result.ok) {
      this.log(`CONNACK ${result.returnCode} (${result.reason}) for ${client.id}`);
      this.emit('refused', { clientId: client.id, username, returnCode: result.returnCode, reason: result.reason });
      callback(Object.assign(new Error(`login refused: ${result.reason}`), { returnCode: result.returnCode }) as AuthenticateError, false);
      return;
    }
    this.sessions.set(client, result.session);
    callback(null, true);
  }

  private onClientReady(client: Client): void {
    const session = this.sessions.get(client);
    if (!session) return;
    if (session.kind === 'iot') {
      const key = `${session.productKey}/${session.deviceName}`;
      const previous = this.deviceClients.get(key);
      this.deviceClients.set(key, client);
      if (previous && previous !== client && !previous.closed) {
        this.log(`${key}: a new login (${client.id}) knocks off ${previous.id}`);
        this.emit('kicked', { clientId: previous.id, by: client.id });
        previous.close();
      }
    } else {
      client.subscribe(session.p2pTopics.map((topic) => ({ topic, qos: 1 as const })), () => undefined);
    }
    this.log(`login ${client.id}`);
    this.emit('login', client, session);
  }

  async stop(): Promise<void> {
    const broker = this.broker;
    this.broker = undefined;
    this.cloud.stop();
    this.wsServer?.close();
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    await Promise.all([this.tcpServer, this.httpServer, this.adminServer].map((server) => new Promise<void>((resolve) => {
      if (!server?.listening) return resolve();
      if (server instanceof http.Server) server.closeAllConnections();
      server.close(() => resolve());
    })));
    this.deviceClients.clear();
  }
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
