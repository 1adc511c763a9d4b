// The benchmark's smoke run: every section at its smallest size completes and loses no message. Never speed.
import * as assert from 'node:assert/strict';
import { SIZES, runBench } from '../../bench/run';

describe('bench (smoke size)', function () {
  this.timeout(60_000);

  it('runs forwarding, latency, dispatch, connection scale, broker capacity, gateway logins and pack posts without losing a message', async function () {
    const result = await runBench({ size: 'smoke' });
    const labels = result.measures.map((m) => m.label);
    for (const kind of ['sim', 'aedes']) {
      for (const qos of [0, 1]) {
        for (const variant of ['ours', 'core', 'raw'])
          assert.ok(labels.includes(`a ${kind} qos${qos} ${variant}`), `a ${kind} qos${qos} ${variant}`);
        assert.ok(labels.includes(`e ${kind} qos${qos}`));
      }
    }
    for (const count of SIZES.smoke.filterCounts)
      for (const variant of ['ours', 'core']) assert.ok(labels.includes(`c ${count} ${variant}`));
    for (const qos of [0, 1]) {
      for (const variant of ['ours', 'core', 'raw']) {
        const latency = result.measures.find((m) => m.label === `b sim qos${qos} ${variant}`);
        assert.ok(latency?.p50 !== undefined && latency.p99 !== undefined, `latency of ${variant} at QoS ${qos}`);
      }
    }
    for (const variant of ['ours', 'raw', 'raw-flow']) {
      const consumer = result.measures.find((m) => m.label === `f ${variant}`);
      assert.ok(consumer, `f ${variant}`);
      assert.ok(Number.isFinite(consumer.cpuMicrosPerMessage) && (consumer.cpuMicrosPerMessage ?? 0) > 0, `f ${variant} consumer CPU`);
    }
    for (const m of result.measures) {
      assert.deepEqual(m.errors, [], m.label);
      assert.equal(m.lost, 0, `${m.label} lost messages`);
    }
    assert.equal(result.scale?.devices, SIZES.smoke.devices);
    assert.ok(Number.isFinite(result.scale?.connectMs));
    const gateway = result.gateway;
    assert.equal(gateway?.subDevices, SIZES.smoke.subDevices, '(j) ran');
    assert.equal(gateway.loginBatches, Math.ceil(SIZES.smoke.subDevices / 50), '(j) logged in in batches of 50');
    assert.ok(Number.isFinite(gateway.onlineMs) && Number.isFinite(gateway.rssKiBPerSubDevice), '(j) measured');
    for (const rates of [gateway.paced, gateway.unpaced])
      assert.ok(rates.perDevice > 0 && rates.pack > 0, '(k) every post style reached the simulator');
  });
});
