// The nodes on a cloud-application connection, in a Node-RED runtime against the simulator's cloud side.
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { NodeMessage } from 'node-red';
import { Simulator } from '../sim';
import { cloudConnection, connectDevice, endClients, startCloudSimulator } from './cloud-fixtures';
import { FlowNode, PK, SERVER_TLS, TEST_CA, iotConnection, waitFor } from './helpers';
import { CATCH_ALL, collect, deploy, node, startServer, stopServer, waitForStatus } from './node-harness';

type Msg = NodeMessage & Record<string, unknown>;
type CaughtMsg = Msg & { error: { message: string; source?: { id: string } } };

describe('nodes on a cloud-application connection', function () {
  let sim: Simulator;
  let tlsFront: tls.Server | undefined;
  beforeEach(async function () {
    sim = await startCloudSimulator();
    await startServer();
  });
  afterEach(async function () {
    await stopServer();
    tlsFront?.close();
    tlsFront = undefined;
    await sim.stop();
  });

  it('in hears every device, out publishes with Pub, invoke sets, calls services and makes RRpc calls', async function () {
    const backend = cloudConnection('backend', sim);
    const device = iotConnection('device', sim, 'dev01');
    const invoke = (id: string, action: string, extra: Record<string, unknown> = {}): FlowNode => ({
      id, type: 'aliyun-iot-invoke', connection: 'backend', action, productKey: PK, deviceName: 'dev01', identifier: '', topic: '', timeout: 2000, wires: [['answers']], ...extra,
    });
    await deploy([
      backend.node, device.node, ...CATCH_ALL,
      { id: 'heard', type: 'aliyun-iot-in', connection: 'backend', topic: '/+/+/user/update', qos: '1', datatype: 'json', wires: [['backendHeard']] },
      { id: 'pub', type: 'aliyun-iot-out', connection: 'backend', topic: '', qos: '1', retain: '' },
      invoke('set', 'set'), invoke('service', 'service', { identifier: 'getStatus' }), invoke('rrpc', 'rrpc'),
      invoke('offline', 'rrpc', { deviceName: 'dev02' }), invoke('unknown', 'set', { deviceName: 'nosuchdevice' }),
      { id: 'deviceOut', type: 'aliyun-iot-out', connection: 'device', topic: '/${productKey}/${deviceName}/user/update', qos: '1', retain: '' },
      { id: 'deviceIn', type: 'aliyun-iot-in', connection: 'device', topic: '/${productKey}/${deviceName}/user/get', qos: '1', datatype: 'utf8', wires: [['deviceHeard']] },
      { id: 'command', type: 'aliyun-iot-command', connection: 'device', services: '', autoReplySet: true, rrpcTopic: '', wires: [['commands', 'reply']] },
      { id: 'reply', type: 'aliyun-iot-reply', connection: 'device', code: '' },
      ...['backendHeard', 'deviceHeard', 'answers', 'commands'].map((id) => ({ id, type: 'helper' })),
    ], { ...backend.credentials, ...device.credentials });
    const [backendHeard, deviceHeard, answers, commands] = ['backendHeard', 'deviceHeard', 'answers', 'commands'].map(collect) as Msg[][];
    const caught = collect('caught') as CaughtMsg[];
    await waitForStatus('heard', 'connected');
    await waitForStatus('deviceIn', 'connected');
    await waitForStatus('command', 'connected');

    node('deviceOut').receive({ payload: { temperature: 31 } } as NodeMessage);
    await waitFor(() => backendHeard.length === 1, 'the device message at the backend');
    assert.deepEqual([backendHeard[0].topic, backendHeard[0].productKey, backendHeard[0].deviceName], [`/${PK}/dev01/user/update`, PK, 'dev01']);
    assert.deepEqual(backendHeard[0].payload, { temperature: 31 });
    assert.match(String(backendHeard[0].messageId), /^\d+$/);

    node('pub').receive({ topic: `/${PK}/dev01/user/get`, payload: 'fan on' } as NodeMessage);
    await waitFor(() => deviceHeard.length === 1, 'the Pub at the device');
    assert.equal(deviceHeard[0].payload, 'fan on');

    node('set').receive({ payload: { light: 1 } } as NodeMessage);
    await waitFor(() => answers.length === 1 && commands.length === 1, 'the property set');
    assert.equal(commands[0].method, 'thing.service.property.set');
    assert.match(String(answers[0].messageId), /^\d+$/);

    node('service').receive({ payload: { verbose: true } } as NodeMessage);
    await waitFor(() => answers.length === 2, 'the synchronous service answer');
    assert.deepEqual(JSON.parse(JSON.stringify(answers[1].payload)), { verbose: true }, 'the device echoed the arguments');

    node('rrpc').receive({ payload: { op: 'ping' } } as NodeMessage);
    await waitFor(() => answers.length === 3, 'the RRpc answer');
    assert.equal(answers[2].rrpcCode, 'SUCCESS');

    node('offline').receive({ payload: 'ping' } as NodeMessage);
    node('unknown').receive({ payload: { light: 1 } } as NodeMessage);
    await waitFor(() => caught.length === 2, 'two errors');
    const bySource = new Map(caught.map((msg) => [msg.error.source?.id, msg]));
    assert.equal(bySource.get('offline')?.rrpcCode, 'OFFLINE');
    assert.equal(bySource.get('unknown')?.code, 'iot.device.NotExistedDevice');
    assert.equal(answers.length, 3, 'failures send nothing on');
  });

  it('a refused login shows on the in node, and a wildcard Pub topic is a catchable error', async function () {
    const wrong = cloudConnection('wrong', sim, 'not-the-secret');
    await deploy([
      wrong.node, ...CATCH_ALL,
      { id: 'heard', type: 'aliyun-iot-in', connection: 'wrong', topic: '#', qos: '1', datatype: 'utf8', wires: [[]] },
      { id: 'pub', type: 'aliyun-iot-out', connection: 'wrong', topic: '', qos: '1', retain: '' },
    ], wrong.credentials);
    const caught = collect('caught') as CaughtMsg[];
    await waitForStatus('heard', 'refused-not-authorized');
    node('pub').receive({ topic: `/${PK}/+/user/get`, payload: 1 } as NodeMessage);
    await waitFor(() => caught.length === 1, 'the error');
    assert.match(caught[0].error.message, /only allowed in subscriptions/);
  });

  it('a dropped AMQP link reconnects, signing again, and the flow hears the devices again', async function () {
    this.timeout(30_000);
    const backend = cloudConnection('backend', sim);
    await deploy([
      backend.node,
      { id: 'heard', type: 'aliyun-iot-in', connection: 'backend', topic: '/+/+/user/update', qos: '1', datatype: 'utf8', wires: [['backendHeard']] },
      { id: 'backendHeard', type: 'helper' },
    ], backend.credentials);
    const heard = collect('backendHeard') as Msg[];
    await waitForStatus('heard', 'connected');
    await sim.stop();
    await waitForStatus('heard', 'disconnected');
    await sim.start();
    await waitForStatus('heard', 'connected', 15_000);
    const device = await connectDevice(sim, 'dev02');
    await device.publishAsync(`/${PK}/dev02/user/update`, 'after the outage', { qos: 1 });
    await waitFor(() => heard.length === 1, 'the message after the reconnect');
    assert.equal(heard[0].payload, 'after the outage');
    await endClients(device);
  });

  it('amqps verifies the server certificate: a private CA is a certificate error until the config node trusts it', async function () {
    // TLS in front of the simulator's AMQP listener, with the test CA's server certificate.
    const front = tls.createServer(SERVER_TLS, (socket) => {
      const upstream = net.connect(sim.amqpPort, '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    tlsFront = front;
    front.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    const amqpEndpoint = `amqps://127.0.0.1:${(front.address() as net.AddressInfo).port}`;
    const untrusting = cloudConnection('untrusting', sim);
    const trusting = cloudConnection('trusting', sim);
    await deploy([
      { ...untrusting.node, amqpEndpoint }, { ...trusting.node, amqpEndpoint, ca: TEST_CA },
      { id: 'refused', type: 'aliyun-iot-in', connection: 'untrusting', topic: '#', qos: '1', datatype: 'utf8', wires: [[]] },
      { id: 'accepted', type: 'aliyun-iot-in', connection: 'trusting', topic: '#', qos: '1', datatype: 'utf8', wires: [[]] },
    ], { ...untrusting.credentials, ...trusting.credentials });
    await waitForStatus('refused', 'tls-error');
    await waitForStatus('accepted', 'connected');
  });
});
