// The disk queue with a whole Node-RED: an outage with a crash in it and another in the replay, an unwritable
// directory, and the pacing of the replay as the broker's side of the network sees it.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NodeMessage } from 'node-red';
import { Simulator } from '../../sim';
import { FlowNode, iotConnection, startTestSimulator, waitFor } from '../support/helpers';
import {
  CATCH_ALL,
  collect,
  deploy,
  errorsOf,
  helper,
  lastStatusText,
  node,
  startServer,
  stopServer,
  waitForStatus,
} from '../support/node-harness';
import { NodeRedProcess } from '../support/processes';
import { MqttProxy } from '../support/proxy';
import { PK } from '../support/registry';

const TOPIC = `/${PK}/dev07/user/update`;
const MESSAGES = 10_000;
/** Messages leave the replay at this rate: fast enough for the test, and a limit to check. */
const REPLAY_RATE = 2000;
const OUTAGE_MS = 30_000;
const FAST_RECONNECT = JSON.stringify({ reconnect: { networkBaseMs: 100, networkMaxMs: 300 } });

/** A connection (disk queue), an inject node `go` and a function node that publishes `count` numbered messages. */
function burstFlow(sim: Simulator, proxyPort: number, count: number): FlowNode[] {
  const connection = iotConnection('conn', sim, 'dev07', {
    port: String(proxyPort),
    queueStore: 'disk',
    queueSize: String(count * 2),
    maxRate: String(REPLAY_RATE),
  });
  return [
    { ...connection.node, credentials: connection.credentials.conn },
    { id: 'tab', type: 'tab', label: 'store' },
    { id: 'go', type: 'inject', z: 'tab', x: 100, y: 100, props: [], repeat: '', once: false, wires: [['burst']] },
    {
      id: 'burst',
      type: 'function',
      z: 'tab',
      x: 200,
      y: 100,
      outputs: 1,
      wires: [['out']],
      func: `for (let i = 0; i < ${count}; i++) node.send({ payload: String(i).padStart(5, '0') }); return null;`,
    },
    { id: 'out', type: 'aliyun-iot-out', z: 'tab', x: 300, y: 100, connection: 'conn', topic: TOPIC, qos: '1', retain: '' },
  ];
}

/** Bytes of one stored message: record header, the publish's fixed fields, topic and the 5-digit payload. */
const RECORD_BYTES = 16 + 11 + Buffer.byteLength(TOPIC) + 5;

function storedBytes(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  return fs
    .readdirSync(dir)
    .filter((name) => name.endsWith('.log'))
    .reduce((sum, name) => sum + fs.statSync(path.join(dir, name)).size, 0);
}

describe('store: the disk queue in a Node-RED that crashes', function () {
  this.timeout(120_000);
  let sim: Simulator;
  let proxy: MqttProxy;
  let nodeRed: NodeRedProcess | undefined;

  beforeEach(async function () {
    sim = await startTestSimulator();
    proxy = await new MqttProxy({ host: '127.0.0.1', port: sim.port }).start();
  });

  afterEach(async function () {
    await nodeRed?.stop();
    await proxy.stop();
    await sim.stop();
  });

  it(`${MESSAGES} QoS 1 messages published during a 30 s outage, SIGKILL in the outage and in the replay: all arrive, in order`, async function () {
    proxy.cutNetwork();
    const outageStarted = Date.now();
    nodeRed = await NodeRedProcess.start({ ALIYUN_IOT_RUNTIME: FAST_RECONNECT });
    const userDir = nodeRed.userDir;
    const queueDir = path.join(userDir, 'aliyun-iot', 'queues', 'conn');
    assert.equal((await nodeRed.deploy(burstFlow(sim, proxy.port, MESSAGES))).status, 204);
    // The deploy's answer can come before the new flow's nodes exist: the inject node is there once it answers 200.
    const injectUrl = `${nodeRed.url}inject/go`;
    await waitFor(async () => (await fetch(injectUrl, { method: 'POST' })).status === 200, 'the inject node', 10_000);
    // done() of every message came when it was on disk: all of them are there before the crash.
    await waitFor(() => storedBytes(queueDir) >= MESSAGES * RECORD_BYTES, 'every message stored', 30_000);
    await nodeRed.kill();
    nodeRed = await NodeRedProcess.start({ ALIYUN_IOT_RUNTIME: FAST_RECONNECT }, userDir);
    assert.equal(proxy.published.length, 0);
    // The rest of the outage: the restarted runtime waits to reconnect with its stored queue.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, OUTAGE_MS - (Date.now() - outageStarted))));
    proxy.restoreNetwork();
    const payloads = (): string[] => proxy.published.filter((packet) => packet.topic === TOPIC).map((packet) => packet.payload);
    await waitFor(() => new Set(payloads()).size >= MESSAGES * 0.3, 'a third of the replay', 30_000);
    await nodeRed.kill();
    const beforeCrash = payloads();
    nodeRed = await NodeRedProcess.start({ ALIYUN_IOT_RUNTIME: FAST_RECONNECT }, userDir);
    await waitFor(() => new Set(payloads()).size === MESSAGES, `all ${MESSAGES} messages`, 30_000);

    const received = payloads();
    const firstSeen: number[] = [];
    const seen = new Set<string>();
    for (const payload of received) {
      if (!seen.has(payload)) firstSeen.push(Number(payload));
      seen.add(payload);
    }
    assert.deepEqual(
      firstSeen,
      Array.from({ length: MESSAGES }, (_, i) => i),
      'every message, first seen in order',
    );
    // Duplicates: what was sent but not yet acknowledged, or acknowledged and not yet in the cursor file, at the kill.
    const duplicates = received.slice(beforeCrash.length).filter((payload) => beforeCrash.includes(payload));
    const lastBeforeCrash = Math.max(...beforeCrash.map(Number));
    for (const payload of duplicates)
      assert.ok(lastBeforeCrash - Number(payload) < 500, `duplicate ${payload} far behind ${lastBeforeCrash}`);
    assert.equal(received.length - MESSAGES, duplicates.length);
    this.test!.title += ` (${duplicates.length} duplicates after the kill in the replay)`;
    // Everything acknowledged: the store is empty but for its newest segment.
    await waitFor(() => storedBytes(queueDir) <= MESSAGES * RECORD_BYTES, 'old segments deleted', 5_000);
  });
});

describe('store: the disk queue in the runtime', function () {
  let sim: Simulator;
  let proxy: MqttProxy;
  let userDir: string;

  beforeEach(async function () {
    sim = await startTestSimulator();
    proxy = await new MqttProxy({ host: '127.0.0.1', port: sim.port }).start();
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aliyun-iot-store-runtime-'));
    helper.settings({ userDir, aliyunIot: { reconnect: { networkBaseMs: 50, networkMaxMs: 100 } } } as never);
    await startServer();
  });

  afterEach(async function () {
    await stopServer();
    helper.settings({});
    await proxy.stop();
    await sim.stop();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('an unwritable queue directory is a clear error and a status, and nothing crashes', async function () {
    // A file where the queues' directory should be: root may write anywhere, but not into a file.
    fs.mkdirSync(path.join(userDir, 'aliyun-iot'));
    fs.writeFileSync(path.join(userDir, 'aliyun-iot', 'queues'), '');
    const connection = iotConnection('conn', sim, 'dev08', { queueStore: 'disk' });
    await deploy(
      [
        connection.node,
        { id: 'out', type: 'aliyun-iot-out', connection: 'conn', topic: TOPIC.replace('dev07', 'dev08'), qos: '1' },
        ...CATCH_ALL,
      ],
      connection.credentials,
    );
    await waitForStatus('out', 'config-error');
    assert.match(errorsOf(node('conn')).join('\n'), /disk queue cannot be written in .*queues.*conn/);
    const caught = collect('caught');
    node('out').receive({ payload: 'x' } as NodeMessage);
    await waitFor(() => caught.length === 1, 'the input failed');
    assert.match(String((caught[0] as NodeMessage & { error: { message: string } }).error.message), /cannot be written/);
  });

  it('a full disk fails each message with STORE_DISK_FULL and a status, and nothing crashes', async function () {
    // A real ENOSPC without root: the segment to write on is /dev/full, where every write fails so.
    const queueDir = path.join(userDir, 'aliyun-iot', 'queues', 'conn');
    fs.mkdirSync(queueDir, { recursive: true });
    fs.symlinkSync('/dev/full', path.join(queueDir, `${'1'.padStart(20, '0')}.log`));
    const topic = TOPIC.replace('dev07', 'dev08');
    const connection = iotConnection('conn', sim, 'dev08', { queueStore: 'disk' });
    await deploy(
      [connection.node, { id: 'out', type: 'aliyun-iot-out', connection: 'conn', topic, qos: '1' }, ...CATCH_ALL],
      connection.credentials,
    );
    await waitForStatus('out', 'connected');
    const caught = collect('caught');
    node('out').receive({ payload: 'first' } as NodeMessage);
    await waitFor(() => caught.length === 1, 'the first message failed');
    const error = (caught[0] as NodeMessage & { error: { message: string; code?: string } }).error;
    assert.equal(error.code, 'STORE_DISK_FULL');
    assert.match(error.message, /disk is full/);
    await waitFor(() => /disk full|store-disk-full/.test(lastStatusText(node('out'))), 'the status says so');
    assert.match(errorsOf(node('conn')).join('\n'), /could not be stored/);
    // Later messages fail the same way, each through its own done(err); the runtime goes on.
    node('out').receive({ payload: 'second' } as NodeMessage);
    await waitFor(() => caught.length === 2, 'the second message failed');
    assert.equal((caught[1] as NodeMessage & { error: { code?: string } }).error.code, 'STORE_DISK_FULL');
  });

  it('the replay never exceeds maxRate, measured where the broker receives it', async function () {
    const rate = 20;
    const count = 50;
    const topic = TOPIC.replace('dev07', 'dev09');
    proxy.cutNetwork();
    const connection = iotConnection('conn', sim, 'dev09', { port: String(proxy.port), queueStore: 'disk', maxRate: String(rate) });
    await deploy([connection.node, { id: 'out', type: 'aliyun-iot-out', connection: 'conn', topic, qos: '1' }], connection.credentials);
    for (let i = 0; i < count; i++) node('out').receive({ payload: String(i), _msgid: String(i) } as NodeMessage);
    await waitFor(
      () =>
        fs.existsSync(path.join(userDir, 'aliyun-iot', 'queues', 'conn')) &&
        storedBytes(path.join(userDir, 'aliyun-iot', 'queues', 'conn')) > 0,
      'stored',
    );
    proxy.restoreNetwork();
    await waitFor(() => proxy.published.filter((p) => p.topic === topic).length === count, 'the replay', 10_000);
    const times = proxy.published.filter((p) => p.topic === topic).map((p) => p.at);
    assert.deepEqual(
      proxy.published.filter((p) => p.topic === topic).map((p) => p.payload),
      Array.from({ length: count }, (_, i) => String(i)),
    );
    // In every second from any message on: at most `rate` (+1 for a message delayed on its way, which bunches the next).
    let busiest = 0;
    for (let i = 0; i < times.length; i++) busiest = Math.max(busiest, times.filter((t) => t >= times[i] && t < times[i] + 1000).length);
    assert.ok(busiest <= rate + 1, `${busiest} messages in one second`);
    const seconds = (times[times.length - 1] - times[0]) / 1000;
    assert.ok((count - 1) / seconds <= rate * 1.02, `average ${((count - 1) / seconds).toFixed(1)} msg/s`);
  });
});
