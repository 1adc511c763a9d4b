// The cloud path, in this process against the `cloud` broker: (f) server-side subscription → aliyun-iot-in → a
// function node against a raw rhea receiver doing the same, and against a raw rhea receiver handing its messages to
// the same function node in a flow (what Node-RED costs with no in node at all), (g) 1,000 in nodes with distinct filters on one cloud
// connection against 1, (h) OpenAPI Pub calls through aliyun-iot-out against @alicloud/pop-core in a loop, both with
// the same number of calls in flight.
import { ChildProcess, fork } from 'node:child_process';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import RPCClient from '@alicloud/pop-core';
import type { NodeMessage } from 'node-red';
import rhea, { EventContext } from 'rhea';
import { DEFAULT_API_CONCURRENCY } from '../nodes/lib/connection';
import { IOT_API_VERSION, bodyBytes, signAmqpLogin } from '../nodes/lib/protocol';
import { FlowNode } from '../test/support/helpers';
import { helper } from '../test/support/node-harness';
import type { FeedReply, FeedRequest } from './feed';
import { LoadResult, padded } from './load';
import { deployFlow, startRuntime, undeploy } from './runtime';
import { BENCH_CLOUD, DEVICES, FUNCTION_FLOW, FUNCTION_NODE, outTopic } from './setup';

/** Where (h) publishes by the OpenAPI: a custom topic of a bench device. */
const PUB_TOPIC = outTopic(DEVICES.ours);

export interface CloudPorts {
  port: number;
  amqpPort: number;
  apiPort: number;
}

export type CloudVariant = 'ours' | 'raw';
/** (f)'s consumers: our in node, a raw receiver, and a raw receiver feeding the function node of a flow. */
export type SubscriptionVariant = CloudVariant | 'raw-flow';

const STALL_MS = 10_000;
const PROBE_TIMEOUT_MS = 15_000;

const CORE_NODES = path.join(path.dirname(require.resolve('@node-red/nodes/package.json')), 'core');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const COMPLETE_NODE: unknown = require(path.join(CORE_NODES, 'common', '24-complete.js'));
// eslint-disable-next-line @typescript-eslint/no-require-imports
const CATCH_NODE: unknown = require(path.join(CORE_NODES, 'common', '25-catch.js'));

let nextRun = 1;

/** Counts the messages of one measurement, `m<run>:<seq>:…`, once each; a probe `p<run>:` marks the consumer ready. */
class Counter {
  readonly run = nextRun++;
  received = 0;
  onReady: () => void = () => undefined;
  onProgress: () => void = () => undefined;
  private readonly seen: Uint8Array;

  constructor(readonly n: number) {
    this.seen = new Uint8Array(n);
  }

  take(text: string): void {
    if (text.startsWith(`p${this.run}:`)) {
      this.onReady();
      return;
    }
    const prefix = `m${this.run}:`;
    if (!text.startsWith(prefix)) return;
    const seq = Number(text.slice(prefix.length, text.indexOf(':', prefix.length)));
    if (!(seq >= 0 && seq < this.n) || this.seen[seq]) return;
    this.seen[seq] = 1;
    this.received++;
    this.onProgress();
  }
}

function cloudConnectionNode(ports: CloudPorts): { node: FlowNode; credentials: Record<string, Record<string, string>> } {
  return {
    node: {
      id: 'backend',
      type: 'aliyun-iot-connection',
      name: '',
      mode: 'cloud',
      region: 'cn-shanghai',
      uid: BENCH_CLOUD.uid,
      consumerGroupId: BENCH_CLOUD.consumerGroupId,
      clientId: 'bench-ours',
      amqpEndpoint: `amqp://127.0.0.1:${ports.amqpPort}`,
      apiEndpoint: `http://127.0.0.1:${ports.apiPort}`,
    },
    credentials: { backend: { accessKeyId: BENCH_CLOUD.accessKeyId, accessKeySecret: BENCH_CLOUD.accessKeySecret } },
  };
}

/** The in nodes of (f) and (g), each wired to the function node, whose output reaches the counter. */
async function oursConsumer(ports: CloudPorts, filters: string[], counter: Counter): Promise<() => Promise<void>> {
  await startRuntime();
  const connection = cloudConnectionNode(ports);
  const flow: FlowNode[] = [
    connection.node,
    ...FUNCTION_FLOW,
    ...filters.map((filter, i) => ({
      id: `in${i}`,
      type: 'aliyun-iot-in',
      connection: 'backend',
      topic: filter,
      qos: '1',
      datatype: 'utf8',
      wires: [['fn']],
    })),
  ];
  await deployFlow(flow, connection.credentials, [FUNCTION_NODE]);
  helper.getNode('sink').on('input', (msg: NodeMessage) => counter.take(String(msg.payload)));
  return undeploy;
}

/** (f) raw-flow: the raw receiver, each message handed to the function node of a flow before it is accepted. */
async function rawFlowConsumer(ports: CloudPorts, counter: Counter): Promise<() => Promise<void>> {
  await startRuntime();
  await deployFlow(FUNCTION_FLOW, {}, [FUNCTION_NODE]);
  helper.getNode('sink').on('input', (msg: NodeMessage) => counter.take(String(msg.payload)));
  const fn = helper.getNode('fn');
  const stop = await rawConsumer(ports, counter, (msg) => fn.receive(msg as NodeMessage));
  return async () => {
    await stop();
    await undeploy();
  };
}

/** A backend written with rhea as the platform's samples do: the same login, credit and accept-after-handling. */
async function rawConsumer(
  ports: CloudPorts,
  counter: Counter,
  deliver?: (msg: Record<string, unknown>) => void,
): Promise<() => Promise<void>> {
  const clientId = 'bench-raw';
  const login = signAmqpLogin({
    clientId,
    accessKeyId: BENCH_CLOUD.accessKeyId,
    accessKeySecret: BENCH_CLOUD.accessKeySecret,
    consumerGroupId: BENCH_CLOUD.consumerGroupId,
  });
  const container = rhea.create_container({ id: clientId });
  container.on('error', () => undefined);
  const connection = container.connect({
    host: '127.0.0.1',
    port: ports.amqpPort,
    container_id: clientId,
    username: login.username,
    password: login.password,
    reconnect: false,
    transport: 'tcp',
  });
  connection.on('message', (context: EventContext) => {
    const message = context.message;
    if (!message) return;
    const topic = String((message.application_properties as Record<string, unknown> | undefined)?.topic ?? '');
    const [, productKey, deviceName] = topic.split('/');
    const msg = { topic, payload: bodyBytes(message.body).toString('utf8'), productKey, deviceName, device: '' };
    if (deliver) deliver(msg);
    else {
      msg.device = `${msg.productKey}/${msg.deviceName}`;
      counter.take(msg.payload);
    }
    context.delivery?.accept();
  });
  await new Promise<void>((resolve) =>
    connection.once('connection_open', () => {
      connection.open_receiver({ autoaccept: false, credit_window: 100 });
      resolve();
    }),
  );
  return () =>
    new Promise<void>((resolve) => {
      connection.once('connection_close', () => resolve());
      connection.close();
    });
}

/** Messages counted between two reports to the feed: its window is kept to within this many. */
const REPORT_EVERY = 100;

/** The feed's child process (feed.ts), one for the run, fed one measurement at a time. */
export class Feeder {
  private readonly child: ChildProcess = fork(path.join(__dirname, 'feed.js'), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });

  private tell(request: FeedRequest): void {
    this.child.send(request);
  }

  private ask(request: FeedRequest, until: FeedReply['cmd']): Promise<FeedReply> {
    return new Promise((resolve, reject) => {
      const listener = (reply: FeedReply): void => {
        if (reply.cmd !== until && reply.cmd !== 'failed') return;
        this.child.off('message', listener);
        if (reply.cmd === 'failed') reject(new Error(`feed: ${reply.error}`));
        else resolve(reply);
      };
      this.child.on('message', listener);
      this.child.send(request);
    });
  }

  /** Publishes `counter.n` messages over `topics`, at most `window` not yet counted. */
  async feed(ports: CloudPorts, topics: string[], window: number, counter: Counter): Promise<LoadResult> {
    const { n } = counter;
    await this.ask({ cmd: 'start', port: ports.port, topics, run: counter.run, n, window }, 'connected');
    let result: LoadResult;
    let sent = 0;
    try {
      const ready = await new Promise<boolean>((resolve) => {
        const timeout = setTimeout(() => resolve(false), PROBE_TIMEOUT_MS);
        counter.onReady = () => {
          clearTimeout(timeout);
          resolve(true);
        };
      });
      if (!ready) throw new Error('consumer not ready');
      result = await new Promise<LoadResult>((resolve) => {
        let lastProgress = Date.now();
        const start = performance.now();
        const finish = (error?: string): void => {
          clearInterval(watchdog);
          counter.onProgress = () => undefined;
          const ms = performance.now() - start;
          const { received } = counter;
          resolve({ id: counter.run, sent: n, received, lost: n - received, ms, perSecond: (received / ms) * 1000, error });
        };
        counter.onProgress = () => {
          lastProgress = Date.now();
          if (counter.received === n) finish();
          else if (counter.received % REPORT_EVERY === 0) this.tell({ cmd: 'counted', received: counter.received });
        };
        const watchdog = setInterval(() => {
          if (Date.now() - lastProgress > STALL_MS) finish(`stalled at ${counter.received}/${n}`);
        }, 250);
        this.tell({ cmd: 'go' });
      });
    } finally {
      counter.onReady = () => undefined;
      const stopped = await this.ask({ cmd: 'stop' }, 'stopped');
      if (stopped.cmd === 'stopped') sent = stopped.sent;
    }
    return { ...result, sent };
  }

  stop(): void {
    this.child.disconnect();
  }
}

/** (f) and (g): one measurement of a consumer over `filters`, fed on `topics`. */
export async function measureSubscription(
  feeder: Feeder,
  variant: SubscriptionVariant,
  ports: CloudPorts,
  filters: Array<{ filter: string; topic: string }>,
  n: number,
  window: number,
): Promise<LoadResult> {
  const counter = new Counter(n);
  const stop =
    variant === 'ours'
      ? await oursConsumer(
          ports,
          filters.map((f) => f.filter),
          counter,
        )
      : variant === 'raw-flow'
        ? await rawFlowConsumer(ports, counter)
        : await rawConsumer(ports, counter);
  try {
    // With the feed in a process of its own, this process's CPU is the consumer's (and an idle Node-RED runtime's).
    const cpuBefore = process.cpuUsage();
    const result = await feeder.feed(
      ports,
      filters.map((f) => f.topic),
      window,
      counter,
    );
    const cpu = process.cpuUsage(cpuBefore);
    return { ...result, cpuMicrosPerMessage: (cpu.user + cpu.system) / Math.max(1, result.received) };
  } finally {
    await stop();
  }
}

function pubParams(seq: number): Record<string, string | number> {
  return {
    ProductKey: PUB_TOPIC.split('/')[1],
    TopicFullName: PUB_TOPIC,
    MessageContent: Buffer.from(padded(`m${seq}:`)).toString('base64'),
    Qos: 0,
  };
}

/** (h) ours: `n` messages into an out node on a cloud connection at once; a Complete node counts the accepted Pubs. */
async function oursPub(ports: CloudPorts, n: number): Promise<LoadResult> {
  await startRuntime();
  const connection = cloudConnectionNode(ports);
  await deployFlow(
    [
      connection.node,
      { id: 'out', type: 'aliyun-iot-out', connection: 'backend', topic: PUB_TOPIC, qos: '0', retain: '' },
      { id: 'complete', type: 'complete', scope: ['out'], uncaught: false, wires: [['done']] },
      { id: 'catch', type: 'catch', scope: ['out'], uncaught: false, wires: [['failed']] },
      { id: 'done', type: 'helper' },
      { id: 'failed', type: 'helper' },
    ],
    connection.credentials,
    [COMPLETE_NODE, CATCH_NODE],
  );
  try {
    return await new Promise<LoadResult>((resolve) => {
      let completed = 0;
      let failed = 0;
      const start = performance.now();
      const settled = (): void => {
        if (completed + failed < n) return;
        const ms = performance.now() - start;
        resolve({ id: 0, sent: n, received: completed, lost: failed, ms, perSecond: (completed / ms) * 1000 });
      };
      helper.getNode('done').on('input', () => {
        completed++;
        settled();
      });
      helper.getNode('failed').on('input', () => {
        failed++;
        settled();
      });
      const out = helper.getNode('out');
      for (let seq = 0; seq < n; seq++) out.receive({ payload: padded(`m${seq}:`) });
    });
  } finally {
    await undeploy();
  }
}

/** (h) reference: `concurrency` workers calling Pub with pop-core one after another. */
async function popCorePub(ports: CloudPorts, n: number, concurrency: number): Promise<LoadResult> {
  const client = new RPCClient({
    accessKeyId: BENCH_CLOUD.accessKeyId,
    accessKeySecret: BENCH_CLOUD.accessKeySecret,
    endpoint: `http://127.0.0.1:${ports.apiPort}`,
    apiVersion: IOT_API_VERSION,
  });
  let next = 0;
  let failed = 0;
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (next < n) {
      const seq = next++;
      try {
        await client.request('Pub', pubParams(seq), { method: 'POST' });
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const ms = performance.now() - start;
  return { id: 0, sent: n, received: n - failed, lost: failed, ms, perSecond: ((n - failed) / ms) * 1000 };
}

/** The calls in flight of (h): our connection's bound, and as many pop-core workers. */
export const PUB_CONCURRENCY = DEFAULT_API_CONCURRENCY;

export function measurePub(variant: CloudVariant, ports: CloudPorts, n: number): Promise<LoadResult> {
  return variant === 'ours' ? oursPub(ports, n) : popCorePub(ports, n, PUB_CONCURRENCY);
}
