import { strict as assert } from 'node:assert';
import { ConnectionLogger, ConnectionStatus, DeviceConnection, resolveConnection } from '../../nodes/lib/connection';
import { Simulator } from '../../sim';
import { startTestSimulator, waitFor, waitForSubscribed, waitForUnsubscribed } from '../support/helpers';
import { TEST_RECONNECT_POLICY } from '../support/reconnect';
import { PK, deviceSecret } from '../support/registry';

const quiet: ConnectionLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

function deviceConnection(sim: Simulator, deviceName: string, log = quiet, clientId?: string): DeviceConnection {
  return new DeviceConnection(
    resolveConnection({
      mode: 'iot',
      productKey: PK,
      deviceName,
      clientId,
      protocol: 'mqtt',
      host: '127.0.0.1',
      port: sim.port,
      credentials: { deviceSecret: deviceSecret(deviceName) },
    }),
    log,
    { ...TEST_RECONNECT_POLICY, shortSessionMs: 5000, unsubscribeGraceMs: 100 },
  );
}

function close(...connections: DeviceConnection[]): Promise<void[]> {
  return Promise.all(connections.map((connection) => new Promise<void>((resolve) => connection.close(resolve))));
}

describe('connection core', function () {
  let sim: Simulator;
  beforeEach(async function () {
    sim = await startTestSimulator();
  });
  afterEach(async function () {
    await sim.stop();
  });

  it('recognises being knocked off by another login of the same device and says so', async function () {
    const warnings: string[] = [];
    const statuses: ConnectionStatus[] = [];
    const first = deviceConnection(sim, 'dev01', { ...quiet, warn: (message) => warnings.push(message.text) }, 'program-a');
    const second = deviceConnection(sim, 'dev01', quiet, 'program-b');
    first.register({ onStatus: (status) => statuses.push(status) });
    await waitFor(() => first.connected, 'the first connection');
    second.register({ onStatus: () => undefined });
    await waitFor(() => statuses.some((status) => status.state === 'kicked'), 'the kicked status', 8000);
    assert.equal(statuses.find((status) => status.state === 'kicked')?.reason, 'kicked');
    assert.match(
      warnings[0],
      /another program is probably logged in as the same device \(the platform keeps one connection per device, whatever its client ID\)/,
    );
    await close(first, second);
  });

  it('ends the client when its last user is removed and reconnects for a new user', async function () {
    const connection = deviceConnection(sim, 'dev01');
    const user = { onStatus: () => undefined };
    connection.register(user);
    await waitFor(() => connection.connected, 'connected');
    connection.deregister(user, false);
    assert.ok(connection.connected, 'a redeployed (not removed) user keeps the connection');
    connection.register(user);
    connection.deregister(user, true);
    await waitFor(() => connection.status.state === 'idle' && sim.connectedClients === 0, 'idle');
    connection.register(user);
    await waitFor(() => connection.connected, 'connected again');
    await close(connection);
    assert.equal(connection.status.state, 'closed');
  });

  it("a redeployed owner's filter stays subscribed for its successor; a removed one is unsubscribed", async function () {
    const connection = deviceConnection(sim, 'dev01');
    const traffic: string[] = [];
    sim.on('subscribe', ({ topics }) => traffic.push(...topics.map((topic) => `SUBSCRIBE ${topic}`)));
    sim.on('unsubscribe', ({ topics }) => traffic.push(...topics.map((topic) => `UNSUBSCRIBE ${topic}`)));
    const receiver = (): { onMessage(): void; onSubscribeError(): void } => ({
      onMessage: () => undefined,
      onSubscribeError: () => undefined,
    });
    const filter = '/${productKey}/${deviceName}/user/get';
    // A second filter, redeployed without a successor, is the sentinel: its grace started after the first one's
    // successor arrived and lasts as long, so its UNSUBSCRIBE comes after any the first filter would have had.
    const sentinelFilter = '/${productKey}/${deviceName}/user/echo';
    const first = receiver();
    const sentinelOwner = receiver();
    connection.register({ onStatus: () => undefined });
    const subscribed = waitForSubscribed(sim, `${PK}.dev01`, `/${PK}/dev01/user/echo`);
    connection.subscribe(first, filter, 1);
    connection.subscribe(sentinelOwner, sentinelFilter, 1);
    await subscribed;
    connection.unsubscribe(first, filter, false);
    const successor = receiver();
    connection.subscribe(successor, filter, 1);
    const sentinelGone = waitForUnsubscribed(sim, `${PK}.dev01`, `/${PK}/dev01/user/echo`);
    connection.unsubscribe(sentinelOwner, sentinelFilter, false);
    await sentinelGone;
    assert.deepEqual(traffic, [
      `SUBSCRIBE /${PK}/dev01/user/get`,
      `SUBSCRIBE /${PK}/dev01/user/echo`,
      `UNSUBSCRIBE /${PK}/dev01/user/echo`,
    ]);
    const unsubscribed = waitForUnsubscribed(sim, `${PK}.dev01`, `/${PK}/dev01/user/get`);
    connection.unsubscribe(successor, filter, true);
    await unsubscribed;
    assert.equal(traffic[3], `UNSUBSCRIBE /${PK}/dev01/user/get`);
    await close(connection);
  });

  it('an unsubscribe right before a subscribe of the same filter leaves it subscribed (the SUBSCRIBE waits for the UNSUBACK)', async function () {
    const connection = deviceConnection(sim, 'dev01');
    const received: string[] = [];
    const receiver = { onMessage: (topic: string) => received.push(topic), onSubscribeError: () => undefined };
    const filter = '/${productKey}/${deviceName}/user/data/#';
    let subscribes = 0;
    sim.on('subscribe', () => subscribes++);
    connection.register({ onStatus: () => undefined });
    await waitFor(() => connection.connected, 'connected');
    connection.subscribe(receiver, filter, 1);
    await waitFor(() => subscribes === 1, 'the first SUBSCRIBE');
    connection.unsubscribe(receiver, filter, true);
    connection.subscribe(receiver, filter, 1);
    await waitFor(() => subscribes === 2, 'the second SUBSCRIBE');
    await new Promise<void>((resolve, reject) =>
      connection.publish(`/${PK}/dev01/user/data/x`, 'x', { qos: 1 }, (err) => (err ? reject(err) : resolve())),
    );
    await waitFor(() => received.length === 1, 'the message on the renewed subscription');
    await close(connection);
  });
});
