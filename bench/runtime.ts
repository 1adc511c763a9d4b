// The forwarders under test, in this process: our nodes and the core MQTT nodes in a Node-RED runtime (started with
// node-red-node-test-helper, as the tests do), and a raw mqtt.js client.
import * as path from 'node:path';
import mqtt, { MqttClient } from 'mqtt';
import { FlowNode } from '../test/support/helpers';
import { PACKAGE_NODES, helper, onTab, startServer, stopServer } from '../test/support/node-harness';
import { BENCH_PK, DEVICES, Qos, benchSecret, deviceLogin, outTopic, rawClientOptions } from './setup';

export type Variant = 'ours' | 'core' | 'raw';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const CORE_MQTT: unknown = require(
  path.join(path.dirname(require.resolve('@node-red/nodes/package.json')), 'core', 'network', '10-mqtt.js'),
);

/** A running forwarder: every message on one of `filters` goes to the out topic of the forwarder's device. */
export interface Forwarder {
  stop(): Promise<void>;
}

export interface ForwardSpec {
  port: number;
  qos: Qos;
  filters: string[];
}

/** The helper's private parts that record every send/status/log call; a benchmark must not pay for the recording. */
interface HelperInternals {
  _sandbox?: { restore(): void };
  _logSpy?: { restore(): void };
  _NodePrototype?: Record<string, unknown>;
  _redNodes?: { eachNode(callback: (config: { id: string }) => void): void };
}

/**
 * The Node methods the helper wraps in a recording proxy on every load. The sandbox's restore puts the prototype's
 * methods back, but a wired node keeps its own copy of `send` (and so of the proxy): those are put back here too.
 */
const RECORDED_METHODS = ['log', 'status', 'warn', 'error', 'debug', 'trace', 'send'] as const;

function stopRecording(internals: HelperInternals): void {
  const prototype = internals._NodePrototype ?? {};
  const recorders = new Map(RECORDED_METHODS.map((name) => [prototype[name], name]));
  internals._logSpy?.restore();
  internals._logSpy = undefined;
  internals._sandbox?.restore();
  internals._redNodes?.eachNode(({ id }) => {
    const node = helper.getNode(id) as unknown as Record<string, unknown> | null;
    for (const name of RECORDED_METHODS) {
      if (node && Object.prototype.hasOwnProperty.call(node, name) && recorders.get(node[name]) === name) node[name] = prototype[name];
    }
  });
}

let runtimeStarted = false;

export async function startRuntime(): Promise<void> {
  if (runtimeStarted) return;
  await startServer();
  runtimeStarted = true;
}

export async function stopRuntime(): Promise<void> {
  if (!runtimeStarted) return;
  runtimeStarted = false;
  await stopServer();
}

/** Deploys `flow` with our nodes, the core MQTT nodes and `moreNodes` available, then removes the helper's call recording. */
export async function deployFlow(
  flow: FlowNode[],
  credentials: Record<string, Record<string, string>>,
  moreNodes: unknown[] = [],
): Promise<void> {
  await helper.load([...PACKAGE_NODES, CORE_MQTT, ...moreNodes] as never, onTab(flow) as never, credentials as never);
  stopRecording(helper as unknown as HelperInternals);
}

export async function undeploy(): Promise<void> {
  await helper.unload();
}

/** An aliyun-iot-connection node for a bench device, and its credentials. */
export function oursConnection(
  id: string,
  port: number,
  deviceName: string,
): { node: FlowNode; credentials: Record<string, Record<string, string>> } {
  return {
    node: {
      id,
      type: 'aliyun-iot-connection',
      name: '',
      mode: 'iot',
      productKey: BENCH_PK,
      deviceName,
      protocol: 'mqtt',
      host: '127.0.0.1',
      port: String(port),
      keepalive: 60,
      cleanSession: true,
      queueSize: 1000,
      // Capacity, not the platform's rate limit, is measured.
      maxRate: '0',
    },
    credentials: { [id]: { deviceSecret: benchSecret(deviceName) } },
  };
}

function oursFlow(spec: ForwardSpec): { flow: FlowNode[]; credentials: Record<string, Record<string, string>> } {
  const connection = oursConnection('conn', spec.port, DEVICES.ours);
  const flow: FlowNode[] = [
    connection.node,
    { id: 'out', type: 'aliyun-iot-out', connection: 'conn', topic: outTopic(DEVICES.ours), qos: String(spec.qos), retain: '' },
  ];
  spec.filters.forEach((filter, i) => {
    flow.push({
      id: `in${i}`,
      type: 'aliyun-iot-in',
      connection: 'conn',
      topic: filter,
      qos: String(spec.qos),
      datatype: 'auto-detect',
      wires: [['out']],
    });
  });
  return { flow, credentials: connection.credentials };
}

function coreFlow(spec: ForwardSpec): { flow: FlowNode[]; credentials: Record<string, Record<string, string>> } {
  const login = deviceLogin(DEVICES.core);
  const flow: FlowNode[] = [
    {
      id: 'broker',
      type: 'mqtt-broker',
      name: '',
      broker: '127.0.0.1',
      port: String(spec.port),
      clientid: login.clientId,
      usetls: false,
      protocolVersion: '4',
      keepalive: '60',
      cleansession: true,
      autoConnect: true,
      autoUnsubscribe: true,
    },
    { id: 'out', type: 'mqtt out', broker: 'broker', topic: outTopic(DEVICES.core), qos: String(spec.qos), retain: '' },
  ];
  spec.filters.forEach((filter, i) => {
    flow.push({
      id: `in${i}`,
      type: 'mqtt in',
      broker: 'broker',
      topic: filter,
      qos: String(spec.qos),
      datatype: 'auto-detect',
      nl: false,
      rap: true,
      rh: 0,
      inputs: 0,
      wires: [['out']],
    });
  });
  return { flow, credentials: { broker: { user: login.username, password: login.password } } };
}

async function rawForwarder(spec: ForwardSpec): Promise<Forwarder> {
  const client: MqttClient = await mqtt.connectAsync(rawClientOptions(spec.port, DEVICES.raw));
  const options = { qos: spec.qos };
  const topic = outTopic(DEVICES.raw);
  client.on('message', (_topic, payload) => {
    client.publish(topic, payload, options);
  });
  await client.subscribeAsync(spec.filters, { qos: spec.qos });
  return { stop: () => client.endAsync(true) };
}

export async function startForwarder(variant: Variant, spec: ForwardSpec): Promise<Forwarder> {
  if (variant === 'raw') return rawForwarder(spec);
  await startRuntime();
  const { flow, credentials } = variant === 'ours' ? oursFlow(spec) : coreFlow(spec);
  await deployFlow(flow, credentials);
  return { stop: undeploy };
}

/**
 * IoT Platform allows 100 subscriptions per device and our connection refuses more before any traffic. The 1000-filter
 * row of (c) measures dispatch, not the platform, so its runs raise that client-side check through the runtime's
 * settings (`aliyunIot.maxSubscriptions`); returns the undo.
 */
export function liftSubscriptionLimit(max: number): () => void {
  helper.settings({ aliyunIot: { maxSubscriptions: max } } as Parameters<typeof helper.settings>[0]);
  return () => {
    helper.settings({});
  };
}
