// Interop: the official Node device SDK's gateway API (alibabacloud-iot-device-sdk) as a peer of the simulator: it
// adds the topology, logs a sub-device in and posts the sub-device's properties, each answered as the platform would.
import { strict as assert } from 'node:assert';
import { Simulator } from '../../sim';
import { GW01, GW_PK, SUB_PK, startGatewaySimulator, subDevice, subName } from '../support/gateway-fixtures';

/** What the SDK's callbacks get: the platform's reply. */
interface SdkReply {
  id: string;
  code: number;
  data?: unknown;
  message?: string;
}

type SdkCallback = (reply: SdkReply) => void;

/** The part of the SDK's gateway (1.2.8) this test uses. */
interface SdkGateway {
  on(event: 'connect' | 'error', listener: (...args: unknown[]) => void): void;
  addTopo(devices: Array<{ productKey: string; deviceName: string; deviceSecret: string }>, callback: SdkCallback): void;
  getTopo(callback: SdkCallback): void;
  login(device: { productKey: string; deviceName: string; deviceSecret: string }, callback: SdkCallback): SdkSubDevice;
  logout(device: { productKey: string; deviceName: string }, callback: SdkCallback): void;
  end(force: boolean, callback: () => void): void;
}

interface SdkSubDevice {
  postProps(properties: Record<string, unknown>, callback: SdkCallback): void;
}

function sdkGateway(sim: Simulator): SdkGateway {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sdk = require('alibabacloud-iot-device-sdk') as { gateway(config: Record<string, unknown>): SdkGateway };
  // brokerUrl is the SDK's documented option for its MQTT endpoint: the simulator's port, no shim.
  return sdk.gateway({
    productKey: GW_PK,
    deviceName: GW01.deviceName,
    deviceSecret: 'gw-secret-gw01',
    brokerUrl: `mqtt://127.0.0.1:${sim.port}`,
    clean: true,
  });
}

function reply(call: (callback: SdkCallback) => void, what: string, timeoutMs = 3000): Promise<SdkReply> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reply to ${what} within ${timeoutMs} ms`)), timeoutMs);
    call((answer) => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

describe('interop: the official device SDK as a gateway', function () {
  let sim: Simulator;
  let gateway: SdkGateway;

  beforeEach(async function () {
    sim = await startGatewaySimulator();
    gateway = sdkGateway(sim);
    await new Promise<void>((resolve, reject) => {
      gateway.on('connect', () => resolve());
      gateway.on('error', (err) => reject(err as Error));
    });
  });

  afterEach(async function () {
    await new Promise<void>((resolve) => gateway.end(true, resolve));
    await sim.stop();
  });

  it('adds the topology, logs a sub-device in, posts its properties and gets the reply', async function () {
    const credentials = subDevice(1);
    const sub = { productKey: SUB_PK, deviceName: subName(1) };
    const added = await reply((callback) => gateway.addTopo([{ ...credentials }], callback), 'topo/add');
    assert.equal(added.code, 200, JSON.stringify(added));
    assert.deepEqual(added.data, [sub]);
    const listed = await reply((callback) => gateway.getTopo(callback), 'topo/get');
    assert.deepEqual(listed.data, [sub]);

    let subDeviceOfSdk: SdkSubDevice | undefined;
    const login = await reply((callback) => {
      subDeviceOfSdk = gateway.login({ ...credentials }, callback);
    }, 'combine/login');
    assert.equal(login.code, 200, JSON.stringify(login));
    assert.deepEqual(sim.onlineSubDevices(GW01), [`${SUB_PK}/${subName(1)}`]);

    const posted = await reply((callback) => (subDeviceOfSdk as SdkSubDevice).postProps({ temperature: 23.5 }, callback), 'property post');
    assert.equal(posted.code, 200, JSON.stringify(posted));
    assert.equal(sim.platform.propertiesOf(sub).temperature.value, 23.5);

    const logout = await reply((callback) => gateway.logout(sub, callback), 'combine/logout');
    assert.equal(logout.code, 200);
    assert.deepEqual(sim.onlineSubDevices(GW01), []);
  });

  it('a wrong sub-device secret is refused on login with 6287, as the platform does', async function () {
    assert.equal((await reply((callback) => gateway.addTopo([{ ...subDevice(2) }], callback), 'topo/add')).code, 200);
    const login = await reply((callback) => gateway.login({ ...subDevice(2), deviceSecret: 'wrong' }, callback), 'combine/login');
    assert.equal(login.code, 6287);
    assert.deepEqual(sim.onlineSubDevices(GW01), []);
  });
});
