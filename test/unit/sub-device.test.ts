// msg.device as the nodes read it, and the status a node acting as a sub-device shows, without a connection.
import { strict as assert } from 'node:assert';
import { SharedConnection, SubDeviceStatus, addressedDevice, refusalReason } from '../../nodes/lib/connection';
import { AliyunIotError, StatusCode } from '../../nodes/lib/errors';
import { SUB_DEVICE_REASONS } from '../../nodes/lib/protocol';
import { statusText } from '../../nodes/support/status';
import { subDeviceNodeStatus } from '../../nodes/support/sub-device';
import * as fs from 'node:fs';
import * as path from 'node:path';

const CATALOG = path.join(__dirname, '..', '..', 'nodes', 'locales', 'en-US', 'aliyun-iot-connection.json');

function codeOf(action: () => unknown): string | undefined {
  try {
    action();
    return undefined;
  } catch (err) {
    return err instanceof AliyunIotError ? err.code : String(err);
  }
}

describe('sub-devices for nodes', function () {
  it('refuses a msg.device that is no {productKey, deviceName}, and one on a connection that is no gateway', function () {
    const mq = { mode: 'mq' } as unknown as SharedConnection;
    assert.equal(addressedDevice(mq, undefined), undefined, 'no msg.device, no sub-device');
    for (const value of [null, 'a1SubDev001/sub0001', 7, [], { productKey: 'a1SubDev001' }, { productKey: 1, deviceName: 'sub0001' }]) {
      assert.equal(
        codeOf(() => addressedDevice(mq, value)),
        'DEVICE_INVALID',
        JSON.stringify(value),
      );
    }
    assert.equal(
      codeOf(() => addressedDevice(mq, { productKey: 'a1SubDev001', deviceName: 'sub0001' })),
      'DEVICE_NEEDS_GATEWAY',
    );
  });

  it("names every refusal reason by a status of the catalog, and shows the platform's code after it", function () {
    const statuses = (JSON.parse(fs.readFileSync(CATALOG, 'utf8')) as { 'aliyun-iot-connection': { status: Record<string, string> } })[
      'aliyun-iot-connection'
    ].status;
    for (const code of [...Object.keys(SUB_DEVICE_REASONS).map(Number), 999]) {
      assert.ok(statuses[refusalReason(code)], `no status ${refusalReason(code)} for ${code}`);
    }
    const refused: SubDeviceStatus = { state: 'refused', reason: refusalReason(6287), code: 6287 };
    assert.deepEqual(subDeviceNodeStatus(refused), { fill: 'red', shape: 'dot', text: statusText('subdevice-bad-sign') });
    const english = { _: (key: string) => (key.endsWith('subdevice-bad-sign') ? 'bad signature' : key) };
    assert.equal(subDeviceNodeStatus(refused, english as never).text, 'bad signature (6287)');
    const online: SubDeviceStatus = { state: 'online', reason: 'subdevice-online' as StatusCode };
    assert.deepEqual(subDeviceNodeStatus(online, english as never), { fill: 'green', shape: 'dot', text: statusText('subdevice-online') });
  });
});
