// Deployed secrets in a whole Node-RED runtime: encrypted in flows_cred.json, absent from everything exported.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { waitFor } from '../support/helpers';
import { NodeRedProcess } from '../support/processes';
import { MQ_INSTANCE, PK } from '../support/registry';
import { SECRET, assertNoLeak } from '../support/secrets';

describe('secrets: stored as encrypted credentials, never exported', function () {
  this.timeout(60_000);
  let nodeRed: NodeRedProcess;

  before(async function () {
    nodeRed = await NodeRedProcess.start();
  });

  after(async function () {
    await nodeRed.stop();
  });

  it('deployed secrets go to flows_cred.json encrypted; GET /flows, flows.json and the node data do not hold them', async function () {
    // Every connection dials this server, which hangs up at once: each retry is a connection here.
    const dialled: number[] = [];
    const hangUp = net.createServer((socket) => {
      dialled.push(Date.now());
      socket.destroy();
    });
    await new Promise<void>((resolve) => hangUp.listen(0, '127.0.0.1', resolve));
    const port = (hangUp.address() as net.AddressInfo).port;
    // The editor sends credentials inline with each node; the runtime strips them from the flow it stores.
    const flows = [
      { id: 'tab', type: 'tab', label: 'secrets' },
      {
        id: 'cIot',
        type: 'aliyun-iot-connection',
        mode: 'iot',
        productKey: PK,
        deviceName: 'secretdev',
        protocol: 'mqtt',
        host: '127.0.0.1',
        port: String(port),
        credentials: { deviceSecret: SECRET.deviceSecret },
      },
      {
        id: 'cMq',
        type: 'aliyun-iot-connection',
        mode: 'mq',
        instanceId: MQ_INSTANCE,
        groupId: 'GID_test',
        deviceId: 'd1',
        authMode: 'signature',
        protocol: 'mqtt',
        host: '127.0.0.1',
        port: String(port),
        credentials: { accessKeyId: 'AKsecret', accessKeySecret: SECRET.accessKeySecret },
      },
      {
        id: 'cTok',
        type: 'aliyun-iot-connection',
        mode: 'mq',
        instanceId: MQ_INSTANCE,
        groupId: 'GID_test',
        deviceId: 'd2',
        authMode: 'token',
        protocol: 'mqtt',
        host: '127.0.0.1',
        port: String(port),
        credentials: { accessKeyId: 'AKsecret', token: SECRET.token },
      },
      {
        id: 'cCloud',
        type: 'aliyun-iot-connection',
        mode: 'cloud',
        uid: '1234567890',
        amqpEndpoint: `amqp://127.0.0.1:${port}`,
        apiEndpoint: `http://127.0.0.1:${port}`,
        credentials: { accessKeyId: 'LTAIsecret', accessKeySecret: SECRET.cloudAccessKeySecret },
      },
      {
        id: 'in1',
        type: 'aliyun-iot-in',
        z: 'tab',
        x: 100,
        y: 100,
        connection: 'cIot',
        topic: '/${productKey}/${deviceName}/user/echo',
        qos: '0',
        datatype: 'utf8',
        wires: [],
      },
      {
        id: 'in2',
        type: 'aliyun-iot-in',
        z: 'tab',
        x: 100,
        y: 160,
        connection: 'cMq',
        topic: 'parent/x',
        qos: '0',
        datatype: 'utf8',
        wires: [],
      },
      {
        id: 'in3',
        type: 'aliyun-iot-in',
        z: 'tab',
        x: 100,
        y: 220,
        connection: 'cTok',
        topic: 'parent/x',
        qos: '0',
        datatype: 'utf8',
        wires: [],
      },
      {
        id: 'in4',
        type: 'aliyun-iot-in',
        z: 'tab',
        x: 100,
        y: 280,
        connection: 'cCloud',
        topic: `/${PK}/+/user/#`,
        qos: '0',
        datatype: 'utf8',
        wires: [],
      },
    ];
    const deployed = await nodeRed.deploy(flows);
    const { url, userDir } = nodeRed;
    assert.ok(deployed.status === 200 || deployed.status === 204, await deployed.text());
    // Four connection nodes, each retried at least once: their connect and retry paths have run and logged.
    await waitFor(() => dialled.length >= 8, 'two connection attempts per connection node', 15_000);

    const exported = await (await fetch(`${url}flows`)).text();
    assert.match(exported, /secretdev/);
    assertNoLeak('GET /flows', exported);
    assert.equal(exported.includes('"credentials"'), false);

    const flowsFile = fs.readFileSync(path.join(userDir, 'flows.json'), 'utf8');
    assert.match(flowsFile, /secretdev/);
    assertNoLeak('flows.json', flowsFile);
    const credFile = fs.readFileSync(path.join(userDir, 'flows_cred.json'), 'utf8');
    assertNoLeak('flows_cred.json', credFile);
    assert.deepEqual(Object.keys(JSON.parse(credFile) as object), ['$'], 'flows_cred.json is encrypted');

    for (const [id, has] of [
      ['cIot', ['deviceSecret']],
      ['cMq', ['accessKeySecret']],
      ['cTok', ['token']],
      ['cCloud', ['accessKeySecret']],
    ] as const) {
      const response = await fetch(`${url}credentials/aliyun-iot-connection/${id}`);
      const data = (await response.json()) as Record<string, unknown>;
      assertNoLeak(`the editor's data of ${id}`, JSON.stringify(data));
      for (const field of has) assert.equal(data[`has_${field}`], true, `${id}: ${JSON.stringify(data)}`);
      for (const field of ['deviceSecret', 'accessKeySecret', 'token']) assert.equal(field in data, false, `${id} sends ${field}`);
    }
    assertNoLeak('the runtime output', nodeRed.output);
    hangUp.close();
  });
});
