// The nodes on a cloud-application connection, in a Node-RED runtime against the simulator's cloud side.
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { NodeMessage } from 'node-red';
import { Simulator } from '../../sim';
import { cloudConnection, connectDevice, endClients, startCloudSimulator, subscribe } from '../support/cloud-fixtures';
import { FlowNode, SERVER_TLS, TEST_CA, iotConnection, waitFor } from '../support/helpers';
import { CATCH_ALL, collect, deploy, errorCodesOf, node, startServer, stopServer, waitForStatus } from '../support/node-harness';
import { PK } from '../support/registry';

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
      id,
      type: 'aliyun-iot-invoke',
      connection: 'backend',
      action,
      productKey: PK,
      deviceName: 'dev01',
      identifier: '',
      topic: '',
      timeout: 2000,
      wires: [['answers']],
      ...extra,
    });
    await deploy(
      [
        backend.node,
        device.node,
        ...CATCH_ALL,
        {
          id: 'heard',
          type: 'aliyun-iot-in',
          connection: 'backend',
          topic: '/+/+/user/update',
          qos: '1',
          datatype: 'json',
          wires: [['backendHeard']],
        },
        { id: 'pub', type: 'aliyun-iot-out', connection: 'backend', topic: '', qos: '1', retain: '' },
        invoke('set', 'set'),
        invoke('service', 'service', { identifier: 'getStatus' }),
        invoke('rrpc', 'rrpc'),
        invoke('offline', 'rrpc', { deviceName: 'dev02' }),
        invoke('unknown', 'set', { deviceName: 'nosuchdevice' }),
        {
          id: 'deviceOut',
          type: 'aliyun-iot-out',
          connection: 'device',
          topic: '/${productKey}/${deviceName}/user/update',
          qos: '1',
          retain: '',
        },
        {
          id: 'deviceIn',
          type: 'aliyun-iot-in',
          connection: 'device',
          topic: '/${productKey}/${deviceName}/user/get',
          qos: '1',
          datatype: 'utf8',
          wires: [['deviceHeard']],
        },
        {
          id: 'command',
          type: 'aliyun-iot-command',
          connection: 'device',
          services: '',
          autoReplySet: true,
          rrpcTopic: '',
          wires: [['commands', 'reply']],
        },
        { id: 'reply', type: 'aliyun-iot-reply', connection: 'device', code: '' },
        ...['backendHeard', 'deviceHeard', 'answers', 'commands'].map((id) => ({ id, type: 'helper' })),
      ],
      { ...backend.credentials, ...device.credentials },
    );
    const [backendHeard, deviceHeard, answers, commands] = ['backendHeard', 'deviceHeard', 'answers', 'commands'].map(collect) as Msg[][];
    const caught = collect('caught') as CaughtMsg[];
    await waitForStatus('heard', 'connected');
    await waitForStatus('deviceIn', 'connected');
    await waitForStatus('command', 'connected');

    node('deviceOut').receive({ payload: { temperature: 31 } } as NodeMessage);
    await waitFor(() => backendHeard.length === 1, 'the device message at the backend');
    assert.deepEqual(
      [backendHeard[0].topic, backendHeard[0].productKey, backendHeard[0].deviceName],
      [`/${PK}/dev01/user/update`, PK, 'dev01'],
    );
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
    await deploy(
      [
        wrong.node,
        ...CATCH_ALL,
        { id: 'heard', type: 'aliyun-iot-in', connection: 'wrong', topic: '#', qos: '1', datatype: 'utf8', wires: [[]] },
        { id: 'pub', type: 'aliyun-iot-out', connection: 'wrong', topic: '', qos: '1', retain: '' },
      ],
      wrong.credentials,
    );
    const caught = collect('caught') as CaughtMsg[];
    await waitForStatus('heard', 'refused-not-authorized');
    node('pub').receive({ topic: `/${PK}/+/user/get`, payload: 1 } as NodeMessage);
    await waitFor(() => caught.length === 1, 'the error');
    assert.match(caught[0].error.message, /only allowed in subscriptions/);
  });

  it("every cloud node reports its errors to Catch with msg.code: the platform's code, or this package's", async function () {
    const backend = cloudConnection('backend', sim);
    await deploy(
      [
        backend.node,
        ...CATCH_ALL,
        { id: 'heard', type: 'aliyun-iot-in', connection: 'backend', topic: '/+/+/user/update', qos: '1', datatype: 'json', wires: [[]] },
        { id: 'pub', type: 'aliyun-iot-out', connection: 'backend', topic: '', qos: '1', retain: '' },
        { id: 'api', type: 'aliyun-iot-invoke', connection: 'backend', action: 'api', api: '', wires: [[]] },
        {
          id: 'set',
          type: 'aliyun-iot-invoke',
          connection: 'backend',
          action: 'set',
          productKey: PK,
          deviceName: 'nosuchdevice',
          wires: [[]],
        },
      ],
      backend.credentials,
    );
    const caught = collect('caught') as CaughtMsg[];
    await waitForStatus('heard', 'connected');
    const codeFrom = async (source: string, send: () => void): Promise<unknown> => {
      const before = caught.length;
      send();
      await waitFor(() => caught.length === before + 1, `the error of ${source}`);
      assert.equal(caught[before].error.source?.id, source);
      return caught[before].code;
    };
    // out: a Pub the platform refuses, and one refused before sending
    assert.equal(
      await codeFrom('pub', () => node('pub').receive({ topic: '/a1Z9y8X7w6V/dev01/user/get', payload: 1 } as NodeMessage)),
      'iot.prod.NotExistedProduct',
    );
    assert.equal(
      await codeFrom('pub', () => node('pub').receive({ topic: `/${PK}/+/user/get`, payload: 1 } as NodeMessage)),
      'TOPIC_WILDCARD',
    );
    // invoke: an API error, an unknown action, bad parameters, a device action on an unknown device
    assert.equal(
      await codeFrom('api', () =>
        node('api').receive({ api: 'QueryDeviceDetail', payload: { ProductKey: PK, DeviceName: 'nosuchdevice' } } as NodeMessage),
      ),
      'iot.device.NotExistedDevice',
    );
    assert.equal(
      await codeFrom('api', () => node('api').receive({ api: 'NoSuchAction', payload: {} } as NodeMessage)),
      'InvalidAction.NotFound',
    );
    assert.equal(
      await codeFrom('api', () => node('api').receive({ api: 'GetDeviceStatus', payload: { Signature: 'x' } } as NodeMessage)),
      'API_PARAMS_INVALID',
    );
    assert.equal(await codeFrom('api', () => node('api').receive({ payload: {} } as NodeMessage)), 'API_ACTION_INVALID');
    assert.equal(await codeFrom('set', () => node('set').receive({ payload: { light: 1 } } as NodeMessage)), 'iot.device.NotExistedDevice');
    // in: a device message that is not JSON for a json node, and an unknown action
    const device = await connectDevice(sim, 'dev02');
    assert.equal(await codeFrom('heard', () => void device.publish(`/${PK}/dev02/user/update`, 'not json', { qos: 1 })), 'JSON_INVALID');
    assert.equal(await codeFrom('heard', () => node('heard').receive({ action: 'bogus' } as NodeMessage)), 'ACTION_UNKNOWN');
    await endClients(device);
  });

  it('a cloud node without a usable connection reports to Catch with msg.code, at deploy and for every input', async function () {
    const backend = cloudConnection('backend', sim);
    const device = iotConnection('device', sim, 'dev01');
    await deploy(
      [
        { ...backend.node, consumerGroupId: '' },
        device.node,
        ...CATCH_ALL,
        { id: 'nogroup', type: 'aliyun-iot-in', connection: 'backend', topic: '/+/+/user/update', qos: '1', datatype: 'json', wires: [[]] },
        { id: 'ondevice', type: 'aliyun-iot-invoke', connection: 'device', action: 'api', api: 'GetDeviceStatus', wires: [[]] },
        { id: 'unwired', type: 'aliyun-iot-invoke', connection: 'nosuchconnection', action: 'rrpc', wires: [[]] },
      ],
      { ...backend.credentials, ...device.credentials },
    );
    // at deploy, before anything could collect what Catch nodes got: the node's own error call carries the code
    assert.deepEqual(errorCodesOf(node('nogroup')), ['CONSUMER_GROUP_MISSING']);
    assert.deepEqual(errorCodesOf(node('ondevice')), ['INVOKE_NEEDS_CLOUD']);
    assert.deepEqual(errorCodesOf(node('unwired')), ['NO_CONNECTION']);
    const caught = collect('caught') as CaughtMsg[];
    const codesOf = (source: string): unknown[] => caught.filter((msg) => msg.error.source?.id === source).map((msg) => msg.code);
    node('ondevice').receive({ payload: {} } as NodeMessage);
    node('unwired').receive({ payload: 'x' } as NodeMessage);
    await waitFor(() => codesOf('ondevice').length === 1 && codesOf('unwired').length === 1, 'the errors of the inputs');
    assert.deepEqual(codesOf('ondevice'), ['INVOKE_NEEDS_CLOUD']);
    assert.deepEqual(codesOf('unwired'), ['NO_CONNECTION']);
  });

  it("invoke action api calls any OpenAPI action by name and answers the device queries from the platform's state", async function () {
    const backend = cloudConnection('backend', sim);
    await deploy(
      [
        backend.node,
        ...CATCH_ALL,
        { id: 'detail', type: 'aliyun-iot-invoke', connection: 'backend', action: 'api', api: 'QueryDeviceDetail', wires: [['answers']] },
        { id: 'api', type: 'aliyun-iot-invoke', connection: 'backend', action: 'api', api: '', wires: [['answers']] },
        { id: 'answers', type: 'helper' },
      ],
      backend.credentials,
    );
    const answers = collect('answers') as Msg[];
    const ask = async (id: string, msg: Record<string, unknown>): Promise<Record<string, unknown>> => {
      const before = answers.length;
      node(id).receive(msg as NodeMessage);
      await waitFor(() => answers.length === before + 1, `the answer of ${String(msg.api ?? id)}`);
      return answers[before].payload as Record<string, unknown>;
    };
    const device = await connectDevice(sim, 'dev01');
    const replied = new Promise<void>((resolve) => device.once('message', () => resolve()));
    await subscribe(device, `/sys/${PK}/dev01/thing/event/property/post_reply`);
    device.publish(
      `/sys/${PK}/dev01/thing/event/property/post`,
      JSON.stringify({ id: '1', version: '1.0', params: { temperature: 21.5, light: 1 }, method: 'thing.event.property.post' }),
    );
    await replied;

    const detail = await ask('detail', { payload: { ProductKey: PK, DeviceName: 'dev01' } });
    assert.equal(detail.Success, true);
    assert.match(String(detail.RequestId), /^[0-9A-F-]{36}$/);
    const data = detail.Data as Record<string, unknown>;
    assert.deepEqual([data.ProductKey, data.DeviceName, data.Status, data.NodeType], [PK, 'dev01', 'ONLINE', 0]);
    assert.match(String(data.IotId), /^[A-Za-z0-9]{20}000100$/);
    assert.match(String(data.GmtOnline), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);

    const byIotId = await ask('api', { api: 'GetDeviceStatus', payload: { IotId: data.IotId } });
    assert.equal((byIotId.Data as { Status: string }).Status, 'ONLINE');

    const batch = await ask('api', { api: 'BatchGetDeviceState', payload: { ProductKey: PK, DeviceName: ['dev01', 'dev02'] } });
    const states = (batch.DeviceStatusList as { DeviceStatus: Array<Record<string, unknown>> }).DeviceStatus;
    assert.deepEqual(
      states.map((state) => [state.DeviceName, state.Status]),
      [
        ['dev01', 'ONLINE'],
        ['dev02', 'UNACTIVE'],
      ],
    );

    const properties = await ask('api', { api: 'QueryDevicePropertyStatus', payload: { ProductKey: PK, DeviceName: 'dev01' } });
    const list = (properties.Data as { List: { PropertyStatusInfo: Array<Record<string, unknown>> } }).List.PropertyStatusInfo;
    const byName = new Map(list.map((entry) => [entry.Identifier, entry]));
    assert.deepEqual([byName.get('temperature')?.Value, byName.get('temperature')?.DataType], ['21.5', 'double']);
    assert.deepEqual([byName.get('light')?.Value, byName.get('light')?.DataType], ['1', 'int']);
    assert.match(String(byName.get('light')?.Time), /^\d{13}$/);

    await endClients(device);
    await waitFor(() => !sim.onlineDevices().includes(`${PK}/dev01`), 'dev01 offline');
    const after = await ask('api', { api: 'GetDeviceStatus', payload: { ProductKey: PK, DeviceName: 'dev01' } });
    assert.equal((after.Data as { Status: string }).Status, 'OFFLINE');
  });

  it('a dropped AMQP link reconnects, signing again, and the flow hears the devices again', async function () {
    this.timeout(30_000);
    const backend = cloudConnection('backend', sim);
    await deploy(
      [
        backend.node,
        {
          id: 'heard',
          type: 'aliyun-iot-in',
          connection: 'backend',
          topic: '/+/+/user/update',
          qos: '1',
          datatype: 'utf8',
          wires: [['backendHeard']],
        },
        { id: 'backendHeard', type: 'helper' },
      ],
      backend.credentials,
    );
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
    await deploy(
      [
        { ...untrusting.node, amqpEndpoint },
        { ...trusting.node, amqpEndpoint, ca: TEST_CA },
        { id: 'refused', type: 'aliyun-iot-in', connection: 'untrusting', topic: '#', qos: '1', datatype: 'utf8', wires: [[]] },
        { id: 'accepted', type: 'aliyun-iot-in', connection: 'trusting', topic: '#', qos: '1', datatype: 'utf8', wires: [[]] },
      ],
      { ...untrusting.credentials, ...trusting.credentials },
    );
    await waitForStatus('refused', 'tls-error');
    await waitForStatus('accepted', 'connected');
  });
});
