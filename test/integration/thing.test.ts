import { strict as assert } from 'node:assert';
import type { NodeMessage } from 'node-red';
import mqtt from 'mqtt';
import { signIotLogin, thingTopics } from '../../nodes/lib/protocol';
import { CATCH_ALL, collect, deploy, send, simulatorAndRuntime, waitForConnectionSubscribed, waitForStatus } from '../support/node-harness';
import { FlowNode, SENTINEL, admin, endSdkDevice, iotConnection, sdkDevice, waitFor } from '../support/helpers';
import { PK, deviceSecret } from '../support/registry';

type Msg = NodeMessage & Record<string, unknown>;
type CaughtMsg = Msg & { error: { message: string } };
const dev01 = { productKey: PK, deviceName: 'dev01' };

describe('thing model: aliyun-iot-post', function () {
  const env = simulatorAndRuntime({
    failures: [
      { deviceName: 'dev01', property: 'broken', code: 460, message: 'request parameter error' },
      { deviceName: 'dev01', property: 'silent', drop: true },
      { deviceName: 'dev01', property: 'slow', delayMs: 400 },
      { deviceName: 'dev01', property: 'shuffled', delayMs: 30 },
    ],
  });

  function postFlow(extra: Record<string, unknown> = {}): FlowNode[] {
    return [
      iotConnection('conn', env.sim, 'dev01').node,
      ...CATCH_ALL,
      {
        id: 'post',
        type: 'aliyun-iot-post',
        connection: 'conn',
        kind: 'property',
        event: '',
        ack: true,
        timeout: 2000,
        wires: [['posted']],
        ...extra,
      },
      { id: 'posted', type: 'helper' },
    ];
  }

  async function deployPost(extra: Record<string, unknown> = {}): Promise<{ posted: Msg[]; caught: CaughtMsg[] }> {
    await deploy(postFlow(extra), iotConnection('conn', env.sim, 'dev01').credentials);
    const posted = collect('posted') as Msg[];
    const caught = collect('caught') as CaughtMsg[];
    await waitForStatus('post', 'connected');
    await waitForConnectionSubscribed(env.sim, 'conn');
    return { posted, caught };
  }

  it('posts properties and outputs the reply', async function () {
    const posts: Array<Record<string, unknown>> = [];
    env.sim.on('post', (info) => posts.push(info));
    const { posted } = await deployPost();
    send('post', { payload: { temperature: 21.5, humidity: { value: 40, time: 1700000000000 } } });
    await waitFor(() => posted.length === 1, 'the reply');
    const [msg] = posted;
    assert.deepEqual(msg.payload, {});
    assert.equal(msg.code, 200);
    assert.deepEqual(msg.alink, { id: posts[0].id, method: 'thing.event.property.post', code: 200, message: 'success' });
    assert.match(String(posts[0].id), /^[0-9]+$/);
    assert.equal(posts[0].topic, `/sys/${PK}/dev01/thing/event/property/post`);
    const stored = await admin<{ properties: Record<string, { value: unknown }> }>(env.sim, 'GET', `/devices/${PK}/dev01/properties`);
    assert.deepEqual([stored.properties.temperature.value, stored.properties.humidity.value], [21.5, 40]);
  });

  it("a post that waited past historyAfter is done on the history post's reply, msg.alink.history naming it", async function () {
    const connection = iotConnection('conn', env.sim, 'dev01', { historyAfter: '0.2' });
    await deploy(
      [
        ...postFlow({ timeout: 10_000 }).map((node) => (node.id === 'conn' ? connection.node : node)),
        { id: 'control', type: 'aliyun-iot-out', connection: 'conn', topic: `/${PK}/dev01/user/update`, qos: '0' },
      ],
      connection.credentials,
    );
    const posted = collect('posted') as Msg[];
    await waitForStatus('post', 'connected');
    send('control', { action: 'disconnect' });
    await waitForStatus('post', 'disconnected');
    const posts: Array<Record<string, unknown>> = [];
    env.sim.on('post', (info) => posts.push(info));
    const queuedAt = Date.now();
    send('post', { payload: { temperature: 30 } });
    await waitFor(() => Date.now() - queuedAt > 300, 'the post to wait in the queue past historyAfter');
    send('control', { action: 'connect' });
    await waitFor(() => posted.length === 1, 'the reply');
    const [msg] = posted;
    assert.equal(msg.code, 200);
    assert.equal(posts.length, 1);
    assert.equal(posts[0].method, 'thing.event.property.history.post');
    assert.deepEqual(msg.alink, {
      id: (msg.alink as { id: string }).id,
      method: 'thing.event.property.post',
      code: 200,
      message: 'success',
      history: { id: posts[0].id, method: 'thing.event.property.history.post' },
    });
    assert.notEqual((msg.alink as { id: string }).id, posts[0].id);
    const { history } = await admin<{ history: Array<{ name: string; value: unknown }> }>(
      env.sim,
      'GET',
      `/devices/${PK}/dev01/properties/history`,
    );
    assert.deepEqual(
      history.map(({ name, value }) => [name, value]),
      [['temperature', 30]],
    );
  });

  it('posts events named by the node or by msg.event', async function () {
    const posts: Array<Record<string, unknown>> = [];
    env.sim.on('post', (info) => posts.push(info));
    await deploy(
      [
        ...postFlow({ kind: 'event', event: 'overheat' }),
        {
          id: 'post2',
          type: 'aliyun-iot-post',
          connection: 'conn',
          kind: 'event',
          event: '',
          ack: true,
          timeout: 2000,
          wires: [['posted']],
        },
      ],
      iotConnection('conn', env.sim, 'dev01').credentials,
    );
    const posted = collect('posted') as Msg[];
    await waitForStatus('post', 'connected');
    await waitForConnectionSubscribed(env.sim, 'conn');
    send('post', { payload: { level: 3 } });
    send('post2', { payload: { code: 'E1' }, event: 'alarm' });
    await waitFor(() => posted.length === 2, 'two replies');
    assert.deepEqual(posted.map((msg) => (msg.alink as { method: string }).method).sort(), [
      'thing.event.alarm.post',
      'thing.event.overheat.post',
    ]);
    const overheat = posts.find((post) => post.method === 'thing.event.overheat.post') as { params: { value: unknown }; topic: string };
    assert.deepEqual(overheat.params.value, { level: 3 });
    assert.equal(overheat.topic, `/sys/${PK}/dev01/thing/event/overheat/post`);
  });

  it('with ack off asks for no reply and outputs once the broker has the message', async function () {
    const posts: Array<Record<string, unknown>> = [];
    env.sim.on('post', (info) => posts.push(info));
    const { posted } = await deployPost({ ack: false });
    send('post', { payload: { temperature: 1 } });
    await waitFor(() => posted.length === 1, 'the output');
    assert.equal(posted[0].code, undefined);
    assert.deepEqual(posted[0].payload, { temperature: 1 });
    await waitFor(() => posts.length === 1, 'the simulator to see the post');
    assert.equal(posts[0].ack, false);
  });

  it('a refused post and a post without reply are catchable errors with the code', async function () {
    const { posted, caught } = await deployPost({ timeout: 300 });
    send('post', { payload: { broken: 1 } });
    send('post', { payload: { silent: 1 } });
    send('post', { payload: 'not an object' });
    await waitFor(() => caught.length === 3, 'three errors');
    const refused = caught.find((msg) => msg.code === 460) as CaughtMsg;
    assert.match(refused.error.message, /answered thing.event.property.post \(id [0-9]+\) with code 460: request parameter error/);
    assert.equal((refused.alink as { code: number }).code, 460);
    assert.ok(caught.some((msg) => /No reply to thing.event.property.post \(id [0-9]+\) within 300 ms/.test(msg.error.message)));
    assert.ok(caught.some((msg) => /msg.payload must be an object/.test(msg.error.message)));
    assert.equal(posted.length, 0);
  });

  it('matches 200 posts in flight each to its own reply, and drops a late reply', async function () {
    this.timeout(20_000);
    const posts = new Map<string, unknown>();
    env.sim.on('post', (info) => posts.set(String(info.id), info.params));
    const { posted, caught } = await deployPost({ timeout: 3000 });
    for (let n = 0; n < 200; n++) {
      // Every other reply is delayed, so replies come back in another order than the posts went out.
      send('post', { n, payload: n % 2 === 0 ? { shuffled: n } : { value: n } });
    }
    await waitFor(() => posted.length === 200, '200 replies', 15_000);
    assert.equal(caught.length, 0);
    const ids = new Set<string>();
    for (const msg of posted) {
      const id = (msg.alink as { id: string }).id;
      ids.add(id);
      const params = posts.get(id) as Record<string, number>;
      assert.equal(params.shuffled ?? params.value, msg.n, `reply ${id} reached the post of n=${String(msg.n)}`);
    }
    assert.equal(ids.size, 200);
    const orderOfReplies = posted.map((msg) => msg.n as number);
    assert.notDeepEqual(
      orderOfReplies,
      [...orderOfReplies].sort((a, b) => a - b),
      'replies arrived out of order',
    );
  });

  it('a reply after its timeout is not delivered to another request', async function () {
    const posts = new Map<number, string>();
    env.sim.on('post', (info) => posts.set((info.params as { slow: number }).slow, String(info.id)));
    await deploy(
      [
        ...postFlow({ timeout: 200 }),
        {
          id: 'patient',
          type: 'aliyun-iot-post',
          connection: 'conn',
          kind: 'property',
          event: '',
          ack: true,
          timeout: 2000,
          wires: [['posted']],
        },
      ],
      iotConnection('conn', env.sim, 'dev01').credentials,
    );
    const posted = collect('posted') as Msg[];
    const caught = collect('caught') as CaughtMsg[];
    await waitForStatus('post', 'connected');
    await waitForConnectionSubscribed(env.sim, 'conn');
    // Both replies come 400 ms after their post. The first post gives up at 200 ms; its reply then arrives while the
    // second post (same connection, same pending table) still waits for its own.
    const firstPosted = new Promise<void>((resolve) => env.sim.once('post', () => resolve()));
    send('post', { tag: 'first', payload: { slow: 1 } });
    await firstPosted;
    send('patient', { tag: 'second', payload: { slow: 2 } });
    await waitFor(() => posted.length === 1, 'the second reply', 3000);
    assert.deepEqual(
      caught.map((msg) => msg.tag),
      ['first'],
    );
    assert.equal(posted[0].tag, 'second');
    assert.equal((posted[0].alink as { id: string }).id, posts.get(2), 'the second post got its own reply');
    assert.notEqual(posts.get(1), posts.get(2));
  });

  it("the official device SDK's postProps gets the simulator's post_reply with its id echoed", async function () {
    const device = sdkDevice(env.sim, 'dev02');
    await new Promise<void>((resolve) => device.on('connect', () => resolve()));
    const reply = await new Promise<{ id: string; code: number; message: string }>((resolve) => {
      (device as unknown as { postProps(params: unknown, callback: (reply: never) => void): void }).postProps(
        { temperature: 20 },
        (response) => resolve(response),
      );
    });
    assert.equal(reply.code, 200);
    assert.equal(reply.message, 'success');
    assert.match(reply.id, new RegExp(`\\|exp-topic\\|/sys/${PK}/dev02/thing/event/property/post_reply$`));
    await endSdkDevice(device);
  });
});

describe('thing model: aliyun-iot-command and aliyun-iot-reply', function () {
  const env = simulatorAndRuntime();

  async function deployCommand(extra: Record<string, unknown> = {}): Promise<{ commands: Msg[]; caught: CaughtMsg[] }> {
    const connection = iotConnection('conn', env.sim, 'dev01');
    await deploy(
      [
        connection.node,
        ...CATCH_ALL,
        {
          id: 'command',
          type: 'aliyun-iot-command',
          connection: 'conn',
          services: '',
          autoReplySet: false,
          rrpcTopic: '',
          wires: [['commands']],
          ...extra,
        },
        { id: 'reply', type: 'aliyun-iot-reply', connection: 'conn', code: '' },
        { id: 'commands', type: 'helper' },
      ],
      connection.credentials,
    );
    const commands = collect('commands') as Msg[];
    const caught = collect('caught') as CaughtMsg[];
    await waitForStatus('command', 'connected');
    await waitForConnectionSubscribed(env.sim, 'conn');
    return { commands, caught };
  }

  /** The flow's answer: what a function node would do, then the reply node. */
  function answer(commands: Msg[], index: number, payload: unknown, code?: number): void {
    send('reply', { ...commands[index], payload, ...(code === undefined ? {} : { code }) });
  }

  it('a property set, answered by the flow', async function () {
    const { commands } = await deployCommand();
    const pending = admin(env.sim, 'POST', '/properties/set', { ...dev01, items: { light: 1 }, timeout: 3000 });
    await waitFor(() => commands.length === 1, 'the property set');
    const [command] = commands;
    assert.deepEqual(command.payload, { light: 1 });
    assert.equal(command.method, 'thing.service.property.set');
    assert.equal(command.service, 'property.set');
    assert.deepEqual(command.alink, {
      id: (command.alink as { id: string }).id,
      topic: thingTopics.propertySet(dev01),
      replyTopic: `${thingTopics.propertySet(dev01)}_reply`,
      kind: 'set',
    });
    answer(commands, 0, { light: 1 });
    const result = (await pending) as { status: string; reply: { code: number; data: unknown } };
    assert.equal(result.status, 'SUCCESS');
    assert.deepEqual([result.reply.code, result.reply.data], [200, { light: 1 }]);
  });

  it('a property set, answered at once with autoReplySet; the reply node then sends nothing more', async function () {
    const { commands, caught } = await deployCommand({ autoReplySet: true });
    const result = await admin<{ status: string; reply: { code: number } }>(env.sim, 'POST', '/properties/set', {
      ...dev01,
      items: { light: 0 },
      timeout: 3000,
    });
    assert.deepEqual([result.status, result.reply.code], ['SUCCESS', 200]);
    await waitFor(() => commands.length === 1, 'the flow still gets the set');
    assert.equal((commands[0].alink as { autoReplied: boolean }).autoReplied, true);
    const unmatched: unknown[] = [];
    env.sim.on('unmatched', (info) => unmatched.push(info));
    answer(commands, 0, {});
    // The sentinel: a second set, auto-answered on the same connection after anything the reply node wrote.
    const second = await admin<{ status: string }>(env.sim, 'POST', '/properties/set', { ...dev01, items: { light: 1 }, timeout: 3000 });
    assert.equal(second.status, 'SUCCESS');
    assert.equal(caught.length, 0);
    assert.deepEqual(unmatched, [], 'no second set_reply reached the cloud');
  });

  it('an asynchronous service call, answered with data and a code', async function () {
    const { commands } = await deployCommand();
    const pending = admin(env.sim, 'POST', '/services/invoke', { ...dev01, identifier: 'reboot', args: { delay: 5 }, timeout: 3000 });
    await waitFor(() => commands.length === 1, 'the service call');
    assert.deepEqual(
      [commands[0].service, commands[0].method, (commands[0].alink as { kind: string }).kind],
      ['reboot', 'thing.service.reboot', 'async'],
    );
    assert.deepEqual(commands[0].payload, { delay: 5 });
    answer(commands, 0, { accepted: true }, 201);
    const result = (await pending) as { status: string; reply: { code: number; data: unknown } };
    assert.deepEqual([result.status, result.reply.code, result.reply.data], ['SUCCESS', 201, { accepted: true }]);
  });

  it('a synchronous service call by ext RRPC (the connection announces ext=1)', async function () {
    const { commands } = await deployCommand({ services: 'getStatus' });
    const pending = admin(env.sim, 'POST', '/services/invoke', { ...dev01, identifier: 'getStatus', args: {}, sync: true, timeout: 3000 });
    await waitFor(() => commands.length === 1, 'the call');
    const context = commands[0].alink as { kind: string; topic: string; replyTopic: string; messageId: string };
    assert.equal(context.kind, 'ext-rrpc');
    assert.equal(context.replyTopic, context.topic);
    assert.equal(context.topic, thingTopics.extRrpc(dev01, context.messageId, 'getStatus'));
    answer(commands, 0, { battery: 87 });
    const result = (await pending) as { status: string; reply: { code: number; data: unknown } };
    assert.deepEqual([result.status, result.reply.code, result.reply.data], ['SUCCESS', 200, { battery: 87 }]);
  });

  it('classic RRPC: raw bytes in, raw bytes back, as the RRpc API', async function () {
    const { commands } = await deployCommand();
    const pending = admin<{ rrpcCode: string; payload: string }>(env.sim, 'POST', '/rrpc', { ...dev01, payload: 'ping', timeout: 3000 });
    await waitFor(() => commands.length === 1, 'the RRPC request');
    const context = commands[0].alink as { kind: string; messageId: string; replyTopic: string };
    assert.deepEqual([commands[0].payload, context.kind], ['ping', 'rrpc']);
    assert.equal(context.replyTopic, thingTopics.rrpcResponse(dev01, context.messageId));
    answer(commands, 0, 'pong');
    const result = await pending;
    assert.deepEqual([result.rrpcCode, result.payload], ['SUCCESS', 'pong']);
  });

  it('RRPC on a custom topic', async function () {
    const { commands } = await deployCommand({ rrpcTopic: '/${productKey}/${deviceName}/user/rpc' });
    const pending = admin<{ rrpcCode: string; payload: string }>(env.sim, 'POST', '/rrpc', {
      ...dev01,
      payload: '{"op":"open"}',
      topic: `/${PK}/dev01/user/rpc`,
      timeout: 3000,
    });
    await waitFor(() => commands.length === 1, 'the custom RRPC request');
    assert.deepEqual(commands[0].payload, { op: 'open' });
    assert.equal((commands[0].alink as { kind: string }).kind, 'custom-rrpc');
    answer(commands, 0, { opened: true });
    const result = await pending;
    assert.deepEqual([result.rrpcCode, JSON.parse(result.payload)], ['SUCCESS', { opened: true }]);
  });

  it('RRPC times out without an answer and reports an offline device', async function () {
    await deployCommand();
    const timedOut = await admin<{ rrpcCode: string }>(env.sim, 'POST', '/rrpc', { ...dev01, payload: 'x', timeout: 1000 });
    assert.equal(timedOut.rrpcCode, 'TIMEOUT');
    const offline = await admin<{ rrpcCode: string }>(env.sim, 'POST', '/rrpc', {
      productKey: PK,
      deviceName: 'dev05',
      payload: 'x',
      timeout: 1000,
    });
    assert.equal(offline.rrpcCode, 'OFFLINE');
  });

  it('a malformed request, a reply without context and a reply for another device are catchable errors', async function () {
    const { commands, caught } = await deployCommand();
    await admin(env.sim, 'POST', '/pub', { topic: thingTopics.propertySet(dev01), payload: 'not json', qos: 0 });
    await waitFor(() => caught.length === 1, 'the malformed request error');
    assert.match(caught[0].error.message, /is not a valid Alink request/);
    send('reply', { payload: {} });
    send('reply', {
      payload: {},
      alink: { id: '1', topic: thingTopics.propertySet({ ...dev01, deviceName: 'dev02' }), replyTopic: 'x', kind: 'set' },
    });
    send('reply', { payload: {}, code: 'fine', alink: { id: '1', topic: thingTopics.propertySet(dev01), replyTopic: 'x', kind: 'set' } });
    await waitFor(() => caught.length === 4, 'three reply errors');
    assert.match(caught[1].error.message, /msg.alink is missing or incomplete/);
    assert.match(caught[2].error.message, /for a1B2c3D4e5F\/dev02, but the reply node's connection is a1B2c3D4e5F\/dev01/);
    assert.match(caught[3].error.message, /Reply code 'fine' is not a whole number/);
    assert.equal(commands.length, 0);
  });

  it('a synchronous call to a device without ext=1 goes by classic RRPC', async function () {
    const login = signIotLogin({ ...dev01, deviceSecret: deviceSecret('dev01') }, { securemode: 3 });
    const client = await mqtt.connectAsync({ host: '127.0.0.1', port: env.sim.port, reconnectPeriod: 0, ...login });
    await client.subscribeAsync(thingTopics.rrpcRequest(dev01, '+'), { qos: 0 });
    client.on('message', (topic, payload) => {
      const request = JSON.parse(payload.toString()) as { id: string };
      const messageId = topic.split('/').at(-1) as string;
      client.publish(thingTopics.rrpcResponse(dev01, messageId), JSON.stringify({ id: request.id, code: 200, data: { via: 'classic' } }));
    });
    const result = await admin<{ status: string; reply: { data: unknown } }>(env.sim, 'POST', '/services/invoke', {
      ...dev01,
      identifier: 'x',
      sync: true,
      timeout: 3000,
    });
    assert.deepEqual([result.status, result.reply.data], ['SUCCESS', { via: 'classic' }]);
    await client.endAsync();
  });
});

describe('simulator as the cloud: rules and NTP', function () {
  const env = simulatorAndRuntime({
    rules: [{ name: 'hot', from: `/${PK}/+/user/update`, to: `/${PK}/dev02/user/get`, select: ['temp', 'site'], where: 'temp > 30' }],
  });

  it('a forwarding rule moves a message from one device to another with select and where', async function () {
    const sender = iotConnection('sender', env.sim, 'dev01');
    const receiver = iotConnection('receiver', env.sim, 'dev02');
    await deploy(
      [
        sender.node,
        receiver.node,
        {
          id: 'out',
          type: 'aliyun-iot-out',
          connection: 'sender',
          topic: '/${productKey}/${deviceName}/user/update',
          qos: '1',
          retain: '',
        },
        {
          id: 'in',
          type: 'aliyun-iot-in',
          connection: 'receiver',
          topic: '/${productKey}/${deviceName}/user/get',
          qos: '1',
          datatype: 'json',
          wires: [['received']],
        },
        { id: 'received', type: 'helper' },
      ],
      { ...sender.credentials, ...receiver.credentials },
    );
    const received = collect('received') as Msg[];
    await waitForStatus('in', 'connected');
    await waitForStatus('out', 'connected');
    await waitForConnectionSubscribed(env.sim, 'receiver');
    send('out', { payload: { temp: 20, humidity: 50, site: 'A' } });
    send('out', { payload: { temp: 35, humidity: 60, site: 'B' } });
    send('out', { payload: { temp: 99, humidity: 0, site: SENTINEL } });
    await waitFor(() => received.some((msg) => (msg.payload as { site?: string }).site === SENTINEL), 'the forwarded sentinel');
    assert.deepEqual(
      received.map((msg) => msg.payload),
      [
        { temp: 35, site: 'B' },
        { temp: 99, site: SENTINEL },
      ],
      'only what the where clause lets through',
    );
    const rules = await admin<{ rules: unknown[] }>(env.sim, 'GET', '/rules');
    assert.equal(rules.rules.length, 1);
  });

  it('rules can be replaced through the admin API; bad ones are refused', async function () {
    await assert.rejects(admin(env.sim, 'PUT', '/rules', { rules: [{ from: '/x/#', to: '/y', where: 'a >' }] }), /400.*rules\[0\]\.where/);
    const replaced = await admin<{ rules: unknown[] }>(env.sim, 'PUT', '/rules', { rules: [] });
    assert.deepEqual(replaced.rules, []);
  });

  it('answers NTP requests', async function () {
    const connection = iotConnection('conn', env.sim, 'dev01');
    await deploy(
      [
        connection.node,
        {
          id: 'out',
          type: 'aliyun-iot-out',
          connection: 'conn',
          topic: '/ext/ntp/${productKey}/${deviceName}/request',
          qos: '0',
          retain: '',
        },
        {
          id: 'in',
          type: 'aliyun-iot-in',
          connection: 'conn',
          topic: '/ext/ntp/${productKey}/${deviceName}/response',
          qos: '0',
          datatype: 'json',
          wires: [['received']],
        },
        { id: 'received', type: 'helper' },
      ],
      connection.credentials,
    );
    const received = collect('received') as Msg[];
    await waitForStatus('in', 'connected');
    await waitForConnectionSubscribed(env.sim, 'conn');
    const sent = Date.now();
    send('out', { payload: { deviceSendTime: String(sent) } });
    await waitFor(() => received.length === 1, 'the NTP response');
    const response = received[0].payload as Record<string, string>;
    assert.equal(response.deviceSendTime, String(sent));
    assert.ok(Number(response.serverRecvTime) >= sent && Number(response.serverSendTime) >= Number(response.serverRecvTime));
  });

  it('thing-model messages up to the cloud reach no other client', async function () {
    const own = signIotLogin({ ...dev01, deviceSecret: deviceSecret('dev01') }, { securemode: 3 });
    const device = await mqtt.connectAsync({ host: '127.0.0.1', port: env.sim.port, reconnectPeriod: 0, ...own });
    const echo = `/${PK}/dev01/user/echo`;
    await device.subscribeAsync([`/sys/${PK}/dev01/thing/event/property/#`, echo], { qos: 0 });
    const seen: string[] = [];
    device.on('message', (topic) => seen.push(topic));
    await device.publishAsync(
      thingTopics.propertyPost(dev01),
      JSON.stringify({ id: '1', version: '1.0', params: { a: 1 }, method: 'thing.event.property.post' }),
    );
    // The sentinel, published after the post: the post, had the broker routed it back, would have come first.
    await device.publishAsync(echo, SENTINEL);
    const reply = `${thingTopics.propertyPost(dev01)}_reply`;
    await waitFor(() => seen.includes(reply) && seen.includes(echo), 'the post reply and the sentinel');
    assert.deepEqual(
      seen.filter((topic) => topic !== echo),
      [reply],
      'the device gets the reply but not its own post back',
    );
    await device.endAsync();
  });
});
