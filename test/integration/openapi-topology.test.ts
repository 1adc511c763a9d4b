// The simulator's OpenAPI topology actions (GetThingTopo, BatchAddThingTopo, RemoveThingTopo) from its gateways'
// topology: through Alibaba's own SDK @alicloud/iot20180120 with its default settings, and through aliyun-iot-invoke
// action `api` in a runtime.
import { strict as assert } from 'node:assert';
import * as $Iot from '@alicloud/iot20180120';
import type { NodeMessage } from 'node-red';
import { signSubDevice } from '../../nodes/lib/protocol';
import { Simulator, startSimulator } from '../../sim';
import { cloudConnection, iotClient } from '../support/cloud-fixtures';
import { GATEWAY_CONFIG, GW01, GW02, GW_PK, RawGateway, SUB_PK, subDevice, subName } from '../support/gateway-fixtures';
import { waitFor } from '../support/helpers';
import { CATCH_ALL, collect, deploy, node, startServer, stopServer } from '../support/node-harness';
import { CLOUD_CONFIG } from '../support/registry';

type Msg = NodeMessage & Record<string, unknown>;

function startTopologySimulator(): Promise<Simulator> {
  return startSimulator({
    ...CLOUD_CONFIG,
    products: [...(CLOUD_CONFIG.products ?? []), ...(GATEWAY_CONFIG.products ?? [])],
    port: 0,
    adminPort: 0,
  });
}

/** A TopoAddItem signed by the sub-device's secret, as BatchAddThingTopo takes it. */
function topoAddItem(index: number, signedBy = subDevice(index).deviceSecret): Record<string, string> {
  const signed = signSubDevice({ ...subDevice(index), deviceSecret: signedBy }, 1700000000000);
  return {
    ProductKey: signed.productKey,
    DeviceName: signed.deviceName,
    ClientId: signed.clientId,
    Timestamp: signed.timestamp,
    Sign: signed.sign,
    SignMethod: 'hmacSha256',
  };
}

function sdkItem(index: number, signedBy?: string): $Iot.BatchAddThingTopoRequestTopoAddItem {
  const item = topoAddItem(index, signedBy);
  return new $Iot.BatchAddThingTopoRequestTopoAddItem({
    productKey: item.ProductKey,
    deviceName: item.DeviceName,
    clientId: item.ClientId,
    timestamp: item.Timestamp,
    sign: item.Sign,
    signMethod: item.SignMethod,
  });
}

describe('simulator OpenAPI: topology actions', function () {
  let sim: Simulator;
  beforeEach(async function () {
    sim = await startTopologySimulator();
  });
  afterEach(async function () {
    await sim.stop();
  });

  it('the official SDK adds, lists, moves and removes sub-devices; the gateways hear of it on topo/change', async function () {
    const client = iotClient(sim);
    const gw01 = await RawGateway.connect(sim, GW01);
    const gw02 = await RawGateway.connect(sim, GW02);
    try {
      const added = await client.batchAddThingTopo(
        new $Iot.BatchAddThingTopoRequest({ gwProductKey: GW_PK, gwDeviceName: 'gw01', topoAddItem: [sdkItem(1), sdkItem(2)] }),
      );
      assert.equal(added.body?.success, true, JSON.stringify(added.body));
      const change = JSON.parse(await gw01.next(`/sys/${GW_PK}/gw01/thing/topo/change`)) as {
        params: { status: number; subList: unknown[] };
      };
      assert.equal(change.params.status, 0);
      assert.deepEqual(change.params.subList, [
        { productKey: SUB_PK, deviceName: subName(1) },
        { productKey: SUB_PK, deviceName: subName(2) },
      ]);

      const page = await client.getThingTopo(
        new $Iot.GetThingTopoRequest({ productKey: GW_PK, deviceName: 'gw01', pageNo: 2, pageSize: 1 }),
      );
      assert.equal(page.body?.success, true);
      const data = page.body?.data;
      assert.deepEqual([data?.total, data?.pageSize, data?.pageCount, data?.currentPage], [2, 1, 2, 2]);
      assert.equal(data?.list?.deviceInfo?.length, 1);
      assert.deepEqual([data?.list?.deviceInfo?.[0].productKey, data?.list?.deviceInfo?.[0].deviceName], [SUB_PK, subName(2)]);
      assert.match(String(data?.list?.deviceInfo?.[0].iotId), /^[A-Za-z0-9]{20}000100$/);

      // sub0001 moves to gw02: gw01 loses it and hears so
      const moved = await client.batchAddThingTopo(
        new $Iot.BatchAddThingTopoRequest({ gwProductKey: GW_PK, gwDeviceName: 'gw02', topoAddItem: [sdkItem(1)] }),
      );
      assert.equal(moved.body?.success, true, JSON.stringify(moved.body));
      const lost = JSON.parse(await gw01.next(`/sys/${GW_PK}/gw01/thing/topo/change`)) as { params: { status: number } };
      assert.equal(lost.params.status, 1);
      await gw02.next(`/sys/${GW_PK}/gw02/thing/topo/change`);
      assert.deepEqual(sim.gateways.topologyOf(GW01), [{ productKey: SUB_PK, deviceName: subName(2) }]);
      assert.deepEqual(sim.gateways.topologyOf(GW02), [{ productKey: SUB_PK, deviceName: subName(1) }]);

      // RemoveThingTopo by a sub-device's IotId, then by a gateway: everything attached goes
      const byIotId = await client.getThingTopo(
        new $Iot.GetThingTopoRequest({ productKey: GW_PK, deviceName: 'gw02', pageNo: 1, pageSize: 10 }),
      );
      const iotId = byIotId.body?.data?.list?.deviceInfo?.[0].iotId;
      assert.equal((await client.removeThingTopo(new $Iot.RemoveThingTopoRequest({ iotId }))).body?.data, true);
      assert.deepEqual(sim.gateways.topologyOf(GW02), []);
      assert.equal(
        (await client.removeThingTopo(new $Iot.RemoveThingTopoRequest({ productKey: GW_PK, deviceName: 'gw01' }))).body?.data,
        true,
      );
      assert.deepEqual(sim.gateways.topologyOf(GW01), []);
      assert.equal(
        (await client.removeThingTopo(new $Iot.RemoveThingTopoRequest({ productKey: GW_PK, deviceName: 'gw01' }))).body?.data,
        false,
      );
    } finally {
      await Promise.all([gw01, gw02].map((gateway) => gateway.client.endAsync(true)));
    }
  });

  it('the official SDK gets the platform codes: bad sign, not a gateway, too many, bad page, unknown device', async function () {
    const client = iotClient(sim);
    const add = (gwDeviceName: string, items: $Iot.BatchAddThingTopoRequestTopoAddItem[], gwProductKey = GW_PK) =>
      client.batchAddThingTopo(new $Iot.BatchAddThingTopoRequest({ gwProductKey, gwDeviceName, topoAddItem: items }));
    const codeOf = (answer: { body?: { success?: boolean; code?: string } }): string | undefined => {
      assert.equal(answer.body?.success, false);
      return answer.body?.code;
    };
    // one badly signed item refuses the whole call: nothing is attached
    assert.equal(codeOf(await add('gw01', [sdkItem(1), sdkItem(2, 'wrong-secret')])), 'iot.device.InvalidSign');
    assert.deepEqual(sim.gateways.topologyOf(GW01), []);
    assert.equal(codeOf(await add(subName(3), [sdkItem(1)], SUB_PK)), 'iot.device.NotGatewayDevice');
    assert.equal(
      codeOf(
        await add(
          'gw01',
          Array.from({ length: 11 }, (_, i) => sdkItem(i + 1)),
        ),
      ),
      'iot.common.InvalidFormattedParameter',
    );
    assert.equal(codeOf(await add('gw09', [sdkItem(1)])), 'iot.device.NotExistedDevice');
    const page = await client.getThingTopo(
      new $Iot.GetThingTopoRequest({ productKey: GW_PK, deviceName: 'gw01', pageNo: 1, pageSize: 51 }),
    );
    assert.equal(codeOf(page), 'iot.common.InvalidPageParams');
  });

  describe('through aliyun-iot-invoke action api', function () {
    beforeEach(async function () {
      await startServer();
    });
    afterEach(async function () {
      await stopServer();
    });

    it('BatchAddThingTopo with a list of TopoAddItem objects, GetThingTopo, and a refusal with msg.code', async function () {
      const backend = cloudConnection('backend', sim);
      await deploy(
        [
          backend.node,
          ...CATCH_ALL,
          { id: 'api', type: 'aliyun-iot-invoke', connection: 'backend', action: 'api', api: '', wires: [['answers']] },
          { id: 'answers', type: 'helper' },
        ],
        backend.credentials,
      );
      const answers = collect('answers') as Msg[];
      const caught = collect('caught') as Msg[];
      const ask = async (api: string, payload: Record<string, unknown>): Promise<Record<string, unknown>> => {
        const before = answers.length;
        node('api').receive({ api, payload } as NodeMessage);
        await waitFor(() => answers.length === before + 1, `the answer of ${api}`);
        return answers[before].payload as Record<string, unknown>;
      };

      const added = await ask('BatchAddThingTopo', {
        GwProductKey: GW_PK,
        GwDeviceName: 'gw02',
        TopoAddItem: [topoAddItem(5), topoAddItem(6)],
      });
      assert.equal(added.Success, true);
      const listed = await ask('GetThingTopo', { ProductKey: GW_PK, DeviceName: 'gw02', PageNo: 1, PageSize: 50 });
      const data = listed.Data as { Total: number; List: { deviceInfo: Array<{ DeviceName: string }> } };
      assert.equal(data.Total, 2);
      assert.deepEqual(
        data.List.deviceInfo.map((device) => device.DeviceName),
        [subName(5), subName(6)],
      );

      node('api').receive({
        api: 'BatchAddThingTopo',
        payload: { GwProductKey: GW_PK, GwDeviceName: 'gw02', TopoAddItem: [topoAddItem(7, 'x')] },
      } as NodeMessage);
      await waitFor(() => caught.length === 1, 'the refusal');
      assert.equal(caught[0].code, 'iot.device.InvalidSign');
      assert.equal(sim.gateways.topologyOf(GW02).length, 2);
    });
  });
});
