// TLS verifies the server certificate by default: the simulator's TLS listener, whose certificate a private test CA
// signed, is refused until that CA is given in the config node's CA field.
import { strict as assert } from 'node:assert';
import type { NodeMessage } from 'node-red';
import { statusText } from '../../nodes/support/status';
import { Simulator } from '../../sim';
import {
  collect,
  deploy,
  deviceConnectionOf,
  echoFlow,
  errorsOf,
  node,
  simulatorAndRuntime,
  statusesOf,
  waitForStatus,
} from '../support/node-harness';
import { TEST_RECONNECT_POLICY, shortestBackoff } from '../support/reconnect';
import { FlowNode, SERVER_TLS, TEST_CA, iotConnection, mqConnection, waitFor } from '../support/helpers';
import { PK } from '../support/registry';

type Connection = { node: FlowNode; credentials: Record<string, Record<string, string>> };

const { refusedBaseMs = 0, refusedMaxMs = 0 } = TEST_RECONNECT_POLICY;

function overTls(sim: Simulator, connection: Connection, ca?: string): Connection {
  return { ...connection, node: { ...connection.node, protocol: 'mqtts', port: String(sim.tlsPort), ...(ca ? { ca } : {}) } };
}

describe('TLS: the server certificate is verified', function () {
  const env = simulatorAndRuntime({ tlsPort: 0, tls: SERVER_TLS });

  it('the simulator listens for MQTT over TLS besides plain TCP', function () {
    assert.ok(env.sim.tlsPort && env.sim.tlsPort > 0);
    assert.notEqual(env.sim.tlsPort, env.sim.port);
  });

  it('refuses a server signed by an unknown CA by default: a certificate error, not connected, no tight reconnect loop', async function () {
    const connection = overTls(env.sim, iotConnection('conn', env.sim, 'dev01'));
    await deploy(echoFlow(connection.node), connection.credentials);
    const failures: number[] = [];
    deviceConnectionOf('conn').register({
      onStatus: (status) => {
        if (status.reason === 'tls-error') failures.push(Date.now());
      },
    });
    await waitForStatus('in', 'tls-error');
    // The refused-login back-off applies, doubling: no tight loop of handshakes.
    await waitFor(() => failures.length >= 4, 'four failed handshakes');
    const gaps = failures.slice(1, 4).map((time, i) => time - failures[i]);
    const least = gaps.map((_, i) => shortestBackoff(i, refusedBaseMs, refusedMaxMs));
    assert.ok(
      gaps.every((gap, i) => gap >= least[i]),
      `gaps ${gaps.join(', ')} ms, at least ${least.join(', ')} ms`,
    );
    assert.equal(
      statusesOf(node('in')).some((status) => status.text === statusText('connected')),
      false,
    );
    assert.deepEqual(env.sim.onlineDevices(), []);
    const logged = errorsOf(node('conn')).join('\n');
    assert.match(logged, /certificate/i);
    assert.match(logged, /CA/);
  });

  for (const [mode, make, topic] of [
    ['IoT Platform', (sim: Simulator) => iotConnection('conn', sim, 'dev01'), '/${productKey}/${deviceName}/user/echo'],
    [
      'ApsaraMQ',
      (sim: Simulator) => mqConnection('conn', sim, 'dev01', 'signature', { accessKeyId: 'AK', accessKeySecret: 'SK' }),
      'parent/tls',
    ],
  ] as const) {
    it(`${mode}: with the CA in the config node it connects, and a publish comes back`, async function () {
      const connection = overTls(env.sim, make(env.sim), TEST_CA);
      await deploy(echoFlow(connection.node, { topic: topic }), connection.credentials);
      const received = collect('received');
      await waitForStatus('in', 'connected');
      await waitForStatus('out', 'connected');
      node('out').receive({ payload: 'over tls' } as NodeMessage);
      await waitFor(() => received.length === 1, 'the message to come back over TLS');
      assert.equal(received[0].payload, 'over tls');
      if (mode === 'IoT Platform') assert.deepEqual(env.sim.onlineDevices(), [`${PK}/dev01`]);
    });
  }

  it('ApsaraMQ without the CA is refused too', async function () {
    const connection = overTls(env.sim, mqConnection('conn', env.sim, 'dev01', 'signature', { accessKeyId: 'AK', accessKeySecret: 'SK' }));
    await deploy(echoFlow(connection.node, { topic: 'parent/tls' }), connection.credentials);
    await waitForStatus('in', 'tls-error');
  });

  it('a CA that did not sign the server certificate does not help', async function () {
    // Node's own roots plus an unrelated certificate (the server's own leaf, which is no CA).
    const connection = overTls(env.sim, iotConnection('conn', env.sim, 'dev01'), SERVER_TLS.cert.toString('utf8'));
    await deploy(echoFlow(connection.node), connection.credentials);
    await waitForStatus('in', 'tls-error');
  });
});
