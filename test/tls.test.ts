// TLS verifies the server certificate by default: the simulator's TLS listener, whose certificate a private test CA
// signed, is refused until that CA is given in the config node's CA field.
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import type { NodeMessage } from 'node-red';
import { statusText } from '../nodes/support/status';
import { Simulator } from '../sim';
import { collect, deploy, errorsOf, node, simulatorAndRuntime, statusesOf, waitForStatus } from './node-harness';
import {
  FlowNode, PK, SERVER_TLS, SIM_CONFIG, TEST_CA, TLS_DIR, delay, iotConnection, mqConnection, waitFor,
} from './helpers';
import { SimulatorCli } from './processes';


type Connection = { node: FlowNode; credentials: Record<string, Record<string, string>> };

function overTls(sim: Simulator, connection: Connection, ca?: string): Connection {
  return { ...connection, node: { ...connection.node, protocol: 'mqtts', port: String(sim.tlsPort), ...(ca ? { ca } : {}) } };
}

function echoFlow(connection: Connection, topic: string): FlowNode[] {
  return [
    connection.node,
    { id: 'in', type: 'aliyun-iot-in', connection: connection.node.id, topic, qos: '1', datatype: 'utf8', wires: [['received']] },
    { id: 'out', type: 'aliyun-iot-out', connection: connection.node.id, topic, qos: '1', retain: '' },
    { id: 'received', type: 'helper' },
  ];
}

describe('TLS: the server certificate is verified', function () {
  const env = simulatorAndRuntime({ tlsPort: 0, tls: SERVER_TLS });

  it('the simulator listens for MQTT over TLS besides plain TCP', function () {
    assert.ok(env.sim.tlsPort && env.sim.tlsPort > 0);
    assert.notEqual(env.sim.tlsPort, env.sim.port);
  });

  it('refuses a server signed by an unknown CA by default: a certificate error, not connected, no tight reconnect loop', async function () {
    const connection = overTls(env.sim, iotConnection('conn', env.sim, 'dev01'));
    await deploy(echoFlow(connection, '/${productKey}/${deviceName}/user/echo'), connection.credentials);
    await waitForStatus('in', 'tls-error');
    const started = Date.now();
    await delay(3000);
    const attempts = statusesOf(node('in')).filter((status) => status.text === statusText('tls-error')).length;
    // The refused-login back-off (2 s, doubling) applies: a handful of attempts at most, never hundreds.
    assert.ok(attempts <= 3, `${attempts} attempts in ${Date.now() - started} ms`);
    assert.equal(statusesOf(node('in')).some((status) => status.text === statusText('connected')), false);
    assert.deepEqual(env.sim.onlineDevices(), []);
    const logged = errorsOf(node('conn')).join('\n');
    assert.match(logged, /certificate/i);
    assert.match(logged, /CA/);
  });

  for (const [mode, make, topic] of [
    ['IoT Platform', (sim: Simulator) => iotConnection('conn', sim, 'dev01'), '/${productKey}/${deviceName}/user/echo'],
    ['ApsaraMQ', (sim: Simulator) => mqConnection('conn', sim, 'dev01', 'signature', { accessKeyId: 'AK', accessKeySecret: 'SK' }), 'parent/tls'],
  ] as const) {
    it(`${mode}: with the CA in the config node it connects, and a publish comes back`, async function () {
      const connection = overTls(env.sim, make(env.sim), TEST_CA);
      await deploy(echoFlow(connection, topic), connection.credentials);
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
    await deploy(echoFlow(connection, 'parent/tls'), connection.credentials);
    await waitForStatus('in', 'tls-error');
  });

  it('a CA that did not sign the server certificate does not help', async function () {
    // Node's own roots plus an unrelated certificate (the server's own leaf, which is no CA).
    const connection = overTls(env.sim, iotConnection('conn', env.sim, 'dev01'), SERVER_TLS.cert.toString('utf8'));
    await deploy(echoFlow(connection, '/${productKey}/${deviceName}/user/echo'), connection.credentials);
    await waitForStatus('in', 'tls-error');
  });
});

describe('simulator: TLS on the command line', function () {
  it('--tls-port with --tls-key and --tls-cert prints the TLS port', async function () {
    const cli = new SimulatorCli(SIM_CONFIG, ['--port', '0', '--tls-port', '0',
      '--tls-key', path.join(TLS_DIR, 'server.key'), '--tls-cert', path.join(TLS_DIR, 'server.pem'), '--quiet']);
    try {
      await cli.portLine('tls port');
      assert.match(cli.stdout, /^port \d+$/m);
    } finally {
      await cli.stop();
    }
  });

  it('--tls-port without a key and certificate is an error', async function () {
    const cli = new SimulatorCli(SIM_CONFIG, ['--port', '0', '--tls-port', '0']);
    assert.equal(await cli.exited, 1);
    assert.match(cli.stderr, /--tls-key/);
  });
});
