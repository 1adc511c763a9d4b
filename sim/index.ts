// A local stand-in for Alibaba Cloud IoT Platform and ApsaraMQ for MQTT, built on the aedes broker.
import { EventEmitter } from 'node:events';
import type { Aedes, Client } from 'aedes';
import createMemoryPersistence, { AedesMemoryPersistence } from 'aedes-persistence';
import { deviceKey } from '../nodes/lib/protocol';
import type { AmqpServer } from './amqp';
import { BrokerEvents, EmitBrokerEvent, HookContext, brokerHooks, followBrokerEvents } from './broker-hooks';
import { SimCloudConfig, SimulatorConfig, validateConfig } from './config';
import { EmitGatewayEvent, GatewayEvents, Gateways } from './gateway';
import { Listeners } from './listeners';
import { PlatformEvents, SimulatedPlatform } from './platform';
import { Registry, Session } from './registry';
import { Sessions } from './sessions';
import { DEFAULT_TOKEN_NOTICE_MS, TokenNotices } from './token-notices';

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
  /** With a `cloud` section and `tls`: AMQP over TLS (amqps) too; undefined for none, 0 to let the OS choose. */
  amqpTlsPort?: number;
  /** With a `cloud` section and `tls`: the OpenAPI over HTTPS too; undefined for none, 0 to let the OS choose. */
  apiTlsPort?: number;
  /** How long a consumer of the server-side subscription has to accept a message before it is delivered again; 30 s. */
  amqpAcceptTimeoutMs?: number;
  /** A silent AMQP connection is closed after this; default: the idle-time-out its client announced (30-300 s). */
  amqpIdleTimeoutMs?: number;
  /** An AMQP connection not logged in this long after it was made is closed; 15 s. */
  amqpAuthTimeoutMs?: number;
  /** Receives one line per notable event (logins, refusals, denials); silent when absent. */
  log?: (line: string) => void;
}

export interface SimulatorEvents extends BrokerEvents, GatewayEvents {
  message: Parameters<PlatformEvents['message']>;
  post: Parameters<PlatformEvents['post']>;
  forward: Parameters<PlatformEvents['forward']>;
  unmatched: Parameters<PlatformEvents['unmatched']>;
}

export class Simulator extends EventEmitter<SimulatorEvents> {
  readonly registry: Registry;
  readonly host: string;
  /** The simulated platform: thing-model answers, requests to devices, forwarding rules. */
  readonly platform: SimulatedPlatform;
  /** Topologies and sub-device sessions: the topologies stay across stop() and start(). */
  readonly gateways: Gateways;
  private readonly cloudConfig?: SimCloudConfig;
  private readonly options: SimulatorOptions;
  private readonly sessions = new Sessions();
  private readonly tokenNotices: TokenNotices;
  private readonly servers: Listeners;
  private broker?: Aedes;
  /** Subscriptions and queued QoS 1 messages of persistent sessions; kept when the simulator stops and starts again. */
  private readonly persistence: AedesMemoryPersistence = createMemoryPersistence();

  constructor(options: SimulatorOptions) {
    super();
    this.options = options;
    const config = validateConfig(options);
    for (const name of ['tlsPort', 'amqpTlsPort', 'apiTlsPort'] as const) {
      if (options[name] !== undefined && !options.tls) throw new Error(`${name} needs tls: {key, cert}`);
    }
    this.registry = new Registry(config);
    this.cloudConfig = config.cloud;
    this.host = options.host ?? '127.0.0.1';
    const log = (line: string): void => this.log(line);
    this.platform = new SimulatedPlatform(
      (topic, payload, qos) => this.publishFromPlatform(topic, payload, qos),
      (device) => this.sessions.online(device) ?? this.gateways.sessionOf(device),
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
      log,
    );
    this.gateways = new Gateways(
      this.registry,
      (topic, payload, qos) => this.publishFromPlatform(topic, payload, qos),
      (device) => this.sessions.clientOf(device),
      log,
      this.emit.bind(this) as EmitGatewayEvent,
      (device, id, properties, events) => this.platform.recordPacked(device, id, properties, events),
      config.gatewayLimits,
    );
    this.platform.mayPostFor = (poster, device) =>
      (poster.productKey === device.productKey && poster.deviceName === device.deviceName) ||
      this.gateways.topologyOf(poster).some((sub) => sub.productKey === device.productKey && sub.deviceName === device.deviceName);
    this.tokenNotices = new TokenNotices(this.registry, this.sessions, options.tokenNoticeMs ?? DEFAULT_TOKEN_NOTICE_MS, log);
    this.servers = new Listeners({ ...options, host: this.host }, log);
  }

  private publishFromPlatform(topic: string, payload: Buffer | string, qos: 0 | 1): void {
    this.broker?.publish({ cmd: 'publish', topic, payload, qos, retain: false, dup: false }, (err) => {
      if (err) this.log(`platform publish to ${topic} failed: ${err.message}`);
    });
  }

  private log(line: string): void {
    this.options.log?.(line);
  }

  /** MQTT over TCP; 0 until started. */
  get port(): number {
    return this.servers.port;
  }

  get wsPort(): number | undefined {
    return this.servers.wsPort;
  }

  get tlsPort(): number | undefined {
    return this.servers.tlsPort;
  }

  get adminPort(): number {
    return this.servers.adminPort;
  }

  /** Bound only when the config has a `cloud` section. */
  get amqpPort(): number {
    return this.servers.amqpPort;
  }

  get apiPort(): number {
    return this.servers.apiPort;
  }

  get amqpTlsPort(): number | undefined {
    return this.servers.amqpTlsPort;
  }

  get apiTlsPort(): number | undefined {
    return this.servers.apiTlsPort;
  }

  /** The server-side subscription (with a `cloud` section, once started). */
  get amqp(): AmqpServer | undefined {
    return this.servers.amqp;
  }

  /** The client id as the client sent it. */
  clientIdOf(client: Client): string {
    return this.sessions.clientIdOf(client);
  }

  sessionOf(client: Client): Session | undefined {
    return this.sessions.sessionOf(client);
  }

  /** MQTT clients connected now, of every kind. */
  get connectedClients(): number {
    return this.broker?.connectedClients ?? 0;
  }

  /** Devices with a live connection, as `${productKey}/${deviceName}`. */
  onlineDevices(): string[] {
    return this.sessions.onlineDevices();
  }

  /** Sub-devices online through some gateway, as `${productKey}/${deviceName}`. */
  onlineSubDevices(gateway: { productKey: string; deviceName: string }): string[] {
    return this.gateways.onlineThrough(gateway).map(deviceKey);
  }

  /** Starts listening; after stop(), starts again on the same ports with the persistent sessions kept. */
  async start(): Promise<this> {
    const context: HookContext = {
      sessions: this.sessions,
      registry: this.registry,
      platform: this.platform,
      tokenNotices: this.tokenNotices,
      gateways: this.gateways,
      log: (line) => this.log(line),
      // The Simulator emits every broker event too, with the same arguments.
      emit: this.emit.bind(this) as EmitBrokerEvent,
      platformWantsEveryPublish: () => this.amqp !== undefined || this.listenerCount('message') > 0,
    };
    const { Aedes: AedesBroker } = await import('aedes');
    const broker = await AedesBroker.createBroker({ maxClientsIdLength: 1024, persistence: this.persistence, ...brokerHooks(context) });
    this.broker = broker;
    followBrokerEvents(broker, context);
    await this.servers.start(
      broker,
      {
        platform: this.platform,
        registry: this.registry,
        online: (device) => this.sessions.online(device) ?? this.gateways.sessionOf(device),
        onlineClientId: (device) => this.sessions.onlineClientId(device) ?? this.gateways.clientIdOf(device),
        gateways: this.gateways,
        revokeToken: (token) => this.tokenNotices.revoke(token),
      },
      this.cloudConfig && {
        config: this.cloudConfig,
        platform: this.platform,
        registry: this.registry,
        activityOf: (device) => this.sessions.activityOf(device),
        gateways: this.gateways,
      },
    );
    this.log(`aliyun-iot-sim listening: ${this.servers.describe()}`);
    return this;
  }

  async stop(): Promise<void> {
    const broker = this.broker;
    this.broker = undefined;
    this.platform.stop();
    await this.servers.stop(() => new Promise<void>((resolve) => (broker ? broker.close(() => resolve()) : resolve())));
    this.sessions.clearOnline();
    this.gateways.clearOnline();
    this.tokenNotices.stop();
  }
}

/** Starts a simulator; the promise resolves once it listens, with the bound port(s) and stop(). */
export function startSimulator(options: SimulatorOptions): Promise<Simulator> {
  return new Simulator(options).start();
}
export * from './demo';
