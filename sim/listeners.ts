// The simulator's listeners: MQTT over TCP, WebSocket and TLS, the admin API and, with a `cloud` section, the
// server-side subscription over AMQP and the OpenAPI. Ports of 0 let the OS choose; a restart keeps the bound ones.
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { AddressInfo } from 'node:net';
import type { Aedes } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { AdminContext, createAdminServer } from './admin';
import { AmqpServer } from './amqp';
import { SimCloudConfig } from './config';
import { ConsumerGroups } from './consumer-groups';
import { openApiHandler } from './openapi';
import { createActions } from './openapi-actions';
import type { Gateways } from './gateway';
import type { SimulatedPlatform } from './platform';
import type { Registry } from './registry';
import type { DeviceActivity } from './sessions';
import type { Device } from '../nodes/lib/protocol';

export interface ListenerOptions {
  host: string;
  port?: number;
  wsPort?: number;
  tlsPort?: number;
  tls?: { key: string | Buffer; cert: string | Buffer };
  adminPort?: number;
  amqpPort?: number;
  apiPort?: number;
  /** With `tls`: AMQP over TLS and the OpenAPI over HTTPS beside the plain listeners. */
  amqpTlsPort?: number;
  apiTlsPort?: number;
  /** How long a consumer of the server-side subscription has to accept a message before it is delivered again. */
  amqpAcceptTimeoutMs?: number;
  /** A silent AMQP connection is closed after this; default: the idle-time-out its client announced (30-300 s). */
  amqpIdleTimeoutMs?: number;
  /** An AMQP connection not logged in this long after it was made is closed; 15 s. */
  amqpAuthTimeoutMs?: number;
}

/** What the cloud-application listeners serve: the config's `cloud` section, the platform and registry behind it. */
export interface CloudApplicationContext {
  config: SimCloudConfig;
  platform: SimulatedPlatform;
  registry: Registry;
  activityOf: (device: Device) => DeviceActivity;
  gateways: Gateways;
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

function close(server: net.Server | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!server?.listening) return resolve();
    if (server instanceof http.Server || server instanceof https.Server) server.closeAllConnections();
    server.close(() => resolve());
  });
}

export class Listeners {
  port = 0;
  wsPort?: number;
  tlsPort?: number;
  adminPort = 0;
  amqpPort = 0;
  apiPort = 0;
  amqpTlsPort?: number;
  apiTlsPort?: number;
  amqp?: AmqpServer;
  private tcpServer?: net.Server;
  private tlsServer?: tls.Server;
  private httpServer?: http.Server;
  private wsServer?: WebSocketServer;
  private adminServer?: http.Server;
  private apiServer?: http.Server;
  private apiTlsServer?: https.Server;

  constructor(
    private readonly options: ListenerOptions,
    private readonly log: (line: string) => void,
  ) {}

  async start(broker: Aedes, admin: AdminContext, cloudApplication?: CloudApplicationContext): Promise<void> {
    const { host } = this.options;
    // No Nagle delay: a broker's small packets (PUBACKs, forwarded messages) should leave at once.
    this.tcpServer = net.createServer({ noDelay: true }, (socket) => broker.handle(socket));
    this.port = await listen(this.tcpServer, this.port || (this.options.port ?? 0), host);
    if (this.options.wsPort !== undefined) {
      this.httpServer = http.createServer();
      this.wsServer = new WebSocketServer({ server: this.httpServer });
      this.wsServer.on('connection', (socket, request) => broker.handle(createWebSocketStream(socket), request));
      this.wsPort = await listen(this.httpServer, this.wsPort || this.options.wsPort, host);
    }
    if (this.options.tlsPort !== undefined) {
      const { key, cert } = this.options.tls ?? {};
      this.tlsServer = tls.createServer({ key, cert }, (socket) => broker.handle(socket));
      // A client that refuses our certificate ends the handshake: nothing for the broker to know.
      this.tlsServer.on('tlsClientError', () => undefined);
      this.tlsPort = await listen(this.tlsServer, this.tlsPort || this.options.tlsPort, host);
    }
    this.adminServer = createAdminServer(admin);
    this.adminPort = await listen(this.adminServer, this.adminPort || (this.options.adminPort ?? 0), host);
    if (cloudApplication) await this.startCloudApplication(cloudApplication);
  }

  /** The cloud-application side: server-side subscription over AMQP and the OpenAPI. */
  private async startCloudApplication({ config, platform, registry, activityOf, gateways }: CloudApplicationContext): Promise<void> {
    const { host } = this.options;
    const log = this.log;
    const { tls: keyAndCert, amqpTlsPort, apiTlsPort, amqpAcceptTimeoutMs, amqpIdleTimeoutMs, amqpAuthTimeoutMs } = this.options;
    this.amqp = new AmqpServer(
      config,
      new ConsumerGroups({ known: config.consumerGroups, log, acceptTimeoutMs: amqpAcceptTimeoutMs }),
      log,
      { idleTimeoutMs: amqpIdleTimeoutMs, authTimeoutMs: amqpAuthTimeoutMs },
    );
    this.amqpPort = await this.amqp.start(this.amqpPort || (this.options.amqpPort ?? 0), host);
    if (amqpTlsPort !== undefined && keyAndCert)
      this.amqpTlsPort = await this.amqp.startTls(this.amqpTlsPort || amqpTlsPort, host, keyAndCert);
    const handler = openApiHandler({
      cloud: config,
      actions: createActions({ cloud: platform, registry, config, activityOf, gateways }),
      log,
    });
    this.apiServer = http.createServer(handler);
    this.apiPort = await listen(this.apiServer, this.apiPort || (this.options.apiPort ?? 0), host);
    if (apiTlsPort !== undefined && keyAndCert) {
      this.apiTlsServer = https.createServer(keyAndCert, handler);
      // A client that refuses our certificate ends the handshake: nothing for the API to know.
      this.apiTlsServer.on('tlsClientError', () => undefined);
      this.apiTlsPort = await listen(this.apiTlsServer, this.apiTlsPort || apiTlsPort, host);
    }
  }

  /** The URLs listened on, for the log. */
  describe(): string {
    const { host } = this.options;
    return (
      `mqtt://${host}:${this.port}${this.wsPort ? ` ws://${host}:${this.wsPort}/mqtt` : ''}` +
      `${this.tlsPort ? ` mqtts://${host}:${this.tlsPort}` : ''}` +
      ` admin http://${host}:${this.adminPort}` +
      (this.amqp ? ` amqp://${host}:${this.amqpPort} api http://${host}:${this.apiPort}` : '') +
      (this.amqpTlsPort ? ` amqps://${host}:${this.amqpTlsPort}` : '') +
      (this.apiTlsPort ? ` api https://${host}:${this.apiTlsPort}` : '')
    );
  }

  /**
   * Closes every listener. The WebSocket server stops taking upgrades first, then `closeBroker` ends the MQTT
   * clients, then the AMQP listener and the servers close.
   */
  async stop(closeBroker: () => Promise<void>): Promise<void> {
    this.wsServer?.close();
    await closeBroker();
    await this.amqp?.stop();
    await Promise.all([this.tcpServer, this.tlsServer, this.httpServer, this.adminServer, this.apiServer, this.apiTlsServer].map(close));
  }
}
