// Running flows in node-red-node-test-helper and observing what the nodes did.
import type { Node, NodeMessage, NodeStatus } from 'node-red';
import helper from 'node-red-node-test-helper';
import type { StatusCode } from '../nodes/lib/errors';
import { statusText } from '../nodes/support/status';
import { Simulator, SimulatorOptions } from '../sim';
import { FlowNode, nodeModule, startTestSimulator, waitFor } from './helpers';

helper.init(require.resolve('node-red'));

export { helper };

export const PACKAGE_NODES = [
  'aliyun-iot-connection', 'aliyun-iot-in', 'aliyun-iot-out', 'aliyun-iot-post', 'aliyun-iot-command', 'aliyun-iot-reply',
  'aliyun-iot-invoke',
].map(nodeModule);

export type Credentials = Record<string, Record<string, string>>;

/** The helper replaces Node's methods by recording spies; these read what one node did. */
interface RecordingSpy {
  getCalls(): Array<{ thisValue: unknown; args: unknown[] }>;
}

function callsOf(node: Node, method: 'status' | 'error' | 'warn' | 'log'): unknown[][] {
  return (node[method] as unknown as RecordingSpy).getCalls().filter((call) => call.thisValue === node).map((call) => call.args);
}

export function statusesOf(node: Node): NodeStatus[] {
  return callsOf(node, 'status').map(([status]) => status as NodeStatus);
}

export function lastStatusText(node: Node): string {
  return statusesOf(node).at(-1)?.text ?? '';
}

export function errorsOf(node: Node): string[] {
  return callsOf(node, 'error').map(([text]) => String(text instanceof Error ? text.message : text));
}

export function startServer(): Promise<void> {
  return new Promise((resolve) => helper.startServer(() => resolve()));
}

export async function stopServer(): Promise<void> {
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
    ...flow.map((entry) => (entry.type === 'aliyun-iot-connection' || entry.z ? entry : { x: 100, y: 100, z: TAB, ...entry })),
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

/** Waits until the node's latest status is the given reason (a key under `status` in the catalog). */
export async function waitForStatus(id: string, reason: StatusCode, timeoutMs = 5000): Promise<void> {
  await waitFor(() => lastStatusText(node(id)) === statusText(reason), `status ${reason} on ${id}`, timeoutMs)
    .catch((err: Error) => { throw new Error(`${err.message} (last: ${lastStatusText(node(id))})`); });
}

/** A catch node for every node of the flow, wired to a helper node called `caught`. */
export const CATCH_ALL: FlowNode[] = [
  { id: 'catch', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
  { id: 'caught', type: 'helper' },
];
