import { strict as assert } from 'node:assert';
import {
  CloseFacts,
  ConnectionStatus,
  DEFAULT_RECONNECT_POLICY,
  NO_FAILURES,
  RetryCounters,
  backoffDelay,
  classifyClose,
  reconnectPolicy,
  runtimeOptions,
} from '../../nodes/lib/connection';

const CONNECTED: ConnectionStatus = { state: 'connected', reason: 'connected' };
const policy = reconnectPolicy({
  networkBaseMs: 100,
  networkMaxMs: 800,
  refusedBaseMs: 200,
  refusedMaxMs: 1000,
  kickedAfter: 2,
  kickedBaseMs: 400,
  kickedMaxMs: 3000,
  shortSessionMs: 5000,
});
const middle = (): number => 0.5;

function facts(extra: Partial<CloseFacts> = {}): CloseFacts {
  return { mode: 'iot', target: 'pk/dev at mqtt://127.0.0.1:1883', current: CONNECTED, livedMs: 60_000, detectKick: true, ...extra };
}

/** Runs `classifyClose` over a series of closes, feeding each decision's counters and status into the next. */
function series(closes: Array<Partial<CloseFacts>>, start: ConnectionStatus = CONNECTED): Array<[string, number]> {
  let counters: RetryCounters = { ...NO_FAILURES };
  let current = start;
  return closes.map((close) => {
    const decision = classifyClose(facts({ current, ...close }), counters, policy, middle);
    counters = decision.counters;
    current = decision.status;
    return [decision.status.reason, decision.delayMs];
  });
}

describe('reconnect policy: settings', function () {
  it('takes valid overrides of known keys, ignores unknown keys and refuses bad values naming the setting', function () {
    assert.deepEqual(reconnectPolicy(), { ...DEFAULT_RECONNECT_POLICY });
    assert.deepEqual(reconnectPolicy({ networkBaseMs: 5, unknown: 3 }), { ...DEFAULT_RECONNECT_POLICY, networkBaseMs: 5 });
    for (const bad of [{ refusedMaxMs: -1 }, { kickedAfter: Number.NaN }, { connectTimeoutMs: '10' }]) {
      assert.throws(() => reconnectPolicy(bad), /aliyunIot\.reconnect\.\w+ .* must be a number of 0 or more/);
    }
    assert.deepEqual(reconnectPolicy(null), { ...DEFAULT_RECONNECT_POLICY });
    assert.deepEqual(reconnectPolicy('fast'), { ...DEFAULT_RECONNECT_POLICY });
  });

  it('reads RED.settings.aliyunIot: a reconnect policy and a raised subscription limit', function () {
    assert.deepEqual(runtimeOptions(undefined), { reconnect: { ...DEFAULT_RECONNECT_POLICY } });
    const options = runtimeOptions({ reconnect: { networkBaseMs: 50, unsubscribeGraceMs: 0 }, maxSubscriptions: 500 });
    assert.deepEqual(options, {
      reconnect: { ...DEFAULT_RECONNECT_POLICY, networkBaseMs: 50, unsubscribeGraceMs: 0 },
      maxSubscriptions: 500,
    });
    for (const maxSubscriptions of [0, -3, 2.5, '100']) assert.equal(runtimeOptions({ maxSubscriptions }).maxSubscriptions, undefined);
  });
});

describe('reconnect policy: back-off', function () {
  it('doubles from the base up to the maximum, with ±20 % jitter', function () {
    assert.deepEqual(
      [0, 1, 2, 3, 4].map((attempt) => backoffDelay(attempt, 100, 1000, middle)),
      [100, 200, 400, 800, 1000],
    );
    assert.equal(
      backoffDelay(2, 100, 1000, () => 0),
      320,
    );
    assert.equal(
      backoffDelay(2, 100, 1000, () => 1),
      480,
    );
    assert.equal(backoffDelay(500, 100, 1000, middle), 1000, 'a huge attempt count stays at the maximum');
  });
});

describe('reconnect policy: classifying a close', function () {
  it('a refused login: the CONNACK code names the reason per service, and refusals back off from their own base', function () {
    assert.deepEqual(series([{ returnCode: 5 }, { returnCode: 5 }, { returnCode: 5 }, { returnCode: 5 }]), [
      ['refused-signature', 200],
      ['refused-signature', 400],
      ['refused-signature', 800],
      ['refused-signature', 1000],
    ]);
    const mq = classifyClose(facts({ mode: 'mq', returnCode: 4 }), NO_FAILURES, policy, middle);
    assert.deepEqual(mq.status, { state: 'refused', reason: 'refused-username', returnCode: 4 });
    assert.deepEqual(mq.log && [mq.log.level, mq.log.message.code, mq.log.once], ['error', 'REFUSED_4_MQ', true]);
    assert.equal(classifyClose(facts({ returnCode: 9 }), NO_FAILURES, policy, middle).status.reason, 'refused', 'an unknown code');
  });

  it('an untrusted certificate and a refused SASL login are refusals too', function () {
    const tls = classifyClose(facts({ tlsFailure: 'SELF_SIGNED_CERT_IN_CHAIN' }), NO_FAILURES, policy, middle);
    assert.deepEqual([tls.status, tls.delayMs, tls.log?.message.code], [{ state: 'refused', reason: 'tls-error' }, 200, 'TLS_CERTIFICATE']);
    const amqp = classifyClose(facts({ mode: 'cloud', refused: true, returnCode: 5, detectKick: false }), NO_FAILURES, policy, middle);
    assert.deepEqual([amqp.status, amqp.log?.message.code], [{ state: 'refused', reason: 'refused-not-authorized' }, 'AMQP_REFUSED']);
  });

  it('a lost connection that lived long is "disconnected" and retries after the network base, logged every time', function () {
    const decision = classifyClose(facts(), { networkFailures: 3, refusals: 2, shortSessions: 1 }, policy, middle);
    assert.deepEqual([decision.status.reason, decision.delayMs], ['disconnected', 100]);
    assert.equal(decision.counters.shortSessions, 0, 'a long session ends a streak of short ones');
    assert.deepEqual(decision.log && [decision.log.level, decision.log.message.code, decision.log.once], [
      'info',
      'CONNECTION_LOST',
      false,
    ]);
  });

  it('short sessions in a row: "kicked" from the kickedAfter-th on, with its own growing back-off', function () {
    const short = { livedMs: 100 };
    const decisions = series([short, { current: CONNECTED, ...short }, { current: CONNECTED, ...short }, { current: CONNECTED, ...short }]);
    assert.deepEqual(decisions, [
      ['disconnected', 100],
      ['kicked', 400],
      ['kicked', 800],
      ['kicked', 1600],
    ]);
    const counted = classifyClose(facts(short), { ...NO_FAILURES, shortSessions: 1 }, policy, middle);
    assert.deepEqual(counted.log && [counted.log.level, counted.log.message.code, counted.log.once], ['warn', 'KICKED_IOT', true]);
  });

  it("without kick detection (a cloud application's AMQP link) short sessions are just disconnects", function () {
    const decision = classifyClose(facts({ livedMs: 100, detectKick: false }), { ...NO_FAILURES, shortSessions: 5 }, policy, middle);
    assert.deepEqual([decision.status.reason, decision.counters.shortSessions], ['disconnected', 0]);
  });

  it('a failed attempt keeps a refusal or knock-off on show and backs off from the network base', function () {
    for (const shown of [
      { state: 'refused', reason: 'refused-signature', returnCode: 5 },
      { state: 'kicked', reason: 'kicked' },
    ] as ConnectionStatus[]) {
      const decision = classifyClose(facts({ current: shown }), { ...NO_FAILURES, networkFailures: 2 }, policy, middle);
      assert.deepEqual([decision.status, decision.delayMs, decision.counters.networkFailures, decision.log], [shown, 400, 3, undefined]);
    }
    const unreachable = series([{}, {}, {}, {}, {}], { state: 'connecting', reason: 'connecting' });
    assert.deepEqual(unreachable, [
      ['disconnected', 100],
      ['disconnected', 200],
      ['disconnected', 400],
      ['disconnected', 800],
      ['disconnected', 800],
    ]);
  });
});
