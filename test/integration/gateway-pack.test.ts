// The post node's kind `pack` on a gateway's connection, in a Node-RED runtime against the simulator.
import { strict as assert } from 'node:assert';
import type { NodeMessage } from 'node-red';
import { subDeviceManagerOf } from '../../nodes/lib/connection';
import { CATCH_ALL, collect, deploy, deviceConnectionOf, send, simulatorAndRuntime, waitForStatus } from '../support/node-harness';
import { FlowNode, waitFor } from '../support/helpers';
import { GATEWAY_CONFIG, GW01, GW_PK, SUB_PK, subDevice, subName } from '../support/gateway-fixtures';

type Msg = NodeMessage & Record<string, unknown>;
type CaughtMsg = Msg & { error: { message: string } };

describe('aliyun-iot-post kind pack', function () {
  const env = simulatorAndRuntime(GATEWAY_CONFIG);

  async function deployPack(): Promise<{ posted: Msg[]; caught: CaughtMsg[] }> {
    const flow: FlowNode[] = [
      {
        id: 'gw',
        type: 'aliyun-iot-connection',
        name: '',
        mode: 'iot',
        productKey: GW_PK,
        deviceName: 'gw01',
        protocol: 'mqtt',
        host: '127.0.0.1',
        port: String(env.sim.port),
        keepalive: 60,
        cleanSession: true,
        queueSize: 1000,
        maxRate: '0',
      },
      ...CATCH_ALL,
      { id: 'pack', type: 'aliyun-iot-post', connection: 'gw', kind: 'pack', event: '', ack: true, timeout: 2000, wires: [['posted']] },
      { id: 'posted', type: 'helper' },
    ];
    await deploy(flow, { gw: { deviceSecret: 'gw-secret-gw01' } });
    const posted = collect('posted') as Msg[];
    const caught = collect('caught') as CaughtMsg[];
    await waitForStatus('pack', 'connected');
    return { posted, caught };
  }

  it('posts the gateway and its sub-devices, split to the limits, and sends on when every part was taken', async function () {
    const { posted } = await deployPack();
    const manager = subDeviceManagerOf(deviceConnectionOf('gw'));
    for (let index = 1; index <= 21; index++) manager.add(subDevice(index), { onStatus: () => undefined });
    const payload = [
      { properties: { uptime: 3 } },
      ...Array.from({ length: 21 }, (_, index) => ({
        productKey: SUB_PK,
        deviceName: subName(index + 1),
        properties: { temperature: index },
      })),
    ];
    send('pack', { payload });
    await waitFor(() => posted.length === 1, 'the combined reply');
    const [msg] = posted;
    const alink = msg.alink as { method: string; code: number; parts: Array<{ code: number }> };
    assert.equal(msg.code, 200);
    assert.equal(alink.method, 'thing.event.property.pack.post');
    assert.deepEqual(
      alink.parts.map((part) => part.code),
      [200, 200],
    );
    assert.deepEqual(msg.payload, payload);
    assert.equal(env.sim.platform.propertiesOf(GW01).uptime.value, 3);
    assert.equal(env.sim.platform.propertiesOf({ productKey: SUB_PK, deviceName: subName(21) }).temperature.value, 20);
  });

  it('bad input and sub-devices not logged in through the gateway end in done(err) with a code, nothing sent', async function () {
    const posts: unknown[] = [];
    env.sim.on('post', (info) => posts.push(info));
    const { caught } = await deployPack();
    send('pack', { payload: { properties: { a: 1 } } });
    send('pack', { payload: [] });
    send('pack', { payload: [{ properties: { a: 1 } }, { productKey: SUB_PK, properties: { a: 1 } }] });
    send('pack', { payload: [{ productKey: 'bad', deviceName: subName(1), properties: { a: 1 } }] });
    send('pack', { payload: [{ productKey: SUB_PK, deviceName: subName(5), properties: { a: 1 } }] });
    await waitFor(() => caught.length === 5, 'five errors');
    assert.deepEqual(
      caught.map((msg) => msg.code),
      ['PACK_INVALID', 'PACK_INVALID', 'PACK_ENTRY_INVALID', 'PRODUCT_KEY_INVALID', 'SUBDEVICE_UNKNOWN'],
    );
    assert.match(caught[2].error.message, /msg\.payload\[1\]/);
    assert.match(caught[4].error.message, new RegExp(subName(5)));
    assert.deepEqual(posts, []);
  });
});
