// What Node-RED itself costs per message in (f), apart from any in node: messages handed to a function node (the body
// of (f)) wired to a sink, in µs per message, in the bench's runtime (node-red-node-test-helper without its call
// recording) and in a real Node-RED runtime started with default settings, each in a process of its own.
// Usage: node dist/bench/function-node.js [rounds] (default 5) — prints one line per runtime: the median of its
// rounds, after an unmeasured one.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import RED from 'node-red';
import type { Node, NodeMessage } from 'node-red';
import { waitFor } from '../test/support/helpers';
import { FUNCTION_FLOW, FUNCTION_NODE, median } from './setup';

type Runtime = 'helper' | 'real';
const RUNTIMES: readonly Runtime[] = ['helper', 'real'];
const MESSAGES = 40_000;
/** Messages handed over per event-loop turn, as rhea hands over the transfers of one socket read. */
const BATCH = 100;

interface RuntimeNodes {
  registerType(set: string, type: string, constructor: (this: Node, config: object) => void): void;
  createNode(node: Node, config: object): void;
  setFlows(flows: object[], credentials: object, type: 'full'): Promise<unknown>;
  getNode(id: string): Node | null;
}

/** The flow of (f) from the function node on, in a real runtime started as a user starts one (default settings). */
async function realRuntime(): Promise<(id: string) => Node | null> {
  const nodes = (RED as unknown as { nodes: RuntimeNodes }).nodes;
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-node-red-'));
  process.once('exit', () => fs.rmSync(userDir, { recursive: true, force: true }));
  RED.init(http.createServer(), { userDir, credentialSecret: 'bench' } as never);
  await RED.start();
  nodes.registerType('bench', 'helper', function (this: Node, config: object) {
    nodes.createNode(this, config);
  });
  const tab = { id: 'tab', type: 'tab', label: 'bench' };
  await nodes.setFlows([tab, ...FUNCTION_FLOW.map((node) => ({ x: 100, y: 100, z: tab.id, ...node }))], {}, 'full');
  // The runtime starts the new flow after setFlows resolves.
  await waitFor(() => FUNCTION_FLOW.every((node) => nodes.getNode(node.id)), 'the flow to start in the real runtime');
  return (id) => nodes.getNode(id);
}

/** Loaded only here: the test helper initialises itself on load, and the real runtime's process must not have it. */
async function helperRuntime(): Promise<(id: string) => Node | null> {
  const { deployFlow, startRuntime } = await import('./runtime');
  const { helper } = await import('../test/support/node-harness');
  await startRuntime();
  await deployFlow(FUNCTION_FLOW, {}, [FUNCTION_NODE]);
  return (id) => helper.getNode(id);
}

/** µs per message from the first hand-over to the last message at the sink. */
function round(fn: Node, sink: Node): Promise<number> {
  return new Promise((resolve) => {
    let received = 0;
    let sent = 0;
    const start = process.hrtime.bigint();
    const onInput = (): void => {
      if (++received < MESSAGES) return;
      sink.removeListener('input', onInput);
      resolve(Number(process.hrtime.bigint() - start) / 1000 / MESSAGES);
    };
    sink.on('input', onInput);
    const pump = (): void => {
      for (let i = 0; i < BATCH && sent < MESSAGES; i++, sent++) {
        const topic = '/bench/device/user/data';
        fn.receive({ topic, payload: 'x'.repeat(100), qos: 1, retain: false, productKey: 'bench', deviceName: 'device' } as NodeMessage);
      }
      if (sent < MESSAGES) setImmediate(pump);
    };
    pump();
  });
}

async function measure(runtime: Runtime, rounds: number): Promise<number[]> {
  const getNode = runtime === 'real' ? await realRuntime() : await helperRuntime();
  const [fn, sink] = ['fn', 'sink'].map((id) => getNode(id));
  if (!fn || !sink) throw new Error(`the flow did not start in the ${runtime} runtime`);
  await round(fn, sink); // unmeasured: the JIT compiler's round
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) samples.push(await round(fn, sink));
  return samples;
}

function main(): void {
  const [first, second] = process.argv.slice(2);
  if (first === 'helper' || first === 'real') {
    measure(first, Number(second)).then(
      (samples) => {
        process.stdout.write(`\n${JSON.stringify(samples)}\n`);
        process.exit(0);
      },
      (err: Error) => {
        console.error(err.stack ?? err.message);
        process.exit(1);
      },
    );
    return;
  }
  const rounds = Number(first ?? 5);
  if (!(rounds >= 1)) throw new Error('rounds: a positive number');
  for (const runtime of RUNTIMES) {
    const child = spawnSync(process.execPath, [__filename, runtime, String(rounds)], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`${runtime}: ${child.stderr}`);
    // The real runtime logs on stdout too: the samples are the last line.
    const samples = JSON.parse(child.stdout.trim().split('\n').at(-1) ?? '[]') as number[];
    process.stdout.write(`${runtime}: ${median(samples).toFixed(1)} µs/msg (rounds ${samples.map((s) => s.toFixed(1)).join(', ')})\n`);
  }
}

main();
