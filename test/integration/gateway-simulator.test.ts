// The simulator as a gateway's platform, spoken to by a raw mqtt.js client: topology, sub-device sessions and their
// codes and limits, traffic as a sub-device, auto-subscription, the admin API's changes and their notices.
import { strict as assert } from 'node:assert';
import {
  AlinkObject,
  GATEWAY_CODES,
  buildLogin,
  buildLogout,
  buildPackPost,
  buildRegister,
  buildTopologyAdd,
  buildTopologyDelete,
  buildTopologyGet,
  gatewayTopics,
  readRegisterReply,
  thingTopics,
} from '../../nodes/lib/protocol';
import { AliyunIotError } from '../../nodes/lib/errors';
import { Simulator } from '../../sim';
import { admin } from '../support/helpers';
import { DIRECT_PK, GW01, GW02, RawGateway, SUB_PK, startGatewaySimulator, subDevice, subName } from '../support/gateway-fixtures';

const SUB1 = { productKey: SUB_PK, deviceName: subName(1) };

async function attachAndLogin(gateway: RawGateway, indexes: number[]): Promise<void> {
  const subs = indexes.map((index) => subDevice(index));
  assert.equal((await gateway.request(buildTopologyAdd(gateway.device, gateway.id(), subs))).code, 200);
  assert.equal((await gateway.request(buildLogin(gateway.device, gateway.id(), subs))).code, 200);
}

/** A simulator and a connected gateway for each test (with sub-devices already logged in); replaceable in a test. */
function gatewayContext(options: Parameters<typeof startGatewaySimulator>[0], loggedIn: number[]): { sim: Simulator; gateway: RawGateway } {
  const context = {} as { sim: Simulator; gateway: RawGateway };
  beforeEach(async function () {
    context.sim = await startGatewaySimulator(options);
    context.gateway = await RawGateway.connect(context.sim, GW01);
    if (loggedIn.length > 0) await attachAndLogin(context.gateway, loggedIn);
  });
  afterEach(async function () {
    await context.gateway.end();
    await context.sim.stop();
  });
  return context;
}

function json(text: string): AlinkObject {
  return JSON.parse(text) as AlinkObject;
}

describe('simulator: context.gateway topology', function () {
  const context = gatewayContext({}, []);

  it('adds sub-devices signed with their secrets, lists them, deletes them', async function () {
    const added = await context.gateway.request(
      buildTopologyAdd(GW01, context.gateway.id(), [subDevice(1), subDevice(2, { signMethod: 'hmacmd5' })]),
    );
    assert.equal(added.code, 200);
    assert.deepEqual(added.data, [SUB1, { productKey: SUB_PK, deviceName: subName(2) }]);
    const listed = await context.gateway.request(buildTopologyGet(GW01, context.gateway.id()));
    assert.deepEqual(listed.data, added.data);
    assert.equal((await context.gateway.request(buildTopologyDelete(GW01, context.gateway.id(), [SUB1]))).code, 200);
    assert.deepEqual((await context.gateway.request(buildTopologyGet(GW01, context.gateway.id()))).data, [
      { productKey: SUB_PK, deviceName: subName(2) },
    ]);
    assert.equal((await context.gateway.request(buildTopologyDelete(GW01, context.gateway.id(), [SUB1]))).code, GATEWAY_CODES.noTopology);
  });

  it('refuses a wrong signature (401), an unknown device (6100), the context.gateway itself (6402), more than 30 (460)', async function () {
    assert.equal(
      (await context.gateway.request(buildTopologyAdd(GW01, context.gateway.id(), [subDevice(1, { deviceSecret: 'wrong' })]))).code,
      GATEWAY_CODES.authError,
    );
    const unknown = { productKey: SUB_PK, deviceName: 'nobody', deviceSecret: 'x' };
    assert.equal(
      (await context.gateway.request(buildTopologyAdd(GW01, context.gateway.id(), [unknown]))).code,
      GATEWAY_CODES.unknownDevice,
    );
    const self = { ...GW01, deviceSecret: 'gw-secret-gw01' };
    assert.equal((await context.gateway.request(buildTopologyAdd(GW01, context.gateway.id(), [self]))).code, GATEWAY_CODES.addSelf);
    const request = buildTopologyAdd(GW01, context.gateway.id(), [subDevice(1)]);
    const body = json(request.payload);
    body.params = Array.from(
      { length: 31 },
      (_, index) => (body.params as AlinkObject[])[0] && { ...(body.params as AlinkObject[])[0], deviceName: subName(index + 1) },
    );
    assert.equal((await context.gateway.request({ topic: request.topic, payload: JSON.stringify(body) })).code, GATEWAY_CODES.badRequest);
    assert.deepEqual((await context.gateway.request(buildTopologyGet(GW01, context.gateway.id()))).data, [], 'nothing was added');
  });

  it('keeps the topology across a stop and start of the simulator', async function () {
    await attachAndLogin(context.gateway, [1]);
    await context.gateway.end();
    await context.sim.stop();
    await context.sim.start();
    context.gateway = await RawGateway.connect(context.sim, GW01);
    assert.deepEqual((await context.gateway.request(buildTopologyGet(GW01, context.gateway.id()))).data, [SUB1]);
    assert.deepEqual(context.sim.onlineSubDevices(GW01), [], 'sessions do not survive');
    assert.equal((await context.gateway.request(buildLogin(GW01, context.gateway.id(), [subDevice(1)]))).code, 200);
  });

  it('takes the topology of the registry file, and the admin API changes it with a topo/change notice', async function () {
    await context.gateway.end();
    await context.sim.stop();
    context.sim = await startGatewaySimulator({
      products: [
        {
          productKey: GW01.productKey,
          nodeType: 'gateway',
          devices: [{ deviceName: 'gw01', deviceSecret: 'gw-secret-gw01', subDevices: [SUB1] }],
        },
        {
          productKey: SUB_PK,
          nodeType: 'sub-device',
          devices: [1, 2].map((index) => ({ deviceName: subName(index), deviceSecret: subDevice(index).deviceSecret })),
        },
      ],
    });
    context.gateway = await RawGateway.connect(context.sim, GW01);
    assert.deepEqual((await admin(context.sim, 'GET', `/gateways/${GW01.productKey}/gw01/topology`)).subDevices, [SUB1]);
    const sub2 = { productKey: SUB_PK, deviceName: subName(2) };
    await admin(context.sim, 'POST', '/topology/add', { gateway: GW01, subDevices: [sub2] });
    const change = json(await context.gateway.next(gatewayTopics.topologyChange(GW01)));
    assert.deepEqual(change.params, { status: 0, subList: [sub2] });
    await admin(context.sim, 'POST', '/topology/delete', { gateway: GW01, subDevices: [SUB1] });
    assert.deepEqual(json(await context.gateway.next(gatewayTopics.topologyChange(GW01))).params, { status: 1, subList: [SUB1] });
    assert.deepEqual((await admin(context.sim, 'GET', `/gateways/${GW01.productKey}/gw01/topology`)).subDevices, [sub2]);
    await assert.rejects(admin(context.sim, 'POST', '/topology/delete', { gateway: GW01, subDevices: [SUB1] }), /6401/);
  });
});

describe('simulator: sub-device sessions', function () {
  const context = gatewayContext({ gatewayLimits: { onlinePerGateway: 60 } }, []);

  it('logs a sub-device in and out; its codes: 6401, 6287, 6100, 520', async function () {
    assert.equal((await context.gateway.request(buildLogin(GW01, context.gateway.id(), [subDevice(1)]))).code, GATEWAY_CODES.noTopology);
    await context.gateway.request(buildTopologyAdd(GW01, context.gateway.id(), [subDevice(1)]));
    assert.equal(
      (await context.gateway.request(buildLogin(GW01, context.gateway.id(), [subDevice(1, { deviceSecret: 'wrong' })]))).code,
      GATEWAY_CODES.badSign,
    );
    const unknown = { productKey: SUB_PK, deviceName: 'nobody', deviceSecret: 'x' };
    assert.equal((await context.gateway.request(buildLogin(GW01, context.gateway.id(), [unknown]))).code, GATEWAY_CODES.unknownDevice);
    const login = await context.gateway.request(buildLogin(GW01, context.gateway.id(), [subDevice(1, { signMethod: 'hmacsha1' })]));
    assert.equal(login.code, 200);
    assert.deepEqual(login.data, SUB1);
    assert.deepEqual(context.sim.onlineSubDevices(GW01), [`${SUB_PK}/${subName(1)}`]);
    const devices = await admin<{ devices: Array<{ deviceName: string; online: boolean; clientId: string | null }> }>(
      context.sim,
      'GET',
      '/devices',
    );
    assert.deepEqual(
      devices.devices.find((entry) => entry.deviceName === subName(1)),
      { productKey: SUB_PK, deviceName: subName(1), online: true, clientId: `${SUB_PK}.${subName(1)}` },
    );
    const logout = await context.gateway.request(buildLogout(GW01, context.gateway.id(), [SUB1]));
    assert.deepEqual([logout.code, logout.data], [200, SUB1]);
    assert.equal((await context.gateway.request(buildLogout(GW01, context.gateway.id(), [SUB1]))).code, GATEWAY_CODES.noSession);
  });

  it('batch login: 50 at once, all or nothing, more than 50 refused (460)', async function () {
    const indexes = Array.from({ length: 51 }, (_, index) => index + 1);
    await context.gateway.request(
      buildTopologyAdd(
        GW01,
        context.gateway.id(),
        indexes.slice(0, 30).map((index) => subDevice(index)),
      ),
    );
    await context.gateway.request(
      buildTopologyAdd(
        GW01,
        context.gateway.id(),
        indexes.slice(30).map((index) => subDevice(index)),
      ),
    );
    const tooMany = buildLogin(GW01, context.gateway.id(), [subDevice(1), subDevice(2)]);
    const body = json(tooMany.payload);
    (body.params as { deviceList: AlinkObject[] }).deviceList = indexes.map(
      (index) => json(buildLogin(GW01, '1', [subDevice(index)]).payload).params as AlinkObject,
    );
    assert.equal((await context.gateway.request({ topic: tooMany.topic, payload: JSON.stringify(body) })).code, GATEWAY_CODES.badRequest);
    const mixed = await context.gateway.request(
      buildLogin(GW01, context.gateway.id(), [subDevice(1), subDevice(2, { deviceSecret: 'wrong' })]),
    );
    assert.equal(mixed.code, GATEWAY_CODES.badSign);
    assert.deepEqual(mixed.data, [{ productKey: SUB_PK, deviceName: subName(2) }]);
    assert.deepEqual(context.sim.onlineSubDevices(GW01), [], 'nothing logged in of a failed batch');
    const batch = await context.gateway.request(
      buildLogin(
        GW01,
        context.gateway.id(),
        indexes.slice(0, 50).map((index) => subDevice(index)),
      ),
    );
    assert.equal(batch.code, 200);
    assert.equal((batch.data as unknown[]).length, 50);
    assert.equal(context.sim.onlineSubDevices(GW01).length, 50);
    assert.equal(
      (
        await context.gateway.request(
          buildLogout(
            GW01,
            context.gateway.id(),
            indexes.slice(0, 50).map((index) => subDevice(index)),
          ),
        )
      ).code,
      200,
    );
    assert.equal(context.sim.onlineSubDevices(GW01).length, 0);
  });

  it('a sixth login of a sub-device within a minute is refused (429)', async function () {
    await context.gateway.request(buildTopologyAdd(GW01, context.gateway.id(), [subDevice(1)]));
    for (let attempt = 0; attempt < 5; attempt++)
      assert.equal((await context.gateway.request(buildLogin(GW01, context.gateway.id(), [subDevice(1)]))).code, 200);
    assert.equal((await context.gateway.request(buildLogin(GW01, context.gateway.id(), [subDevice(1)]))).code, GATEWAY_CODES.tooManyLogins);
  });

  it('refuses sub-devices beyond the online limit of a context.gateway (428)', async function () {
    await context.sim.stop();
    context.sim = await startGatewaySimulator({ gatewayLimits: { onlinePerGateway: 2 } });
    await context.gateway.end();
    context.gateway = await RawGateway.connect(context.sim, GW01);
    await attachAndLogin(context.gateway, [1, 2]);
    await context.gateway.request(buildTopologyAdd(GW01, context.gateway.id(), [subDevice(3)]));
    assert.equal((await context.gateway.request(buildLogin(GW01, context.gateway.id(), [subDevice(3)]))).code, GATEWAY_CODES.tooManyOnline);
  });

  it('the same sub-device through another context.gateway kicks the first (427 on its /ext/error)', async function () {
    const other = await RawGateway.connect(context.sim, GW02);
    try {
      await attachAndLogin(context.gateway, [1]);
      await attachAndLogin(other, [1]);
      const kick = json(await context.gateway.next(gatewayTopics.error(GW01)));
      assert.deepEqual([kick.code, kick.data], [GATEWAY_CODES.elsewhere, SUB1]);
      assert.deepEqual(context.sim.onlineSubDevices(GW01), []);
      assert.deepEqual(context.sim.onlineSubDevices(GW02), [`${SUB_PK}/${subName(1)}`]);
    } finally {
      await other.end();
    }
  });

  it('sub-devices go offline with the context.gateway connection', async function () {
    await attachAndLogin(context.gateway, [1, 2]);
    await context.gateway.end();
    context.gateway = await RawGateway.connect(context.sim, GW01);
    assert.deepEqual(context.sim.onlineSubDevices(GW01), []);
  });

  it('a direct device may not use the session topics', async function () {
    const direct = await RawGateway.connect(context.sim, { productKey: DIRECT_PK, deviceName: 'direct01' }, {}).catch((err: Error) => err);
    assert.ok(direct instanceof Error, 'nor subscribe them');
    assert.equal(context.sim.registry.nodeType(DIRECT_PK), 'device');
  });
});

describe('simulator: sub-device traffic through the context.gateway', function () {
  const context = gatewayContext({}, []);

  it("a sub-device message before login earns 520 on /ext/error with its id; after login it is the sub-device's", async function () {
    await context.gateway.request(buildTopologyAdd(GW01, context.gateway.id(), [subDevice(1)]));
    const post = { id: '77', version: '1.0', params: { temperature: 21.5 }, method: 'thing.event.property.post' };
    await context.gateway.publish(thingTopics.propertyPost(SUB1), post);
    const error = json(await context.gateway.next(gatewayTopics.error(GW01)));
    assert.deepEqual([error.id, error.code, error.data], ['77', GATEWAY_CODES.noSession, SUB1]);
    assert.equal(await context.gateway.subscribe(thingTopics.postReplies(SUB1)), 128, 'no subscription before login');

    assert.equal((await context.gateway.request(buildLogin(GW01, context.gateway.id(), [subDevice(1)]))).code, 200);
    const seen = new Promise<{ productKey: string; deviceName: string }>((resolve) => context.sim.once('message', resolve));
    await context.gateway.publish(thingTopics.propertyPost(SUB1), post);
    const reply = json(await context.gateway.next(`${thingTopics.propertyPost(SUB1)}_reply`));
    assert.deepEqual([reply.id, reply.code], ['77', 200]);
    const message = await seen;
    assert.deepEqual([message.productKey, message.deviceName], [SUB_PK, subName(1)], 'the AMQP subscription sees the sub-device');
    assert.deepEqual(context.sim.platform.propertiesOf(SUB1).temperature.value, 21.5);
    assert.equal(await context.gateway.subscribe(`/${SUB_PK}/${subName(1)}/user/get`), 1, 'custom topic of a logged-in sub-device');

    await context.gateway.request(buildLogout(GW01, context.gateway.id(), [SUB1]));
    await context.gateway.publish(thingTopics.propertyPost(SUB1), { ...post, id: '78' });
    assert.equal(json(await context.gateway.next(gatewayTopics.error(GW01))).id, '78');
  });

  it('with _ss=1 a property set, a service call and an RRPC reach the context.gateway without a SUBSCRIBE', async function () {
    await attachAndLogin(context.gateway, [1]);
    const set = admin<{ status: string; reply: { code: number } }>(context.sim, 'POST', '/properties/set', {
      ...SUB1,
      items: { power: 1 },
      timeout: 3000,
    });
    const request = json(await context.gateway.next(thingTopics.propertySet(SUB1)));
    assert.deepEqual(request.params, { power: 1 });
    await context.gateway.publish(thingTopics.replyTo(thingTopics.propertySet(SUB1)), { id: request.id, code: 200, data: {} });
    assert.deepEqual([(await set).status, (await set).reply.code], ['SUCCESS', 200]);

    const invoke = admin<{ status: string; reply: { data: unknown } }>(context.sim, 'POST', '/services/invoke', {
      ...SUB1,
      identifier: 'getStatus',
      sync: true,
      timeout: 3000,
    });
    const call = await context.gateway.nextMessage(/\/rrpc\/request\//);
    assert.equal(call.topic.split('/')[3], subName(1));
    await context.gateway.publish(call.topic.replace('/request/', '/response/'), {
      id: json(call.payload).id,
      code: 200,
      data: { ok: true },
    });
    assert.deepEqual([(await invoke).status, (await invoke).reply.data], ['SUCCESS', { ok: true }]);

    await context.gateway.subscribe(`/${SUB_PK}/${subName(1)}/user/get`);
    await admin(context.sim, 'POST', '/pub', { topic: `/${SUB_PK}/${subName(1)}/user/get`, payload: 'hello' });
    assert.equal(
      await context.gateway.next(`/${SUB_PK}/${subName(1)}/user/get`),
      'hello',
      'Pub reaches a sub-device through its context.gateway',
    );
  });

  it('without _ss=1 nothing of a sub-device arrives unsubscribed', async function () {
    await context.gateway.end();
    context.gateway = await RawGateway.connect(context.sim, GW01, {});
    await attachAndLogin(context.gateway, [1]);
    const set = await admin<{ status: string }>(context.sim, 'POST', '/properties/set', { ...SUB1, items: { power: 1 }, timeout: 300 });
    assert.equal(set.status, 'TIMEOUT');
    assert.ok(!context.gateway.messages.some((entry) => entry.topic === thingTopics.propertySet(SUB1)));
  });

  it('a pack post records each device as its own posts; a sub-device without topology (6401) or session (520) fails it whole', async function () {
    await attachAndLogin(context.gateway, [1]);
    const posts: Array<{ deviceName: string; topic: string; method?: string; id?: string }> = [];
    context.sim.on('post', (info) => posts.push(info));
    const params = {
      properties: { uptime: { value: 5, time: 1 } },
      events: {},
      subDevices: [
        { identity: SUB1, properties: { temperature: { value: 3, time: 2 } }, events: { overheat: { value: { level: 2 }, time: 3 } } },
      ],
    };
    const id = context.gateway.id();
    const ok = await context.gateway.request(buildPackPost(GW01, id, params));
    assert.equal(ok.code, 200);
    assert.equal(context.sim.platform.propertiesOf(SUB1).temperature.value, 3);
    assert.equal(context.sim.platform.propertiesOf(GW01).uptime.value, 5);
    assert.deepEqual(
      posts.map(({ deviceName, topic, method }) => ({ deviceName, topic, method })),
      [
        { deviceName: 'gw01', topic: thingTopics.propertyPost(GW01), method: 'thing.event.property.post' },
        { deviceName: SUB1.deviceName, topic: thingTopics.propertyPost(SUB1), method: 'thing.event.property.post' },
        { deviceName: SUB1.deviceName, topic: thingTopics.eventPost(SUB1, 'overheat'), method: 'thing.event.overheat.post' },
      ],
    );
    assert.ok(posts.every((post) => post.id === id));
    const stranger = { identity: { productKey: SUB_PK, deviceName: subName(9) }, properties: { temperature: { value: 4, time: 2 } } };
    const refused = await context.gateway.request(
      buildPackPost(GW01, context.gateway.id(), { ...params, subDevices: [...params.subDevices, stranger] }),
    );
    assert.equal(refused.code, GATEWAY_CODES.noTopology);
    assert.deepEqual(refused.data, [stranger.identity]);
    assert.equal((await context.gateway.request(buildTopologyAdd(GW01, context.gateway.id(), [subDevice(2)]))).code, 200);
    const offline = { identity: { productKey: SUB_PK, deviceName: subName(2) }, properties: { temperature: { value: 4, time: 2 } } };
    const noSession = await context.gateway.request(buildPackPost(GW01, context.gateway.id(), { subDevices: [offline] }));
    assert.equal(noSession.code, GATEWAY_CODES.noSession);
    assert.equal(context.sim.platform.propertiesOf(offline.identity).temperature, undefined, 'nothing of a refused post is kept');
    assert.equal(posts.length, 3);
  });

  it('a pack post beyond the limits is refused with 6357, 6106 and 6356; a malformed one with 460', async function () {
    const many = (count: number, prefix: string): Record<string, { value: number; time: number }> =>
      Object.fromEntries(Array.from({ length: count }, (_, index) => [`${prefix}${index}`, { value: index, time: 1 }]));
    const subDevices = Array.from({ length: 21 }, (_, index) => ({ identity: { productKey: SUB_PK, deviceName: subName(index + 1) } }));
    const answers = await Promise.all([
      context.gateway.request(buildPackPost(GW01, context.gateway.id(), { subDevices })),
      context.gateway.request(buildPackPost(GW01, context.gateway.id(), { properties: many(201, 'p') })),
      context.gateway.request(buildPackPost(GW01, context.gateway.id(), { events: many(21, 'e') })),
      context.gateway.request(buildPackPost(GW01, context.gateway.id(), { properties: [1] })),
      context.gateway.request(buildPackPost(GW01, context.gateway.id(), { subDevices: {} })),
    ]);
    assert.deepEqual(
      answers.map((answer) => answer.code),
      [GATEWAY_CODES.packTooManySubDevices, GATEWAY_CODES.packTooManyProperties, GATEWAY_CODES.packTooManyEvents, 460, 460],
    );
    assert.deepEqual(context.sim.platform.propertiesOf(GW01), {});
  });

  it('thing/sub/register returns the secrets of a product with dynamic registration', async function () {
    const reply = await context.gateway.request(buildRegister(GW01, context.gateway.id(), [SUB1]));
    assert.equal(reply.code, 200);
    assert.deepEqual(reply.data, [{ ...SUB1, deviceSecret: subDevice(1).deviceSecret, iotId: `${SUB_PK}${SUB1.deviceName}` }]);
  });

  it('thing/sub/register refuses a device not created first (6100); once created it hands out its secret, with which it logs in; a test may replace its reply', async function () {
    const fresh = { productKey: SUB_PK, deviceName: 'fresh-01' };
    const unknown = await context.gateway.request(buildRegister(GW01, context.gateway.id(), [fresh]));
    assert.equal(unknown.code, GATEWAY_CODES.unknownDevice, 'sub-devices are pre-registered only');
    const created = await admin<{ deviceSecret: string }>(context.sim, 'POST', '/devices', fresh);
    for (const [body, why] of [
      [fresh, 'exists'],
      [{ productKey: 'a1NoSuchPrd', deviceName: 'x1' }, 'no product'],
      [{ productKey: SUB_PK, deviceName: 'bad name!' }, 'not a DeviceName'],
    ] as const) {
      await assert.rejects(admin(context.sim, 'POST', '/devices', body), /: 400 /, why);
    }
    const reply = await context.gateway.request(buildRegister(GW01, context.gateway.id(), [fresh]));
    const [registered] = readRegisterReply(reply);
    assert.equal(registered.deviceName, 'fresh-01');
    assert.equal(registered.deviceSecret, created.deviceSecret);
    assert.equal(context.sim.registry.deviceSecret(SUB_PK, 'fresh-01'), registered.deviceSecret);
    const again = readRegisterReply(await context.gateway.request(buildRegister(GW01, context.gateway.id(), [fresh])));
    assert.equal(again[0].deviceSecret, registered.deviceSecret, 'the same secret the second time');
    const credentials = { ...fresh, deviceSecret: registered.deviceSecret };
    assert.equal((await context.gateway.request(buildTopologyAdd(GW01, context.gateway.id(), [credentials]))).code, 200);
    assert.equal((await context.gateway.request(buildLogin(GW01, context.gateway.id(), [credentials]))).code, 200);
    const direct = await context.gateway.request(
      buildRegister(GW01, context.gateway.id(), [{ productKey: DIRECT_PK, deviceName: 'direct02' }]),
    );
    assert.equal(direct.code, GATEWAY_CODES.unknownDevice);
    context.sim.gateways.answerNextWith('register', { code: 200, data: [{ productKey: SUB_PK }] });
    const malformed = await context.gateway.request(buildRegister(GW01, context.gateway.id(), [fresh]));
    assert.throws(
      () => readRegisterReply(malformed),
      (err: AliyunIotError) => err.code === 'REGISTER_REPLY_MALFORMED',
    );
  });
});

describe('simulator: disabling, enabling and deleting a sub-device', function () {
  const context = gatewayContext({}, [1]);

  it('disable: thing/disable, topo/change 8, offline with 522; login refused 522; enable: thing/enable, topo/change 2', async function () {
    await admin(context.sim, 'POST', '/devices/disable', SUB1);
    assert.equal(json(await context.gateway.next(gatewayTopics.notice(SUB1, 'disable'))).method, 'thing.disable');
    assert.deepEqual(json(await context.gateway.next(gatewayTopics.topologyChange(GW01))).params, { status: 8, subList: [SUB1] });
    assert.equal(json(await context.gateway.next(gatewayTopics.error(GW01))).code, GATEWAY_CODES.disabled);
    assert.deepEqual(context.sim.onlineSubDevices(GW01), []);
    assert.equal((await context.gateway.request(buildLogin(GW01, context.gateway.id(), [subDevice(1)]))).code, GATEWAY_CODES.disabled);
    await admin(context.sim, 'POST', '/devices/enable', SUB1);
    assert.equal(json(await context.gateway.next(gatewayTopics.notice(SUB1, 'enable'))).method, 'thing.enable');
    assert.deepEqual(json(await context.gateway.next(gatewayTopics.topologyChange(GW01))).params, { status: 2, subList: [SUB1] });
    assert.equal((await context.gateway.request(buildLogin(GW01, context.gateway.id(), [subDevice(1)]))).code, 200);
  });

  it('delete: thing/delete, topo/change 1, offline with 521; login refused 521', async function () {
    await admin(context.sim, 'POST', '/devices/delete', SUB1);
    assert.equal(json(await context.gateway.next(gatewayTopics.notice(SUB1, 'delete'))).method, 'thing.delete');
    assert.equal(json(await context.gateway.next(gatewayTopics.error(GW01))).code, GATEWAY_CODES.deleted);
    assert.equal((await context.gateway.request(buildLogin(GW01, context.gateway.id(), [subDevice(1)]))).code, GATEWAY_CODES.deleted);
    assert.deepEqual((await context.gateway.request(buildTopologyGet(GW01, context.gateway.id()))).data, []);
    await assert.rejects(admin(context.sim, 'POST', '/devices/disable', { productKey: SUB_PK, deviceName: 'nobody' }), /400/);
  });
});
