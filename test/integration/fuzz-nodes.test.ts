// Property-based fuzzing of every node's input: generated hostile msgs (fast-check, seeded) to in, out, post, reply
// and invoke on device, ApsaraMQ and cloud-application connections. Each input ends in exactly one of done() and
// done(err) within a bound, nothing escapes as an uncaught exception or unhandled rejection, and the runtime still
// carries a message afterwards.
import { strict as assert } from 'node:assert';
import type { Node, NodeMessage } from 'node-red';
import { Simulator } from '../../sim';
import { cloudConnection, startCloudSimulator } from '../support/cloud-fixtures';
import {
  FUZZ_SEED,
  Outcome,
  catchingCrashes,
  describeValue,
  emptyOutcome,
  formatOutcomes,
  hostileMsg,
  samples,
} from '../support/fuzz-inputs';
import { FlowNode, iotConnection, mqConnection, waitFor } from '../support/helpers';
import { CATCH_ALL, Credentials, collect, deploy, node, startServer, stopServer, waitForStatus } from '../support/node-harness';
import { PK } from '../support/registry';

/** Generated msgs per node; FUZZ_RUNS raises it for a longer hunt. */
const RUNS_PER_NODE = Number(process.env.FUZZ_RUNS ?? 120);
/** How long an input may take to end in done() or done(err) (the longest configured timeout is 1 s). */
const DONE_BOUND_MS = 5000;
const ECHO = `/${PK}/dev01/user/echo`;

interface CompletingNode extends Node {
  _complete(msg: object, error?: unknown): void;
}

/** The nodes under test, by id, with the connection each uses. */
function fuzzedNodes(): FlowNode[] {
  const user = (id: string, type: string, connection: string, extra: Record<string, unknown>): FlowNode => ({
    id,
    type,
    connection,
    ...extra,
  });
  const inNode = (id: string, connection: string): FlowNode =>
    user(id, 'aliyun-iot-in', connection, { topic: '', qos: '0', datatype: 'auto-detect', dynamic: true });
  const outNode = (id: string, connection: string): FlowNode => user(id, 'aliyun-iot-out', connection, { topic: '', qos: '', retain: '' });
  return [
    inNode('in-iot', 'conn-iot'),
    inNode('in-mq', 'conn-mq-signature'),
    inNode('in-cloud', 'conn-cloud'),
    outNode('out-iot', 'conn-iot'),
    outNode('out-mq-token', 'conn-mq-token'),
    outNode('out-mq', 'conn-mq-signature'),
    outNode('out-cloud', 'conn-cloud'),
    user('post-property', 'aliyun-iot-post', 'conn-iot', { kind: 'property', event: '', ack: true, timeout: '1000' }),
    user('post-event', 'aliyun-iot-post', 'conn-iot', { kind: 'event', event: '', ack: true, timeout: '1000' }),
    user('post-no-ack', 'aliyun-iot-post', 'conn-iot', { kind: 'property', event: '', ack: false, timeout: '' }),
    user('post-pack', 'aliyun-iot-post', 'conn-iot', { kind: 'pack', event: '', ack: true, timeout: '1000' }),
    user('reply', 'aliyun-iot-reply', 'conn-iot', { code: '' }),
    user('invoke-rrpc', 'aliyun-iot-invoke', 'conn-cloud', {
      action: 'rrpc',
      productKey: '',
      deviceName: '',
      identifier: '',
      topic: '',
      timeout: '1000',
    }),
    user('invoke-service', 'aliyun-iot-invoke', 'conn-cloud', {
      action: 'service',
      productKey: '',
      deviceName: '',
      identifier: '',
      topic: '',
      timeout: '1000',
    }),
    user('invoke-set', 'aliyun-iot-invoke', 'conn-cloud', {
      action: 'set',
      productKey: '',
      deviceName: '',
      identifier: '',
      topic: '',
      timeout: '1000',
    }),
    user('gateway', 'aliyun-iot-gateway', 'conn-iot', { outputSecrets: false }),
    // A node without a usable connection fails every input.
    user('post-on-mq', 'aliyun-iot-post', 'conn-mq-signature', { kind: 'property', event: '', ack: true, timeout: '' }),
  ];
}

describe('fuzz: every node input ends in exactly one done() or done(err), and nothing escapes', function () {
  this.timeout(120_000);
  let sim: Simulator;
  before(async function () {
    sim = await startCloudSimulator();
    await startServer();
  });
  after(async function () {
    await stopServer();
    await sim.stop();
  });

  it(`${RUNS_PER_NODE} generated msgs per node, then the runtime still carries a message`, async function () {
    const connections = [
      iotConnection('conn-iot', sim, 'dev01'),
      mqConnection('conn-mq-token', sim, 'fuzz1', 'token', { accessKeyId: 'AK', token: 'tok1' }),
      mqConnection('conn-mq-signature', sim, 'fuzz2', 'signature', { accessKeyId: 'AK', accessKeySecret: 'SK' }),
      cloudConnection('conn-cloud', sim),
    ];
    const nodes = fuzzedNodes();
    const ids = nodes.map((entry) => entry.id);
    await deploy(
      [
        ...connections.map((connection) => connection.node),
        ...nodes,
        ...CATCH_ALL,
        { id: 'complete', type: 'complete', scope: ids, uncaught: false, wires: [[]] },
        {
          id: 'echo-in',
          type: 'aliyun-iot-in',
          connection: 'conn-iot',
          topic: ECHO,
          qos: '1',
          datatype: 'auto-detect',
          wires: [['received']],
        },
        { id: 'received', type: 'helper' },
      ],
      Object.assign({}, ...connections.map((connection) => connection.credentials)) as Credentials,
    );
    for (const id of ['echo-in', 'out-mq-token', 'out-mq']) await waitForStatus(id, 'connected');
    await waitForStatus('out-cloud', 'api-ready');

    /** done() calls per input msg of the node being fuzzed. */
    let finished = new Map<object, { done: number; errors: number }>();
    for (const id of ids) {
      const fuzzed = node(id) as CompletingNode;
      const complete = fuzzed._complete.bind(fuzzed);
      fuzzed._complete = (msg, error) => {
        const entry = finished.get(msg) ?? { done: 0, errors: 0 };
        if (error) entry.errors++;
        else entry.done++;
        finished.set(msg, entry);
        complete(msg, error);
      };
    }

    const outcomes: Record<string, Outcome> = {};
    const unfinished: string[] = [];
    const { crashes } = await catchingCrashes(async (seen) => {
      for (const [index, id] of ids.entries()) {
        const outcome = emptyOutcome();
        outcomes[id] = outcome;
        finished = new Map();
        const crashesBefore = seen.length;
        const msgs = samples(hostileMsg, RUNS_PER_NODE, index);
        for (const [i, msg] of msgs.entries()) {
          try {
            node(id).receive(msg as NodeMessage);
          } catch (err) {
            seen.push(err);
          }
          if (i % 10 === 9) await new Promise((resolve) => setImmediate(resolve));
        }
        await waitFor(() => msgs.every((msg) => finished.has(msg)), `done for every input of ${id}`, DONE_BOUND_MS).catch(() => undefined);
        for (const msg of msgs) {
          const entry = finished.get(msg);
          if (!entry) {
            outcome.none++;
            if (unfinished.length < 5) unfinished.push(`${id}: ${describeValue(msg)}`);
          } else {
            if (entry.done + entry.errors > 1) outcome.twice++;
            if (entry.errors > 0) outcome.doneWithError++;
            else outcome.done++;
          }
        }
        outcome.crashes = seen.length - crashesBefore;
      }
      // The runtime still serves: a message out through the device connection and back in.
      const received = collect('received');
      node('out-iot').receive({ topic: ECHO, payload: 'sentinel' } as NodeMessage);
      await waitFor(() => received.some((msg) => msg.payload === 'sentinel'), 'the sentinel message back from the simulator');
    });
    console.log(formatOutcomes('node inputs', outcomes, ['done', 'doneWithError', 'none', 'crashes', 'twice']));
    const failures = Object.entries(outcomes).filter(([, outcome]) => outcome.none + outcome.crashes + outcome.twice > 0);
    assert.deepEqual(
      failures,
      [],
      [
        `FUZZ_SEED=${FUZZ_SEED}: inputs without exactly one done, or crashes`,
        ...unfinished,
        ...crashes
          .slice(0, 5)
          .map((crash) => `crash: ${crash instanceof Error ? crash.stack?.split('\n').slice(0, 4).join(' | ') : describeValue(crash)}`),
      ].join('\n'),
    );
  });
});
