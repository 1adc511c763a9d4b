// Running flows in node-red-node-test-helper and observing what the nodes did.
import type { Node, NodeMessage, NodeStatus } from 'node-red';
import helper from 'node-red-node-test-helper';
import { strict as assert } from 'node:assert';
import { DeviceConnection } from '../../nodes/lib/connection';
import type { StatusCode } from '../../nodes/lib/errors';
import type { ConnectionConfigNode } from '../../nodes/support/connection-lookup';
import { statusText } from '../../nodes/support/status';
import { Simulator, SimulatorOptions } from '../../sim';
import { FlowNode, isClient, nodeModule, startTestSimulator, waitFor } from './helpers';
import { CONFIG_NODE_TYPES, PACKAGE_NODE_TYPES } from './paths';
import { TEST_RUNTIME_SETTINGS } from './reconnect';

helper.init(require.resolve('node-red'));
helper.settings({ aliyunIot: TEST_RUNTIME_SETTINGS } as Parameters<typeof helper.settings>[0]);

export { helper };

export const PACKAGE_NODES = PACKAGE_NODE_TYPES.map(nodeModule);

export type Credentials = Record<string, Record<string, string>>;

/** The helper replaces Node's methods by recording spies; these read what one node did. */
interface RecordingSpy {
  getCalls(): Array<{ thisValue: unknown; args: unknown[] }>;
}

function callsOf(node: Node, method: 'status' | 'error' | 'warn' | 'log'): unknown[][] {
  return (node[method] as unknown as RecordingSpy)
    .getCalls()
    .filter((call) => call.thisValue === node)
    .map((call) => call.args);
}

export function statusesOf(node: Node): NodeStatus[] {
  return callsOf(node, 'status').map(([status]) => status as NodeStatus);
}

export function lastStatusText(node: Node): string {
  return statusesOf(node).at(-1)?.text ?? '';
}

/** The msg.code of each node.error call (undefined where the call had no msg, or the msg no code). */
export function errorCodesOf(node: Node): unknown[] {
  return callsOf(node, 'error').map(([, msg]) => (msg as { code?: unknown } | undefined)?.code);
}

export function errorsOf(node: Node): string[] {
  return callsOf(node, 'error').map(([text]) => String(text instanceof Error ? text.message : text));
}

export function startServer(): Promise<void> {
  return new Promise((resolve) => helper.startServer(() => resolve()));
}

export async function stopServer(): Promise<void> {
  // The test helper's spies on Node.prototype record every call with its msg, and unload() leaves those records
  // reachable: without this, one fuzz suite's generated msgs stayed in the heap (~450 MB) for the rest of the run.
  (helper as unknown as { _sandbox: { resetHistory(): void } })._sandbox.resetHistory();
  await helper.unload();
  await new Promise<void>((resolve) => helper.stopServer(() => resolve()));
}

const TAB = 'tab1';

/**
 * Puts every node but the config nodes on one tab with a position, as the editor would: the runtime takes a node
 * without x and y for a config node.
 */
export function onTab(flow: FlowNode[]): FlowNode[] {
  return [
    { id: TAB, type: 'tab', label: 'test' },
    ...flow.map((entry) => (CONFIG_NODE_TYPES.includes(entry.type) || entry.z ? entry : { x: 100, y: 100, z: TAB, ...entry })),
  ];
}

/**
 * Registers mocha hooks that give each test a fresh simulator and Node-RED runtime; `sim` may be replaced by a
 * test (e.g. with a restarted simulator) and is stopped afterwards.
 */
export function simulatorAndRuntime(options: Partial<SimulatorOptions> = {}): { sim: Simulator } {
  const context = {} as { sim: Simulator };
  beforeEach(async function () {
    context.sim = await startTestSimulator(options);
    recordGrants(context.sim);
    await startServer();
  });
  afterEach(async function () {
    await stopServer();
    await context.sim.stop();
  });
  return context;
}

export async function deploy(flow: FlowNode[], credentials: Credentials = {}): Promise<void> {
  await helper.load(PACKAGE_NODES as never, onTab(flow) as never, credentials as never);
}

/** A redeploy of the running flow: 'full' restarts everything, 'nodes' only what changed. */
export async function redeploy(flow: FlowNode[], type: 'full' | 'nodes', credentials: Credentials = {}): Promise<void> {
  await helper.setFlows(onTab(flow) as never, type, credentials as never);
}

/** Collects what reaches a `helper` node from the moment of the call. */
export function collect(id: string): NodeMessage[] {
  const received: NodeMessage[] = [];
  helper.getNode(id).on('input', (msg: NodeMessage) => received.push(msg));
  return received;
}

export function node(id: string): Node {
  return helper.getNode(id);
}

/** The device connection of a deployed config node. */
export function deviceConnectionOf(id: string): DeviceConnection {
  const connection = (node(id) as ConnectionConfigNode).connection;
  assert.ok(connection instanceof DeviceConnection, `config node ${id} has a device connection`);
  return connection;
}

/** Every subscription each simulator granted since `recordGrants`, as the simulator's `subscribe` events. */
const grants = new WeakMap<Simulator, Array<{ clientId: string; topics: string[] }>>();

export function recordGrants(sim: Simulator): void {
  const granted: Array<{ clientId: string; topics: string[] }> = [];
  grants.set(sim, granted);
  sim.on('subscribe', (info) => granted.push(info));
}

/**
 * Waits until the simulator (recording since `recordGrants`, as `simulatorAndRuntime` does) has granted every
 * filter the config node's device connection holds: from then on messages to them arrive.
 */
export async function waitForConnectionSubscribed(sim: Simulator, connectionId: string): Promise<void> {
  const connection = deviceConnectionOf(connectionId);
  const clientId = connection.expandTopic('${clientId}');
  const granted = grants.get(sim) ?? [];
  const isGranted = (filter: string): boolean => granted.some((info) => isClient(info.clientId, clientId) && info.topics.includes(filter));
  await waitFor(
    () => connection.connected && connection.brokerSubscriptions.length > 0 && connection.brokerSubscriptions.every(isGranted),
    `the subscriptions of ${connectionId} granted to ${clientId}`,
  );
}

/** Hands `msg` to the node's input, as a wire would. */
export function send(id: string, msg: Record<string, unknown>): void {
  node(id).receive(msg as NodeMessage);
}

export interface EchoFlowOptions {
  /** The topic template both nodes use; the echo topic of the test registry by default. */
  topic?: string;
  qos?: '0' | '1';
  datatype?: string;
  /** Properties for the in node (e.g. a name that changes between redeploys). */
  inNode?: Record<string, unknown>;
  outNode?: Record<string, unknown>;
}

export const ECHO_TOPIC = '/${productKey}/${deviceName}/user/echo';

/**
 * An in node and an out node on one connection and one topic, the in node wired to the helper node `received`:
 * what `out` publishes comes back on `received`. The connection node comes first.
 */
export function echoFlow(connection: FlowNode, options: EchoFlowOptions = {}): FlowNode[] {
  const topic = options.topic ?? ECHO_TOPIC;
  const qos = options.qos ?? '1';
  return [
    connection,
    {
      id: 'in',
      type: 'aliyun-iot-in',
      connection: connection.id,
      topic,
      qos,
      datatype: options.datatype ?? 'utf8',
      wires: [['received']],
      ...options.inNode,
    },
    { id: 'out', type: 'aliyun-iot-out', connection: connection.id, topic, qos, retain: '', ...options.outNode },
    { id: 'received', type: 'helper' },
  ];
}

/** Waits until the node's latest status is the given reason (a key under `status` in the catalog). */
export async function waitForStatus(id: string, reason: StatusCode, timeoutMs = 5000): Promise<void> {
  await waitFor(() => lastStatusText(node(id)) === statusText(reason), `status ${reason} on ${id}`, timeoutMs).catch((err: Error) => {
    throw new Error(`${err.message} (last: ${lastStatusText(node(id))})`);
  });
}

/** A catch node for every node of the flow, wired to a helper node called `caught`. */
export const CATCH_ALL: FlowNode[] = [
  { id: 'catch', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
  { id: 'caught', type: 'helper' },
];
