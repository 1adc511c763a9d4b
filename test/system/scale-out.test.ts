// Two Node-RED runtimes, each a cloud application on one consumer group: the platform's way to scale a backend out.
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { MqttClient } from 'mqtt';
import { Simulator, startSimulator } from '../../sim';
import { connectDevice, endClients } from '../support/cloud-fixtures';
import { waitFor } from '../support/helpers';
import { NodeRedProcess } from '../support/processes';
import { AK_ID, AK_SECRET, CLOUD_CONFIG, GROUP, PK } from '../support/registry';

const DEVICES = ['dev01', 'dev02', 'dev03', 'dev04'];

interface Delivery {
  runtime: string;
  deviceName: string;
  seq: number;
  messageId: string;
}

/** The backend flow: every /user/update the consumer group gets goes to the collector, tagged with the runtime. */
function backendFlow(sim: Simulator, name: string, collectorUrl: string): unknown[] {
  return [
    { id: 'tab', type: 'tab', label: 'backend' },
    {
      id: 'backendConnection',
      type: 'aliyun-iot-connection',
      name: `backend ${name}`,
      mode: 'cloud',
      region: 'cn-shanghai',
      consumerGroupId: GROUP,
      clientId: `backend-${name}`,
      amqpEndpoint: `amqp://127.0.0.1:${sim.amqpPort}`,
      apiEndpoint: `http://127.0.0.1:${sim.apiPort}`,
      credentials: { accessKeyId: AK_ID, accessKeySecret: AK_SECRET },
    },
    {
      id: 'in',
      type: 'aliyun-iot-in',
      z: 'tab',
      x: 120,
      y: 80,
      connection: 'backendConnection',
      topic: '/+/+/user/update',
      qos: '1',
      datatype: 'json',
      wires: [['record']],
    },
    {
      id: 'record',
      type: 'change',
      z: 'tab',
      x: 320,
      y: 80,
      wires: [['post']],
      rules: [
        {
          t: 'set',
          p: 'payload',
          pt: 'msg',
          to: `{"runtime": "${name}", "deviceName": deviceName, "seq": payload.seq, "messageId": messageId}`,
          tot: 'jsonata',
        },
      ],
    },
    {
      id: 'post',
      type: 'http request',
      z: 'tab',
      x: 520,
      y: 80,
      method: 'POST',
      ret: 'txt',
      paytoqs: 'ignore',
      url: collectorUrl,
      wires: [[]],
    },
  ];
}

describe('cloud application: scale-out across two Node-RED runtimes on one consumer group', function () {
  this.timeout(120_000);
  let sim: Simulator;
  let collector: http.Server;
  let collectorUrl = '';
  const deliveries: Delivery[] = [];
  const names = ['A', 'B'];
  let runtimes: NodeRedProcess[] = [];
  const devices: MqttClient[] = [];
  let sent = 0;

  async function publishFromDevices(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const seq = sent++;
      await devices[seq % devices.length].publishAsync(`/${PK}/${DEVICES[seq % devices.length]}/user/update`, JSON.stringify({ seq }), {
        qos: 1,
      });
    }
  }

  before(async function () {
    sim = await startSimulator({ ...CLOUD_CONFIG, port: 0 });
    collector = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        deliveries.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Delivery);
        response.end('ok');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    collectorUrl = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/collect`;
    runtimes = await Promise.all(names.map(() => NodeRedProcess.start()));
    const deployed = await Promise.all(runtimes.map((runtime, i) => runtime.deploy(backendFlow(sim, names[i], collectorUrl))));
    assert.ok(
      deployed.every((response) => response.ok),
      `deploys: ${deployed.map((response) => response.status).join(', ')}`,
    );
    devices.push(...(await Promise.all(DEVICES.map((deviceName) => connectDevice(sim, deviceName)))));
  });

  after(async function () {
    await endClients(...devices);
    await Promise.all(runtimes.map((runtime) => runtime.stop()));
    await new Promise((resolve) => collector.close(resolve));
    await sim.stop();
  });

  it('splits the device traffic between the runtimes, nothing lost, nothing duplicated, and one takes over when the other stops', async function () {
    // Until both runtimes have attached, one of them may get everything: send until each has had a message.
    while (!names.every((name) => deliveries.some((delivery) => delivery.runtime === name))) {
      assert.ok(
        sent < 300,
        `both runtimes attached (deliveries: ${deliveries.length}) ${runtimes.map((runtime) => runtime.output.slice(-2000)).join('\n')}`,
      );
      await publishFromDevices(1);
      await waitFor(() => deliveries.length >= sent, `warm-up message ${sent} delivered`, 30_000);
    }
    const warmUp = sent;
    await publishFromDevices(400);
    await waitFor(() => deliveries.length >= sent, `${sent} deliveries (${deliveries.length} so far)`, 30_000);
    const split = names.map((name) => deliveries.slice(warmUp).filter((delivery) => delivery.runtime === name).length);
    console.log(`      400 messages from ${DEVICES.length} devices: runtime A ${split[0]}, runtime B ${split[1]}`);
    assert.ok(
      split.every((share) => share >= 120),
      `each runtime takes a fair share: ${split.join(' / ')}`,
    );

    // Runtime A stops; whatever it had not accepted goes to B, and so does everything after.
    await runtimes[0].stop();
    await publishFromDevices(100);
    await waitFor(() => new Set(deliveries.map((delivery) => delivery.seq)).size === sent, `all ${sent} messages`, 30_000);
    // One more message, behind anything runtime A left to be delivered again: once it arrived, nothing is on the way.
    await publishFromDevices(1);
    await waitFor(() => deliveries.some((delivery) => delivery.seq === sent - 1), 'the last message', 30_000);
    const seqs = deliveries.map((delivery) => delivery.seq).sort((a, b) => a - b);
    assert.deepEqual(
      seqs,
      Array.from({ length: sent }, (_, i) => i),
      'every message delivered exactly once',
    );
    assert.equal(new Set(deliveries.map((delivery) => delivery.messageId)).size, sent, 'distinct message ids');
    assert.ok(
      deliveries.every((delivery) => DEVICES.includes(delivery.deviceName)),
      'msg.deviceName set',
    );
  });
});
