// The gateway node's input rules and how its results and notices read, without a connection.
import { strict as assert } from 'node:assert';
import { actionFailureStatus, noticeMessage, readDevices, subDeviceError } from '../../nodes/lib/connection';
import { AliyunIotError } from '../../nodes/lib/errors';
import { GATEWAY_LIMITS } from '../../nodes/lib/protocol';

const PK = 'a1SubDev001';

function code(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (err) {
    return err instanceof AliyunIotError ? err.code : String(err);
  }
}

describe('gateway actions: input, statuses and notices', function () {
  it('takes one device or an array, keeps the login options, drops secrets where they are not used', function () {
    assert.deepEqual(readDevices('login', { productKey: PK, deviceName: 'sub0001', deviceSecret: 's', cleanSession: false }), [
      { productKey: PK, deviceName: 'sub0001', deviceSecret: 's', cleanSession: false },
    ]);
    assert.deepEqual(readDevices('logout', [{ productKey: PK, deviceName: 'sub0001', deviceSecret: 's' }]), [
      { productKey: PK, deviceName: 'sub0001' },
    ]);
    assert.deepEqual(readDevices('add', [{ productKey: PK, deviceName: 'sub0001', deviceSecret: '' }]), [
      { productKey: PK, deviceName: 'sub0001' },
    ]);
  });

  it('refuses the wrong shapes, bad identifiers, repeats and more than a gateway can have', function () {
    const many = (count: number): unknown[] =>
      Array.from({ length: count }, (_, index) => ({ productKey: PK, deviceName: `sub${index + 1000}` }));
    assert.equal(
      code(() => readDevices('add', null)),
      'GATEWAY_DEVICE_INVALID',
    );
    assert.equal(
      code(() => readDevices('add', [[]])),
      'GATEWAY_DEVICE_INVALID',
    );
    assert.equal(
      code(() => readDevices('login', { productKey: PK, deviceName: 'sub0001', clientId: 7 })),
      'GATEWAY_DEVICE_INVALID',
    );
    assert.equal(
      code(() => readDevices('login', { productKey: 'a1', deviceName: 'sub0001' })),
      'PRODUCT_KEY_INVALID',
    );
    assert.equal(
      code(() => readDevices('register', many(GATEWAY_LIMITS.topologyPerGateway))),
      undefined,
    );
    assert.equal(
      code(() => readDevices('register', many(GATEWAY_LIMITS.topologyPerGateway + 1))),
      'GATEWAY_TOO_MANY',
    );
    assert.equal(
      code(() => readDevices('login', many(GATEWAY_LIMITS.onlinePerGateway))),
      undefined,
    );
    assert.equal(
      code(() => readDevices('delete', [...many(2), ...many(1)])),
      'GATEWAY_DEVICE_REPEATED',
    );
  });

  it('shows a readable status for each kind of failure', function () {
    const device = { productKey: PK, deviceName: 'sub0001' };
    assert.equal(actionFailureStatus(subDeviceError(device, 6287)), 'subdevice-bad-sign');
    assert.equal(actionFailureStatus(subDeviceError(device, 12345)), 'subdevice-code-other');
    assert.equal(actionFailureStatus(new AliyunIotError('SECRET_STORE_TAMPERED', { file: 'x' })), 'secret-store-error');
    assert.equal(actionFailureStatus(new AliyunIotError('GATEWAY_TIMEOUT')), 'gateway-no-answer');
    assert.equal(actionFailureStatus(new AliyunIotError('REGISTER_REPLY_MALFORMED')), 'gateway-bad-reply');
    assert.equal(actionFailureStatus(new AliyunIotError('SUBDEVICE_SECRET_UNKNOWN')), 'gateway-bad-input');
    assert.equal(actionFailureStatus(new Error('anything else')), 'gateway-bad-input');
  });

  it('names the notices by topic and event', function () {
    const devices = [{ productKey: PK, deviceName: 'sub0001' }];
    const common = { devices, topic: '/t', payload: {} };
    assert.deepEqual(noticeMessage({ kind: 'topology-change', change: 'created', ...common }), {
      topic: 'topo/change',
      event: 'created',
      payload: devices,
    });
    assert.deepEqual(noticeMessage({ kind: 'disable', ...common }), { topic: 'thing/disable', event: 'disable', payload: devices });
    assert.deepEqual(noticeMessage({ kind: 'kicked', code: 427, ...common }), {
      topic: 'kick-off',
      event: 'elsewhere',
      payload: devices,
      code: 427,
    });
  });
});
