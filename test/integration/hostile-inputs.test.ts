// Regression tests of the hostile inputs the fuzz suite found (issue 16, items 3, 8, 9, 10, 12, 13): each input ends
// in exactly one done() or done(err), and neither Node-RED nor the simulator lets an exception escape.
import { strict as assert } from 'node:assert';
import type { Node, NodeMessage } from 'node-red';
import mqtt, { MqttClient } from 'mqtt';
import { MAX_JSON_DEPTH, PROPERTY_LIMITS, TOO_MANY_PROPERTIES_CODE, signIotLogin, signMqLogin } from '../../nodes/lib/protocol';
import { Simulator } from '../../sim';
import { callApi, cloudConnection, startCloudSimulator } from '../support/cloud-fixtures';
import { catchingCrashes, nested, nestedJson } from '../support/fuzz-inputs';
import { FlowNode, admin, iotConnection, mqConnection, waitFor } from '../support/helpers';
import { CATCH_ALL, collect, deploy, node, startServer, stopServer, waitForStatus } from '../support/node-harness';
import { MQ_INSTANCE, PK, deviceSecret } from '../support/registry';

interface CompletingNode extends Node {
  _complete(msg: object, error?: unknown): void;
}

type CaughtMsg = NodeMessage & { error: { message: string } };

/** Records done() and done(err) of a node per msg. */
function completions(id: string): Map<object, Array<Error | undefined>> {
  const seen = new Map<object, Array<Error | undefined>>();
  const target = node(id) as CompletingNode;
  const complete = target._complete.bind(target);
  target._complete = (msg, error) => {
    seen.set(msg, [...(seen.get(msg) ?? []), error as Error | undefined]);
    complete(msg, error);
  };
  return seen;
}

describe('hostile inputs to the nodes (issue 16, items 3, 8, 9)', function () {
  let sim: Simulator;
  beforeEach(async function () {
    sim = await startCloudSimulator();
    await startServer();
  });
  afterEach(async function () {
    await stopServer();
    await sim.stop();
  });

  async function deployNodes(): Promise<void> {
    const device = iotConnection('conn-iot', sim, 'dev01');
    const cloud = cloudConnection('conn-cloud', sim);
    await deploy(
      [
        device.node,
        cloud.node,
        ...CATCH_ALL,
        {
          id: 'invoke',
          type: 'aliyun-iot-invoke',
          connection: 'conn-cloud',
          action: 'set',
          productKey: PK,
          deviceName: 'dev01',
          identifier: '',
          topic: '',
          timeout: '',
        },
        { id: 'post', type: 'aliyun-iot-post', connection: 'conn-iot', kind: 'property', event: '', ack: true, timeout: '1000' },
        { id: 'out', type: 'aliyun-iot-out', connection: 'conn-iot', topic: `/${PK}/dev01/user/echo`, qos: '', retain: '' },
        { id: 'in', type: 'aliyun-iot-in', connection: 'conn-iot', topic: '', qos: '0', datatype: 'auto-detect', dynamic: true },
        { id: 'reply', type: 'aliyun-iot-reply', connection: 'conn-iot', code: '' },
      ],
      { ...device.credentials, ...cloud.credentials },
    );
    await waitForStatus('out', 'connected');
    await waitForStatus('invoke', 'api-ready');
  }

  // Fails before the fix: invoke's done(err) from a promise callback throws the RangeError of Node-RED's clone for
  // the Catch node, an unhandled rejection; post and out threw it out of the input handler.
  it('a msg nested 10,000 levels deep to invoke, post and out: done(err) saying the payload is too deep, nothing escapes', async function () {
    await deployNodes();
    const ids = ['invoke', 'post', 'out'];
    const done = ids.map(completions);
    const caught = collect('caught');
    const { crashes } = await catchingCrashes(async () => {
      for (const id of ids) node(id).receive({ payload: nested(10_000) } as NodeMessage);
      await waitFor(() => done.every((seen) => seen.size === 1), 'done for each input');
    });
    assert.deepEqual(crashes, []);
    for (const seen of done) {
      const [[, calls]] = [...seen];
      assert.equal(calls.length, 1);
      assert.match(String(calls[0]?.message), new RegExp(`nests more than ${MAX_JSON_DEPTH} levels deep`));
    }
    await waitFor(() => caught.length === ids.length, 'an error for each node at the Catch node');
    for (const msg of caught) assert.match((msg as CaughtMsg).error.message, /levels deep/);
  });

  // Fails before the fix: these threw out of the input handlers, which never called done.
  it('reply and in/out inputs that used to throw end in done(err)', async function () {
    await deployNodes();
    const replyDone = completions('reply');
    const inDone = completions('in');
    const outDone = completions('out');
    const context = { kind: 'set', replyTopic: `/sys/${PK}/dev01/thing/service/property/set_reply`, id: '1' };
    const replies: Array<[Record<string, unknown>, RegExp]> = [
      [{ alink: { ...context, topic: { level: 1 } } }, /^$/],
      [{ alink: { ...context, topic: Object.create(null) } }, /^$/],
      [
        { alink: { ...context, topic: `/sys/${PK}/dev01/thing/service/property/set` }, code: Symbol('code') },
        /Reply code 'Symbol\(code\)' is not a whole number/,
      ],
      [
        { alink: { ...context, topic: `/sys/${PK}/dev01/thing/service/property/set` }, code: { toString: 1, valueOf: 1 } },
        /Reply code '\[object Object\]' is not a whole number/,
      ],
    ];
    const actions: Array<[string, Record<string, unknown>]> = [
      ['in', { action: Object.create(null) }],
      ['in', { action: { toString: 1 } }],
      ['out', { action: Object.create(null) }],
      ['out', { action: Symbol('x') }],
    ];
    const { crashes } = await catchingCrashes(async () => {
      for (const [msg] of replies) node('reply').receive(msg as NodeMessage);
      for (const [id, msg] of actions) node(id).receive(msg as NodeMessage);
      await waitFor(() => replyDone.size === replies.length && inDone.size === 2 && outDone.size === 2, 'done for each input');
    });
    assert.deepEqual(crashes, []);
    replies.forEach(([msg, pattern]) => {
      const calls = replyDone.get(msg) ?? [];
      assert.equal(calls.length, 1);
      assert.match(calls[0]?.message ?? '', pattern);
    });
    for (const [id, msg] of actions) {
      const calls = (id === 'in' ? inDone : outDone).get(msg) ?? [];
      assert.equal(calls.length, 1);
      assert.match(String(calls[0]?.message), /Unknown msg.action '(\[object Object\]|Symbol\(x\))'/);
    }
  });

  it("reply: a refused answer reaches Catch with msg.code, as every node's errors do", async function () {
    const device = iotConnection('conn-iot', sim, 'dev01');
    await deploy(
      [device.node, ...CATCH_ALL, { id: 'reply', type: 'aliyun-iot-reply', connection: 'conn-iot', code: '' }],
      device.credentials,
    );
    await waitForStatus('reply', 'connected');
    const caught = collect('caught') as Array<NodeMessage & { code?: unknown }>;
    const setContext = {
      kind: 'set',
      replyTopic: `/sys/${PK}/dev01/thing/service/property/set_reply`,
      id: '1',
      topic: `/sys/${PK}/dev01/thing/service/property/set`,
    };
    node('reply').receive({ payload: {} } as NodeMessage);
    node('reply').receive({ alink: setContext, code: 'not a number' } as unknown as NodeMessage);
    node('reply').receive({ alink: { ...setContext, topic: `/sys/${PK}/dev02/thing/service/property/set` } } as unknown as NodeMessage);
    await waitFor(() => caught.length === 3, 'three caught errors');
    assert.deepEqual(
      caught.map((msg) => msg.code),
      ['REPLY_NO_CONTEXT', 'REPLY_CODE_INVALID', 'REPLY_OTHER_DEVICE'],
    );
  });

  // Item 9: the fuzz suite found msgs to reply, cloud out and ApsaraMQ out that ended in neither done() nor done(err).
  it('reply, cloud out and ApsaraMQ out: each hostile msg ends in exactly one done() or done(err)', async function () {
    const mq = mqConnection('conn-mq', sim, 'hostile9', 'token', { accessKeyId: 'AK', token: 'tok1' });
    const cloud = cloudConnection('conn-cloud', sim);
    const device = iotConnection('conn-iot', sim, 'dev01');
    const connections = [mq, cloud, device];
    const out = (id: string, connection: string): FlowNode => ({ id, type: 'aliyun-iot-out', connection, topic: '', qos: '', retain: '' });
    const reply: FlowNode = { id: 'reply', type: 'aliyun-iot-reply', connection: 'conn-iot', code: '' };
    await deploy(
      [...connections.map((entry) => entry.node), ...CATCH_ALL, out('mq-out', 'conn-mq'), out('cloud-out', 'conn-cloud'), reply],
      Object.assign({}, ...connections.map((entry) => entry.credentials)) as Record<string, Record<string, string>>,
    );
    await waitForStatus('mq-out', 'connected');
    await waitForStatus('cloud-out', 'api-ready');
    await waitForStatus('reply', 'connected');
    const good = `/${PK}/dev01/user/get`;
    const inputs: Array<[string, Record<string, unknown>]> = [
      ['cloud-out', { topic: 5, payload: 'x' }],
      ['cloud-out', { topic: '/nope/dev01/user/get', payload: 'x' }],
      ['cloud-out', { topic: good, payload: Symbol('p') }],
      ['cloud-out', { topic: good, payload: 'x', qos: { toString: 1 } }],
      ['cloud-out', { topic: good, payload: nested(MAX_JSON_DEPTH + 5) }],
      ['cloud-out', { topic: good, action: 'uploadToken', payload: 'tok' }],
      ['mq-out', { topic: '', payload: 'x' }],
      ['mq-out', { topic: 'x'.repeat(100), payload: 'x' }],
      ['mq-out', { topic: 'parent/a', payload: Object.create(null) }],
      ['mq-out', { action: 'uploadToken', payload: { token: {} } }],
      ['mq-out', { action: 'uploadToken', payload: null }],
      ['mq-out', { topic: 'parent/a', payload: 'x', qos: 2 }],
      ['reply', { alink: { kind: 'rrpc', replyTopic: 5 } }],
      ['reply', { alink: { kind: 'set' } }],
      ['reply', { alink: { kind: 'nope', replyTopic: `/sys/${PK}/dev01/thing/service/property/set_reply`, id: '1' } }],
      ['reply', { alink: { kind: 'set', replyTopic: `/sys/${PK}/dev01/thing/service/property/set_reply`, id: {} }, code: null }],
    ];
    const seen = new Map(['cloud-out', 'mq-out', 'reply'].map((id) => [id, completions(id)]));
    const { crashes } = await catchingCrashes(async () => {
      for (const [id, msg] of inputs) node(id).receive(msg as NodeMessage);
      await waitFor(() => inputs.every(([id, msg]) => (seen.get(id)?.get(msg)?.length ?? 0) > 0), 'done or done(err) for every input');
      // A last good msg through each out node, done after every earlier answer of the same connection.
      const sentinels: Array<[string, Record<string, unknown>]> = [
        ['cloud-out', { topic: good, payload: 'sentinel' }],
        ['mq-out', { topic: 'parent/sentinel', payload: 'sentinel', qos: 1 }],
      ];
      for (const [id, msg] of sentinels) node(id).receive(msg as NodeMessage);
      await waitFor(() => sentinels.every(([id, msg]) => seen.get(id)?.get(msg)?.length === 1), 'the sentinels');
    });
    assert.deepEqual(crashes, []);
    const counts = inputs.map(([id, msg]) => `${id} ${seen.get(id)?.get(msg)?.length}`);
    assert.deepEqual(
      counts,
      inputs.map(([id]) => `${id} 1`),
    );
  });
});

describe('hostile inputs to the simulator (issue 16, items 10, 11, 12, 13)', function () {
  let sim: Simulator;
  const clients: MqttClient[] = [];
  beforeEach(async function () {
    sim = await startCloudSimulator({
      rules: [{ name: 'select', from: `/${PK}/+/user/update`, to: `/${PK}/dev05/user/get`, select: ['params.a as a'] }],
    });
  });
  afterEach(async function () {
    await Promise.all(clients.splice(0).map((client) => client.endAsync(true)));
    await sim.stop();
  });

  async function device(deviceName: string): Promise<MqttClient> {
    const login = signIotLogin({ productKey: PK, deviceName, deviceSecret: deviceSecret(deviceName) }, { securemode: 3 });
    const client = await mqtt.connectAsync({ host: '127.0.0.1', port: sim.port, reconnectPeriod: 0, ...login });
    clients.push(client);
    return client;
  }

  /** A post of a fresh device, answered: the broker and the platform still serve. */
  async function sentinelPost(): Promise<void> {
    const client = await device('dev06');
    const replies: string[] = [];
    client.on('message', (_topic, payload) => replies.push(payload.toString()));
    await client.subscribeAsync(`/sys/${PK}/dev06/thing/event/property/post_reply`, { qos: 1 });
    await client.publishAsync(`/sys/${PK}/dev06/thing/event/property/post`, JSON.stringify({ id: '7', params: { t: 1 } }), { qos: 1 });
    await waitFor(() => replies.length === 1, 'the post_reply');
  }

  // Fails before the fix: each of these threw inside aedes' authorizePublish hook, an uncaught exception.
  it('Alink bodies with deep ids and fields without a usable toString, a deep field a rule selects, `null` as a token upload', async function () {
    const client = await device('dev04');
    const own = `/sys/${PK}/dev04`;
    const publishes: Array<[string, string]> = [
      [`${own}/thing/event/property/post`, `{"id":${nestedJson(5000)},"params":{}}`],
      [`${own}/thing/service/property/set_reply`, '{"id":"1","code":{"toString":1}}'],
      [`/ext/ntp/${PK}/dev04/request`, '{"deviceSendTime":{"toString":1}}'],
      [`${own}/thing/event/property/post`, '{"id":"2","params":{"p":{"value":1,"time":{"toString":1}}}}'],
      [`/${PK}/dev04/user/update`, `{"params":{"a":${nestedJson(MAX_JSON_DEPTH + 10)}}}`],
    ];
    const login = signMqLogin({
      authMode: 'token',
      instanceId: MQ_INSTANCE,
      clientId: 'GID_test@@@hostile',
      accessKeyId: 'AK',
      token: 'tok1',
    });
    const mq = await mqtt.connectAsync({ host: '127.0.0.1', port: sim.port, reconnectPeriod: 0, ...login });
    clients.push(mq);
    const { crashes } = await catchingCrashes(async () => {
      for (const [topic, body] of publishes) await client.publishAsync(topic, body, { qos: 1 });
      await mq.publishAsync('$SYS/uploadToken', 'null', { qos: 1 });
      await sentinelPost();
    });
    assert.deepEqual(crashes, []);
  });

  // Fails before the fix: `//` made new URL() throw (HTTP 500), and Items nested too deep for JSON.stringify too.
  it('OpenAPI: a request target of // is a client error, Items and Args too deep are InvalidFormattedParameter', async function () {
    const slashes = await fetch(`http://127.0.0.1:${sim.apiPort}//`);
    assert.equal(slashes.status, 400);
    assert.equal(((await slashes.json()) as { Code: string }).Code, 'MissingAction');
    const online = await device('dev04');
    assert.ok(online.connected);
    for (const [action, params] of [
      ['SetDeviceProperty', { ProductKey: PK, DeviceName: 'dev04', Items: nestedJson(5000) }],
      ['InvokeThingService', { ProductKey: PK, DeviceName: 'dev04', Identifier: 'reboot', Args: nestedJson(5000) }],
    ] as const) {
      const answer = await callApi(sim, action, params);
      assert.equal(answer.body.Code, 'iot.common.InvalidFormattedParameter', `${action}: ${JSON.stringify(answer.body)}`);
      assert.match(String(answer.body.ErrorMessage), new RegExp(`nested more than ${MAX_JSON_DEPTH} levels deep`));
    }
  });

  // Fails before the fix: every posted name and value was kept, and a value nested 5,000 deep made
  // GET /devices/{pk}/{dn}/properties fail after its headers went out.
  it('property posts and sets are bounded: too many refused with 6106 or 400, bad names and values dropped or refused', async function () {
    const client = await device('dev04');
    const replies: Array<{ id?: string; code?: number; message?: string }> = [];
    client.on('message', (_topic, payload) => replies.push(JSON.parse(payload.toString()) as (typeof replies)[number]));
    await client.subscribeAsync(`/sys/${PK}/dev04/thing/event/property/post_reply`, { qos: 1 });
    const post = async (id: string, params: string): Promise<(typeof replies)[number]> => {
      await client.publishAsync(`/sys/${PK}/dev04/thing/event/property/post`, `{"id":"${id}","params":${params}}`, { qos: 1 });
      await waitFor(() => replies.some((reply) => reply.id === id), `the post_reply to ${id}`);
      return replies.find((reply) => reply.id === id) as (typeof replies)[number];
    };
    const many = Object.fromEntries(Array.from({ length: PROPERTY_LIMITS.perPost + 1 }, (_, i) => [`p${i}`, i]));
    assert.equal((await post('1', JSON.stringify(many))).code, TOO_MANY_PROPERTIES_CODE);
    const mixed = [
      `"deep":${nestedJson(5000)}`,
      `"big":"${'x'.repeat(PROPERTY_LIMITS.valueBytes)}"`,
      `"${'n'.repeat(PROPERTY_LIMITS.identifierLength + 1)}":1`,
      '"a b":1',
      '"__proto__":{"value":2}',
      '"block_1:temp":3',
      '"ok":4',
    ];
    assert.equal((await post('2', `{${mixed.join(',')}}`)).code, 200, 'invalid properties are dropped, the post succeeds');
    const stored = await admin<{ properties: Record<string, { value: unknown }> }>(sim, 'GET', `/devices/${PK}/dev04/properties`);
    assert.deepEqual(
      Object.entries(stored.properties).map(([name, entry]) => [name, entry.value]),
      [
        ['__proto__', 2],
        ['block_1:temp', 3],
        ['ok', 4],
      ],
    );
    const names = Object.fromEntries(Array.from({ length: PROPERTY_LIMITS.perDevice }, (_, i) => [`q${i}`, i]));
    for (let i = 0; i < PROPERTY_LIMITS.perDevice; i += PROPERTY_LIMITS.perPost) {
      await post(`3-${i}`, JSON.stringify(Object.fromEntries(Object.entries(names).slice(i, i + PROPERTY_LIMITS.perPost))));
    }
    const full = await admin<{ properties: Record<string, unknown> }>(sim, 'GET', `/devices/${PK}/dev04/properties`);
    assert.equal(Object.keys(full.properties).length, PROPERTY_LIMITS.perDevice, 'a device keeps at most perDevice properties');

    const set = (items: unknown): Promise<Response> =>
      fetch(`http://127.0.0.1:${sim.adminPort}/properties/set`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `{"productKey":"${PK}","deviceName":"dev04","items":${typeof items === 'string' ? items : JSON.stringify(items)}}`,
      });
    for (const items of [many, `{"deep":${nestedJson(MAX_JSON_DEPTH + 10)}}`, { 'a b': 1 }, [1]]) {
      const answer = await set(items);
      assert.equal(answer.status, 400, `admin /properties/set: ${await answer.text()}`);
    }
    assert.equal((await set({ ok: 5 })).status, 200);
    const openapi = await callApi(sim, 'SetDeviceProperty', { ProductKey: PK, DeviceName: 'dev04', Items: JSON.stringify(many) });
    assert.equal(openapi.body.Code, 'iot.common.InvalidFormattedParameter', JSON.stringify(openapi.body));
  });

  it('history posts are bounded as property posts are: bad names and values dropped, the rest kept with their times', async function () {
    const client = await device('dev04');
    const replies: Array<{ id?: string; code?: number }> = [];
    client.on('message', (_topic, payload) => replies.push(JSON.parse(payload.toString()) as (typeof replies)[number]));
    await client.subscribeAsync(`/sys/${PK}/dev04/thing/event/property/history/post_reply`, { qos: 1 });
    const time = Date.now() - 60_000;
    const properties = `{"deep":{"value":${nestedJson(5000)},"time":${time}},"a b":{"value":1,"time":${time}},"kept":{"value":5,"time":${time}}}`;
    const body = `{"id":"h1","params":[{"identity":{"productKey":"${PK}","deviceName":"dev04"},"properties":[${properties}]}]}`;
    await client.publishAsync(`/sys/${PK}/dev04/thing/event/property/history/post`, body, { qos: 1 });
    await waitFor(() => replies.some((reply) => reply.id === 'h1'), 'the history post_reply');
    assert.equal(replies.find((reply) => reply.id === 'h1')?.code, 200);
    const { history } = await admin<{ history: Array<{ name: string; value: unknown; time: number }> }>(
      sim,
      'GET',
      `/devices/${PK}/dev04/properties/history`,
    );
    assert.deepEqual(history, [{ name: 'kept', value: 5, time }]);
  });

  // Fails before the fix: the nonce store's keys were slices of the form body, which kept each body for 30 minutes.
  it('OpenAPI: signed requests with 1 MB bodies are not kept alive by the nonce store', async function () {
    const gc = (globalThis as { gc?: () => void }).gc;
    assert.ok(gc, 'the tests run with --expose-gc');
    const padding = 'x'.repeat(1024 * 1024);
    const call = (): Promise<unknown> =>
      callApi(sim, 'Pub', { ProductKey: PK, TopicFullName: `/${PK}/dev04/user/get`, MessageContent: 'aGk=', Padding: padding });
    await call();
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 40; i++) await call();
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    assert.ok(grown < 20 * 1024 * 1024, `40 requests of 1 MB left ${Math.round(grown / 1024 / 1024)} MB on the heap`);
  });
});
