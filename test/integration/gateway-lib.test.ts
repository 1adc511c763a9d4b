// The sub-device protocol (pure, with the test vectors of docs/protocol.md §18) and the sub-device manager on a
// DeviceConnection against the simulator.
import { strict as assert } from 'node:assert';
import { ConnectionLogger, DeviceConnection, SubDeviceManager, SubDeviceStatus, resolveConnection } from '../../nodes/lib/connection';
import { AliyunIotError } from '../../nodes/lib/errors';
import {
  AlinkObject,
  Device,
  buildLogin,
  buildLogout,
  buildTopologyAdd,
  deviceOfAnyTopic,
  readGatewayAnswer,
  readRegisterReply,
  signSubDevice,
  subDeviceSignedText,
  thingTopics,
  verifySubDeviceSign,
} from '../../nodes/lib/protocol';
import { Simulator } from '../../sim';
import { admin, waitFor } from '../support/helpers';
import { GW01, GW_PK, SUB_PK, startGatewaySimulator, subDevice, subName } from '../support/gateway-fixtures';

const VECTOR = { productKey: 'a1B2c3D4e5F', deviceName: 'sub01', deviceSecret: 'subsecret456' };

describe('sub-device protocol', function () {
  it('signs topo/add and combine/login as the test vectors say', function () {
    const expected = {
      '.': {
        hmacsha256: 'd5b035d796beae2ebeab5956e673dc32c618027f7cd59043254d4e77cbadb849',
        hmacsha1: 'e25e99c31d19e8a14469cf6c7d0f5882f180e655',
        hmacmd5: 'b01d6d785367d90d5d0f9d715468a807',
      },
      '&': {
        hmacsha256: 'cc00e63b3c65769c9ec645bb6090fe87e21473ec3f35932d01e25519465147fb',
        hmacsha1: 'b967b55390905138f539529ee00697cfc67bde0e',
        hmacmd5: '9c4cca0404598474283511f9eed4983a',
      },
    } as const;
    for (const separator of ['.', '&'] as const) {
      const clientId = `a1B2c3D4e5F${separator}sub01`;
      for (const signMethod of ['hmacsha256', 'hmacsha1', 'hmacmd5'] as const) {
        const signed = signSubDevice({ ...VECTOR, clientId, signMethod }, 1700000000000);
        assert.equal(signed.sign, expected[separator][signMethod], `${signMethod} ${clientId}`);
        assert.ok(verifySubDeviceSign({ ...signed, signmethod: 'HmacSHA256' }, signMethod.toUpperCase(), VECTOR.deviceSecret));
      }
    }
    assert.equal(
      subDeviceSignedText({
        timestamp: '1700000000000',
        productKey: 'a1B2c3D4e5F',
        sign: 'x',
        signmethod: 'y',
        cleanSession: 'true',
        clientId: 'a1B2c3D4e5F.sub01',
        deviceName: 'sub01',
      }),
      'clientIda1B2c3D4e5F.sub01deviceNamesub01productKeya1B2c3D4e5Ftimestamp1700000000000',
    );
    assert.ok(!verifySubDeviceSign({ ...signSubDevice(VECTOR, 1) }, 'hmacsha256', 'other'));
    assert.ok(!verifySubDeviceSign({ ...signSubDevice(VECTOR, 1) }, 'sha512', VECTOR.deviceSecret));
  });

  it('builds single and batch logins, and refuses empty and oversized batches', function () {
    const gateway = { productKey: GW_PK, deviceName: 'gw01' };
    const single = buildLogin(gateway, '1', [subDevice(1)]);
    assert.equal(single.topic, `/ext/session/${GW_PK}/gw01/combine/login`);
    assert.equal((JSON.parse(single.payload) as { params: AlinkObject }).params.cleanSession, 'true');
    const batch = buildLogin(gateway, '2', [subDevice(1), subDevice(2, { cleanSession: false })]);
    assert.equal(batch.topic, `/ext/session/${GW_PK}/gw01/combine/batch_login`);
    const list = (JSON.parse(batch.payload) as { params: { deviceList: AlinkObject[] } }).params.deviceList;
    assert.deepEqual(
      list.map((entry) => [entry.deviceName, entry.cleanSession, entry.signMethod]),
      [
        [subName(1), 'true', 'hmacsha256'],
        [subName(2), 'false', 'hmacsha256'],
      ],
    );
    const many = Array.from({ length: 51 }, (_, index) => subDevice(index + 1));
    assert.throws(
      () => buildLogin(gateway, '3', many),
      (err: AliyunIotError) => err.code === 'GATEWAY_BATCH_TOO_LARGE' && err.params.max === 50,
    );
    assert.throws(
      () => buildLogin(gateway, '3', []),
      (err: AliyunIotError) => err.code === 'GATEWAY_BATCH_EMPTY',
    );
    assert.throws(
      () => buildTopologyAdd(gateway, '4', many.slice(0, 31)),
      (err: AliyunIotError) => err.params.max === 30,
    );
    assert.throws(
      () => buildLogin(gateway, '5', [{ ...subDevice(1), deviceSecret: '' }]),
      (err: AliyunIotError) => err.code === 'CREDENTIAL_MISSING',
    );
    const added = JSON.parse(buildTopologyAdd(gateway, '6', [subDevice(1)]).payload) as { params: AlinkObject[]; method: string };
    assert.deepEqual(
      [added.method, added.params[0].signmethod, added.params[0].clientId],
      ['thing.topo.add', 'hmacsha256', `${SUB_PK}.${subName(1)}`],
    );
  });

  it('reads codes given as numbers or strings, and refuses malformed register replies', function () {
    assert.equal(readGatewayAnswer('{"id":"1","code":"200","data":[]}')?.code, 200);
    assert.equal(readGatewayAnswer('{"id":1,"code":6401}')?.id, '1');
    assert.equal(readGatewayAnswer('not json'), undefined);
    const reply = readGatewayAnswer('{"id":"1","code":200,"data":[{"productKey":"a1B2c3D4e5F","deviceName":"sub01","deviceSecret":"s"}]}');
    assert.deepEqual(readRegisterReply(reply as NonNullable<typeof reply>), [
      { productKey: 'a1B2c3D4e5F', deviceName: 'sub01', deviceSecret: 's' },
    ]);
    for (const bad of ['{"id":"1","code":200,"data":{}}', '{"id":"1","code":200,"data":[{"productKey":"a"}]}']) {
      assert.throws(
        () => readRegisterReply(readGatewayAnswer(bad) as NonNullable<ReturnType<typeof readGatewayAnswer>>),
        (err: AliyunIotError) => err.code === 'REGISTER_REPLY_MALFORMED',
      );
    }
  });

  it('finds the device of every kind of topic', function () {
    const device = { productKey: 'a1B2c3D4e5F', deviceName: 'sub01' };
    for (const topic of [
      '/sys/a1B2c3D4e5F/sub01/thing/event/property/post',
      '/ext/rrpc/123/sys/a1B2c3D4e5F/sub01/thing/service/x',
      '/ext/rrpc/123/a1B2c3D4e5F/sub01/user/rpc',
      '/ext/ntp/a1B2c3D4e5F/sub01/request',
      '/shadow/update/a1B2c3D4e5F/sub01',
      '/ota/device/inform/a1B2c3D4e5F/sub01',
      '/a1B2c3D4e5F/sub01/user/get',
    ]) {
      assert.deepEqual(deviceOfAnyTopic(topic), device, topic);
    }
    assert.equal(deviceOfAnyTopic('/broadcast/a1B2c3D4e5F/x'), undefined);
  });
});

const quiet: ConnectionLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

function gatewayConnection(sim: Simulator, deviceName = 'gw01'): DeviceConnection {
  return new DeviceConnection(
    resolveConnection({
      mode: 'iot',
      productKey: GW_PK,
      deviceName,
      protocol: 'mqtt',
      host: '127.0.0.1',
      port: sim.port,
      credentials: { deviceSecret: `gw-secret-${deviceName}` },
    }),
    quiet,
    { networkBaseMs: 50, kickedBaseMs: 300, shortSessionMs: 5000 },
  );
}

class StatusLog {
  readonly seen = new Map<string, SubDeviceStatus[]>();
  onStatus(device: Device, status: SubDeviceStatus): void {
    const key = device.deviceName;
    this.seen.set(key, [...(this.seen.get(key) ?? []), status]);
  }

  last(deviceName: string): SubDeviceStatus | undefined {
    return this.seen.get(deviceName)?.at(-1);
  }
}

function close(connection: DeviceConnection): Promise<void> {
  return new Promise((resolve) => connection.close(resolve));
}

describe('sub-device manager', function () {
  let sim: Simulator;
  let connection: DeviceConnection;
  let manager: SubDeviceManager;
  beforeEach(async function () {
    sim = await startGatewaySimulator();
    connection = gatewayConnection(sim);
    manager = new SubDeviceManager(connection, { timeoutMs: 2000, logoutGraceMs: 50 });
    manager.attach();
  });
  afterEach(async function () {
    await close(connection);
    await sim.stop();
  });

  it('adds the topology, logs 120 sub-devices in batches of 50, and says each is online', async function () {
    const statuses = new StatusLog();
    for (let index = 1; index <= 120; index++) manager.add(subDevice(index), statuses);
    await waitFor(() => sim.onlineSubDevices(GW01).length === 120, '120 sub-devices online');
    assert.equal(manager.loginRequests, 3);
    assert.equal((await admin<{ subDevices: unknown[] }>(sim, 'GET', `/gateways/${GW_PK}/gw01/topology`)).subDevices.length, 120);
    await waitFor(() => statuses.last(subName(120))?.state === 'online', 'the status');
    assert.deepEqual(
      statuses.seen.get(subName(1))?.map((status) => status.state),
      ['waiting', 'logging-in', 'online'],
    );
    assert.ok(
      connection.brokerSubscriptions.length <= 8,
      `a few SUBSCRIBEs, not one per sub-device: ${connection.brokerSubscriptions.join(' ')}`,
    );
  });

  it('refuses a wrong secret with 6287 and an unknown device with 6100, and the others still log in', async function () {
    const statuses = new StatusLog();
    manager.add(subDevice(1), statuses);
    manager.add(subDevice(2, { deviceSecret: 'wrong' }), statuses);
    manager.add({ productKey: SUB_PK, deviceName: 'nobody', deviceSecret: 'x' }, statuses);
    await waitFor(
      () =>
        statuses.last(subName(1))?.state === 'online' &&
        statuses.last(subName(2))?.state === 'refused' &&
        statuses.last('nobody')?.state === 'refused',
      'verdicts',
    );
    assert.deepEqual(statuses.last(subName(2)), { state: 'refused', reason: 'subdevice-bad-sign', code: 6287 });
    assert.deepEqual(statuses.last('nobody'), { state: 'refused', reason: 'subdevice-unknown-device', code: 6100 });
  });

  it('posts as a sub-device and gets the reply; refused and unknown sub-devices fail readably', async function () {
    const statuses = new StatusLog();
    manager.add(subDevice(1), statuses);
    const posts = manager.postClientOf({ productKey: SUB_PK, deviceName: subName(1) });
    posts.attach();
    const result = await new Promise<{ code?: number }>((resolve, reject) =>
      posts.post({ kind: 'property', params: { temperature: 20 }, ack: true }, 3000, (error, outcome) =>
        error ? reject(error) : resolve({ code: outcome?.reply?.code }),
      ),
    );
    assert.equal(result.code, 200);
    assert.equal(sim.platform.propertiesOf({ productKey: SUB_PK, deviceName: subName(1) }).temperature.value, 20);
    const unknown = await new Promise<Error | undefined>((resolve) =>
      manager.publishAs({ productKey: SUB_PK, deviceName: subName(9) }, '/x', 'y', {}, resolve),
    );
    assert.equal((unknown as AliyunIotError).code, 'SUBDEVICE_UNKNOWN');
    manager.add(subDevice(2, { deviceSecret: 'wrong' }), statuses);
    await waitFor(() => statuses.last(subName(2))?.state === 'refused', 'the refusal');
    const refused = await new Promise<Error | undefined>((resolve) =>
      manager.publishAs(
        { productKey: SUB_PK, deviceName: subName(2) },
        thingTopics.propertyPost({ productKey: SUB_PK, deviceName: subName(2) }),
        '{}',
        {},
        resolve,
      ),
    );
    assert.equal((refused as AliyunIotError).code, 'SUBDEVICE_BAD_SIGN');
    posts.detach(true);
  });

  it('pack post: waits for the sub-devices to log in, sends 25 of them and the gateway in two posts, combines the replies', async function () {
    const statuses = new StatusLog();
    for (let index = 1; index <= 25; index++) manager.add(subDevice(index), statuses);
    const entries = [
      { properties: { uptime: 9 } },
      ...Array.from({ length: 25 }, (_, index) => ({
        productKey: SUB_PK,
        deviceName: subName(index + 1),
        properties: { temperature: index },
        events: index === 0 ? { overheat: { value: { level: 1 } } } : undefined,
      })),
    ];
    const events: string[] = [];
    sim.on('post', (info) => {
      if (info.method === 'thing.event.overheat.post') events.push(info.deviceName);
    });
    const result = await manager.packPost(entries, { ack: true, timeoutMs: 3000 });
    assert.equal(result.code, 200);
    assert.equal(result.method, 'thing.event.property.pack.post');
    assert.equal(result.parts.length, 2);
    assert.ok(result.parts.every((part) => part.code === 200));
    assert.equal(sim.platform.propertiesOf(GW01).uptime.value, 9);
    for (let index = 1; index <= 25; index++) {
      assert.equal(sim.platform.propertiesOf({ productKey: SUB_PK, deviceName: subName(index) }).temperature.value, index - 1);
    }
    assert.deepEqual(events, [subName(1)]);
    const unacknowledged = await manager.packPost([{ properties: { uptime: 10 } }], { ack: false, timeoutMs: 3000 });
    assert.equal(unacknowledged.code, undefined);
    assert.equal(unacknowledged.parts.length, 1);
  });

  it('pack post: bad entries throw at once; unknown and refused sub-devices fail readably, nothing sent', async function () {
    assert.throws(
      () => manager.packPost('nope', { ack: true, timeoutMs: 1000 }),
      (err: AliyunIotError) => err.code === 'PACK_INVALID',
    );
    await assert.rejects(
      manager.packPost([{ productKey: SUB_PK, deviceName: subName(7), properties: { a: 1 } }], { ack: true, timeoutMs: 1000 }),
      (err: AliyunIotError) => err.code === 'SUBDEVICE_UNKNOWN' && err.message.includes(subName(7)),
    );
    const statuses = new StatusLog();
    manager.add(subDevice(2, { deviceSecret: 'wrong' }), statuses);
    await assert.rejects(
      manager.packPost([{ productKey: SUB_PK, deviceName: subName(2), properties: { a: 1 } }], { ack: true, timeoutMs: 1000 }),
      (err: AliyunIotError) => err.code === 'SUBDEVICE_BAD_SIGN',
    );
    assert.deepEqual(sim.platform.propertiesOf({ productKey: SUB_PK, deviceName: subName(2) }), {});
  });

  it('logs in again after the gateway reconnects', async function () {
    const statuses = new StatusLog();
    for (let index = 1; index <= 3; index++) manager.add(subDevice(index), statuses);
    await waitFor(() => sim.onlineSubDevices(GW01).length === 3, 'online');
    await new Promise<void>((resolve) => connection.disconnect(resolve));
    await waitFor(
      () => sim.onlineSubDevices(GW01).length === 0 && statuses.last(subName(1))?.state === 'waiting',
      'offline with the gateway',
    );
    connection.connect();
    await waitFor(() => sim.onlineSubDevices(GW01).length === 3, 'online again');
  });

  it('after a 520 logs the sub-device in again and sends the refused message once more', async function () {
    const statuses = new StatusLog();
    const sub1 = { productKey: SUB_PK, deviceName: subName(1) };
    manager.add(subDevice(1), statuses);
    await waitFor(() => statuses.last(subName(1))?.state === 'online', 'online');
    // The platform loses the session without the manager knowing: a logout sent past it.
    const logout = buildLogout(GW01, '1', [sub1]);
    await new Promise<void>((resolve) => connection.publish(logout.topic, logout.payload, { qos: 0 }, () => resolve()));
    await waitFor(() => sim.onlineSubDevices(GW01).length === 0, 'the platform forgot it');
    const logins = manager.loginRequests;
    const posts = manager.postClientOf(sub1);
    posts.attach();
    const reply = await new Promise<number | undefined>((resolve, reject) =>
      posts.post({ kind: 'property', params: { n: 1 }, ack: true }, 4000, (error, result) =>
        error ? reject(error) : resolve(result?.reply?.code),
      ),
    );
    assert.equal(reply, 200, 'the post went again after the re-login and got its reply');
    assert.equal(manager.loginRequests, logins + 1);
    assert.deepEqual(sim.platform.propertiesOf(sub1).n.value, 1);
    posts.detach(true);
  });

  it('logs a removed sub-device out, and answers its status', async function () {
    const statuses = new StatusLog();
    manager.add(subDevice(1), statuses);
    await waitFor(() => sim.onlineSubDevices(GW01).length === 1, 'online');
    manager.remove(subDevice(1), statuses, true);
    await waitFor(() => sim.onlineSubDevices(GW01).length === 0, 'logged out');
    assert.equal(manager.statusOf(subDevice(1)), undefined);
  });

  it('tells listeners of topology changes, disable and enable', async function () {
    const notices: string[] = [];
    manager.addListener({ onGatewayNotice: (notice) => notices.push(`${notice.kind}:${notice.change ?? notice.code ?? ''}`) });
    const statuses = new StatusLog();
    manager.add(subDevice(1), statuses);
    await waitFor(() => statuses.last(subName(1))?.state === 'online', 'online');
    await admin(sim, 'POST', '/devices/disable', { productKey: SUB_PK, deviceName: subName(1) });
    await waitFor(
      () => notices.includes('disable:') && notices.includes('topology-change:disabled') && notices.includes('kicked:522'),
      `notices: ${notices.join(' ')}`,
    );
    assert.equal(statuses.last(subName(1))?.reason, 'subdevice-disabled');
    await admin(sim, 'POST', '/devices/enable', { productKey: SUB_PK, deviceName: subName(1) });
    await waitFor(() => statuses.last(subName(1))?.state === 'online', 'online again after enable');
  });
});
