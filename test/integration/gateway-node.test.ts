// The aliyun-iot-gateway node in a Node-RED runtime against the simulator: each action, the platform's notices,
// registered secrets kept encrypted across a restart and never shown, and every kind of bad input.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Node, NodeMessage } from 'node-red';
import { subDeviceManagerOf } from '../../nodes/lib/connection';
import type { StatusCode } from '../../nodes/lib/errors';
import { statusText } from '../../nodes/support/status';
import { Simulator } from '../../sim';
import { GW01, GW_PK, SUB_PK, startGatewaySimulator, subDevice, subName } from '../support/gateway-fixtures';
import { FlowNode, admin, iotConnection, waitFor } from '../support/helpers';
import {
  CATCH_ALL,
  collect,
  deploy,
  deviceConnectionOf,
  errorsOf,
  helper,
  lastStatusText,
  node,
  recordGrants,
  redeploy,
  send,
  startServer,
  statusesOf,
  stopServer,
  waitForConnectionSubscribed,
} from '../support/node-harness';
import { TEST_RUNTIME_SETTINGS } from '../support/reconnect';

interface GatewayResult {
  productKey: string;
  deviceName: string;
  code?: number;
  state?: string;
  iotId?: string;
  deviceSecret?: string;
}

type OutputMessage = NodeMessage & { action?: string; event?: string; code?: unknown; payload: GatewayResult[] };
type CaughtMessage = NodeMessage & { code?: string; error: { message: string } };

function gatewayFlow(
  sim: Simulator,
  options: Record<string, unknown> = {},
): { flow: FlowNode[]; credentials: Record<string, Record<string, string>> } {
  const connection = iotConnection('gw', sim, 'gw01', { productKey: GW_PK });
  return {
    flow: [
      connection.node,
      { id: 'gateway', type: 'aliyun-iot-gateway', connection: 'gw', outputSecrets: false, wires: [['out']], ...options },
      { id: 'out', type: 'helper' },
      ...CATCH_ALL,
    ],
    credentials: { gw: { deviceSecret: 'gw-secret-gw01' } },
  };
}

const device = (index: number): { productKey: string; deviceName: string } => ({ productKey: SUB_PK, deviceName: subName(index) });

describe('gateway node', function () {
  let sim: Simulator;
  let userDir: string;
  let outputs: OutputMessage[];
  let caught: CaughtMessage[];

  async function start(options: Record<string, unknown> = {}, settings: Record<string, unknown> = { userDir }): Promise<void> {
    helper.settings({ aliyunIot: TEST_RUNTIME_SETTINGS, ...settings } as Parameters<typeof helper.settings>[0]);
    await startServer();
    const { flow, credentials } = gatewayFlow(sim, options);
    await deploy(flow, credentials);
    outputs = collect('out') as OutputMessage[];
    caught = collect('caught') as CaughtMessage[];
    await waitForConnectionSubscribed(sim, 'gw');
  }

  /** Sends `msg` and resolves with the result that comes out (with `caught` the error that comes too, if any). */
  async function act(action: unknown, payload?: unknown): Promise<OutputMessage> {
    const before = outputs.filter((msg) => msg.action !== undefined).length;
    const caughtBefore = caught.length;
    send('gateway', { action, payload });
    await waitFor(
      () => outputs.filter((msg) => msg.action !== undefined).length > before || caught.length > caughtBefore,
      `the ${String(action)} result`,
      20_000,
    );
    return outputs.filter((msg) => msg.action !== undefined)[before];
  }

  /** Sends `msg`, which must fail, and resolves with what the catch node got. */
  async function refused(action: unknown, payload?: unknown): Promise<CaughtMessage> {
    const before = caught.length;
    send('gateway', { action, payload });
    await waitFor(() => caught.length > before, `the error of ${String(action)}`, 20_000);
    return caught[before];
  }

  function statusIs(reason: StatusCode): void {
    assert.equal(lastStatusText(node('gateway')), statusText(reason));
  }

  beforeEach(async function () {
    sim = await startGatewaySimulator();
    recordGrants(sim);
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aliyun-iot-gateway-node-'));
  });
  afterEach(async function () {
    await stopServer();
    await sim.stop();
    helper.settings({ aliyunIot: TEST_RUNTIME_SETTINGS } as Parameters<typeof helper.settings>[0]);
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('adds, lists, logs in, logs out and deletes sub-devices', async function () {
    await start();
    const added = await act('add', [subDevice(1), subDevice(2)]);
    assert.deepEqual(added.payload, [
      { ...device(1), code: 200 },
      { ...device(2), code: 200 },
    ]);
    assert.deepEqual((await act('list')).payload, [device(1), device(2)]);
    const login = await act('login', [subDevice(1), subDevice(2)]);
    assert.deepEqual(
      login.payload.map((result) => [result.deviceName, result.state, result.code]),
      [
        [subName(1), 'online', 200],
        [subName(2), 'online', 200],
      ],
    );
    assert.deepEqual(sim.onlineSubDevices(GW01).sort(), [`${SUB_PK}/${subName(1)}`, `${SUB_PK}/${subName(2)}`]);
    const logout = await act('logout', device(1));
    assert.deepEqual(logout.payload, [{ ...device(1), code: 200, state: 'offline' }]);
    assert.deepEqual(sim.onlineSubDevices(GW01), [`${SUB_PK}/${subName(2)}`]);
    const deleted = await act('delete', [device(1), device(2)]);
    assert.deepEqual(
      deleted.payload.map((result) => result.code),
      [200, 200],
    );
    assert.deepEqual((await act('list')).payload, []);
    await waitFor(() => sim.onlineSubDevices(GW01).length === 0, 'no sub-device online without topology');
    assert.equal(caught.length, 0, 'nothing failed');
    assert.equal(statusesOf(node('gateway')).at(-1)?.fill, 'green');
  });

  it('a command node without a sub-device that starts before the gateway node takes the commands of its logins', async function () {
    // No aliyun-iot-subdevice: nothing makes the connection a gateway's until the gateway node starts, after the command node.
    helper.settings({ aliyunIot: TEST_RUNTIME_SETTINGS, userDir } as Parameters<typeof helper.settings>[0]);
    await startServer();
    const { flow, credentials } = gatewayFlow(sim);
    const command = {
      id: 'command',
      type: 'aliyun-iot-command',
      connection: 'gw',
      services: '',
      autoReplySet: true,
      wires: [['commands']],
    };
    await deploy([flow[0], command, { id: 'commands', type: 'helper' }, ...flow.slice(1)], credentials);
    outputs = collect('out') as OutputMessage[];
    caught = collect('caught') as CaughtMessage[];
    const commands = collect('commands');
    await waitForConnectionSubscribed(sim, 'gw');
    const login = await act('login', [subDevice(1)]);
    assert.equal(login.payload[0].state, 'online');
    const set = await admin<{ status: string; reply: { code: number } }>(sim, 'POST', '/properties/set', {
      ...device(1),
      items: { power: 1 },
      timeout: 3000,
    });
    assert.deepEqual([set.status, set.reply.code], ['SUCCESS', 200], 'answered by the command node');
    assert.deepEqual(
      commands.map((msg) => [(msg as NodeMessage & { device?: unknown }).device, msg.payload]),
      [[device(1), { power: 1 }]],
    );
    assert.deepEqual(caught, []);
  });

  it('logs out what it logged in when the last gateway node of the connection is removed', async function () {
    await start();
    await act('login', [subDevice(1), subDevice(2)]);
    assert.equal(sim.onlineSubDevices(GW01).length, 2);
    const { flow, credentials } = gatewayFlow(sim);
    await redeploy(
      flow.filter((entry) => entry.id !== 'gateway'),
      'nodes',
      credentials,
    );
    await waitFor(() => sim.onlineSubDevices(GW01).length === 0, 'the sub-devices logged out');
    assert.ok(deviceConnectionOf('gw').connected, 'the connection stays');
  });

  it('splits large batches: 70 topology adds in requests of 30, 120 logins in batches of 50', async function () {
    await start();
    const many = Array.from({ length: 120 }, (_, index) => subDevice(index + 1));
    const manager = subDeviceManagerOf(deviceConnectionOf('gw'));
    // The connection asks its publish rules about every topic it sends on: a rule that allows nothing counts them.
    let topologyAdds = 0;
    deviceConnectionOf('gw').addPublishRule((topic) => {
      if (topic.endsWith('/thing/topo/add')) topologyAdds += 1;
      return false;
    });
    const added = await act('add', many.slice(0, 70));
    assert.ok(added.payload.every((result) => result.code === 200));
    assert.equal(topologyAdds, 3);
    const logins = manager.loginRequests;
    const login = await act('login', many);
    assert.ok(login.payload.every((result) => result.state === 'online'));
    assert.equal(manager.loginRequests - logins, 3);
    assert.equal(sim.onlineSubDevices(GW01).length, 120);
    const logout = await act('logout', many);
    assert.ok(logout.payload.every((result) => result.code === 200));
    assert.equal(sim.onlineSubDevices(GW01).length, 0);
  });

  it('sends the notices of disable, enable, delete and topology changes', async function () {
    await start();
    await act('login', [subDevice(1), subDevice(2)]);
    const notices = (): string[] =>
      outputs
        .filter((msg) => msg.action === undefined)
        .map((msg) => `${String(msg.topic)}:${String(msg.event)}:${msg.payload.map((entry) => entry.deviceName).join(',')}`);
    await admin(sim, 'POST', '/devices/disable', device(1));
    await waitFor(
      () =>
        [`thing/disable:disable:${subName(1)}`, `topo/change:disabled:${subName(1)}`, `kick-off:disabled:${subName(1)}`].every((notice) =>
          notices().includes(notice),
        ),
      `the disable notices: ${notices().join(' ')}`,
    );
    assert.equal(outputs.find((msg) => msg.topic === 'kick-off')?.code, 522);
    await admin(sim, 'POST', '/devices/enable', device(1));
    await waitFor(
      () => notices().includes(`thing/enable:enable:${subName(1)}`) && notices().includes(`topo/change:enabled:${subName(1)}`),
      'the enable notices',
    );
    await admin(sim, 'POST', '/topology/add', { gateway: GW01, subDevices: [device(3)] });
    await waitFor(() => notices().includes(`topo/change:created:${subName(3)}`), 'the topology change');
    await admin(sim, 'POST', '/devices/delete', device(2));
    await waitFor(
      () =>
        [`thing/delete:delete:${subName(2)}`, `topo/change:deleted:${subName(2)}`, `kick-off:deleted:${subName(2)}`].every((notice) =>
          notices().includes(notice),
        ),
      `the delete notices: ${notices().join(' ')}`,
    );
    await admin(sim, 'POST', '/topology/delete', { gateway: GW01, subDevices: [device(3)] });
    await waitFor(() => notices().includes(`topo/change:deleted:${subName(3)}`), 'the topology deletion');
  });

  it('registers, keeps the secret encrypted across a restart, and logs in with it; never shows it', async function () {
    await start();
    const fresh = { productKey: SUB_PK, deviceName: 'fresh-0001' };
    const registered = await act('register', [fresh]);
    const secret = sim.registry.deviceSecret(SUB_PK, 'fresh-0001') as string;
    assert.ok(secret, 'the simulator made the device');
    assert.deepEqual(registered.payload, [{ ...fresh, code: 200, iotId: `${SUB_PK}fresh-0001` }]);
    const file = path.join(userDir, 'aliyun-iot', 'subdevices', 'gw.json');
    assert.ok(!fs.readFileSync(file, 'utf8').includes(secret), 'encrypted on disk');
    assert.ok(fs.existsSync(path.join(userDir, 'aliyun-iot', 'subdevices', 'gw.key')));

    const shown = (): string =>
      JSON.stringify([outputs, caught, ...['gateway', 'gw'].map((id) => [statusesOf(node(id)), errorsOf(node(id)), callsOf(node(id))])]);
    assert.ok(!shown().includes(secret), 'not in messages, statuses or logs');

    await stopServer();
    await start();
    const added = await act('add', fresh);
    assert.deepEqual(added.payload, [{ ...fresh, code: 200 }]);
    const login = await act('login', fresh);
    assert.deepEqual(login.payload, [{ ...fresh, state: 'online', code: 200 }]);
    assert.ok(sim.onlineSubDevices(GW01).includes(`${SUB_PK}/fresh-0001`));
    assert.ok(!shown().includes(secret), 'not in messages, statuses or logs after the restart');
  });

  it('outputs registered secrets when told to, and uses credentialSecret as the key when set', async function () {
    await start({ outputSecrets: true }, { userDir, credentialSecret: 'a passphrase of the runtime' });
    const registered = await act('register', [{ productKey: SUB_PK, deviceName: 'fresh-0002' }]);
    assert.equal(registered.payload[0].deviceSecret, sim.registry.deviceSecret(SUB_PK, 'fresh-0002'));
    assert.ok(!fs.existsSync(path.join(userDir, 'aliyun-iot', 'subdevices', 'gw.key')), 'no key file with a credentialSecret');
    await stopServer();
    await start({}, { userDir, credentialSecret: 'another passphrase' });
    statusIs('secret-store-error');
    const wrongKey = await refused('login', { productKey: SUB_PK, deviceName: 'fresh-0002' });
    assert.equal(wrongKey.code, 'SECRET_STORE_WRONG_KEY');
  });

  it('fails bad input with a catchable error, a code and a status, before sending anything', async function () {
    await start();
    const cases: Array<[unknown, unknown, string]> = [
      ['reboot', undefined, 'GATEWAY_ACTION_INVALID'],
      [undefined, undefined, 'GATEWAY_ACTION_INVALID'],
      ['add', 'sub0001', 'GATEWAY_DEVICE_INVALID'],
      ['add', [], 'GATEWAY_DEVICE_INVALID'],
      ['add', [{ productKey: SUB_PK }], 'GATEWAY_DEVICE_INVALID'],
      ['login', [{ ...subDevice(1), deviceSecret: 42 }], 'GATEWAY_DEVICE_INVALID'],
      ['login', [{ ...subDevice(1), cleanSession: 'yes' }], 'GATEWAY_DEVICE_INVALID'],
      ['login', [{ ...subDevice(1), signMethod: 'sha512' }], 'SIGN_METHOD_INVALID'],
      ['delete', { productKey: 'short', deviceName: subName(1) }, 'PRODUCT_KEY_INVALID'],
      ['logout', { productKey: SUB_PK, deviceName: 'a/b#' }, 'DEVICE_NAME_INVALID'],
      ['add', [subDevice(1), subDevice(1)], 'GATEWAY_DEVICE_REPEATED'],
      ['register', Array.from({ length: 1501 }, (_, index) => device(index + 1)), 'GATEWAY_TOO_MANY'],
      ['login', device(1), 'SUBDEVICE_SECRET_UNKNOWN'],
      ['add', [subDevice(1), device(2)], 'SUBDEVICE_SECRET_UNKNOWN'],
    ];
    for (const [action, payload, code] of cases) {
      const error = await refused(action, payload);
      assert.equal(error.code, code, `${String(action)} ${JSON.stringify(payload)?.slice(0, 80)}: ${error.error.message}`);
      statusIs('gateway-bad-input');
    }
    assert.equal(outputs.length, 0, 'no result for bad input');
    assert.deepEqual((await act('list')).payload, [], 'nothing was added');
    statusIs('connected');
  });

  it('reports refusals per device and as a catchable error: wrong secret, unknown sub-device, not online', async function () {
    await start();
    const added = await act('add', [subDevice(1), subDevice(2, { deviceSecret: 'wrong' })]);
    assert.deepEqual(
      added.payload.map((result) => result.code),
      [200, 401],
    );
    assert.equal(caught.at(-1)?.code, 'SUBDEVICE_BAD_SIGN');
    statusIs('subdevice-bad-sign');

    const login = await act('login', [
      subDevice(1),
      { productKey: SUB_PK, deviceName: 'nobody01', deviceSecret: 'x' },
      subDevice(3, { deviceSecret: 'wrong' }),
    ]);
    assert.deepEqual(
      login.payload.map((result) => [result.state, result.code]),
      [
        ['online', 200],
        ['refused', 6100],
        ['refused', 6287],
      ],
    );
    assert.equal(caught.at(-1)?.code, 'GATEWAY_SOME_REFUSED');
    assert.match(caught.at(-1)?.error.message ?? '', /2 of 3 .*nobody01 \(6100\)/);
    statusIs('gateway-refused');

    const logout = await act('logout', device(4));
    assert.deepEqual(logout.payload, [{ ...device(4), code: 520, state: 'offline' }]);
    assert.equal(caught.at(-1)?.code, 'SUBDEVICE_NO_SESSION');
    const unknownDelete = await act('delete', device(5));
    assert.deepEqual(unknownDelete.payload, [{ ...device(5), code: 6401 }]);
    assert.equal(caught.at(-1)?.code, 'SUBDEVICE_NO_TOPOLOGY');
  });

  it('tries the login of a sub-device at most 5 times a minute: the 6th is refused with 429 without asking the platform', async function () {
    await start();
    const manager = subDeviceManagerOf(deviceConnectionOf('gw'));
    for (let attempt = 1; attempt <= 5; attempt++) {
      const login = await act('login', subDevice(1, { deviceSecret: 'wrong' }));
      assert.deepEqual(login.payload, [{ ...device(1), state: 'refused', code: 6287 }], `attempt ${attempt}`);
    }
    const requests = manager.loginRequests;
    const sixth = await act('login', subDevice(1));
    assert.deepEqual(sixth.payload, [{ ...device(1), state: 'refused', code: 429 }]);
    assert.equal(manager.loginRequests, requests, 'no login request sent');
    assert.equal(caught.at(-1)?.code, 'SUBDEVICE_TOO_MANY_LOGINS');
    statusIs('subdevice-too-many-logins');
    assert.equal((await act('login', subDevice(2))).payload[0].state, 'online', 'other sub-devices are not held back');
  });

  it('refuses a malformed register reply and keeps what came before; no user directory or a tampered store fails readably', async function () {
    await start();
    const many = Array.from({ length: 31 }, (_, index) => ({
      productKey: SUB_PK,
      deviceName: `fresh-${String(index + 1).padStart(4, '0')}`,
    }));
    sim.gateways.answerNextWith('register', { code: 200, data: [{ productKey: SUB_PK, deviceName: 'fresh-0031' }] });
    const first = await refused('register', many.slice(30));
    assert.equal(first.code, 'REGISTER_REPLY_MALFORMED');
    statusIs('gateway-bad-reply');
    sim.gateways.answerNextWith('register', null, { code: 200, data: { deviceSecret: 'x' } });
    // The first request (30 devices) is answered as it should be, the second (1 device) malformed.
    const second = await refused('register', many);
    assert.equal(second.code, 'REGISTER_REPLY_MALFORMED');
    const login = await act('login', many.slice(0, 2));
    assert.deepEqual(
      login.payload.map((result) => result.state),
      ['online', 'online'],
      'the secrets of the request answered well were kept',
    );
    await stopServer();

    const file = path.join(userDir, 'aliyun-iot', 'subdevices', 'gw.json');
    const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, string>;
    fs.writeFileSync(file, JSON.stringify({ ...stored, data: Buffer.from('changed').toString('base64') }));
    await start();
    statusIs('secret-store-error');
    assert.equal((await refused('register', many[0])).code, 'SECRET_STORE_TAMPERED');
    assert.equal((await refused('login', many[0])).code, 'SECRET_STORE_TAMPERED');
    assert.equal((await act('login', subDevice(1))).payload[0].state, 'online', 'devices given with a secret still work');
    await stopServer();

    await start({}, {});
    const noDir = await refused('register', many[0]);
    assert.equal(noDir.code, 'SECRET_STORE_UNAVAILABLE');
    statusIs('secret-store-error');
  });
});

/** What the node logged (log, warn and debug calls of its spies), as text. */
function callsOf(target: Node): string[] {
  return (['log', 'warn', 'debug', 'trace'] as const).flatMap((method) => {
    const spy = target[method] as unknown as { getCalls?: () => Array<{ args: unknown[] }> };
    return spy.getCalls ? spy.getCalls().map((call) => JSON.stringify(call.args)) : [];
  });
}
