// Fixtures of the cloud-application tests: a simulator with a `cloud` section, signed OpenAPI calls, devices and
// AMQP consumers logging in with the aksign signature of nodes/lib/protocol.
import Iot from '@alicloud/iot20180120';
import * as $OpenApi from '@alicloud/openapi-client';
import mqtt, { MqttClient } from 'mqtt';
import { CloudApplicationConnection, ConnectionLogger, ReconnectPolicy, resolveCloud } from '../../nodes/lib/connection';
import rhea, { Connection, EventContext } from 'rhea';
import { bodyBytes, signAmqpLogin, signIotLogin, signedParams } from '../../nodes/lib/protocol';
import { Simulator, SimulatorOptions, startSimulator } from '../../sim';
import { FlowNode, waitFor } from './helpers';
import { AK_ID, AK_SECRET, CLOUD_CONFIG, GROUP, PK, deviceSecret } from './registry';

export function startCloudSimulator(extra: Partial<SimulatorOptions> = {}): Promise<Simulator> {
  return startSimulator({ ...CLOUD_CONFIG, ...extra, port: 0 });
}

/** Mocha hooks of a suite: one cloud simulator for all its tests, and a device connected afresh for each test. */
export function cloudSimulatorWithDevice(
  deviceName: string,
  extra: Partial<SimulatorOptions> = {},
): { readonly sim: Simulator; readonly device: MqttClient } {
  const env = {} as { sim: Simulator; device: MqttClient };
  before(async function () {
    env.sim = await startCloudSimulator(extra);
  });
  beforeEach(async function () {
    env.device = await connectDevice(env.sim, deviceName);
  });
  afterEach(async function () {
    await endClients(env.device);
  });
  after(async function () {
    await env.sim.stop();
  });
  return env;
}

/** A cloud-application connection config node for the simulator and its credentials, keyed for helper.load. */
export function cloudConnection(
  id: string,
  sim: Simulator,
  secret = AK_SECRET,
): { node: FlowNode; credentials: Record<string, Record<string, string>> } {
  return {
    node: {
      id,
      type: 'aliyun-iot-connection',
      name: '',
      mode: 'cloud',
      region: 'cn-shanghai',
      uid: '1234567890',
      consumerGroupId: GROUP,
      clientId: `nodes-${id}`,
      amqpEndpoint: `amqp://127.0.0.1:${sim.amqpPort}`,
      apiEndpoint: `http://127.0.0.1:${sim.apiPort}`,
    },
    credentials: { [id]: { accessKeyId: AK_ID, accessKeySecret: secret } },
  };
}

const quiet: ConnectionLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** A cloud-application connection (the library's, no Node-RED) to the simulator, or to `amqpPort` (a proxy) for AMQP. */
export function cloudClient(
  sim: Simulator,
  options: { clientId: string; secret?: string; amqpPort?: number; policy?: Partial<ReconnectPolicy> },
): CloudApplicationConnection {
  return new CloudApplicationConnection(
    resolveCloud({
      mode: 'cloud',
      uid: '1234567890',
      consumerGroupId: GROUP,
      clientId: options.clientId,
      amqpEndpoint: `amqp://127.0.0.1:${options.amqpPort ?? sim.amqpPort}`,
      apiEndpoint: `http://127.0.0.1:${sim.apiPort}`,
      credentials: { accessKeyId: AK_ID, accessKeySecret: options.secret ?? AK_SECRET },
    }),
    quiet,
    options.policy,
  );
}

/** A device of the test registry on raw mqtt.js, connected. */
export function connectDevice(sim: Simulator, deviceName: string): Promise<MqttClient> {
  const login = signIotLogin({ productKey: PK, deviceName, deviceSecret: deviceSecret(deviceName) }, { securemode: 3 });
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({ host: '127.0.0.1', port: sim.port, protocol: 'mqtt', reconnectPeriod: 0, ...login });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

export function subscribe(client: MqttClient, filter: string): Promise<void> {
  return new Promise((resolve, reject) => client.subscribe(filter, { qos: 1 }, (err) => (err ? reject(err) : resolve())));
}

export function endClients(...clients: MqttClient[]): Promise<void[]> {
  return Promise.all(clients.map((client) => new Promise<void>((resolve) => client.end(true, {}, () => resolve()))));
}

export interface ApiCall {
  method?: 'GET' | 'POST';
  accessKeyId?: string;
  accessKeySecret?: string;
  nonce?: string;
  timestamp?: string;
  /** Applied to the signed parameters before sending (to tamper with them). */
  tamper?: (params: Record<string, string>) => void;
}

export interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** A signed OpenAPI call to the simulator, signed by nodes/lib/protocol's signedParams. */
export async function callApi(
  sim: Simulator,
  action: string,
  params: Record<string, string | number | undefined>,
  call: ApiCall = {},
): Promise<ApiAnswer> {
  const method = call.method ?? 'POST';
  const signed = signedParams({
    accessKeyId: call.accessKeyId ?? AK_ID,
    accessKeySecret: call.accessKeySecret ?? AK_SECRET,
    action,
    regionId: 'cn-shanghai',
    params,
    method,
    nonce: call.nonce,
    timestamp: call.timestamp,
  });
  call.tamper?.(signed);
  const query = new URLSearchParams(signed);
  const url = `http://127.0.0.1:${sim.apiPort}/`;
  const response =
    method === 'GET'
      ? await fetch(`${url}?${query}`)
      : await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: query });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

export interface ReceivedMessage {
  topic: string;
  messageId: string;
  generateTime: number;
  payload: Buffer;
  context: EventContext;
}

export interface Consumer {
  connection: Connection;
  messages: ReceivedMessage[];
  /** Resolves once the receiver link is open, rejects when the login is refused. */
  ready: Promise<void>;
  close(): Promise<void>;
  /** Drops the TCP connection without closing the AMQP session. */
  destroy(): void;
}

export interface ConsumerOptions {
  clientId: string;
  group?: string;
  /** Accept every message on arrival (default); false leaves the outcome to the test. */
  accept?: boolean;
  accessKeyId?: string;
  accessKeySecret?: string;
  credit?: number;
  /** The signed login time; now by default. */
  timestamp?: number;
  /** AMQP over TLS to the simulator's amqpTlsPort, trusting this CA. */
  ca?: string;
}

/** An AMQP 1.0 consumer of the server-side subscription, as a backend would write it with rhea. */
export function amqpConsumer(sim: Simulator, options: ConsumerOptions): Consumer {
  const login = signAmqpLogin({
    clientId: options.clientId,
    accessKeyId: options.accessKeyId ?? AK_ID,
    accessKeySecret: options.accessKeySecret ?? AK_SECRET,
    consumerGroupId: options.group ?? GROUP,
    timestamp: options.timestamp,
  });
  const container = rhea.create_container({ id: options.clientId });
  container.on('error', () => undefined);
  const connection = container.connect({
    host: '127.0.0.1',
    reconnect: false,
    username: login.username,
    password: login.password,
    ...(options.ca === undefined
      ? { port: sim.amqpPort, transport: 'tcp' as const }
      : { port: sim.amqpTlsPort, transport: 'tls' as const, ca: options.ca, servername: 'localhost' }),
  });
  const messages: ReceivedMessage[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    connection.on('receiver_open', () => resolve());
    connection.on('connection_error', (context: EventContext) =>
      reject(context.error ?? context.connection.error ?? new Error('connection error')),
    );
    connection.on('disconnected', (context: EventContext) => reject(context.error ?? new Error('disconnected')));
  });
  ready.catch(() => undefined);
  connection.on('connection_open', () => {
    connection.open_receiver({ autoaccept: options.accept ?? true, credit_window: options.credit ?? 100 });
  });
  connection.on('message', (context: EventContext) => {
    const message = context.message;
    if (!message) return;
    const properties = (message.application_properties ?? {}) as Record<string, unknown>;
    messages.push({
      topic: String(properties.topic),
      messageId: String(properties.messageId),
      generateTime: Number(properties.generateTime),
      payload: bodyBytes(message.body),
      context,
    });
  });
  let gone = false;
  connection.on('disconnected', () => {
    gone = true;
  });
  return {
    connection,
    messages,
    ready,
    close: () =>
      new Promise<void>((resolve) => {
        if (gone || !connection.is_open()) return resolve();
        const timer = setTimeout(() => {
          (connection as unknown as { socket?: { destroy(): void } }).socket?.destroy();
          resolve();
        }, 1000);
        const done = (): void => {
          clearTimeout(timer);
          resolve();
        };
        connection.once('connection_close', done);
        connection.once('disconnected', done);
        connection.close();
      }),
    destroy: () => {
      gone = true;
      (connection as unknown as { socket?: { destroy(): void } }).socket?.destroy();
    },
  };
}

export async function waitForCount(list: unknown[], count: number, what: string, timeoutMs = 5000): Promise<void> {
  await waitFor(() => list.length >= count, `${count} ${what}`, timeoutMs);
}

/** The custom topic the suites' device dev01 publishes to. */
export const UPDATE_TOPIC = `/${PK}/dev01/user/update`;

export interface AmqpSuite {
  readonly sim: Simulator;
  readonly device: MqttClient;
  /** An AMQP consumer, closed after the test. */
  consumer(options: ConsumerOptions): Consumer;
  /** dev01 publishes `${prefix}0`, `${prefix}1`, … to UPDATE_TOPIC at QoS 1, one after the other. */
  publish(count: number, prefix?: string): Promise<string[]>;
}

/** Mocha hooks of a server-side subscription suite: a cloud simulator and a connected dev01 for each test. */
export function amqpSuite(extra: Partial<SimulatorOptions> = {}): AmqpSuite {
  const env = {} as { sim: Simulator; device: MqttClient };
  const consumers: Consumer[] = [];
  beforeEach(async function () {
    env.sim = await startCloudSimulator(extra);
    env.device = await connectDevice(env.sim, 'dev01');
  });
  afterEach(async function () {
    await Promise.all(consumers.splice(0).map((entry) => entry.close()));
    await endClients(env.device);
    await env.sim.stop();
  });
  return {
    get sim() {
      return env.sim;
    },
    get device() {
      return env.device;
    },
    consumer(options) {
      const created = amqpConsumer(env.sim, options);
      consumers.push(created);
      return created;
    },
    async publish(count, prefix = 'm') {
      const sent: string[] = [];
      for (let i = 0; i < count; i++) {
        const payload = `${prefix}${i}`;
        sent.push(payload);
        await new Promise<void>((resolve, reject) =>
          env.device.publish(UPDATE_TOPIC, payload, { qos: 1 }, (err) => (err ? reject(err) : resolve())),
        );
      }
      return sent;
    },
  };
}

/** Alibaba's own IoT Platform SDK with its default settings (signature V3), pointed at the simulator's OpenAPI. */
export function iotClient(sim: Simulator, config: Partial<$OpenApi.Config> = {}): Iot {
  return new Iot(
    new $OpenApi.Config({
      accessKeyId: AK_ID,
      accessKeySecret: AK_SECRET,
      regionId: 'cn-shanghai',
      endpoint: `127.0.0.1:${sim.apiPort}`,
      protocol: 'http',
      ...config,
    }),
  );
}
