import { strict as assert } from 'node:assert';
import type { NodeMessage } from 'node-red';
import mqtt, { MqttClient } from 'mqtt';
import { signIotLogin } from '../../nodes/lib/protocol';
import {
  CATCH_ALL,
  collect,
  deploy,
  deviceConnectionOf as deviceConnection,
  echoFlow,
  errorsOf,
  lastStatusText,
  node,
  redeploy,
  send,
  simulatorAndRuntime,
  statusesOf,
  waitForStatus,
} from '../support/node-harness';
import {
  FlowNode,
  SENTINEL,
  admin,
  endSdkDevice,
  iotConnection,
  isSentinel,
  mqConnection,
  sdkDevice,
  waitFor,
  withoutSentinel,
} from '../support/helpers';
import { MqttProxy } from '../support/proxy';
import { TEST_RECONNECT_POLICY, shortestBackoff } from '../support/reconnect';
import { MQ_INSTANCE, PK, deviceSecret } from '../support/registry';

type CaughtMsg = NodeMessage & { error: { message: string; source?: { id: string } } };

const { networkMaxMs = 0, refusedBaseMs = 0, refusedMaxMs = 0, kickedBaseMs = 0, kickedMaxMs = 0 } = TEST_RECONNECT_POLICY;

describe('reliability: bad input', function () {
  const env = simulatorAndRuntime();

  it('every kind of bad input is a clear, catchable error, with nothing published and nothing crashing', async function () {
    const good = iotConnection('conn', env.sim, 'dev01');
    const configs: Array<[string, FlowNode, Record<string, Record<string, string>>]> = [
      ['no DeviceSecret', { ...iotConnection('noSecret', env.sim, 'dev02').node }, { noSecret: {} }],
      ['malformed ProductKey', iotConnection('badKey', env.sim, 'dev02', { productKey: 'a1B2c3-D4e' }).node, {}],
      ['malformed client id', iotConnection('badClient', env.sim, 'dev02', { clientId: 'has|bar' }).node, {}],
      ['keepalive out of range', iotConnection('badKeepalive', env.sim, 'dev02', { keepalive: 1201 }).node, {}],
      ['malformed GroupID', mqConnection('badGroup', env.sim, 'x', 'signature', {}, { groupId: 'GROUP_1' }).node, {}],
      ['token mode without token', mqConnection('noToken', env.sim, 'x', 'token', { accessKeyId: 'AK' }).node, {}],
    ];
    const flow: FlowNode[] = [
      good.node,
      ...CATCH_ALL,
      ...configs.map(([, config]) => config),
      { id: 'out', type: 'aliyun-iot-out', connection: 'conn', topic: '', qos: '', retain: '' },
      {
        id: 'in',
        type: 'aliyun-iot-in',
        connection: 'conn',
        topic: '/${productKey}/${deviceName}/user/data/#',
        qos: '1',
        datatype: 'json',
        wires: [['received']],
      },
      { id: 'command', type: 'aliyun-iot-command', connection: 'conn', services: '', autoReplySet: false, rrpcTopic: '', wires: [[]] },
      { id: 'reply', type: 'aliyun-iot-reply', connection: 'conn', code: '' },
      { id: 'received', type: 'helper' },
      ...configs.map(([, config]) => ({
        id: `out-${config.id}`,
        type: 'aliyun-iot-out',
        connection: config.id,
        topic: '/x',
        qos: '',
        retain: '',
      })),
    ];
    const credentials = Object.assign({}, good.credentials, ...configs.map(([, , creds]) => creds)) as Record<
      string,
      Record<string, string>
    >;
    for (const [, config] of configs) credentials[config.id] ??= { deviceSecret: 'configured', accessKeyId: 'AK', accessKeySecret: 'SK' };
    credentials.noSecret = {};
    await deploy(flow, credentials);
    const caught = collect('caught') as CaughtMsg[];
    const received = collect('received');
    await waitForStatus('out', 'connected');
    const data = `/${PK}/dev01/user/data`;
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const matrix: Array<[string, () => Promise<unknown> | void, RegExp]> = [
      ['wildcard publish topic', () => send('out', { topic: `${data}/+`, payload: 1 }), /only allowed in subscriptions/],
      ['empty publish topic', () => send('out', { topic: '', payload: 1 }), /No topic/],
      ['topic over 128 characters', () => send('out', { topic: `${data}/${'t'.repeat(128)}`, payload: 1 }), /longer than 128 characters/],
      [
        'payload over 256 KB',
        () => send('out', { topic: `${data}/x`, payload: Buffer.alloc(262145) }),
        /more than the service's limit of 262144 bytes/,
      ],
      ['circular object payload', () => send('out', { topic: `${data}/x`, payload: circular }), /cannot be sent as JSON/],
      ['QoS 2', () => send('out', { topic: `${data}/x`, payload: 1, qos: 2 }), /QoS 2 is not supported/],
      ['unknown msg.action', () => send('out', { action: 'explode' }), /Unknown msg.action 'explode'/],
      ['reply without context', () => send('reply', { payload: {} }), /msg.alink is missing or incomplete/],
      [
        'invalid JSON with datatype json',
        () => admin(env.sim, 'POST', '/pub', { topic: `${data}/bad`, payload: '{not json' }),
        /not valid JSON/,
      ],
      [
        'non-JSON Alink request from the broker',
        () => admin(env.sim, 'POST', '/pub', { topic: `/sys/${PK}/dev01/thing/service/property/set`, payload: 'garbage' }),
        /not a valid Alink request/,
      ],
      ...configs.map(([name, config]): [string, () => void, RegExp] => [
        name,
        () => send(`out-${config.id}`, { payload: 1 }),
        /misconfigured/,
      ]),
    ];
    const rows: string[] = [];
    for (const [name, act, expected] of matrix) {
      const before = caught.length;
      await act();
      await waitFor(() => caught.length === before + 1, `the error for ${name}`);
      const message = caught[before].error.message;
      assert.match(message, expected, name);
      rows.push(`${name.padEnd(40)} ${message}`);
    }
    console.log(`\n      bad-input matrix (${rows.length} cases):\n${rows.map((row) => `        ${row}`).join('\n')}\n`);
    send('out', { topic: `${data}/x`, payload: JSON.stringify(SENTINEL) });
    await waitFor(() => received.some(isSentinel), 'the sentinel');
    assert.deepEqual(withoutSentinel(received), [], 'nothing bad reached the broker and came back');
    assert.equal(deviceConnection('conn').status.state, 'connected', 'the connection is still up');
  });
});

describe('reliability: redeploys', function () {
  const env = simulatorAndRuntime();

  it('100 redeploys, full and modified-nodes: one connection, no growth, no duplicate deliveries', async function () {
    this.timeout(120_000);
    const credentials = iotConnection('conn', env.sim, 'dev01').credentials;
    const flow = (version: number): FlowNode[] => [
      ...echoFlow(iotConnection('conn', env.sim, 'dev01').node, { inNode: { name: `v${version}` }, outNode: { name: `v${version}` } }),
      {
        id: 'dyn',
        type: 'aliyun-iot-in',
        name: `v${version}`,
        connection: 'conn',
        topic: '',
        qos: '1',
        datatype: 'utf8',
        dynamic: true,
        wires: [['received']],
      },
      {
        id: 'post',
        type: 'aliyun-iot-post',
        name: `v${version}`,
        connection: 'conn',
        kind: 'property',
        event: '',
        ack: true,
        timeout: 2000,
        wires: [[]],
      },
    ];
    const gc = (globalThis as { gc?: () => void }).gc;
    assert.ok(gc, 'tests run with --expose-gc');
    await deploy(flow(0), credentials);
    await waitForStatus('in', 'connected');
    let heapAtTen = 0;
    for (let i = 1; i <= 100; i++) {
      await redeploy(flow(i), i % 2 === 0 ? 'full' : 'nodes', credentials);
      await waitForStatus('in', 'connected', 10_000);
      send('dyn', { action: 'subscribe', topic: '/${productKey}/${deviceName}/user/data/#' });
      if (i === 10) {
        gc();
        heapAtTen = process.memoryUsage().heapUsed;
      }
    }
    await waitFor(() => env.sim.connectedClients === 1, 'a single connection');
    const connection = deviceConnection('conn');
    await waitFor(() => connection.brokerSubscriptions.length === 3, 'three subscriptions');
    assert.deepEqual(connection.brokerSubscriptions.sort(), [
      `/${PK}/dev01/user/data/#`,
      `/${PK}/dev01/user/echo`,
      `/sys/${PK}/dev01/thing/event/+/post_reply`,
    ]);
    const client = (connection as unknown as { run?: { client: { listenerCount(event: string): number } } }).run?.client;
    assert.ok(client, 'the connection has its client');
    assert.deepEqual(
      ['message', 'connect', 'close', 'error'].map((event) => client.listenerCount(event) <= 2),
      [true, true, true, true],
    );
    const received = collect('received');
    send('out', { payload: 'once' });
    send('out', { payload: SENTINEL });
    await waitFor(() => received.some(isSentinel), 'the sentinel');
    assert.deepEqual(
      received.map((msg) => msg.payload),
      ['once', SENTINEL],
      'each delivered once',
    );
    gc();
    const growth = process.memoryUsage().heapUsed - heapAtTen;
    assert.ok(growth < 15 * 1024 * 1024, `heap grew by ${Math.round(growth / 1024 / 1024)} MB over 90 redeploys`);
  });
});

describe('reliability: logins', function () {
  const env = simulatorAndRuntime();

  it('a refused login backs off, says why, and a corrected deploy connects at once', async function () {
    const attempts: number[] = [];
    env.sim.on('refused', () => attempts.push(Date.now()));
    const wrong = iotConnection('conn', env.sim, 'dev01');
    const flow = [wrong.node, { id: 'out', type: 'aliyun-iot-out', connection: 'conn', topic: '/x', qos: '', retain: '' }];
    await deploy(flow, { conn: { deviceSecret: 'wrong' } });
    await waitForStatus('out', 'refused-signature');
    await waitFor(() => attempts.length >= 4, 'four attempts');
    const gaps = attempts.slice(1, 4).map((time, i) => time - attempts[i]);
    const least = gaps.map((_, i) => shortestBackoff(i, refusedBaseMs, refusedMaxMs));
    assert.ok(
      gaps.every((gap, i) => gap >= least[i]),
      `gaps ${gaps.join(', ')} ms, at least ${least.join(', ')} ms (doubling)`,
    );
    const start = Date.now();
    await redeploy(flow, 'full', wrong.credentials);
    await waitForStatus('out', 'connected');
    // Far less than the refusal back-off it had reached, which a corrected deploy does not wait for.
    assert.ok(Date.now() - start < refusedMaxMs, `connected ${Date.now() - start} ms after the corrected deploy`);
  });

  it('expired, revoked and unknown tokens are refused with a status that says so', async function () {
    const expired = mqConnection('expired', env.sim, 'a', 'token', { accessKeyId: 'AK', token: 'tokExpired' });
    const unknown = mqConnection('unknown', env.sim, 'b', 'token', { accessKeyId: 'AK', token: 'never-issued' });
    await deploy(
      [
        expired.node,
        unknown.node,
        { id: 'a', type: 'aliyun-iot-out', connection: 'expired', topic: 'parent/x', qos: '', retain: '' },
        { id: 'b', type: 'aliyun-iot-out', connection: 'unknown', topic: 'parent/x', qos: '', retain: '' },
      ],
      { ...expired.credentials, ...unknown.credentials },
    );
    await waitForStatus('a', 'refused-not-authorized');
    await waitForStatus('b', 'refused-not-authorized');
    assert.match(errorsOf(node('expired')).join('\n'), /the token has expired or been revoked/);
  });

  it('two programs with one device: status "in use elsewhere" within 3 knock-offs, then each return backs off further', async function () {
    this.timeout(20_000);
    const ours = (clientId: string): boolean => clientId.startsWith(`${PK}.dev01|`);
    const kicks: number[] = [];
    /** When our client was knocked off, and when it logged in again. */
    const ourEvents: Array<['kicked' | 'login', number]> = [];
    env.sim.on('kicked', ({ clientId }) => {
      kicks.push(Date.now());
      if (ours(clientId)) ourEvents.push(['kicked', Date.now()]);
    });
    env.sim.on('login', (client) => {
      if (ours(env.sim.clientIdOf(client))) ourEvents.push(['login', Date.now()]);
    });
    const connection = iotConnection('conn', env.sim, 'dev01');
    await deploy(
      [connection.node, { id: 'out', type: 'aliyun-iot-out', connection: 'conn', topic: '/x', qos: '', retain: '' }],
      connection.credentials,
    );
    await waitForStatus('out', 'connected');
    const device = sdkDevice(env.sim, 'dev01');
    device.on('error', () => undefined);
    await waitFor(() => statusesOf(node('out')).some((status) => String(status.text).endsWith('status.kicked')), 'the kicked status');
    assert.ok(kicks.length <= 3, `the status came after ${kicks.length} knock-offs`);
    assert.match(
      errorsOf(node('conn')).join('\n') +
        (node('conn') as unknown as { warn: { getCalls(): Array<{ args: unknown[] }> } }).warn
          .getCalls()
          .map((call) => String(call.args[0]))
          .join('\n'),
      /another program is probably logged in as the same device \(the platform keeps one connection per device, whatever its client ID\)/,
    );
    // From the status on, each time ours is knocked off it waits the kicked back-off, doubling, before it returns.
    const settled = ourEvents.length;
    const returns = (): number[] =>
      ourEvents
        .slice(settled)
        .flatMap(([event, at], i, later) => (event === 'kicked' && later[i + 1]?.[0] === 'login' ? [later[i + 1][1] - at] : []));
    await waitFor(() => returns().length >= 3, 'three returns after the kicked status', 15_000);
    const waited = returns().slice(0, 3);
    const least = waited.map((_, i) => shortestBackoff(i + 1, kickedBaseMs, kickedMaxMs));
    assert.ok(
      waited.every((gap, i) => gap >= least[i]),
      `returned after ${waited.join(', ')} ms, at least ${least.join(', ')} ms`,
    );
    assert.match(lastStatusText(node('out')), /status\.(kicked|connected)$/);
    await endSdkDevice(device);
  });
});

describe('reliability: broker outage', function () {
  const env = simulatorAndRuntime();

  it('5,000 QoS 1 messages sent through an outage of 1,000 messages all arrive; messages for an offline device arrive when it is back', async function () {
    this.timeout(60_000);
    const up = iotConnection('up', env.sim, 'dev01', { cleanSession: false, queueSize: 5000 });
    const down = iotConnection('down', env.sim, 'dev03', { cleanSession: false });
    await deploy(
      [
        up.node,
        down.node,
        ...CATCH_ALL,
        { id: 'out', type: 'aliyun-iot-out', connection: 'up', topic: `/${PK}/dev01/user/update`, qos: '1', retain: '' },
        {
          id: 'in',
          type: 'aliyun-iot-in',
          connection: 'down',
          topic: '/${productKey}/${deviceName}/user/get',
          qos: '1',
          datatype: 'utf8',
          wires: [['received']],
        },
        { id: 'received', type: 'helper' },
      ],
      { ...up.credentials, ...down.credentials },
    );
    const caught = collect('caught') as CaughtMsg[];
    const received = collect('received');
    await waitForStatus('out', 'connected');
    await waitForStatus('in', 'connected');

    const arrivals = new Map<number, number>();
    env.sim.on('message', ({ topic, payload }) => {
      if (topic !== `/${PK}/dev01/user/update`) return;
      const seq = Number(payload.toString());
      arrivals.set(seq, (arrivals.get(seq) ?? 0) + 1);
    });
    const total = 5000;
    let sent = 0;
    // 1,000 messages a second, so the outage falls in the middle of the stream.
    const sender = setInterval(() => {
      for (let i = 0; i < 10 && sent < total; i++) send('out', { payload: String(sent++) });
      if (sent === total) clearInterval(sender);
    }, 10);

    await waitFor(() => sent >= 1500, 'the first 1,500 messages sent');
    send('in', { action: 'disconnect' });
    await waitFor(() => !env.sim.onlineDevices().includes(`${PK}/dev03`), 'dev03 offline');
    await env.sim.stop();
    const outageAt = sent;
    await waitFor(() => sent >= outageAt + 1000, '1,000 messages sent during the outage');
    await env.sim.start();
    const offline = Array.from({ length: 20 }, (_, i) => `while offline ${i}`);
    for (const payload of offline) await admin(env.sim, 'POST', '/pub', { topic: `/${PK}/dev03/user/get`, payload, qos: 1 });
    send('in', { action: 'connect' });

    await waitFor(() => sent === total && arrivals.size === total, `all ${total} messages (${arrivals.size} so far)`, 40_000);
    await waitFor(() => received.length === offline.length, 'the messages kept for the offline device');
    const duplicates = [...arrivals.values()].reduce((sum, count) => sum + count - 1, 0);
    console.log(`      outage after message ${outageAt}: ${arrivals.size}/${total} arrived, ${duplicates} duplicates`);
    assert.deepEqual(
      received.map((msg) => msg.payload),
      offline,
      'kept in order',
    );
    assert.deepEqual(
      caught.map((msg) => msg.error.message),
      [],
      'no publish failed',
    );
  });
});

describe('reliability: ApsaraMQ token lifecycle', function () {
  const env = simulatorAndRuntime({ tokenNoticeMs: 2000 });

  async function applyToken(lifetimeMs: number): Promise<string> {
    const issued = await admin<{ token: string }>(env.sim, 'POST', '/mq/tokens', {
      instanceId: MQ_INSTANCE,
      accessKeyId: 'AK',
      actions: 'RW',
      resources: ['parent/#'],
      expireTime: Date.now() + lifetimeMs,
    });
    return issued.token;
  }

  it('warns before expiry, takes an uploaded token on the live connection, and reports revoked and expired tokens', async function () {
    this.timeout(30_000);
    const renewed = mqConnection('renewed', env.sim, 'tokenDevice1', 'token', { accessKeyId: 'AK', token: await applyToken(3000) });
    const lapsing = mqConnection('lapsing', env.sim, 'tokenDevice2', 'token', { accessKeyId: 'AK', token: await applyToken(3000) });
    await deploy(
      [
        renewed.node,
        lapsing.node,
        ...CATCH_ALL,
        { id: 'out', type: 'aliyun-iot-out', connection: 'renewed', topic: 'parent/token', qos: '1', retain: '' },
        {
          id: 'in',
          type: 'aliyun-iot-in',
          connection: 'renewed',
          topic: 'parent/token',
          qos: '1',
          datatype: 'utf8',
          wires: [['received']],
        },
        { id: 'lapsingOut', type: 'aliyun-iot-out', connection: 'lapsing', topic: 'parent/token', qos: '1', retain: '' },
        { id: 'received', type: 'helper' },
        { id: 'complete', type: 'complete', scope: ['out'], uncaught: false, wires: [['completed']] },
        { id: 'completed', type: 'helper' },
      ],
      { ...renewed.credentials, ...lapsing.credentials },
    );
    const caught = collect('caught') as CaughtMsg[];
    const received = collect('received');
    const completed = collect('completed');

    await waitForStatus('out', 'token-expiring');
    await waitForStatus('lapsingOut', 'token-expiring');
    await waitFor(
      () => caught.some((msg) => msg.topic === '$SYS/tokenExpireNotice' && /expires soon/.test(msg.error.message)),
      'a catchable expiry notice',
    );

    const fresh = await applyToken(3_600_000);
    send('out', { action: 'uploadToken', payload: fresh });
    await waitFor(() => completed.length === 1, 'the upload done at its PUBACK');
    await waitForStatus('out', 'connected');

    // Past the first token's expiry: the renewed connection stays up, the other one is told and refused.
    await waitForStatus('lapsingOut', 'refused-not-authorized', 8000);
    assert.ok(
      caught.some((msg) => msg.topic === '$SYS/tokenInvalidNotice' && msg.error.source?.id === 'lapsingOut'),
      'a catchable invalid-token notice',
    );
    assert.equal(lastStatusText(node('out')), lastStatusText(node('in')));
    send('out', { payload: 'still allowed' });
    await waitFor(() => received.some((msg) => msg.payload === 'still allowed'), 'a round trip on the uploaded token');
    assert.equal(lastStatusText(node('out')).endsWith('status.connected'), true);

    await admin(env.sim, 'POST', '/mq/tokens/revoke', { token: fresh });
    await waitFor(
      () => caught.some((msg) => msg.topic === '$SYS/tokenInvalidNotice' && msg.error.source?.id === 'out'),
      'the revocation notice',
    );
    await waitForStatus('out', 'refused-not-authorized', 8000);
  });
});

describe('reliability: the offline queue', function () {
  const env = simulatorAndRuntime();
  let proxy: MqttProxy | undefined;
  let subscriber: MqttClient | undefined;

  afterEach(async function () {
    await subscriber?.endAsync(true);
    subscriber = undefined;
    await proxy?.stop();
    proxy = undefined;
  });

  type CompletedMsg = NodeMessage & { payload?: unknown };
  type CaughtWithCode = CaughtMsg & { error: { code?: string } };

  function queueFlow(connection: FlowNode): FlowNode[] {
    return [
      ...echoFlow(connection, { outNode: { topic: '', qos: '' } }),
      ...CATCH_ALL,
      { id: 'complete', type: 'complete', scope: ['out'], uncaught: false, wires: [['completed']] },
      { id: 'completed', type: 'helper' },
    ];
  }

  it('a network outage: the excess fails with QUEUE_FULL, the queue leaves in order, QoS 1 is done at its PUBACK', async function () {
    this.timeout(20_000);
    proxy = await new MqttProxy({ host: '127.0.0.1', port: env.sim.port }).start();
    const login = signIotLogin({ productKey: PK, deviceName: 'dev02', deviceSecret: deviceSecret('dev02') }, { securemode: 3 });
    subscriber = await mqtt.connectAsync({ host: '127.0.0.1', port: env.sim.port, reconnectPeriod: 0, ...login });
    await subscriber.subscribeAsync(`/${PK}/+/user/fanout`, { qos: 1 });
    const seen: string[] = [];
    subscriber.on('message', (_topic, payload) => seen.push(payload.toString()));

    const connection = iotConnection('conn', env.sim, 'dev01', { port: String(proxy.port), queueSize: 4 });
    await deploy(queueFlow(connection.node), connection.credentials);
    const completed = collect('completed') as CompletedMsg[];
    const caught = collect('caught') as CaughtWithCode[];
    await waitForStatus('out', 'connected');

    proxy.cutNetwork();
    await waitForStatus('out', 'disconnected');
    const topic = `/${PK}/dev01/user/fanout`;
    const messages: Array<[string, 0 | 1]> = [
      ['one', 1],
      ['two', 0],
      ['three', 1],
      ['four', 1],
      ['five', 1],
    ];
    for (const [payload, qos] of messages) send('out', { topic, payload, qos });
    await waitFor(() => caught.length === 1, 'the overflow error');
    assert.equal(caught[0].payload, 'five');
    assert.equal(caught[0].error.code, 'QUEUE_FULL');
    assert.match(caught[0].error.message, /offline queue is full \(4 messages\)/);
    assert.equal(deviceConnection('conn').queuedCount, 4);
    assert.equal(completed.length, 0, 'nothing queued is done while offline');

    proxy.holdAcks();
    proxy.restoreNetwork();
    await waitFor(() => seen.length === 4, 'the queued messages at the subscriber', 10_000);
    const wire = proxy.published.filter((packet) => packet.topic === topic);
    assert.deepEqual(
      wire.map((packet) => [packet.payload, packet.qos]),
      messages.slice(0, 4),
      'written in the order sent, each once',
    );
    assert.deepEqual(
      seen.filter((payload) => payload !== 'two'),
      ['one', 'three', 'four'],
      'QoS 1 delivered in order',
    );
    assert.deepEqual([...seen].sort(), ['four', 'one', 'three', 'two']);
    await waitFor(() => proxy?.heldAcks === 3, 'three PUBACKs held back');
    await waitFor(() => completed.length >= 1, 'the QoS 0 message done');
    // Every PUBACK is held in the proxy, so no QoS 1 message can be done yet.
    assert.deepEqual(
      completed.map((msg) => msg.payload),
      ['two'],
      'QoS 0 is done when written; QoS 1 waits for its PUBACK',
    );

    proxy.releaseAcks();
    await waitFor(() => completed.length === 4, 'done() for each queued message');
    assert.deepEqual(
      completed.map((msg) => msg.payload),
      ['two', 'one', 'three', 'four'],
    );
    send('out', { topic, payload: SENTINEL, qos: 1 });
    await waitFor(() => seen.includes(SENTINEL) && completed.some(isSentinel), 'the sentinel delivered and done');
    assert.equal(caught.length, 1, 'only the excess failed');
    assert.deepEqual(seen.filter((payload) => payload !== SENTINEL).length, 4, 'each delivered once');
  });

  it('QoS 1 written but not acknowledged when the network drops is sent again and done at the new PUBACK', async function () {
    this.timeout(20_000);
    proxy = await new MqttProxy({ host: '127.0.0.1', port: env.sim.port }).start();
    const connection = iotConnection('conn', env.sim, 'dev01', { port: String(proxy.port) });
    await deploy(queueFlow(connection.node), connection.credentials);
    const received = collect('received');
    const completed = collect('completed') as CompletedMsg[];
    const caught = collect('caught') as CaughtWithCode[];
    await waitForStatus('in', 'connected');
    proxy.holdAcks();
    const topic = `/${PK}/dev01/user/echo`;
    for (const payload of ['p', 'q']) send('out', { topic, payload, qos: 1 });
    await waitFor(() => proxy?.heldAcks === 2 && received.length === 2, 'both at the broker, their PUBACKs held');
    proxy.cutNetwork();
    await waitForStatus('in', 'disconnected');
    assert.equal(completed.length, 0, 'not done: never acknowledged');
    proxy.releaseAcks();
    proxy.restoreNetwork();
    await waitFor(() => completed.length === 2, 'done() after the PUBACKs of the new connection', 10_000);
    assert.deepEqual(
      completed.map((msg) => msg.payload),
      ['p', 'q'],
    );
    const resent = proxy.published.filter((packet) => packet.topic === topic).map((packet) => packet.payload);
    assert.deepEqual(resent, ['p', 'q', 'p', 'q'], 'written again on the new connection (at least once)');
    assert.equal(caught.length, 0);
  });

  it('msg.action disconnect and connect: publishes wait (no reconnect meanwhile) and leave in order after connect', async function () {
    this.timeout(20_000);
    const connection = iotConnection('conn', env.sim, 'dev01', { queueSize: 3 });
    await deploy(queueFlow(connection.node), connection.credentials);
    const received = collect('received');
    const completed = collect('completed') as CompletedMsg[];
    const caught = collect('caught') as CaughtWithCode[];
    await waitForStatus('in', 'connected');
    send('out', { action: 'disconnect' });
    await waitForStatus('in', 'disconnected');
    await waitFor(() => env.sim.connectedClients === 0, 'the client to leave');
    const topic = `/${PK}/dev01/user/echo`;
    for (const payload of ['a', 'b', 'c', 'd']) send('out', { topic, payload, qos: 1 });
    await waitFor(() => caught.length === 1, 'the overflow error');
    assert.deepEqual([caught[0].payload, caught[0].error.code], ['d', 'QUEUE_FULL']);
    // A reconnect would come within the longest network back-off of the policy.
    const logins: string[] = [];
    env.sim.on('login', (client) => logins.push(env.sim.clientIdOf(client)));
    // The one wait for an absence: no event marks "no reconnect"; twice the longest back-off of the policy.
    await new Promise((resolve) => setTimeout(resolve, networkMaxMs * 2));
    assert.deepEqual(logins, [], 'a disconnect action is not undone by a reconnect');
    assert.equal(env.sim.connectedClients, 0);
    assert.equal(completed.filter((msg) => msg.payload !== undefined).length, 0, 'nothing done before connect');
    send('out', { action: 'connect' });
    await waitFor(() => received.length === 3, 'the queued messages', 10_000);
    assert.deepEqual(
      received.map((msg) => msg.payload),
      ['a', 'b', 'c'],
    );
    await waitFor(() => completed.filter((msg) => msg.payload !== undefined).length === 3, 'done() for each');
    assert.deepEqual(
      completed.filter((msg) => msg.payload !== undefined).map((msg) => msg.payload),
      ['a', 'b', 'c'],
    );
    assert.equal(caught.length, 1);
  });

  it('a publish that outlives its time limit in the queue fails with QUEUE_EXPIRED and is never sent; so does a post past its timeout', async function () {
    this.timeout(20_000);
    const connection = iotConnection('conn', env.sim, 'dev01', { queueTimeout: 1 });
    const posts: unknown[] = [];
    env.sim.on('post', (info) => posts.push(info));
    await deploy(
      [
        ...queueFlow(connection.node),
        { id: 'post', type: 'aliyun-iot-post', connection: 'conn', kind: 'property', event: '', ack: true, timeout: 500, wires: [[]] },
      ],
      connection.credentials,
    );
    const received = collect('received');
    const caught = collect('caught') as CaughtWithCode[];
    await waitForStatus('in', 'connected');
    send('out', { action: 'disconnect' });
    await waitFor(() => env.sim.connectedClients === 0, 'the client to leave');
    const topic = `/${PK}/dev01/user/echo`;
    const queuedAt = Date.now();
    send('out', { topic, payload: 'late', qos: 1 });
    send('post', { payload: { temperature: 20 } });
    await waitFor(() => caught.length === 2, 'both errors', 5000);
    const byNode = new Map(caught.map((msg) => [msg.error.source?.id, msg.error]));
    assert.equal(byNode.get('out')?.code, 'QUEUE_EXPIRED');
    assert.match(String(byNode.get('out')?.message), /waited 1 s in the offline queue/);
    assert.equal(byNode.get('post')?.code, 'POST_TIMEOUT');
    assert.ok(Date.now() - queuedAt >= 950, 'not before its limit');
    send('out', { action: 'connect' });
    await waitForStatus('in', 'connected');
    send('out', { topic, payload: 'fresh', qos: 1 });
    send('out', { topic, payload: SENTINEL, qos: 1 });
    await waitFor(() => received.some(isSentinel), 'the sentinel');
    assert.deepEqual(
      withoutSentinel(received).map((msg) => msg.payload),
      ['fresh'],
      'the expired message was never sent',
    );
    assert.equal(posts.length, 0, 'the timed-out post was never sent');
  });
});
