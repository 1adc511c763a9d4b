import { strict as assert } from 'node:assert';
import type { NodeMessage } from 'node-red';
import {
  CATCH_ALL,
  ECHO_TOPIC,
  collect,
  deploy,
  deviceConnectionOf as connectionOfNode,
  echoFlow,
  errorsOf,
  helper,
  lastStatusText,
  node,
  redeploy,
  send,
  simulatorAndRuntime,
  waitForStatus,
} from '../support/node-harness';
import {
  FlowNode,
  SENTINEL,
  endSdkDevice,
  iotConnection,
  isSentinel,
  mqConnection,
  sdkDevice,
  startTestSimulator,
  waitFor,
  waitForSubscribed,
  waitForUnsubscribed,
  withoutSentinel,
} from '../support/helpers';
import { TEST_RECONNECT_POLICY, shortestBackoff } from '../support/reconnect';
import { PK } from '../support/registry';

const CLIENT_ID = `${PK}.dev01`;

describe('nodes: a flow through the simulator for each auth mode', function () {
  const env = simulatorAndRuntime();

  async function roundTrip(
    connection: { node: FlowNode; credentials: Record<string, Record<string, string>> },
    topic: string,
    expectedTopic: string,
  ): Promise<void> {
    await deploy(echoFlow(connection.node, { topic, datatype: 'auto-detect' }), connection.credentials);
    const received = collect('received');
    await waitForStatus('in', 'connected');
    await waitForStatus('out', 'connected');
    send('out', { payload: { temperature: 21.5 } });
    await waitFor(() => received.length === 1, 'the message to come back');
    assert.deepEqual(received[0].payload, { temperature: 21.5 });
    assert.equal(received[0].topic, expectedTopic);
    assert.equal((received[0] as NodeMessage & { qos: number }).qos, 1);
  }

  for (const signMethod of ['hmacsha256', 'hmacsha1', 'hmacmd5']) {
    it(`IoT Platform device, ${signMethod}`, async function () {
      await roundTrip(iotConnection('conn', env.sim, 'dev01', { signMethod }), ECHO_TOPIC, `/${PK}/dev01/user/echo`);
    });
  }

  it('ApsaraMQ, AccessKey signature', async function () {
    await roundTrip(
      mqConnection('conn', env.sim, 'dev01', 'signature', { accessKeyId: 'AK', accessKeySecret: 'SK' }),
      'parent/${groupId}/${deviceId}',
      'parent/GID_test/dev01',
    );
  });

  it('ApsaraMQ, token', async function () {
    await roundTrip(mqConnection('conn', env.sim, 'dev01', 'token', { accessKeyId: 'AK', token: 'tok1' }), 'parent/echo', 'parent/echo');
  });

  it('ApsaraMQ, device credential', async function () {
    await roundTrip(
      mqConnection('conn', env.sim, 'dev02', 'device-credential', { accessKeyId: 'DC.1', accessKeySecret: 'dsk' }),
      'parent/${clientId}',
      'parent/GID_test@@@dev02',
    );
  });

  it('ApsaraMQ point-to-point: parent/p2p/${clientId} arrives without a SUBSCRIBE', async function () {
    const receiver = mqConnection('rxConn', env.sim, 'receiver', 'signature', { accessKeyId: 'AK', accessKeySecret: 'SK' });
    const sender = mqConnection('txConn', env.sim, 'sender', 'signature', { accessKeyId: 'AK', accessKeySecret: 'SK' });
    await deploy(
      [
        receiver.node,
        sender.node,
        {
          id: 'in',
          type: 'aliyun-iot-in',
          connection: 'rxConn',
          topic: 'parent/p2p/${clientId}',
          qos: '1',
          datatype: 'utf8',
          wires: [['received']],
        },
        { id: 'out', type: 'aliyun-iot-out', connection: 'txConn', topic: 'parent/p2p/GID_test@@@receiver', qos: '1', retain: '' },
        { id: 'received', type: 'helper' },
      ],
      { ...receiver.credentials, ...sender.credentials },
    );
    const received = collect('received');
    await waitForStatus('in', 'connected');
    await waitForStatus('out', 'connected');
    assert.deepEqual(connectionOfNode('rxConn').brokerSubscriptions, []);
    send('out', { payload: 'direct' });
    await waitFor(() => received.length === 1, 'the p2p message');
    assert.equal(received[0].payload, 'direct');
  });
});

describe('nodes: refused logins and bad input', function () {
  const env = simulatorAndRuntime();

  it('wrong secret: the status names the reason and retries back off', async function () {
    const attempts: number[] = [];
    env.sim.on('refused', () => attempts.push(Date.now()));
    const connection = iotConnection('conn', env.sim, 'dev01');
    connection.credentials.conn.deviceSecret = 'wrong-secret';
    await deploy(
      [
        connection.node,
        { id: 'out', type: 'aliyun-iot-out', connection: 'conn', topic: '/${productKey}/${deviceName}/user/update', qos: '', retain: '' },
      ],
      connection.credentials,
    );
    await waitForStatus('out', 'refused-signature');
    await waitFor(() => attempts.length >= 4, 'four refused attempts');
    const { refusedBaseMs = 0, refusedMaxMs = 0 } = TEST_RECONNECT_POLICY;
    attempts.slice(1, 4).forEach((time, i) => {
      const least = shortestBackoff(i, refusedBaseMs, refusedMaxMs);
      assert.ok(
        time - attempts[i] >= least,
        `attempt ${i + 2} came ${time - attempts[i]} ms after the one before, not after at least ${least} ms`,
      );
    });
    const logged = errorsOf(node('conn')).join('\n');
    assert.match(logged, /CONNACK 5\): bad signature: check DeviceSecret/);
    assert.equal(errorsOf(node('conn')).length, 1, 'a refusal streak is logged once');
  });

  it('unknown device and unregistered GroupID: each status says which', async function () {
    const unknown = iotConnection('iotConn', env.sim, 'nosuchdevice');
    const badGroup = mqConnection(
      'mqConn',
      env.sim,
      'x',
      'signature',
      { accessKeyId: 'AK', accessKeySecret: 'SK' },
      { groupId: 'GID_unknown' },
    );
    await deploy(
      [
        unknown.node,
        badGroup.node,
        { id: 'a', type: 'aliyun-iot-out', connection: 'iotConn', topic: '/x', qos: '', retain: '' },
        { id: 'b', type: 'aliyun-iot-out', connection: 'mqConn', topic: 'parent/x', qos: '', retain: '' },
      ],
      { ...unknown.credentials, ...badGroup.credentials },
    );
    await waitForStatus('a', 'refused-unknown-device');
    await waitForStatus('b', 'refused-client-id');
  });

  it('malformed settings are a config error on every user node, and their input fails catchably', async function () {
    const badKey = iotConnection('badKey', env.sim, 'dev01', { productKey: 'a1B2c3' });
    const badGroup = mqConnection(
      'badGroup',
      env.sim,
      'x',
      'signature',
      { accessKeyId: 'AK', accessKeySecret: 'SK' },
      { groupId: 'group1' },
    );
    const badKeepalive = iotConnection('badKeepalive', env.sim, 'dev01', { keepalive: 10 });
    await deploy(
      [
        badKey.node,
        badGroup.node,
        badKeepalive.node,
        ...CATCH_ALL,
        { id: 'a', type: 'aliyun-iot-out', connection: 'badKey', topic: '/x', qos: '', retain: '' },
        { id: 'b', type: 'aliyun-iot-in', connection: 'badGroup', topic: 'parent/x', qos: '0', datatype: 'utf8', wires: [[]] },
        { id: 'c', type: 'aliyun-iot-out', connection: 'badKeepalive', topic: '/x', qos: '', retain: '' },
      ],
      { ...badKey.credentials, ...badGroup.credentials, ...badKeepalive.credentials },
    );
    const caught = collect('caught');
    for (const id of ['a', 'b', 'c']) assert.equal(lastStatusText(node(id)).split('.').at(-1), 'config-error');
    assert.match(errorsOf(node('badKey'))[0], /ProductKey 'a1B2c3' is malformed/);
    assert.match(errorsOf(node('badGroup'))[0], /Group ID 'group1' is malformed/);
    assert.match(errorsOf(node('badKeepalive'))[0], /Keepalive 10 is outside 30-1200 seconds/);
    send('a', { payload: 'x' });
    await waitFor(() => caught.length === 1, 'the caught error');
    assert.match((caught[0] as NodeMessage & { error: { message: string } }).error.message, /ProductKey 'a1B2c3' is malformed/);
    assert.equal(env.sim.connectedClients, 0);
  });

  it('a field of ${VAR} with VAR unset (the examples outside npm start): the error names the variable and what to do', async function () {
    const saved = process.env.ALIYUN_IOT_SIM_PORT;
    delete process.env.ALIYUN_IOT_SIM_PORT;
    delete process.env.ALIYUN_IOT_TEST_UNSET_HOST;
    try {
      const simulatorPort = iotConnection('simPort', env.sim, 'dev01', { port: '${ALIYUN_IOT_SIM_PORT}' });
      const ownHost = iotConnection('ownHost', env.sim, 'dev02', { host: '${ALIYUN_IOT_TEST_UNSET_HOST}' });
      await deploy(
        [
          simulatorPort.node,
          ownHost.node,
          ...CATCH_ALL,
          {
            id: 'a',
            type: 'aliyun-iot-out',
            connection: 'simPort',
            topic: '/${productKey}/${deviceName}/user/update',
            qos: '',
            retain: '',
          },
          {
            id: 'b',
            type: 'aliyun-iot-out',
            connection: 'ownHost',
            topic: '/${productKey}/${deviceName}/user/update',
            qos: '',
            retain: '',
          },
        ],
        { ...simulatorPort.credentials, ...ownHost.credentials },
      );
      const caught = collect('caught');
      const [simulatorError] = errorsOf(node('simPort'));
      assert.match(
        simulatorError,
        /^ALIYUN_IOT_SIM_PORT is not set \(the Port field says \$\{ALIYUN_IOT_SIM_PORT\}\): start the simulator with `npx aliyun-iot-sim --demo`/,
      );
      assert.doesNotMatch(simulatorError, /NaN/);
      assert.match(
        errorsOf(node('ownHost'))[0],
        /^ALIYUN_IOT_TEST_UNSET_HOST is not set \(the Host field says .*\): set this environment variable before starting Node-RED/,
      );
      send('a', { payload: 'x' });
      await waitFor(() => caught.length === 1, 'the caught error');
      assert.match((caught[0] as NodeMessage & { error: { message: string } }).error.message, /ALIYUN_IOT_SIM_PORT is not set/);
      assert.equal(env.sim.connectedClients, 0);
    } finally {
      if (saved !== undefined) process.env.ALIYUN_IOT_SIM_PORT = saved;
    }
  });

  it("a publish to another device's topic on the IoT Platform is refused before it leaves, catchably; own topics pass", async function () {
    const published: string[] = [];
    env.sim.on('message', (info) => published.push(info.topic));
    const connection = iotConnection('conn', env.sim, 'dev01');
    await deploy(
      [
        connection.node,
        ...CATCH_ALL,
        { id: 'out', type: 'aliyun-iot-out', connection: 'conn', topic: '', qos: '1', retain: '' },
        { id: 'done', type: 'complete', scope: ['out'], uncaught: false, wires: [['completed']] },
        { id: 'completed', type: 'helper' },
      ],
      connection.credentials,
    );
    const [caught, completed] = [collect('caught'), collect('completed')];
    await waitForStatus('out', 'connected');
    send('out', { topic: `/${PK}/dev02/user/update`, payload: 'not mine' });
    await waitFor(() => caught.length === 1, 'the refusal');
    const error = (caught[0] as NodeMessage & { error: { message: string } }).error.message;
    assert.match(
      error,
      new RegExp(
        `Cannot publish to '/${PK}/dev02/user/update': on the IoT Platform a device publishes only on its own topics \\(/${PK}/dev01/\\.\\.\\.`,
      ),
    );
    send('out', { topic: `/${PK}/dev01/user/update`, payload: 'mine' });
    await waitFor(() => completed.length === 1, 'the own publish');
    assert.equal(completed[0].topic, `/${PK}/dev01/user/update`);
    assert.deepEqual(published, [`/${PK}/dev01/user/update`], 'only the own topic reached the broker');
  });

  it("a subscription outside the product's topics is a catchable error and a status", async function () {
    const connection = iotConnection('conn', env.sim, 'dev01');
    await deploy(
      [
        connection.node,
        ...CATCH_ALL,
        { id: 'in', type: 'aliyun-iot-in', connection: 'conn', topic: `/${PK}/dev02/user/get`, qos: '0', datatype: 'utf8', wires: [[]] },
      ],
      connection.credentials,
    );
    const caught = collect('caught');
    await waitFor(() => caught.length === 1, 'the caught SUBACK error');
    const error = caught[0] as NodeMessage & { error: { message: string } };
    assert.match(error.error.message, /refused \(SUBACK 0x80\): the topic is not in the product's topic list with subscribe permission/);
    assert.equal(error.topic, `/${PK}/dev02/user/get`);
    await waitForStatus('in', 'subscribe-denied');
  });

  it('bad publish input fails with done(err) and publishes nothing', async function () {
    const connection = iotConnection('conn', env.sim, 'dev01');
    await deploy(
      [
        connection.node,
        ...CATCH_ALL,
        {
          id: 'in',
          type: 'aliyun-iot-in',
          connection: 'conn',
          topic: '/${productKey}/${deviceName}/user/data/#',
          qos: '1',
          datatype: 'buffer',
          wires: [['received']],
        },
        { id: 'out', type: 'aliyun-iot-out', connection: 'conn', topic: '', qos: '', retain: '' },
        { id: 'received', type: 'helper' },
      ],
      connection.credentials,
    );
    const caught = collect('caught');
    const received = collect('received');
    await waitForStatus('out', 'connected');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const data = `/${PK}/dev01/user/data`;
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ topic: `${data}/+`, payload: 'x' }, /\+ and # are only allowed in subscriptions/],
      [{ topic: `${data}/#`, payload: 'x' }, /\+ and # are only allowed in subscriptions/],
      [{ payload: 'no topic' }, /No topic/],
      [{ topic: `${data}/${'x'.repeat(120)}`, payload: 'x' }, /longer than 128 characters/],
      [{ topic: `${data}/big`, payload: Buffer.alloc(256 * 1024 + 1) }, /262145 bytes, more than the service's limit of 262144/],
      [{ topic: `${data}/big`, payload: 'é'.repeat(131073) }, /262146 bytes/],
      [{ topic: `${data}/q`, payload: 'x', qos: 2 }, /QoS 2 is not supported/],
      [{ topic: `${data}/c`, payload: circular }, /cannot be sent as JSON/],
      [{ topic: '/${groupId}/x', payload: 'x' }, /uses \$\{groupId\}, which this connection does not define/],
      [{ action: 'reboot' }, /Unknown msg.action 'reboot'/],
    ];
    for (const [msg] of cases) send('out', msg);
    await waitFor(() => caught.length === cases.length, `${cases.length} caught errors`);
    cases.forEach(([, pattern], i) => assert.match((caught[i] as NodeMessage & { error: { message: string } }).error.message, pattern));
    send('out', { topic: `${data}/ok`, payload: Buffer.alloc(256 * 1024) });
    send('out', { topic: `${data}/ok`, payload: SENTINEL });
    await waitFor(() => received.some(isSentinel), 'the sentinel');
    assert.equal(received[0].topic, `${data}/ok`, 'the largest allowed payload');
    assert.equal(withoutSentinel(received).length, 1, 'none of the bad messages went out');
  });

  it('ApsaraMQ limits: 64 KB payloads and 64-character topics', async function () {
    const connection = mqConnection('conn', env.sim, 'dev01', 'signature', { accessKeyId: 'AK', accessKeySecret: 'SK' });
    await deploy(
      [connection.node, ...CATCH_ALL, { id: 'out', type: 'aliyun-iot-out', connection: 'conn', topic: '', qos: '1', retain: '' }],
      connection.credentials,
    );
    const caught = collect('caught');
    await waitForStatus('out', 'connected');
    send('out', { topic: 'parent/big', payload: Buffer.alloc(64 * 1024 + 1) });
    send('out', { topic: `parent/${'x'.repeat(58)}`, payload: 'x' });
    await waitFor(() => caught.length === 2, 'two caught errors');
    const messages = caught.map((msg) => (msg as NodeMessage & { error: { message: string } }).error.message);
    assert.match(messages[0], /65537 bytes, more than the service's limit of 65536/);
    assert.match(messages[1], /longer than 64 characters/);
  });
});

describe('nodes: subscriptions on one connection', function () {
  const env = simulatorAndRuntime();

  const data = `/${PK}/dev01/user/data`;

  it('overlapping filters of two nodes: one SUBSCRIBE each, one copy per node', async function () {
    const connection = iotConnection('conn', env.sim, 'dev01');
    await deploy(
      [
        connection.node,
        { id: 'wide', type: 'aliyun-iot-in', connection: 'conn', topic: `${data}/#`, qos: '1', datatype: 'utf8', wires: [['wideOut']] },
        {
          id: 'narrow',
          type: 'aliyun-iot-in',
          connection: 'conn',
          topic: `${data}/+/temp`,
          qos: '0',
          datatype: 'utf8',
          wires: [['narrowOut']],
        },
        {
          id: 'same',
          type: 'aliyun-iot-in',
          connection: 'conn',
          topic: `${data}/+/temp`,
          qos: '1',
          datatype: 'utf8',
          wires: [['sameOut']],
        },
        { id: 'out', type: 'aliyun-iot-out', connection: 'conn', topic: '', qos: '1', retain: '' },
        { id: 'wideOut', type: 'helper' },
        { id: 'narrowOut', type: 'helper' },
        { id: 'sameOut', type: 'helper' },
      ],
      connection.credentials,
    );
    const [wide, narrow, same] = ['wideOut', 'narrowOut', 'sameOut'].map(collect);
    const subscribed: string[] = [];
    env.sim.on('subscribe', ({ topics }) => subscribed.push(...topics));
    await waitForStatus('out', 'connected');
    await waitFor(() => subscribed.length === 2, 'the SUBSCRIBEs');
    assert.deepEqual(subscribed.sort(), [`${data}/#`, `${data}/+/temp`]);
    send('out', { topic: `${data}/room1/temp`, payload: '22' });
    send('out', { topic: `${data}/room1/humidity`, payload: '40' });
    send('out', { topic: `${data}/room1/temp`, payload: SENTINEL });
    await waitFor(() => [wide, narrow, same].every((received) => received.some(isSentinel)), 'the sentinel on every node');
    assert.deepEqual(
      wide.map((msg) => msg.payload),
      ['22', '40', SENTINEL],
    );
    assert.deepEqual(
      narrow.map((msg) => msg.payload),
      ['22', SENTINEL],
    );
    assert.deepEqual(
      same.map((msg) => msg.payload),
      ['22', SENTINEL],
    );
  });

  it('dynamic: subscribe, one copy for two matching filters, getSubscriptions, unsubscribe', async function () {
    const connection = iotConnection('conn', env.sim, 'dev01');
    await deploy(
      [
        connection.node,
        {
          id: 'in',
          type: 'aliyun-iot-in',
          connection: 'conn',
          topic: '',
          qos: '1',
          datatype: 'utf8',
          dynamic: true,
          wires: [['received']],
        },
        { id: 'out', type: 'aliyun-iot-out', connection: 'conn', topic: '', qos: '1', retain: '' },
        { id: 'received', type: 'helper' },
      ],
      connection.credentials,
    );
    const received = collect('received');
    await waitForStatus('in', 'connected');
    assert.deepEqual(connectionOfNode('conn').brokerSubscriptions, []);
    const subscribed = Promise.all([`${data}/#`, `${data}/+/temp`].map((filter) => waitForSubscribed(env.sim, CLIENT_ID, filter)));
    send('in', { action: 'subscribe', topic: ['/${productKey}/${deviceName}/user/data/#', { topic: `${data}/+/temp`, qos: 0 }] });
    await subscribed;
    assert.equal(connectionOfNode('conn').brokerSubscriptions.length, 2, 'two subscriptions');
    send('out', { topic: `${data}/room1/temp`, payload: 'once' });
    send('out', { topic: `${data}/room1/temp`, payload: SENTINEL });
    await waitFor(() => received.some(isSentinel), 'the sentinel');
    assert.deepEqual(
      received.map((msg) => msg.payload),
      ['once', SENTINEL],
      'one copy of each although two filters match',
    );
    received.splice(0);

    send('in', { action: 'getSubscriptions' });
    await waitFor(() => received.length === 1, 'the subscription list');
    assert.equal(received[0].topic, 'subscriptions');
    assert.deepEqual(received[0].payload, [
      { topic: `${data}/#`, qos: 1 },
      { topic: `${data}/+/temp`, qos: 0 },
    ]);

    send('in', { action: 'unsubscribe', topic: `${data}/#` });
    send('out', { topic: `${data}/room1/humidity`, payload: 'not subscribed' });
    send('out', { topic: `${data}/room2/temp`, payload: 'still subscribed' });
    await waitFor(() => received.length === 2, 'the message on the remaining filter');
    assert.equal(received[1].payload, 'still subscribed');
    const unsubscribed = waitForUnsubscribed(env.sim, CLIENT_ID, `${data}/+/temp`);
    send('in', { action: 'unsubscribe', topic: true });
    await unsubscribed;
    assert.deepEqual(connectionOfNode('conn').brokerSubscriptions, [], 'no subscriptions');
    // Published and acknowledged (the broker routes a QoS 1 message before its PUBACK), then subscribed again: the
    // sentinel comes after anything the broker would have routed to the old subscriptions.
    await new Promise<void>((resolve, reject) =>
      connectionOfNode('conn').publish(`${data}/room3/temp`, 'nobody', { qos: 1 }, (err) => (err ? reject(err) : resolve())),
    );
    const resubscribed = waitForSubscribed(env.sim, CLIENT_ID, `${data}/#`);
    send('in', { action: 'subscribe', topic: `${data}/#` });
    await resubscribed;
    send('out', { topic: `${data}/room3/temp`, payload: SENTINEL });
    await waitFor(() => received.some(isSentinel), 'the sentinel');
    assert.deepEqual(
      received.slice(1).map((msg) => msg.payload),
      ['still subscribed', SENTINEL],
      'nothing arrived while unsubscribed',
    );
  });

  it('dynamic: a bad entry leaves the subscriptions unchanged; unknown actions fail', async function () {
    const connection = iotConnection('conn', env.sim, 'dev01');
    await deploy(
      [
        connection.node,
        ...CATCH_ALL,
        { id: 'in', type: 'aliyun-iot-in', connection: 'conn', topic: '', qos: '0', datatype: 'utf8', dynamic: true, wires: [[]] },
      ],
      connection.credentials,
    );
    const caught = collect('caught');
    await waitForStatus('in', 'connected');
    send('in', { action: 'subscribe', topic: [`${data}/a`, { qos: 1 }] });
    send('in', { action: 'subscribe', topic: [`${data}/fine`, `${data}/a/#/b`] });
    send('in', { action: 'subscribe', topic: 42 });
    send('in', { action: 'subscribe', topic: { topic: `${data}/q`, qos: 2 } });
    send('in', { action: 'explode' });
    await waitFor(() => caught.length === 5, 'five caught errors');
    const messages = caught.map((msg) => (msg as NodeMessage & { error: { message: string } }).error.message);
    assert.match(messages[0], /msg.topic must name the subscription/);
    assert.match(messages[1], /is not a valid MQTT topic filter/);
    assert.match(messages[2], /msg.topic must name the subscription/);
    assert.match(messages[3], /QoS 2 is not supported/);
    assert.match(messages[4], /Unknown msg.action 'explode'/);
    assert.deepEqual(connectionOfNode('conn').brokerSubscriptions, []);
  });

  it('decodes payloads per datatype; invalid JSON with datatype json is a catchable error', async function () {
    const connection = iotConnection('conn', env.sim, 'dev01');
    const inNode = (id: string, datatype: string): FlowNode => ({
      id,
      type: 'aliyun-iot-in',
      connection: 'conn',
      topic: `${data}/t`,
      qos: '0',
      datatype,
      wires: [[`${id}Out`]],
    });
    const types = ['auto-detect', 'json', 'utf8', 'buffer', 'base64'];
    await deploy(
      [
        connection.node,
        ...CATCH_ALL,
        ...types.map((type) => inNode(type, type)),
        ...types.map((type) => ({ id: `${type}Out`, type: 'helper' })),
        { id: 'out', type: 'aliyun-iot-out', connection: 'conn', topic: `${data}/t`, qos: '1', retain: '' },
      ],
      connection.credentials,
    );
    const outputs = Object.fromEntries(types.map((type) => [type, collect(`${type}Out`)]));
    const caught = collect('caught');
    await waitForStatus('out', 'connected');
    send('out', { payload: { a: 1 } });
    send('out', { payload: 'plain text' });
    send('out', { payload: Buffer.from([0xff, 0x00, 0xfe]) });
    await waitFor(() => outputs.buffer.length === 3, 'three messages');
    await waitFor(() => caught.length === 2, 'two JSON errors');
    assert.deepEqual(
      outputs['auto-detect'].map((msg) => msg.payload),
      [{ a: 1 }, 'plain text', Buffer.from([0xff, 0x00, 0xfe])],
    );
    assert.deepEqual(
      outputs.json.map((msg) => msg.payload),
      [{ a: 1 }],
    );
    assert.deepEqual(outputs.utf8.map((msg) => msg.payload).slice(0, 2), ['{"a":1}', 'plain text']);
    assert.deepEqual(
      outputs.base64.map((msg) => msg.payload),
      ['eyJhIjoxfQ==', 'cGxhaW4gdGV4dA==', '/wD+'],
    );
    assert.ok(caught.every((msg) => /not valid JSON/.test((msg as NodeMessage & { error: { message: string } }).error.message)));
    assert.ok(Buffer.isBuffer(caught[0].payload), 'the error carries the raw payload');
  });
});

describe('nodes: lifecycle', function () {
  const env = simulatorAndRuntime();

  function flow(inName: string): FlowNode[] {
    return echoFlow(iotConnection('conn', env.sim, 'dev01').node, { inNode: { name: inName } });
  }

  it('redeploys keep one connection per config node and deliver each message once', async function () {
    const credentials = iotConnection('conn', env.sim, 'dev01').credentials;
    let logins = 0;
    env.sim.on('login', () => logins++);
    await deploy(flow('v0'), credentials);
    await waitForStatus('in', 'connected');
    for (let i = 1; i <= 6; i++) {
      await redeploy(flow(`v${i}`), i % 2 === 0 ? 'full' : 'nodes', credentials);
      await waitForStatus('in', 'connected');
      assert.equal(env.sim.connectedClients, 1, `one connection after redeploy ${i}`);
    }
    assert.equal(logins, 4, 'the modified-nodes deploys reuse the connection; full deploys reconnect');
    const received = collect('received');
    send('out', { payload: 'after redeploys' });
    send('out', { payload: SENTINEL });
    await waitFor(() => received.some(isSentinel), 'the sentinel');
    assert.deepEqual(
      received.map((msg) => msg.payload),
      ['after redeploys', SENTINEL],
      'each delivered once',
    );
    assert.deepEqual(connectionOfNode('conn').brokerSubscriptions, [`/${PK}/dev01/user/echo`]);
  });

  it('closes within 2 s, connected or still trying to connect', async function () {
    const unreachable = iotConnection('dead', env.sim, 'dev01', { port: '1' });
    await deploy(
      [...flow('x'), unreachable.node, { id: 'deadOut', type: 'aliyun-iot-out', connection: 'dead', topic: '/x', qos: '1', retain: '' }],
      { ...iotConnection('conn', env.sim, 'dev01').credentials, ...unreachable.credentials },
    );
    await waitForStatus('in', 'connected');
    send('out', { payload: 'in flight at close', qos: 1 });
    const start = Date.now();
    await helper.unload();
    assert.ok(Date.now() - start < 2000, `closed in ${Date.now() - start} ms`);
    await waitFor(() => env.sim.connectedClients === 0, 'the simulator to see the client go');
  });

  it('queues publishes while offline, fails the excess, and delivers the queue in order after reconnect', async function () {
    this.timeout(20_000);
    const port = env.sim.port;
    const logins: string[] = [];
    env.sim.on('login', (client) => logins.push(client.id));
    const connection = iotConnection('conn', env.sim, 'dev01', { queueSize: 3 });
    await deploy(
      [
        ...echoFlow(connection.node),
        ...CATCH_ALL,
        { id: 'complete', type: 'complete', scope: ['out'], uncaught: false, wires: [['completed']] },
        { id: 'completed', type: 'helper' },
      ],
      connection.credentials,
    );
    const [received, completed, caught] = ['received', 'completed', 'caught'].map(collect);
    await waitForStatus('in', 'connected');
    await env.sim.stop();
    await waitForStatus('in', 'disconnected');
    for (const payload of ['one', 'two', 'three', 'four']) send('out', { payload });
    await waitFor(() => caught.length === 1, 'the overflow error');
    assert.match((caught[0] as NodeMessage & { error: { message: string } }).error.message, /offline queue is full \(3 messages\)/);
    assert.equal(caught[0].payload, 'four');
    assert.equal(completed.length, 0, 'queued messages are not done before they are acknowledged');
    env.sim = await startTestSimulator({ port });
    env.sim.on('login', (client) => logins.push(client.id));
    await waitFor(() => received.length === 3, 'the queued messages', 10_000);
    const timestamps = logins.map((clientId) => Number(/timestamp=(\d+)/.exec(clientId)?.[1]));
    assert.equal(timestamps.length, 2);
    assert.ok(timestamps[1] > timestamps[0], 'the reconnect signs again with a fresh timestamp');
    assert.deepEqual(
      received.map((msg) => msg.payload),
      ['one', 'two', 'three'],
    );
    await waitFor(() => completed.length === 3, 'done() for each queued message');
  });
});

describe('nodes: transports and peers', function () {
  const env = simulatorAndRuntime({ wsPort: 0 });

  for (const [mode, protocol] of [
    ['iot', 'ws'],
    ['mq', 'ws'],
  ] as const) {
    it(`${mode} over WebSocket`, async function () {
      const connection =
        mode === 'iot'
          ? iotConnection('conn', env.sim, 'dev01', { protocol, port: String(env.sim.wsPort) })
          : mqConnection(
              'conn',
              env.sim,
              'dev01',
              'signature',
              { accessKeyId: 'AK', accessKeySecret: 'SK' },
              { protocol, port: String(env.sim.wsPort) },
            );
      await deploy(echoFlow(connection.node, { topic: mode === 'iot' ? ECHO_TOPIC : 'parent/ws' }), connection.credentials);
      const received = collect('received');
      await waitForStatus('in', 'connected');
      send('out', { payload: 'over websocket' });
      await waitFor(() => received.length === 1, 'the message');
      assert.equal(received[0].payload, 'over websocket');
    });
  }

  it('the official device SDK (as dev01) and our nodes (as dev02) exchange messages', async function () {
    const connection = iotConnection('conn', env.sim, 'dev02');
    await deploy(
      [
        connection.node,
        {
          id: 'in',
          type: 'aliyun-iot-in',
          connection: 'conn',
          topic: '/${productKey}/dev01/user/fanout',
          qos: '1',
          datatype: 'utf8',
          wires: [['received']],
        },
        { id: 'out', type: 'aliyun-iot-out', connection: 'conn', topic: '/${productKey}/${deviceName}/user/fanout', qos: '1', retain: '' },
        { id: 'received', type: 'helper' },
      ],
      connection.credentials,
    );
    const received = collect('received');
    const device = sdkDevice(env.sim, 'dev01');
    const heard: Array<[string, string]> = [];
    device.on('message', (topic, payload) => heard.push([String(topic), String(payload)]));
    await new Promise<void>((resolve) => device.on('connect', () => resolve()));
    await new Promise<void>((resolve) => device.subscribe(`/${PK}/dev02/user/fanout`, { qos: 1 }, () => resolve()));
    await waitForStatus('in', 'connected');
    device.publish(`/${PK}/dev01/user/fanout`, 'from the sdk');
    send('out', { payload: 'from node-red' });
    await waitFor(() => received.length === 1 && heard.length === 1, 'a message each way');
    assert.equal(received[0].payload, 'from the sdk');
    assert.deepEqual(heard[0], [`/${PK}/dev02/user/fanout`, 'from node-red']);
    await endSdkDevice(device);
  });
});
