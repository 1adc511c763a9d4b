// The device connection's life cycle under generated sequences of connect, disconnect, publish, register,
// deregister, token uploads and redeploys, with the real mqtt.js client against the simulator.
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import type { Client } from 'aedes';
import { ConnectionLogger, ConnectionUser, DeviceConnection, resolveConnection } from '../../nodes/lib/connection';
import { Simulator } from '../../sim';
import { startTestSimulator, waitFor } from '../support/helpers';
import { MQ_INSTANCE, PK, deviceSecret } from '../support/registry';

const quiet: ConnectionLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const FAST_POLICY = {
  networkBaseMs: 20,
  networkMaxMs: 100,
  refusedBaseMs: 20,
  refusedMaxMs: 100,
  kickedBaseMs: 50,
  closeTimeoutMs: 300,
  tokenConfirmMs: 50,
};

type Action =
  | { kind: 'connect' | 'disconnect' | 'redeploy' }
  | { kind: 'publish'; qos: 0 | 1 }
  | { kind: 'register' | 'deregister'; user: number; removed: boolean }
  | { kind: 'uploadToken'; good: boolean };

interface Scenario {
  mode: 'iot' | 'mq';
  steps: Array<{ action: Action; gapMs: number }>;
}

const actionArbitrary: fc.Arbitrary<Action> = fc.oneof(
  { arbitrary: fc.constantFrom<Action>({ kind: 'connect' }, { kind: 'disconnect' }), weight: 6 },
  { arbitrary: fc.constantFrom<0 | 1>(0, 1).map((qos): Action => ({ kind: 'publish', qos })), weight: 4 },
  {
    arbitrary: fc.record({
      kind: fc.constantFrom<'register' | 'deregister'>('register', 'deregister'),
      user: fc.integer({ min: 0, max: 2 }),
      removed: fc.boolean(),
    }),
    weight: 3,
  },
  { arbitrary: fc.boolean().map((good): Action => ({ kind: 'uploadToken', good })), weight: 2 },
  { arbitrary: fc.constant<Action>({ kind: 'redeploy' }), weight: 1 },
);

/** Gaps of 0 (the same tick), a turn of the event loop, or a few milliseconds. */
const gapArbitrary = fc.oneof(fc.constant(0), fc.constant(1), fc.integer({ min: 2, max: 15 }));

const scenarioArbitrary: fc.Arbitrary<Scenario> = fc.record({
  mode: fc.constantFrom<'iot' | 'mq'>('iot', 'mq'),
  steps: fc.array(fc.record({ action: actionArbitrary, gapMs: gapArbitrary }), { minLength: 1, maxLength: 14 }),
});

interface Counts {
  sequences: number;
  publishes: number;
  callbacks: number;
  doubleCallbacks: number;
  crashes: number;
  kicks: number;
  failures: number;
}

/** Counts uncaught exceptions and unhandled rejections instead of letting mocha (or the process) die of them. */
function trapCrashes(onCrash: (error: unknown) => void): () => void {
  const savedExceptions = process.listeners('uncaughtException');
  const savedRejections = process.listeners('unhandledRejection');
  process.removeAllListeners('uncaughtException');
  process.removeAllListeners('unhandledRejection');
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  return () => {
    process.removeListener('uncaughtException', onCrash);
    process.removeListener('unhandledRejection', onCrash);
    for (const listener of savedExceptions) process.on('uncaughtException', listener);
    for (const listener of savedRejections) process.on('unhandledRejection', listener);
  };
}

function closeConnection(connection: DeviceConnection): Promise<void> {
  return new Promise((resolve) => connection.close(resolve));
}

/** The generated pause between two actions of a sequence (part of the input, not a wait for an event). */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('connection life cycle: generated action sequences', function () {
  let sim: Simulator;
  before(async function () {
    sim = await startTestSimulator();
  });
  after(async function () {
    await sim.stop();
  });

  it('any sequence: no crash, every publish answered once, one session at the end, connected after a final connect', async function () {
    this.timeout(120_000);
    const seed = Number(process.env.FUZZ_SEED ?? 20240611);
    const numRuns = Number(process.env.FUZZ_RUNS ?? 40);
    const counts: Counts = { sequences: 0, publishes: 0, callbacks: 0, doubleCallbacks: 0, crashes: 0, kicks: 0, failures: 0 };
    const crashes: string[] = [];
    const restore = trapCrashes((error) => {
      counts.crashes++;
      crashes.push(error instanceof Error ? `${error.message}\n${error.stack ?? ''}` : String(error));
    });
    let sequence = 0;
    try {
      await fc.assert(
        fc.asyncProperty(scenarioArbitrary, async (scenario) => {
          counts.sequences++;
          const crashesBefore = counts.crashes;
          const run = sequence++;
          const deviceName = `dev0${(run % 9) + 1}`;
          const mqClientId = `GID_test@@@fuzz${run}`;
          const ours = (clientId: string): boolean =>
            scenario.mode === 'iot' ? clientId.includes(`.${deviceName}|`) : clientId === mqClientId;
          const make = (): DeviceConnection =>
            new DeviceConnection(
              resolveConnection(
                scenario.mode === 'iot'
                  ? {
                      mode: 'iot',
                      productKey: PK,
                      deviceName,
                      protocol: 'mqtt',
                      host: '127.0.0.1',
                      port: sim.port,
                      credentials: { deviceSecret: deviceSecret(deviceName) },
                    }
                  : {
                      mode: 'mq',
                      instanceId: MQ_INSTANCE,
                      groupId: 'GID_test',
                      deviceId: `fuzz${run}`,
                      authMode: 'token',
                      protocol: 'mqtt',
                      host: '127.0.0.1',
                      port: sim.port,
                      credentials: { accessKeyId: 'AK', token: 'tok1' },
                    },
              ),
              quiet,
              FAST_POLICY,
            );
          const sessions = new Set<Client>();
          const onLogin = (client: Client): void => {
            if (ours(sim.clientIdOf(client))) sessions.add(client);
          };
          let kicks = 0;
          const onKicked = ({ clientId }: { clientId: string }): void => {
            if (ours(clientId)) kicks++;
          };
          sim.on('login', onLogin);
          sim.on('kicked', onKicked);
          /** How often each publish's (or upload's) callback ran. */
          const answers: number[] = [];
          const expectAnswer = (): (() => void) => {
            const index = answers.push(0) - 1;
            counts.publishes++;
            return () => {
              answers[index]++;
              counts.callbacks++;
              if (answers[index] === 2) counts.doubleCallbacks++;
            };
          };
          const live = (): number => [...sessions].filter((client) => !client.closed).length;
          let connection = make();
          const users: ConnectionUser[] = [0, 1, 2].map(() => ({ onStatus: () => undefined, onNotice: () => undefined }));
          const topic = scenario.mode === 'iot' ? `/${PK}/${deviceName}/user/update` : 'parent/fuzz';
          try {
            connection.register(users[0]);
            for (const { action, gapMs } of scenario.steps) {
              switch (action.kind) {
                case 'connect':
                  connection.connect();
                  break;
                case 'disconnect':
                  connection.disconnect();
                  break;
                case 'publish':
                  connection.publish(topic, 'x', { qos: action.qos }, expectAnswer());
                  break;
                case 'register':
                  connection.register(users[action.user]);
                  break;
                case 'deregister':
                  connection.deregister(users[action.user], action.removed);
                  break;
                case 'uploadToken':
                  if (scenario.mode === 'mq') connection.uploadToken(action.good ? 'tok1' : 'tokExpired', 'RW', expectAnswer());
                  break;
                case 'redeploy':
                  await closeConnection(connection);
                  connection = make();
                  connection.register(users[0]);
                  break;
              }
              if (gapMs > 0) await pause(gapMs);
            }
            connection.connect();
            await waitFor(() => connection.connected, 'connected after the final connect', 5000);
            await waitFor(() => live() === 1, 'one live session', 3000).catch((err: Error) => {
              throw new Error(
                `${err.message}: ${live()} live of ${sessions.size}; kicks ${kicks}; status ${JSON.stringify(connection.status)}`,
              );
            });
            await waitFor(() => answers.every((n) => n > 0), 'an answer to every publish while connected', 5000);
            await closeConnection(connection);
            await waitFor(() => live() === 0, 'the session ended by close', 3000);
          } catch (err) {
            counts.failures++;
            throw err;
          } finally {
            await closeConnection(connection);
            sim.off('login', onLogin);
            sim.off('kicked', onKicked);
            counts.kicks += kicks;
          }
          assert.equal(counts.crashes, crashesBefore, `no uncaught exception or unhandled rejection:\n${crashes.join('\n')}`);
          assert.ok(
            answers.every((n) => n === 1),
            'every publish callback called exactly once',
          );
          assert.equal(kicks, 0, 'the connection never knocked itself off');
        }),
        { seed, numRuns, endOnFailure: true, interruptAfterTimeLimit: 90_000 },
      );
    } catch (err) {
      console.log(`      lifecycle fuzz failed with seed ${seed} (FUZZ_SEED=${seed} to replay)`);
      throw err;
    } finally {
      restore();
      console.log(`      lifecycle fuzz: ${JSON.stringify(counts)}`);
    }
  });
});

describe('connection life cycle: the sequences of issue 16', function () {
  let sim: Simulator;
  let crashes: unknown[];
  let restore: () => void;
  beforeEach(async function () {
    sim = await startTestSimulator();
    crashes = [];
    restore = trapCrashes((error) => crashes.push(error));
  });
  afterEach(async function () {
    restore();
    await sim.stop();
    assert.deepEqual(crashes, [], 'no uncaught exception or unhandled rejection');
  });

  function iot(deviceName: string): DeviceConnection {
    return new DeviceConnection(
      resolveConnection({
        mode: 'iot',
        productKey: PK,
        deviceName,
        protocol: 'mqtt',
        host: '127.0.0.1',
        port: sim.port,
        credentials: { deviceSecret: deviceSecret(deviceName) },
      }),
      quiet,
      FAST_POLICY,
    );
  }

  function mqToken(deviceId: string): DeviceConnection {
    return new DeviceConnection(
      resolveConnection({
        mode: 'mq',
        instanceId: MQ_INSTANCE,
        groupId: 'GID_test',
        deviceId,
        authMode: 'token',
        protocol: 'mqtt',
        host: '127.0.0.1',
        port: sim.port,
        credentials: { accessKeyId: 'AK', token: 'tok1' },
      }),
      quiet,
      FAST_POLICY,
    );
  }

  function publishQos1(connection: DeviceConnection, topic: string): Promise<Error | undefined> {
    return new Promise((resolve) => connection.publish(topic, 'x', { qos: 1, queueTimeoutMs: 0 }, resolve));
  }

  function upload(connection: DeviceConnection, token: string): Promise<Error | undefined> {
    return new Promise((resolve) => connection.uploadToken(token, 'RW', resolve));
  }

  it('disconnect; a QoS 1 publish; connect; disconnect in the same tick; connect: connected, the publish answered', async function () {
    const connection = iot('dev01');
    connection.register({ onStatus: () => undefined });
    await waitFor(() => connection.connected, 'connected');
    connection.disconnect();
    await pause(10);
    const published = publishQos1(connection, `/${PK}/dev01/user/update`);
    connection.connect();
    connection.disconnect();
    await pause(10);
    connection.connect();
    assert.equal(await published, undefined);
    await waitFor(() => connection.connected, 'connected again');
    await closeConnection(connection);
  });

  it('a connect while a disconnect is still closing is honoured after it; later publishes are sent', async function () {
    const connection = iot('dev01');
    connection.register({ onStatus: () => undefined });
    await waitFor(() => connection.connected, 'connected');
    let disconnected = false;
    connection.disconnect(() => {
      disconnected = true;
    });
    connection.connect();
    assert.equal(disconnected, false, 'the disconnect is still under way');
    await waitFor(() => disconnected, 'the disconnect done');
    await waitFor(() => connection.connected, 'connected after the disconnect');
    assert.equal(await publishQos1(connection, `/${PK}/dev01/user/update`), undefined);
    await closeConnection(connection);
  });

  it('disconnect and connect a few ms apart: one session of the device, never knocked off by itself', async function () {
    const kicked: string[] = [];
    sim.on('kicked', ({ clientId }) => kicked.push(clientId));
    const connection = iot('dev01');
    connection.register({ onStatus: () => undefined });
    const published: Array<Promise<Error | undefined>> = [];
    for (let round = 0; round < 12; round++) {
      // A disconnect while the login is still on its way, then a connect a few ms later.
      await pause(round % 4);
      published.push(publishQos1(connection, `/${PK}/dev01/user/update`));
      connection.disconnect();
      await pause(1 + (round % 3));
      connection.connect();
    }
    await waitFor(() => connection.connected, 'connected');
    await Promise.all(published);
    await waitFor(() => connection.connected && sim.connectedClients === 1, 'one session');
    assert.deepEqual(kicked, []);
    assert.deepEqual(sim.onlineDevices(), [`${PK}/dev01`]);
    await closeConnection(connection);
  });

  it('a refused uploadToken, then a good one: no crash, the first fails, the second is taken, the connection stays up', async function () {
    const connection = mqToken('upload1');
    connection.register({ onStatus: () => undefined });
    await waitFor(() => connection.connected, 'connected');
    assert.match(String(await upload(connection, 'tokExpired')), /TOKEN_UPLOAD_REFUSED|refused the uploaded token/);
    assert.equal(connection.connected, true, 'a refused upload leaves the connection on its working token');
    assert.equal(await upload(connection, 'tok1'), undefined);
    connection.connect();
    assert.equal(await publishQos1(connection, 'parent/after-upload'), undefined);
    await closeConnection(connection);
  });

  it('a refused uploadToken does not replace the working token: the next login still succeeds', async function () {
    const connection = mqToken('upload2');
    connection.register({ onStatus: () => undefined });
    await waitFor(() => connection.connected, 'connected');
    assert.ok(await upload(connection, 'tokExpired'));
    await new Promise<void>((resolve) => connection.disconnect(resolve));
    connection.connect();
    await waitFor(() => connection.connected, 'a login with the working token');
    // Uploaded while disconnected, a bad token is tried by the next login, which is refused: back to the working one.
    await new Promise<void>((resolve) => connection.disconnect(resolve));
    const refused = upload(connection, 'tokExpired');
    connection.connect();
    assert.ok(await refused);
    await waitFor(() => connection.connected, 'a login with the working token after the refused one');
    await closeConnection(connection);
  });
});
