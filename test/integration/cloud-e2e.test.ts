// The client of the cloud-application mode (nodes/lib/cloud.ts) end to end against the simulator.
import { strict as assert } from 'node:assert';
import { MqttClient } from 'mqtt';
import { CloudApplicationConnection, ConnectionStatus, MessageMeta, MessageReceiver } from '../../nodes/lib/connection';
import { Simulator } from '../../sim';
import { cloudClient, connectDevice, endClients, startCloudSimulator, subscribe } from '../support/cloud-fixtures';
import { waitFor } from '../support/helpers';
import { AK_SECRET, PK } from '../support/registry';

function cloudConnection(sim: Simulator, secret = AK_SECRET): CloudApplicationConnection {
  return cloudClient(sim, { clientId: 'e2e-app', secret });
}

describe('cloud-application client against the simulator', function () {
  let sim: Simulator;
  let device: MqttClient;
  let cloud: CloudApplicationConnection;
  const statuses: ConnectionStatus[] = [];
  const received: Array<{ topic: string; payload: string; meta: MessageMeta }> = [];
  const receiver: MessageReceiver = {
    onMessage: (topic, payload, meta) => received.push({ topic, payload: payload.toString(), meta }),
    onSubscribeError: () => undefined,
  };

  beforeEach(async function () {
    statuses.length = 0;
    received.length = 0;
    sim = await startCloudSimulator();
    device = await connectDevice(sim, 'dev01');
  });

  afterEach(async function () {
    await new Promise<void>((resolve) => cloud.close(resolve));
    await endClients(device);
    await sim.stop();
  });

  it('receives device messages over AMQP, reaches the device by Pub and calls it by RRpc', async function () {
    cloud = cloudConnection(sim);
    cloud.register({ onStatus: (status) => statuses.push(status) });
    cloud.subscribe(receiver, `/${PK}/+/user/#`);
    await waitFor(() => cloud.status.state === 'connected', 'the AMQP link');

    device.publish(`/${PK}/dev01/user/update`, '{"temp":30}', { qos: 1 });
    await waitFor(() => received.length === 1, 'the device message');
    assert.equal(received[0].topic, `/${PK}/dev01/user/update`);
    assert.equal(received[0].payload, '{"temp":30}');
    assert.equal(received[0].meta.device?.productKey, PK);
    assert.equal(received[0].meta.device?.deviceName, 'dev01');
    assert.match(String(received[0].meta.device?.messageId), /^\d+$/);

    await subscribe(device, `/${PK}/dev01/user/get`);
    await subscribe(device, `/sys/${PK}/dev01/rrpc/request/+`);
    const arrived: string[] = [];
    device.on('message', (topic, payload) => {
      if (topic.includes('/rrpc/request/'))
        device.publish(topic.replace('/request/', '/response/'), JSON.stringify({ echo: payload.toString() }));
      else arrived.push(payload.toString());
    });
    await new Promise<void>((resolve, reject) =>
      cloud.publish(`/${PK}/dev01/user/get`, { on: true }, { qos: 1 }, (err) => (err ? reject(err) : resolve())),
    );
    await waitFor(() => arrived.length === 1, 'the Pub at the device');
    assert.equal(arrived[0], '{"on":true}');

    const answer = await cloud.invoke({ action: 'rrpc', productKey: PK, deviceName: 'dev01', payload: 'ping', timeoutMs: 2000 });
    assert.deepEqual(answer.payload, { echo: 'ping' });
    assert.equal(answer.rrpcCode, 'SUCCESS');
    await assert.rejects(
      cloud.invoke({ action: 'rrpc', productKey: PK, deviceName: 'dev02', payload: 'ping', timeoutMs: 1000 }),
      (err: { rrpcCode?: string }) => err.rrpcCode === 'OFFLINE',
    );
  });

  it('sets properties and invokes a synchronous service; platform errors carry their code', async function () {
    cloud = cloudConnection(sim);
    await subscribe(device, `/sys/${PK}/dev01/rrpc/request/+`);
    device.on('message', (topic, payload) => {
      const request = JSON.parse(payload.toString()) as { id: string };
      device.publish(topic.replace('/request/', '/response/'), JSON.stringify({ id: request.id, code: 200, data: { status: 'ok' } }));
    });
    const set = await cloud.invoke({ action: 'set', productKey: PK, deviceName: 'dev01', payload: { power: 1 } });
    assert.match(String(set.messageId), /^\d+$/);
    const service = await cloud.invoke({ action: 'service', productKey: PK, deviceName: 'dev01', identifier: 'getStatus', payload: {} });
    assert.deepEqual(service.payload, { status: 'ok' });
    await assert.rejects(
      cloud.invoke({ action: 'set', productKey: PK, deviceName: 'dev02', payload: { power: 1 } }),
      (err: { apiCode?: string }) => err.apiCode === 'iot.device.DeviceOffline',
    );
  });

  it('shows a refused AMQP login as refused', async function () {
    cloud = cloudConnection(sim, 'wrong-secret');
    cloud.register({ onStatus: (status) => statuses.push(status) });
    cloud.subscribe(receiver, '#');
    await waitFor(() => cloud.status.state === 'refused', 'the refusal');
    assert.equal(cloud.status.reason, 'refused-not-authorized');
  });
});
