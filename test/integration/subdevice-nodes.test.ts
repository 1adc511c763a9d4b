// The sub-device nodes in a Node-RED runtime against the simulator's gateways: an aliyun-iot-subdevice config node
// logs its sub-device in through the gateway connection, and in / out / post / command / reply act as it; msg.device
// addresses a logged-in sub-device; the platform's refusals show as readable statuses; bad msg.device fails cleanly.
import { strict as assert } from 'node:assert';
import type { NodeMessage } from 'node-red';
import { Simulator } from '../../sim';
import {
  CATCH_ALL,
  Credentials,
  collect,
  deploy,
  errorsOf,
  node,
  redeploy,
  send,
  startServer,
  statusesOf,
  stopServer,
  waitForStatus,
} from '../support/node-harness';
import { FlowNode, admin, iotConnection, waitFor } from '../support/helpers';
import { GW_PK, SUB_PK, startGatewaySimulator, subName, subSecret } from '../support/gateway-fixtures';

const SUB1 = { productKey: SUB_PK, deviceName: subName(1) };
const SUB2 = { productKey: SUB_PK, deviceName: subName(2) };
const USER_GET = '/${productKey}/${deviceName}/user/get';
const USER_UPDATE = '/${productKey}/${deviceName}/user/update';

type Msg = NodeMessage & { device?: unknown; code?: unknown; alink?: { code?: number }; error?: { message: string } };

function gatewayConnection(sim: Simulator): { node: FlowNode; credentials: Credentials } {
  const { node: connection } = iotConnection('gw', sim, 'gw01', { productKey: GW_PK });
  return { node: connection, credentials: { gw: { deviceSecret: 'gw-secret-gw01' } } };
}

function subDeviceNode(id: string, index: number, deviceSecret = subSecret(subName(index))): { node: FlowNode; credentials: Credentials } {
  return {
    node: {
      id,
      type: 'aliyun-iot-subdevice',
      gateway: 'gw',
      productKey: SUB_PK,
      deviceName: subName(index),
      signMethod: 'hmacsha256',
      cleanSession: true,
    },
    credentials: { [id]: { deviceSecret } },
  };
}

/** A property post node on the gateway connection, as `subdevice` when given, wired to `output` when given. */
function postNode(id: string, subdevice?: string, output?: string): FlowNode {
  return {
    id,
    type: 'aliyun-iot-post',
    connection: 'gw',
    subdevice,
    kind: 'property',
    ack: true,
    timeout: 5000,
    wires: output ? [[output]] : [],
  };
}

/** Deploys the gateway connection, the sub-device config nodes and `nodes` (with a catch-all). */
async function deployGateway(
  sim: Simulator,
  subDevices: Array<{ node: FlowNode; credentials: Credentials }>,
  nodes: FlowNode[],
): Promise<void> {
  const gateway = gatewayConnection(sim);
  const credentials = Object.assign({}, gateway.credentials, ...subDevices.map((entry) => entry.credentials)) as Credentials;
  await deploy([gateway.node, ...subDevices.map((entry) => entry.node), ...nodes, ...CATCH_ALL], credentials);
}

function caughtCode(caught: NodeMessage[]): unknown[] {
  return caught.map((msg) => (msg as Msg).code);
}

describe('sub-device nodes: acting as sub-devices through a gateway connection', function () {
  this.timeout(20000);
  let sim: Simulator;

  beforeEach(async function () {
    sim = await startGatewaySimulator();
    await startServer();
  });
  afterEach(async function () {
    await stopServer();
    await sim.stop();
  });

  it('a sub-device config node logs in; post, command, reply, in and out work as the sub-device', async function () {
    const granted: string[] = [];
    sim.on('subscribe', (info) => granted.push(...info.topics));
    const messages: Array<{ productKey: string; deviceName: string; topic: string }> = [];
    sim.on('message', (info) => messages.push(info));
    await deployGateway(
      sim,
      [subDeviceNode('sd1', 1)],
      [
        postNode('post', 'sd1', 'posted'),
        {
          id: 'command',
          type: 'aliyun-iot-command',
          connection: 'gw',
          subdevice: 'sd1',
          services: '',
          autoReplySet: false,
          wires: [['commands', 'reply']],
        },
        { id: 'reply', type: 'aliyun-iot-reply', connection: 'gw', subdevice: 'sd1', code: 200 },
        {
          id: 'in',
          type: 'aliyun-iot-in',
          connection: 'gw',
          subdevice: 'sd1',
          topic: USER_GET,
          qos: '0',
          datatype: 'utf8',
          wires: [['received']],
        },
        { id: 'out', type: 'aliyun-iot-out', connection: 'gw', subdevice: 'sd1', topic: USER_UPDATE, qos: '1', retain: '' },
        { id: 'posted', type: 'helper' },
        { id: 'commands', type: 'helper' },
        { id: 'received', type: 'helper' },
      ],
    );
    const posted = collect('posted');
    const commands = collect('commands');
    const received = collect('received');
    const caught = collect('caught');
    for (const id of ['post', 'command', 'reply', 'in', 'out']) await waitForStatus(id, 'subdevice-online');
    assert.deepEqual(sim.onlineSubDevices({ productKey: GW_PK, deviceName: 'gw01' }), [`${SUB_PK}/${subName(1)}`]);
    assert.deepEqual(
      (await admin<{ subDevices: unknown[] }>(sim, 'GET', `/gateways/${GW_PK}/gw01/topology`)).subDevices,
      [SUB1],
      'the topology was added',
    );

    send('post', { payload: { power: 1 } });
    await waitFor(() => posted.length === 1, 'the post reply');
    assert.equal((posted[0] as Msg).alink?.code, 200);

    const set = admin<{ status: string; reply: { code: number } }>(sim, 'POST', '/properties/set', {
      ...SUB1,
      items: { power: 0 },
      timeout: 3000,
    });
    await waitFor(() => commands.length === 1, 'the property set');
    assert.deepEqual((commands[0] as Msg).device, SUB1);
    assert.deepEqual(commands[0].payload, { power: 0 });
    const answer = await set;
    assert.deepEqual([answer.status, answer.reply.code], ['SUCCESS', 200]);

    const customTopic = `/${SUB_PK}/${subName(1)}/user/get`;
    await waitFor(() => granted.includes(customTopic), 'the SUBSCRIBE of the custom topic, after the login');
    await admin(sim, 'POST', '/pub', { topic: customTopic, payload: 'hello' });
    await waitFor(() => received.length === 1, 'the custom topic message');
    assert.equal(received[0].payload, 'hello');
    assert.deepEqual((received[0] as Msg).device, SUB1);

    send('out', { payload: 'from the field' });
    await waitFor(() => messages.some((info) => info.topic === `/${SUB_PK}/${subName(1)}/user/update`), 'the out message');
    const published = messages.find((info) => info.topic.endsWith('/user/update'));
    assert.deepEqual([published?.productKey, published?.deviceName], [SUB_PK, subName(1)]);
    assert.deepEqual(caught, []);
  });

  it('shows the platform reason: a wrong secret (6287), a topology that cannot be added, a disabled sub-device (522)', async function () {
    // A gateway that may have two sub-devices attached, and has them.
    await stopServer();
    await sim.stop();
    sim = await startGatewaySimulator({ gatewayLimits: { topologyPerGateway: 2 } });
    await startServer();
    await admin(sim, 'POST', '/topology/add', {
      gateway: { productKey: GW_PK, deviceName: 'gw01' },
      subDevices: [SUB2, { productKey: SUB_PK, deviceName: subName(4) }],
    });
    await deployGateway(
      sim,
      [subDeviceNode('wrong', 1, 'not-the-secret'), subDeviceNode('full', 3), subDeviceNode('sd2', 2)],
      [postNode('post-wrong', 'wrong'), postNode('post-full', 'full'), postNode('post-sd2', 'sd2')],
    );
    const caught = collect('caught');
    await waitForStatus('post-wrong', 'subdevice-bad-sign');
    await waitForStatus('post-full', 'subdevice-no-topology');
    await waitForStatus('post-sd2', 'subdevice-online');
    send('post-wrong', { payload: { power: 1 } });
    await waitFor(() => caught.length === 1, 'the refused post');
    assert.deepEqual(caughtCode(caught), ['SUBDEVICE_BAD_SIGN']);

    await admin(sim, 'POST', '/devices/disable', SUB2);
    await waitForStatus('post-sd2', 'subdevice-disabled');
    send('post-sd2', { payload: { power: 1 } });
    await waitFor(() => caught.length === 2, 'the post of the disabled sub-device');
    assert.deepEqual(caughtCode(caught), ['SUBDEVICE_BAD_SIGN', 'SUBDEVICE_DISABLED']);
    // The secrets, the wrong one too, are in no status, error or caught message.
    const shown = JSON.stringify([
      caught,
      ...['post-wrong', 'post-full', 'post-sd2', 'wrong', 'full', 'sd2'].map((id) => [statusesOf(node(id)), errorsOf(node(id))]),
    ]);
    for (const secret of ['not-the-secret', subSecret(subName(2)), subSecret(subName(3))]) assert.ok(!shown.includes(secret), secret);
  });

  it('msg.device addresses a logged-in sub-device on out, post and reply; in and command set it', async function () {
    const messages: Array<{ productKey: string; deviceName: string; topic: string }> = [];
    sim.on('message', (info) => messages.push(info));
    const posts: Array<{ productKey: string; deviceName: string }> = [];
    sim.on('post', (info) => posts.push(info));
    await deployGateway(
      sim,
      [subDeviceNode('sd1', 1), subDeviceNode('sd2', 2)],
      [
        { id: 'in1', type: 'aliyun-iot-in', connection: 'gw', subdevice: 'sd1', topic: USER_GET, qos: '0', datatype: 'utf8' },
        { id: 'in2', type: 'aliyun-iot-in', connection: 'gw', subdevice: 'sd2', topic: USER_GET, qos: '0', datatype: 'utf8' },
        { id: 'out', type: 'aliyun-iot-out', connection: 'gw', topic: USER_UPDATE, qos: '1', retain: '' },
        postNode('post', undefined, 'posted'),
        { id: 'command', type: 'aliyun-iot-command', connection: 'gw', services: '', autoReplySet: false, wires: [['commands']] },
        { id: 'reply', type: 'aliyun-iot-reply', connection: 'gw', code: 200 },
        { id: 'posted', type: 'helper' },
        { id: 'commands', type: 'helper' },
      ],
    );
    const posted = collect('posted');
    const commands = collect('commands');
    const caught = collect('caught');
    await waitForStatus('in1', 'subdevice-online');
    await waitForStatus('in2', 'subdevice-online');

    send('out', { payload: 'hi', device: SUB2 });
    await waitFor(() => messages.some((info) => info.topic === `/${SUB_PK}/${subName(2)}/user/update`), 'the out message of sub-device 2');

    send('post', { payload: { power: 1 }, device: SUB2 });
    await waitFor(() => posted.length === 1, 'the post reply');
    assert.equal((posted[0] as Msg).alink?.code, 200);
    assert.ok(
      posts.some((info) => info.productKey === SUB_PK && info.deviceName === subName(2)),
      'posted as sub-device 2',
    );

    const set = admin<{ status: string; reply: { code: number } }>(sim, 'POST', '/properties/set', {
      ...SUB1,
      items: { power: 1 },
      timeout: 3000,
    });
    await waitFor(() => commands.length === 1, 'the property set of sub-device 1');
    assert.deepEqual((commands[0] as Msg).device, SUB1);
    send('reply', { ...commands[0] });
    const answer = await set;
    assert.deepEqual([answer.status, answer.reply.code], ['SUCCESS', 200]);
    assert.deepEqual(caught, []);
  });

  it('bad msg.device: not an object, bad identifiers, a sub-device not logged in, the wrong device for a reply', async function () {
    await deployGateway(
      sim,
      [subDeviceNode('sd1', 1)],
      [
        { id: 'in1', type: 'aliyun-iot-in', connection: 'gw', subdevice: 'sd1', topic: USER_GET, qos: '0', datatype: 'utf8' },
        { id: 'out', type: 'aliyun-iot-out', connection: 'gw', topic: USER_UPDATE, qos: '1', retain: '' },
        { id: 'out-any', type: 'aliyun-iot-out', connection: 'gw', topic: '', qos: '1', retain: '' },
        postNode('post'),
        { id: 'reply', type: 'aliyun-iot-reply', connection: 'gw', code: 200 },
      ],
    );
    const caught = collect('caught');
    await waitForStatus('in1', 'subdevice-online');
    const inputs: Array<[string, Record<string, unknown>, string]> = [
      ['out', { payload: 'x', device: 'sub0001' }, 'DEVICE_INVALID'],
      ['out', { payload: 'x', device: [SUB1] }, 'DEVICE_INVALID'],
      ['out', { payload: 'x', device: { productKey: SUB_PK } }, 'DEVICE_INVALID'],
      ['out', { payload: 'x', device: { productKey: 'bad', deviceName: subName(1) } }, 'PRODUCT_KEY_INVALID'],
      ['post', { payload: { power: 1 }, device: { productKey: SUB_PK, deviceName: 'a b' } }, 'DEVICE_NAME_INVALID'],
      ['post', { payload: { power: 1 }, device: SUB2 }, 'SUBDEVICE_UNKNOWN'],
      ['out', { payload: 'x', device: SUB2 }, 'SUBDEVICE_UNKNOWN'],
      ['out-any', { payload: 'x', device: SUB1, topic: `/${GW_PK}/gw01/user/update` }, 'SUBDEVICE_TOPIC_OTHER'],
    ];
    for (const [id, msg, code] of inputs) {
      const before = caught.length;
      send(id, msg);
      await waitFor(() => caught.length === before + 1, `${id} failing with ${code}`);
      assert.equal((caught[before] as Msg).code, code, JSON.stringify(msg));
      // A msg.device the node cannot use shows in its status; a topic of another device is the publish's problem.
      if (code !== 'SUBDEVICE_TOPIC_OTHER') await waitForStatus(id, 'device-refused');
    }
    // A property set of sub-device 1 answered as sub-device 2, which is not logged in.
    const topic = `/sys/${SUB_PK}/${subName(1)}/thing/service/property/set`;
    const context = { kind: 'set', id: '1', topic, replyTopic: `${topic}_reply` };
    send('reply', { alink: context, device: SUB2 });
    await waitFor(() => caught.length === inputs.length + 1, 'the reply refused');
    assert.equal((caught.at(-1) as Msg).code, 'SUBDEVICE_UNKNOWN');
    // The same request answered as the gateway itself.
    send('reply', { alink: context });
    await waitFor(() => caught.length === inputs.length + 2, 'the reply of the gateway refused');
    assert.equal((caught.at(-1) as Msg).error?.message.includes(subName(1)), true);
  });

  it('subscribes a sub-device topic again after a gateway reconnect, and logs the sub-device out when its last node goes', async function () {
    const granted: string[] = [];
    sim.on('subscribe', (info) => granted.push(...info.topics));
    const logouts: string[] = [];
    sim.on('subdevice-logout', (info) => logouts.push(info.deviceName));
    const customTopic = `/${SUB_PK}/${subName(1)}/user/get`;
    const flow: FlowNode[] = [
      {
        id: 'in',
        type: 'aliyun-iot-in',
        connection: 'gw',
        subdevice: 'sd1',
        topic: '',
        qos: '0',
        datatype: 'utf8',
        dynamic: true,
        wires: [['received']],
      },
      { id: 'received', type: 'helper' },
      { id: 'direct', type: 'aliyun-iot-in', connection: 'gw', topic: '/${productKey}/${deviceName}/user/get', qos: '0', datatype: 'utf8' },
    ];
    await deployGateway(sim, [subDeviceNode('sd1', 1)], flow);
    const received = collect('received');
    await waitForStatus('in', 'subdevice-online');
    send('in', { action: 'subscribe', topic: USER_GET });
    await waitFor(() => granted.includes(customTopic), 'the SUBSCRIBE of the custom topic');

    send('in', { action: 'disconnect' });
    await waitForStatus('in', 'subdevice-waiting');
    send('in', { action: 'connect' });
    await waitForStatus('in', 'subdevice-online');
    await waitFor(() => granted.filter((topic) => topic === customTopic).length === 2, 'the SUBSCRIBE again after the login');
    await admin(sim, 'POST', '/pub', { topic: customTopic, payload: 'after the reconnect' });
    await waitFor(() => received.length === 1, 'the message after the reconnect');
    assert.deepEqual([received[0].payload, (received[0] as Msg).device], ['after the reconnect', SUB1]);

    // The sub-device's only node removed, the gateway's own node stays: the sub-device logs out, the gateway stays.
    await redeploy([gatewayConnection(sim).node, flow[2]], 'nodes');
    await waitFor(() => logouts.includes(subName(1)), 'the logout');
    await waitForStatus('direct', 'connected');
    assert.deepEqual(sim.onlineSubDevices({ productKey: GW_PK, deviceName: 'gw01' }), []);
  });

  it('a sub-device added to a running gateway connection by a redeploy: the connection announces _ss=1 anew', async function () {
    const direct: FlowNode = {
      id: 'direct',
      type: 'aliyun-iot-in',
      connection: 'gw',
      topic: '/${productKey}/${deviceName}/user/get',
      qos: '0',
      datatype: 'utf8',
    };
    await deployGateway(sim, [], [direct]);
    await waitForStatus('direct', 'connected');
    const sub = subDeviceNode('sd1', 1);
    const gateway = gatewayConnection(sim);
    const post = postNode('post', 'sd1', 'posted');
    await redeploy([gateway.node, sub.node, direct, post, { id: 'posted', type: 'helper' }], 'nodes', sub.credentials);
    const posted = collect('posted');
    await waitForStatus('post', 'subdevice-online');
    // The post's reply comes by the auto-subscription only.
    send('post', { payload: { power: 1 } });
    await waitFor(() => posted.length === 1, 'the post reply');
    assert.equal((posted[0] as Msg).alink?.code, 200);
    await waitForStatus('direct', 'connected');
  });
});
