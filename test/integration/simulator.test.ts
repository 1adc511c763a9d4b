import { strict as assert } from 'node:assert';
import mqtt, { MqttClient } from 'mqtt';
import { MqttLogin, signIotLogin, signMqLogin } from '../../nodes/lib/protocol';
import { Simulator, startSimulator } from '../../sim';
import { SENTINEL, endSdkDevice, sdkDevice, startTestSimulator, waitFor, waitForSubscribed } from '../support/helpers';
import { MQ_INSTANCE, PK, SIM_CONFIG, deviceSecret } from '../support/registry';

function iotLogin(deviceName: string, extra: Partial<Parameters<typeof signIotLogin>[1]> = {}): MqttLogin {
  return signIotLogin({ productKey: PK, deviceName, deviceSecret: deviceSecret(deviceName) }, { securemode: 3, ...extra });
}

/** Connects a raw mqtt.js client; rejects with the CONNACK code of a refused login. */
function connect(sim: Simulator, login: MqttLogin, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({ host: '127.0.0.1', port: sim.port, protocol: 'mqtt', reconnectPeriod: 0, ...login, ...options });
    client.once('connect', () => resolve(client));
    client.once('error', (err: Error & { code?: number }) => {
      client.end(true);
      reject(Object.assign(err, { returnCode: err.code }));
    });
  });
}

async function refusal(sim: Simulator, login: MqttLogin): Promise<number> {
  try {
    const client = await connect(sim, login);
    client.end(true);
  } catch (err) {
    return (err as { returnCode: number }).returnCode;
  }
  throw new Error('the login was accepted');
}

function nextMessage(client: MqttClient, timeoutMs = 2000): Promise<{ topic: string; payload: string; qos: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message arrived')), timeoutMs);
    client.once('message', (topic, payload, packet) => {
      clearTimeout(timer);
      resolve({ topic, payload: payload.toString(), qos: packet.qos });
    });
  });
}

/** The SUBACK return codes for the filters, subscribed at QoS 1 in one SUBSCRIBE. */
function suback(client: MqttClient, filters: string[]): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const request = Object.fromEntries(filters.map((filter) => [filter, { qos: 1 as const }]));
    client.subscribe(request, (_err, _granted, packet) => (packet ? resolve(packet.granted as number[]) : reject(new Error('no SUBACK'))));
  });
}

function end(...clients: MqttClient[]): Promise<void[]> {
  return Promise.all(clients.map((client) => new Promise<void>((resolve) => client.end(true, {}, () => resolve()))));
}

describe('simulator: logins', function () {
  let sim: Simulator;
  beforeEach(async function () {
    sim = await startTestSimulator();
  });
  afterEach(async function () {
    await sim.stop();
  });

  for (const signMethod of ['hmacsha256', 'hmacsha1', 'hmacmd5'] as const) {
    it(`accepts an IoT device signed with ${signMethod}`, async function () {
      const client = await connect(sim, iotLogin('dev01', { signMethod }));
      await waitFor(() => sim.onlineDevices().length === 1, 'the device to be online');
      assert.deepEqual(sim.onlineDevices(), [`${PK}/dev01`]);
      await end(client);
    });
  }

  it('refuses bad device logins with the matching CONNACK code', async function () {
    assert.equal(await refusal(sim, { ...iotLogin('dev01'), password: 'f'.repeat(64) }), 5);
    assert.equal(await refusal(sim, signIotLogin({ productKey: PK, deviceName: 'nobody', deviceSecret: 'x' }, { securemode: 3 })), 4);
    assert.equal(await refusal(sim, { ...iotLogin('dev01'), clientId: 'no-parameters' }), 2);
  });

  it('accepts the three ApsaraMQ auth modes and refuses their failures', async function () {
    const base = { instanceId: MQ_INSTANCE, accessKeyId: 'AK' };
    const good: MqttLogin[] = [
      signMqLogin({ ...base, authMode: 'signature', clientId: 'GID_test@@@a', accessKeySecret: 'SK' }),
      signMqLogin({ ...base, authMode: 'token', clientId: 'GID_test@@@b', token: 'tok1' }),
      signMqLogin({
        authMode: 'device-credential',
        instanceId: MQ_INSTANCE,
        clientId: 'GID_test@@@dev02',
        accessKeyId: 'DC.1',
        accessKeySecret: 'dsk',
      }),
    ];
    await end(...(await Promise.all(good.map((login) => connect(sim, login)))));
    const refusals = await Promise.all([
      refusal(sim, signMqLogin({ ...base, authMode: 'signature', clientId: 'GID_test@@@a', accessKeySecret: 'wrong' })),
      refusal(sim, signMqLogin({ ...base, authMode: 'signature', clientId: 'GID_other@@@a', accessKeySecret: 'SK' })),
      refusal(sim, {
        ...signMqLogin({ ...base, authMode: 'signature', clientId: 'GID_test@@@a', accessKeySecret: 'SK' }),
        clientId: 'plain',
      }),
      refusal(sim, signMqLogin({ ...base, authMode: 'signature', clientId: 'GID_test@@@a', accessKeyId: 'AK2', accessKeySecret: 'SK' })),
      refusal(sim, signMqLogin({ ...base, authMode: 'token', clientId: 'GID_test@@@b', token: 'tokExpired' })),
      refusal(sim, signMqLogin({ ...base, authMode: 'token', clientId: 'GID_test@@@b', token: 'revoked' })),
      refusal(
        sim,
        signMqLogin({
          authMode: 'device-credential',
          instanceId: MQ_INSTANCE,
          clientId: 'GID_test@@@dev03',
          accessKeyId: 'DC.1',
          accessKeySecret: 'dsk',
        }),
      ),
      refusal(
        sim,
        signMqLogin({
          authMode: 'signature',
          instanceId: 'post-cn-none',
          clientId: 'GID_test@@@a',
          accessKeyId: 'AK',
          accessKeySecret: 'SK',
        }),
      ),
    ]);
    assert.deepEqual(refusals, [5, 2, 2, 4, 5, 5, 5, 4]);
  });

  it('knocks the older connection of a device off, whatever its client id', async function () {
    const first = await connect(sim, iotLogin('dev01', { clientId: 'first' }));
    const closed = new Promise<void>((resolve) => first.once('close', () => resolve()));
    const kicked = new Promise<{ clientId: string }>((resolve) => sim.once('kicked', resolve));
    const second = await connect(sim, iotLogin('dev01', { clientId: 'second' }));
    await closed;
    assert.match((await kicked).clientId, /^first\|/);
    assert.ok(second.connected);
    await end(first, second);
  });
});

describe('simulator: topic permissions', function () {
  let sim: Simulator;
  let dev01: MqttClient;
  let dev02: MqttClient;
  beforeEach(async function () {
    sim = await startTestSimulator();
    dev01 = await connect(sim, iotLogin('dev01'));
    dev02 = await connect(sim, iotLogin('dev02'));
  });
  afterEach(async function () {
    await end(dev01, dev02);
    await sim.stop();
  });

  it('grants a device its own custom and thing-model topics and refuses others with SUBACK 0x80', async function () {
    const allowed = [
      `/${PK}/dev01/user/get`,
      `/${PK}/dev01/user/data/#`,
      `/${PK}/+/user/fanout`,
      `/sys/${PK}/dev01/thing/service/+`,
      `/sys/${PK}/dev01/rrpc/request/+`,
      `/ext/rrpc/+/sys/${PK}/dev01/thing/service/+`,
      `/ext/ntp/${PK}/dev01/response`,
      `/shadow/get/${PK}/dev01`,
      `/ota/device/upgrade/${PK}/dev01`,
      `/broadcast/${PK}/news`,
    ];
    const denied = [
      `/${PK}/dev02/user/get`,
      `/${PK}/dev01/user/update`,
      `/${PK}/dev01/#`,
      `/sys/${PK}/dev02/thing/service/+`,
      '#',
      `/broadcast/other/x`,
    ];
    const codes = await suback(dev01, [...allowed, ...denied]);
    assert.deepEqual(codes, [...allowed.map(() => 1), ...denied.map(() => 128)]);
    assert.ok(dev01.connected, 'the connection stays up after SUBACK 0x80');
  });

  it('drops publishes to topics the device may not publish, keeping the connection', async function () {
    await dev02.subscribeAsync([`/${PK}/dev02/user/get`, `/${PK}/+/user/fanout`], { qos: 1 });
    const received: string[] = [];
    dev02.on('message', (_topic, payload) => received.push(payload.toString()));
    const denied = new Promise<{ topic: string }>((resolve) => sim.once('publish-denied', resolve));
    await dev01.publishAsync(`/${PK}/dev02/user/get`, 'not allowed', { qos: 1 });
    assert.equal((await denied).topic, `/${PK}/dev02/user/get`);
    await dev01.publishAsync(`/${PK}/dev01/user/fanout`, SENTINEL, { qos: 1 });
    await waitFor(() => received.includes(SENTINEL), 'the sentinel');
    assert.deepEqual(received, [SENTINEL], 'the denied publish never arrived');
    assert.ok(dev01.connected);
  });

  it('delivers between devices on granted topics, downgrading QoS 2 to 1 and clearing retain', async function () {
    await dev02.subscribeAsync(`/${PK}/+/user/fanout`, { qos: 1 });
    const arrived = nextMessage(dev02);
    dev01.publish(`/${PK}/dev01/user/fanout`, 'hello', { qos: 2, retain: true });
    const message = await arrived;
    assert.deepEqual(message, { topic: `/${PK}/dev01/user/fanout`, payload: 'hello', qos: 1 });
    const late = await connect(sim, iotLogin('dev03'));
    const heard: string[] = [];
    late.on('message', (_topic, payload) => heard.push(payload.toString()));
    await late.subscribeAsync(`/${PK}/+/user/fanout`, { qos: 1 });
    // A retained message would come at the SUBSCRIBE, before the sentinel published after it.
    await dev01.publishAsync(`/${PK}/dev01/user/fanout`, SENTINEL, { qos: 1 });
    await waitFor(() => heard.includes(SENTINEL), 'the sentinel');
    assert.deepEqual(heard, [SENTINEL], 'nothing is retained');
    await end(late);
  });
});

describe('simulator: ApsaraMQ topics', function () {
  let sim: Simulator;
  beforeEach(async function () {
    sim = await startTestSimulator();
  });
  afterEach(async function () {
    await sim.stop();
  });

  function mq(deviceId: string): Promise<MqttClient> {
    return connect(
      sim,
      signMqLogin({
        authMode: 'signature',
        instanceId: MQ_INSTANCE,
        accessKeyId: 'AK',
        accessKeySecret: 'SK',
        clientId: `GID_test@@@${deviceId}`,
      }),
    );
  }

  it('allows topics under the parent topics only', async function () {
    const client = await mq('a');
    assert.deepEqual(await suback(client, ['parent/x/#', 'other/x', '#', 'parent']), [1, 128, 128, 1]);
    await end(client);
  });

  it('delivers parent/p2p/<clientId> to that client without a subscription', async function () {
    const p2pReady = waitForSubscribed(sim, 'GID_test@@@receiver', 'parent/p2p/GID_test@@@receiver');
    const [sender, receiver] = await Promise.all([mq('sender'), mq('receiver')]);
    await p2pReady;
    const arrived = nextMessage(receiver);
    await sender.publishAsync('parent/p2p/GID_test@@@receiver', 'direct', { qos: 1 });
    assert.deepEqual(await arrived, { topic: 'parent/p2p/GID_test@@@receiver', payload: 'direct', qos: 1 });
    await end(sender, receiver);
  });

  it("limits token logins to the token's resources", async function () {
    const restricted = await startSimulator({
      ...SIM_CONFIG,
      mq: [
        {
          ...SIM_CONFIG.mq![0],
          tokens: [{ accessKeyId: 'AK', token: 'readOnly', actions: 'R', resources: ['parent/a/#'], expireTime: Date.now() + 60_000 }],
        },
      ],
    });
    try {
      const client = await connect(
        restricted,
        signMqLogin({ authMode: 'token', instanceId: MQ_INSTANCE, accessKeyId: 'AK', token: 'R|readOnly', clientId: 'GID_test@@@t' }),
      );
      assert.deepEqual(await suback(client, ['parent/a/1', 'parent/b']), [1, 128]);
      const denied = new Promise<{ topic: string }>((resolve) => restricted.once('publish-denied', resolve));
      client.publish('parent/a/1', 'w', { qos: 0 });
      assert.equal((await denied).topic, 'parent/a/1');
      await end(client);
    } finally {
      await restricted.stop();
    }
  });
});

describe('simulator: the official device SDK as a peer', function () {
  let sim: Simulator;
  beforeEach(async function () {
    sim = await startTestSimulator();
  });
  afterEach(async function () {
    await sim.stop();
  });

  it('connects with its default sha1 signing and exchanges messages with a raw client', async function () {
    const device = sdkDevice(sim, 'dev01');
    await new Promise<void>((resolve) => device.on('connect', () => resolve()));
    const peer = await connect(sim, iotLogin('dev02'));
    await peer.subscribeAsync(`/${PK}/+/user/fanout`, { qos: 1 });
    const arrived = nextMessage(peer);
    device.publish(`/${PK}/dev01/user/fanout`, 'from the sdk');
    assert.equal((await arrived).payload, 'from the sdk');
    await endSdkDevice(device);
    await end(peer);
  });

  it('refuses it with a wrong secret', async function () {
    const refused = new Promise<{ returnCode: number }>((resolve) => sim.once('refused', resolve));
    const device = sdkDevice(sim, 'dev01', 'wrong-secret');
    device.on('error', () => undefined);
    assert.equal((await refused).returnCode, 5);
    await endSdkDevice(device);
  });
});
