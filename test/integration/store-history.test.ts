// The queue against the simulator: property posts that waited past historyAfter go as history posts (a device's own,
// and a gateway's for its sub-devices through identity), a gateway's sub-device posts made offline survive a restart
// in the disk queue, and the replay keeps to maxRate as the simulator receives it.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ConnectionLogger,
  ConnectionSettings,
  DeviceConnection,
  PostClient,
  PostResult,
  SubDeviceManager,
  SubDeviceManagerOptions,
  SubDeviceStatus,
  postClientOf,
  resolveConnection,
} from '../../nodes/lib/connection';
import { LogMessage } from '../../nodes/lib/errors';
import { Device, METHODS, buildLogout, thingTopics } from '../../nodes/lib/protocol';
import { Simulator } from '../../sim';
import { GW01, GW_PK, SUB_PK, startGatewaySimulator, subDevice, subName } from '../support/gateway-fixtures';
import { admin, startTestSimulator, waitFor } from '../support/helpers';
import { PK, deviceSecret } from '../support/registry';

const quiet: ConnectionLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const HISTORY_AFTER_S = 0.2;
const DEV01: Device = { productKey: PK, deviceName: 'dev01' };

function connectionOf(
  settings: Partial<ConnectionSettings> & Pick<ConnectionSettings, 'productKey' | 'deviceName'>,
  sim: Simulator,
  dir?: string,
  log: ConnectionLogger = quiet,
) {
  const connection = new DeviceConnection(
    resolveConnection({ mode: 'iot', protocol: 'mqtt', host: '127.0.0.1', port: sim.port, ...settings } as ConnectionSettings),
    log,
    { networkBaseMs: 50 },
    dir,
  );
  connection.register({ onStatus: () => undefined });
  return connection;
}

function close(connection: DeviceConnection): Promise<void> {
  return new Promise((resolve) => connection.close(resolve));
}

function disconnect(connection: DeviceConnection): Promise<void> {
  return new Promise((resolve) => connection.disconnect(resolve));
}

/** Posts and resolves with the outcome: its result, or its error. */
function post(client: PostClient, params: Record<string, unknown>, ack = true): Promise<{ error?: Error; result?: PostResult }> {
  return new Promise((resolve) => client.post({ kind: 'property', params, ack }, 10_000, (error, result) => resolve({ error, result })));
}

/** Resolves once `ms` have passed since `since`: a post's age is what historyAfter looks at. */
function olderThan(since: number, ms: number): Promise<void> {
  return waitFor(() => Date.now() - since > ms, `${ms} ms of waiting in the queue`);
}

describe('store: history posts and the queue at the simulator', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aliyun-iot-history-'));
  });
  afterEach(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const queueStore of ['memory', 'disk'] as const) {
    it(`sends property posts that waited past historyAfter as one history post with their times (${queueStore} queue)`, async function () {
      const sim = await startTestSimulator();
      const connection = connectionOf(
        {
          productKey: PK,
          deviceName: 'dev01',
          historyAfter: String(HISTORY_AFTER_S),
          queueStore,
          credentials: { deviceSecret: deviceSecret('dev01') },
        },
        sim,
        dir,
      );
      try {
        const client = postClientOf(connection);
        client.attach();
        await waitFor(() => connection.connected, 'connected');
        await disconnect(connection);
        const earlier = Date.now() - 60_000;
        const before = Date.now();
        const stale = [
          post(client, { temperature: 20 }),
          post(client, { temperature: { value: 21, time: earlier } }),
          post(client, { humidity: 50 }),
        ];
        const after = Date.now();
        await waitFor(() => connection.queuedCount === 3, 'queued');
        await olderThan(after, HISTORY_AFTER_S * 1000);
        const fresh = post(client, { humidity: 51 });
        const methods: string[] = [];
        sim.on('post', (info) => methods.push(info.method ?? ''));
        connection.connect();
        const outcomes = await Promise.all(stale);
        for (const { error, result } of outcomes) {
          assert.equal(error, undefined);
          assert.equal(result?.reply?.code, 200);
          assert.equal(result?.method, METHODS.propertyPost);
          assert.equal(result?.history?.method, METHODS.historyPost);
        }
        assert.equal(new Set(outcomes.map(({ result }) => result?.history?.id)).size, 1, 'one history post for the three');
        const last = await fresh;
        assert.equal(last.result?.reply?.code, 200);
        assert.equal(last.result?.history, undefined, 'a post that did not wait long goes as it is');
        assert.deepEqual(methods, [METHODS.historyPost, METHODS.propertyPost]);
        const { history } = await admin<{ history: Array<{ name: string; value: unknown; time: number }> }>(
          sim,
          'GET',
          `/devices/${PK}/dev01/properties/history`,
        );
        assert.deepEqual(
          history.map(({ name, value }) => [name, value]),
          [
            ['temperature', 21],
            ['temperature', 20],
            ['humidity', 50],
          ],
        );
        assert.equal(history[0].time, earlier, 'a value with its own time keeps it');
        for (const entry of history.slice(1))
          assert.ok(entry.time >= before && entry.time <= after, 'the others have the time they were posted at');
        // The fresh post's value is the last one; the history's older values did not overwrite it.
        assert.equal(sim.platform.propertiesOf(DEV01).humidity.value, 51);
      } finally {
        await close(connection);
        await sim.stop();
      }
    });
  }

  it('the simulator refuses history more than 24 h ahead with 6326 and history for another device with 6401', async function () {
    const sim = await startTestSimulator();
    const connection = connectionOf({ productKey: PK, deviceName: 'dev02', credentials: { deviceSecret: deviceSecret('dev02') } }, sim);
    try {
      await waitFor(() => connection.connected, 'connected');
      const replies: Array<{ id: string; code: number }> = [];
      const receiver = {
        onMessage: (_topic: string, payload: Buffer) => replies.push(JSON.parse(payload.toString())),
        onSubscribeError: () => undefined,
      };
      const own = { productKey: PK, deviceName: 'dev02' };
      connection.subscribe(receiver, thingTopics.replyTo(thingTopics.historyPost(own)), 1);
      const send = (id: string, identity: Device, time: number): Promise<void> =>
        new Promise((resolve, reject) =>
          connection.publish(
            thingTopics.historyPost(own),
            JSON.stringify({
              id,
              version: '1.0',
              method: METHODS.historyPost,
              params: [{ identity, properties: [{ n: { value: 1, time } }] }],
            }),
            { qos: 1 },
            (error) => (error ? reject(error) : resolve()),
          ),
        );
      await waitFor(() => connection.brokerSubscriptions.length > 0, 'subscribed');
      await send('1', own, Date.now() + 25 * 3600 * 1000);
      await send('2', DEV01, Date.now());
      await send('3', own, Date.now() + 3600 * 1000);
      await waitFor(() => replies.length === 3, 'three replies');
      assert.deepEqual(
        replies.map(({ id, code }) => [id, code]),
        [
          ['1', 6326],
          ['2', 6401],
          ['3', 200],
        ],
      );
      assert.equal(sim.platform.historyOf(own).length, 1);
    } finally {
      await close(connection);
      await sim.stop();
    }
  });

  for (const historyAfter of ['', String(HISTORY_AFTER_S)]) {
    const as = historyAfter ? 'as history posts through identity' : 'as property posts once the sub-devices are online again';
    it(`keeps sub-device posts made while the gateway is offline on disk across a restart and sends them in order, ${as}`, async function () {
      const sim = await startGatewaySimulator();
      const settings = {
        productKey: GW_PK,
        deviceName: 'gw01',
        queueStore: 'disk',
        historyAfter,
        maxRate: '0',
        credentials: { deviceSecret: 'gw-secret-gw01' },
      };
      const subs = [1, 2].map((index) => ({ productKey: SUB_PK, deviceName: subName(index) }));
      const start = (): { connection: DeviceConnection; manager: SubDeviceManager; clients: PostClient[] } => {
        const connection = connectionOf(settings, sim, dir);
        const manager = new SubDeviceManager(connection, { timeoutMs: 2000, logoutGraceMs: 50 });
        manager.attach();
        const statuses = { onStatus: (_device: Device, _status: SubDeviceStatus) => undefined };
        for (const index of [1, 2]) manager.add(subDevice(index), statuses);
        const clients = subs.map((sub) => manager.postClientOf(sub));
        for (const client of clients) client.attach();
        return { connection, manager, clients };
      };
      let run = start();
      try {
        await waitFor(() => sim.onlineSubDevices(GW01).length === 2, 'the sub-devices online');
        await disconnect(run.connection);
        const count = 20;
        // Without a reply to wait for, a post is done once it is stored.
        const stored = await Promise.all(Array.from({ length: count }, (_, i) => post(run.clients[i % 2], { n: i }, false)));
        assert.deepEqual(
          stored.map(({ error }) => error),
          Array.from({ length: count }, () => undefined),
        );
        assert.equal(run.connection.queuedCount, count);
        await close(run.connection);
        if (historyAfter) await olderThan(Date.now(), HISTORY_AFTER_S * 1000);
        const seen: Array<{ topic: string; method?: string; params?: unknown }> = [];
        sim.on('post', (info) => seen.push(info));
        run = start();
        await waitFor(() => run.connection.queuedCount === 0 && seen.length > 0, 'the replay', 10_000);
        const values = (sub: Device): unknown[] =>
          historyAfter
            ? sim.platform.historyOf(sub).map(({ value }) => value)
            : seen.filter((info) => info.topic === thingTopics.propertyPost(sub)).map((info) => (info.params as { n: number }).n);
        assert.deepEqual(
          values(subs[0]),
          Array.from({ length: count / 2 }, (_, i) => 2 * i),
        );
        assert.deepEqual(
          values(subs[1]),
          Array.from({ length: count / 2 }, (_, i) => 2 * i + 1),
        );
        if (historyAfter) {
          assert.ok(seen.every((info) => info.method === METHODS.historyPost && info.topic === thingTopics.historyPost(GW01)));
          assert.ok(seen.length < count, `${seen.length} history posts for ${count} posts`);
        } else {
          assert.equal(seen.length, count);
          assert.deepEqual(
            seen.map((info) => (info.params as { n: number }).n),
            Array.from({ length: count }, (_, i) => i),
            'in the order they were made',
          );
        }
      } finally {
        await close(run.connection);
        await sim.stop();
      }
    });
  }

  /** The gateway gw01 on a disk queue in `dir`, as after a (re)start: its connection and sub-device manager. */
  function gatewayOnDisk(sim: Simulator, options: SubDeviceManagerOptions = {}, log?: ConnectionLogger) {
    const settings = {
      productKey: GW_PK,
      deviceName: 'gw01',
      queueStore: 'disk',
      maxRate: '0',
      credentials: { deviceSecret: 'gw-secret-gw01' },
    };
    const connection = connectionOf(settings, sim, dir, log);
    const manager = new SubDeviceManager(connection, { timeoutMs: 2000, logoutGraceMs: 50, ...options });
    manager.attach();
    return { connection, manager };
  }

  /** gw01's sub-devices 1 and 2 posted `count` property posts (n: 0, 1, …) into its disk queue while it was offline. */
  async function storedSubDevicePosts(sim: Simulator, count: number): Promise<void> {
    const { connection, manager } = gatewayOnDisk(sim);
    try {
      const statuses = { onStatus: (_device: Device, _status: SubDeviceStatus) => undefined };
      for (const index of [1, 2]) manager.add(subDevice(index), statuses);
      const clients = [1, 2].map((index) => manager.postClientOf({ productKey: SUB_PK, deviceName: subName(index) }));
      for (const client of clients) client.attach();
      await waitFor(() => sim.onlineSubDevices(GW01).length === 2, 'the sub-devices online');
      await disconnect(connection);
      const stored = await Promise.all(Array.from({ length: count }, (_, i) => post(clients[i % 2], { n: i }, false)));
      assert.deepEqual(
        stored.map(({ error }) => error),
        Array.from({ length: count }, () => undefined),
      );
    } finally {
      await close(connection);
    }
  }

  it('after a restart, stored posts of sub-devices logged in only once the gateway is up wait for their login, in order, none lost', async function () {
    const sim = await startGatewaySimulator();
    const count = 20;
    await storedSubDevicePosts(sim, count);
    const seen: number[] = [];
    sim.on('post', (info) => seen.push((info.params as { n: number }).n));
    // As after a restart with a gateway node's login action: nothing has taken the sub-devices when the store is back.
    const { connection, manager } = gatewayOnDisk(sim);
    try {
      await waitFor(() => connection.connected, 'connected');
      assert.equal(connection.queuedCount, count, 'nothing sent for sub-devices nobody has taken yet');
      const statuses = { onStatus: (_device: Device, _status: SubDeviceStatus) => undefined };
      for (const index of [1, 2]) manager.add(subDevice(index), statuses);
      await waitFor(() => seen.length === count, 'every stored post at the platform', 10_000);
      assert.deepEqual(
        seen,
        Array.from({ length: count }, (_, i) => i),
        'in the order they were made',
      );
      for (const index of [1, 2]) {
        const sub = { productKey: SUB_PK, deviceName: subName(index) };
        assert.equal(sim.platform.propertiesOf(sub).n.value, count - 3 + index, `${subName(index)} has its last value`);
      }
    } finally {
      await close(connection);
      await sim.stop();
    }
  });

  it('stored posts of a sub-device nobody takes wait the claim time, then go with one warning, and the queue behind them flows', async function () {
    const sim = await startGatewaySimulator();
    await storedSubDevicePosts(sim, 4);
    const warnings: LogMessage[] = [];
    const { connection } = gatewayOnDisk(sim, { claimWaitMs: 300 }, { ...quiet, warn: (message) => warnings.push(message) });
    const gatewayTopic = `/${GW_PK}/gw01/user/update`;
    const own: string[] = [];
    sim.on('message', (info) => {
      if (info.topic === gatewayTopic) own.push(info.payload.toString());
    });
    try {
      await new Promise<void>((resolve, reject) =>
        connection.publish(gatewayTopic, 'behind the stored posts', { qos: 1 }, (error) => (error ? reject(error) : resolve())),
      );
      await waitFor(() => connection.connected, 'connected');
      await waitFor(() => own.length === 1, "the gateway's own message, once the claim time is over", 10_000);
      await waitFor(() => connection.queuedCount === 0, 'the queue emptied at the PUBACKs');
      assert.deepEqual(
        warnings.map((warning) => [warning.code, warning.params.device]),
        [1, 2].map((index) => ['SUBDEVICE_STORED_UNCLAIMED', `${SUB_PK}/${subName(index)}`]),
        'one warning for each sub-device',
      );
    } finally {
      await close(connection);
      await sim.stop();
    }
  });

  it('after a restart, a stored post refused with 520 as it left the store goes once more after the re-login', async function () {
    const sim = await startGatewaySimulator();
    await storedSubDevicePosts(sim, 2);
    let seen = 0;
    sim.on('post', () => seen++);
    const { connection, manager } = gatewayOnDisk(sim);
    const sub1 = { productKey: SUB_PK, deviceName: subName(1) };
    let sessionLost = false;
    try {
      manager.add(subDevice(1), {
        // The platform loses the session as the store starts to leave: a logout sent past the manager, ahead of it.
        onStatus: (_device, status) => {
          if (status.state !== 'online' || sessionLost) return;
          sessionLost = true;
          const logout = buildLogout(GW01, 'lost', [sub1]);
          connection.publish(logout.topic, logout.payload, { qos: 0, control: true }, () => undefined);
        },
      });
      manager.add(subDevice(2), { onStatus: () => undefined });
      await waitFor(() => seen === 2, 'both stored posts at the platform', 10_000);
      assert.ok(sessionLost);
      assert.equal(sim.platform.propertiesOf(sub1).n.value, 0, "sub-device 1's stored post, sent again after its 520");
      assert.equal(sim.platform.propertiesOf({ productKey: SUB_PK, deviceName: subName(2) }).n.value, 1);
    } finally {
      await close(connection);
      await sim.stop();
    }
  });

  it('replays a stored backlog no faster than maxRate, as the simulator receives it', async function () {
    const sim = await startTestSimulator();
    const rate = 20;
    const count = 40;
    const topic = `/${PK}/dev03/user/update`;
    const settings = {
      productKey: PK,
      deviceName: 'dev03',
      queueStore: 'disk',
      maxRate: String(rate),
      credentials: { deviceSecret: deviceSecret('dev03') },
    };
    let connection = connectionOf(settings, sim, dir);
    try {
      await waitFor(() => connection.connected, 'connected');
      await disconnect(connection);
      await Promise.all(
        Array.from(
          { length: count },
          (_, i) =>
            new Promise<void>((resolve, reject) =>
              connection.publish(topic, String(i), { qos: 1 }, (error) => (error ? reject(error) : resolve())),
            ),
        ),
      );
      await close(connection);
      const times: number[] = [];
      const payloads: string[] = [];
      sim.on('message', (info) => {
        if (info.topic !== topic) return;
        times.push(performance.now());
        payloads.push(info.payload.toString());
      });
      connection = connectionOf(settings, sim, dir);
      await waitFor(() => times.length === count, 'the replay', 10_000);
      assert.deepEqual(
        payloads,
        Array.from({ length: count }, (_, i) => String(i)),
      );
      let busiest = 0;
      for (const start of times) busiest = Math.max(busiest, times.filter((t) => t >= start && t < start + 1000).length);
      assert.ok(busiest <= rate + 1, `${busiest} messages in one second`);
      const seconds = (times[times.length - 1] - times[0]) / 1000;
      assert.ok((count - 1) / seconds <= rate * 1.02, `average ${((count - 1) / seconds).toFixed(1)} msg/s`);
    } finally {
      await close(connection);
      await sim.stop();
    }
  });
});
