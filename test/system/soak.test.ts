// A bounded soak: mixed traffic through one Node-RED runtime and the simulator, with the heap (after gc) and the
// active handles sampled as it runs. SOAK_SECONDS sets the length: 30 in `npm test`, 600 in `npm run soak`.
import { strict as assert } from 'node:assert';
import type { NodeMessage } from 'node-red';
import { CATCH_ALL, deploy, helper, node, redeploy, simulatorAndRuntime, waitForStatus } from '../support/node-harness';
import { FlowNode, admin, iotConnection, mqConnection, waitFor } from '../support/helpers';
import { PK } from '../support/registry';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 30);
const SAMPLE_EVERY_MS = Math.max(3000, (SECONDS * 1000) / 20);
const WARM_UP_MS = Math.max(5000, SECONDS * 150);
const REDEPLOY_EVERY_MS = Math.max(6000, (SECONDS * 1000) / 6);
/** Heap growth allowed from the warm-up sample to the end: a leak of 1 KB per message exceeds it (asserted below). */
const HEAP_SLACK_BYTES = 6 * 1024 * 1024;
const HEAP_SLACK_RATIO = 0.05;
/** Handles allowed above the warm-up sample: keep-alive sockets of the admin API come and go. */
const HANDLE_SLACK = 6;

const dev01 = { productKey: PK, deviceName: 'dev01' };
const ECHO = `/${PK}/dev01/user/echo`;
const QOS0 = `/${PK}/dev01/user/data/q0`;
const DYNAMIC = `/${PK}/dev01/user/data/dyn`;

interface Sample {
  second: number;
  messages: number;
  heapBytes: number;
  handles: number;
  kinds: string;
}

/** What reaches each counting node; the messages themselves are not kept, so the test does not grow the heap. */
type Counts = Record<'echoed' | 'q0' | 'dynamic' | 'posted' | 'commands' | 'mq' | 'completed' | 'caught', number>;

function send(id: string, msg: Record<string, unknown>): void {
  node(id).receive(msg as NodeMessage);
}

/**
 * node-red-node-test-helper records every call of Node#send, #status, #log... and of the runtime log (which sees
 * each message as a metric event): forgotten before each sample, so that the heap measures the nodes, not the recorder.
 */
function forgetRecordedCalls(): void {
  // The spies sit on Node.prototype (a node without wires has its own no-op send).
  let prototype: object | null = Object.getPrototypeOf(node('out')) as object | null;
  while (prototype && !Object.prototype.hasOwnProperty.call(prototype, 'receive'))
    prototype = Object.getPrototypeOf(prototype) as object | null;
  assert.ok(prototype, 'Node.prototype');
  for (const method of ['send', 'status', 'log', 'warn', 'error', 'debug', 'trace']) {
    (prototype as Record<string, { resetHistory(): void }>)[method].resetHistory();
  }
  helper.log().resetHistory();
}

function activeHandles(): { total: number; kinds: string } {
  const resources = process.getActiveResourcesInfo();
  const byKind = new Map<string, number>();
  for (const kind of resources) byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
  return { total: resources.length, kinds: [...byKind].map(([kind, count]) => `${kind}:${count}`).join(' ') };
}

function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

describe(`soak: ${SECONDS} s of mixed traffic through one runtime`, function () {
  const env = simulatorAndRuntime();

  function flow(version: number): FlowNode[] {
    const name = `v${version}`;
    return [
      iotConnection('conn', env.sim, 'dev01').node,
      mqConnection('mqConn', env.sim, 'soak', 'signature', {}).node,
      ...CATCH_ALL,
      {
        id: 'inEcho',
        type: 'aliyun-iot-in',
        name,
        connection: 'conn',
        topic: '/${productKey}/${deviceName}/user/echo',
        qos: '1',
        datatype: 'utf8',
        wires: [['echoed']],
      },
      {
        id: 'inQ0',
        type: 'aliyun-iot-in',
        name: '',
        connection: 'conn',
        topic: '/${productKey}/${deviceName}/user/data/q0',
        qos: '0',
        datatype: 'buffer',
        wires: [['q0']],
      },
      {
        id: 'dyn',
        type: 'aliyun-iot-in',
        name,
        connection: 'conn',
        topic: '',
        qos: '1',
        datatype: 'auto-detect',
        dynamic: true,
        wires: [['dynamic']],
      },
      { id: 'out', type: 'aliyun-iot-out', name, connection: 'conn', topic: '', qos: '', retain: '' },
      {
        id: 'post',
        type: 'aliyun-iot-post',
        name,
        connection: 'conn',
        kind: 'property',
        event: '',
        ack: true,
        timeout: 5000,
        wires: [['posted']],
      },
      {
        id: 'command',
        type: 'aliyun-iot-command',
        name,
        connection: 'conn',
        services: '',
        autoReplySet: false,
        rrpcTopic: '',
        wires: [['commands']],
      },
      { id: 'reply', type: 'aliyun-iot-reply', name: version % 2 === 0 ? '' : name, connection: 'conn', code: '' },
      { id: 'inMq', type: 'aliyun-iot-in', name, connection: 'mqConn', topic: 'parent/soak', qos: '1', datatype: 'utf8', wires: [['mq']] },
      { id: 'outMq', type: 'aliyun-iot-out', name: '', connection: 'mqConn', topic: 'parent/soak', qos: '1', retain: '' },
      { id: 'complete', type: 'complete', scope: ['out', 'outMq', 'reply'], uncaught: false, wires: [['completed']] },
      ...['echoed', 'q0', 'dynamic', 'posted', 'commands', 'mq', 'completed'].map((id) => ({ id, type: 'helper' })),
    ];
  }

  it('loses no message and ends with the heap and the handle count where they were after warm-up', async function () {
    this.timeout((SECONDS + 90) * 1000);
    const gc = (globalThis as { gc?: () => void }).gc;
    assert.ok(gc, 'tests run with --expose-gc');
    const credentials = {
      ...iotConnection('conn', env.sim, 'dev01').credentials,
      ...mqConnection('mqConn', env.sim, 'soak', 'signature', { accessKeyId: 'AK', accessKeySecret: 'SK' }).credentials,
    };
    let version = 0;
    await deploy(flow(version), credentials);
    const counts: Counts = { echoed: 0, q0: 0, dynamic: 0, posted: 0, commands: 0, mq: 0, completed: 0, caught: 0 };
    const expected: Counts = { ...counts };
    let nextEcho = 0;
    let outOfOrder = 0;
    for (const id of Object.keys(counts) as Array<keyof Counts>) {
      node(id).on('input', (msg: NodeMessage) => {
        counts[id]++;
        if (id === 'echoed') {
          if (Number(msg.payload) !== nextEcho) outOfOrder++;
          nextEcho = Number(msg.payload) + 1;
        } else if (id === 'commands') {
          // The flow's answer, as a function node wired to the reply node would give it.
          send('reply', { ...msg, payload: { done: true } });
        } else if (id === 'caught') {
          console.log(`      caught: ${(msg as NodeMessage & { error: { message: string } }).error.message}`);
        }
      });
    }
    for (const id of ['inEcho', 'dyn', 'post', 'command', 'inMq']) await waitForStatus(id, 'connected');
    let dynamicSubscribes = 0;
    env.sim.on('subscribe', ({ topics }) => {
      if (topics.includes(`${DYNAMIC}/#`)) dynamicSubscribes++;
    });

    let echoSeq = 0;
    let rounds = 0;
    const cloudCalls: Array<Promise<{ status: string }>> = [];
    async function round(): Promise<void> {
      rounds++;
      const before = dynamicSubscribes;
      send('dyn', { action: 'subscribe', topic: '/${productKey}/${deviceName}/user/data/dyn/#' });
      await waitFor(() => dynamicSubscribes > before, 'the dynamic SUBSCRIBE');
      for (let i = 0; i < 50; i++) send('out', { topic: ECHO, payload: String(echoSeq++), qos: 1 });
      for (let i = 0; i < 50; i++) send('out', { topic: QOS0, payload: Buffer.alloc(200, i), qos: 0 });
      for (let i = 0; i < 5; i++) send('out', { topic: `${DYNAMIC}/${i}`, payload: { round: rounds, i }, qos: 1 });
      for (let i = 0; i < 5; i++) send('post', { payload: { temperature: rounds % 50, step: i } });
      for (let i = 0; i < 25; i++) send('outMq', { payload: `mq ${rounds} ${i}` });
      expected.echoed += 50;
      expected.q0 += 50;
      expected.dynamic += 5;
      expected.posted += 5;
      expected.mq += 25;
      expected.completed += 50 + 50 + 5 + 25;
      if (rounds % 5 === 0) {
        cloudCalls.push(admin(env.sim, 'POST', '/properties/set', { ...dev01, items: { light: rounds % 2 }, timeout: 5000 }));
        cloudCalls.push(
          admin(env.sim, 'POST', '/services/invoke', { ...dev01, identifier: 'reboot', args: { round: rounds }, timeout: 5000 }),
        );
        cloudCalls.push(
          admin(env.sim, 'POST', '/services/invoke', { ...dev01, identifier: 'getStatus', args: {}, sync: true, timeout: 5000 }),
        );
        expected.commands += 3;
        expected.completed += 3;
      }
      const keys = Object.keys(expected) as Array<keyof Counts>;
      await waitFor(() => keys.every((key) => counts[key] >= expected[key]), `round ${rounds}`, 15_000).catch((err: Error) => {
        throw new Error(`${err.message}: ${keys.map((key) => `${key} ${counts[key]}/${expected[key]}`).join(', ')}`);
      });
      send('dyn', { action: 'unsubscribe', topic: '/${productKey}/${deviceName}/user/data/dyn/#' });
      // After the unsubscribe nothing reaches the dynamic node; the publish is still done.
      send('out', { topic: `${DYNAMIC}/late`, payload: 'late', qos: 1 });
      expected.completed += 1;
      for (const result of await Promise.all(cloudCalls.splice(0))) assert.equal(result.status, 'SUCCESS');
    }

    const samples: Sample[] = [];
    const start = Date.now();
    const sample = (): void => {
      forgetRecordedCalls();
      gc();
      gc();
      const handles = activeHandles();
      samples.push({
        second: Math.round((Date.now() - start) / 1000),
        messages: expected.echoed + expected.q0 + expected.dynamic + expected.posted + expected.mq + expected.commands,
        heapBytes: process.memoryUsage().heapUsed,
        handles: handles.total,
        kinds: handles.kinds,
      });
    };
    let warmUp: Sample | undefined;
    let nextSample = start + SAMPLE_EVERY_MS;
    let nextRedeploy = start + REDEPLOY_EVERY_MS;
    let redeploys = 0;
    while (Date.now() - start < SECONDS * 1000) {
      await round();
      if (!warmUp && Date.now() - start >= WARM_UP_MS) {
        // Quiet moments only: every sent message is in and done.
        await waitFor(() => counts.completed === expected.completed, 'the last publishes to be done');
        sample();
        warmUp = samples.at(-1);
        nextSample = Date.now() + SAMPLE_EVERY_MS;
      } else if (Date.now() >= nextSample) {
        await waitFor(() => counts.completed === expected.completed, 'the last publishes to be done');
        sample();
        nextSample = Date.now() + SAMPLE_EVERY_MS;
      }
      if (Date.now() >= nextRedeploy && Date.now() - start < SECONDS * 1000 - 2000) {
        await waitFor(() => counts.completed === expected.completed, 'the last publishes to be done');
        await redeploy(flow(++version), 'nodes', credentials);
        for (const id of ['inEcho', 'dyn', 'post', 'command', 'inMq']) await waitForStatus(id, 'connected');
        redeploys++;
        nextRedeploy = Date.now() + REDEPLOY_EVERY_MS;
      }
    }
    await waitFor(() => counts.completed === expected.completed, 'the last publishes to be done');
    // Let the unsubscribe grace timers of the last redeploy run out before the final sample.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    sample();
    const end = samples.at(-1) as Sample;
    assert.ok(warmUp, 'a warm-up sample');

    console.log(`\n      soak: ${SECONDS} s, ${rounds} rounds, ${end.messages} messages, ${redeploys} redeploys of modified nodes`);
    console.log('        second   messages   heap MB   handles   (handle kinds)');
    for (const row of samples) {
      const mark = row === warmUp ? ' (warm-up)' : '';
      console.log(
        `        ${String(row.second).padStart(6)}   ${String(row.messages).padStart(8)}   ${mb(row.heapBytes).padStart(7)}   ${String(row.handles).padStart(7)}   ${row.kinds}${mark}`,
      );
    }
    const growth = end.heapBytes - warmUp.heapBytes;
    const allowed = Math.max(HEAP_SLACK_BYTES, warmUp.heapBytes * HEAP_SLACK_RATIO);
    const messagesSinceWarmUp = end.messages - warmUp.messages;
    console.log(
      `        heap ${mb(warmUp.heapBytes)} → ${mb(end.heapBytes)} MB (allowed +${mb(allowed)});` +
        ` handles ${warmUp.handles} → ${end.handles} (allowed +${HANDLE_SLACK}); ${messagesSinceWarmUp} messages since warm-up\n`,
    );

    assert.deepEqual(counts, expected, 'every message arrived once, every publish was done, nothing failed');
    assert.equal(outOfOrder, 0, 'QoS 1 on one topic arrives in order');
    assert.ok(redeploys >= 1 || SECONDS < 10, 'the soak redeployed mid-run');
    assert.ok(
      messagesSinceWarmUp * 1024 > allowed || SECONDS < 20,
      `only ${messagesSinceWarmUp} messages since warm-up: too few for a 1 KB-per-message leak to exceed the heap bound`,
    );
    assert.ok(growth < allowed, `heap grew by ${mb(growth)} MB since warm-up (allowed ${mb(allowed)} MB)`);
    assert.ok(end.handles <= warmUp.handles + HANDLE_SLACK, `handles ${warmUp.handles} → ${end.handles}`);
  });
});
