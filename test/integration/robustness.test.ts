// Settings and simulator inputs that used to break a timer, a constructor or the admin API (issue 16).
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import {
  ConnectionLogger,
  ConnectionSettings,
  ConnectionStatus,
  DeviceConnection,
  OfflineQueue,
  PostClient,
  reconnectPolicy,
  resolveConnection,
} from '../../nodes/lib/connection';
import { LogMessage } from '../../nodes/lib/errors';
import { MAX_TIMER_MS, endpointUrl, iotEndpoint } from '../../nodes/lib/protocol';
import { Simulator } from '../../sim';
import { startTestSimulator, waitFor } from '../support/helpers';
import { PK } from '../support/registry';

const quiet: ConnectionLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

function iotSettings(extra: Record<string, unknown> = {}): ConnectionSettings {
  return {
    mode: 'iot',
    productKey: PK,
    deviceName: 'dev01',
    protocol: 'mqtt',
    host: '127.0.0.1',
    port: 1883,
    credentials: { deviceSecret: 'secret123' },
    ...extra,
  } as ConnectionSettings;
}

describe("robustness: durations past setTimeout's limit", function () {
  it('a queueTimeout, a reconnect setting or a post timeout longer than a timer can wait is refused, naming the limit', function () {
    assert.throws(() => resolveConnection(iotSettings({ queueTimeout: 3_000_000 })), /Queue time limit 3000000 s .*at most 2147483 s/);
    assert.equal(resolveConnection(iotSettings({ queueTimeout: 2_147_483 })).queueTimeoutMs, 2_147_483_000);
    assert.throws(
      () => reconnectPolicy({ networkMaxMs: 1e10 }),
      new RegExp(`aliyunIot.reconnect.networkMaxMs 10000000000 ms .*at most ${MAX_TIMER_MS} ms`),
    );
    assert.throws(() => reconnectPolicy({ closeTimeoutMs: 'soon' }), /aliyunIot.reconnect.closeTimeoutMs 'soon' must be a number/);
    assert.equal(reconnectPolicy({ closeTimeoutMs: MAX_TIMER_MS }).closeTimeoutMs, MAX_TIMER_MS);
    const connection = new DeviceConnection(resolveConnection(iotSettings()), quiet);
    const client = new PostClient(connection);
    assert.throws(() => client.post({ kind: 'property', params: { a: 1 }, ack: true }, 1e10, () => undefined), /timeout 10000000000 ms/);
    const queue = new OfflineQueue(10);
    let error: Error | undefined;
    queue.push(
      {
        topic: 't',
        payload: 'x',
        qos: 1,
        retain: false,
        callback: (err) => {
          error = err;
        },
      },
      1e10,
    );
    assert.match(String(error), /at most 2147483647 ms/);
    assert.equal(queue.length, 0);
    connection.close();
  });
});

describe('robustness: config values of the wrong type', function () {
  it('a non-text field is a clear error, and an unknown mode names cloud too', function () {
    assert.throws(() => resolveConnection(iotSettings({ productKey: 42 })), /ProductKey must be text, not number/);
    assert.throws(() => resolveConnection(iotSettings({ host: { name: 'x' } })), /Host must be text, not object/);
    assert.throws(() => resolveConnection(iotSettings({ mode: 'edge' })), /use iot, mq or cloud/);
  });
});

describe('robustness: WebSocket over IPv6', function () {
  let sim: Simulator | undefined;
  afterEach(async function () {
    await sim?.stop();
    sim = undefined;
  });

  it('brackets an IPv6 host in every URL, given with or without brackets', function () {
    for (const host of ['::1', '[::1]']) {
      assert.equal(endpointUrl(iotEndpoint({ productKey: PK, protocol: 'ws', host, port: 8080 })), 'ws://[::1]:8080/mqtt');
      assert.equal(iotEndpoint({ productKey: PK, protocol: 'ws', host, port: 8080 }).host, '::1');
    }
  });

  it('connects with ws to the simulator on ::1', async function () {
    sim = await startTestSimulator({ host: '::1', wsPort: 0 });
    const connection = new DeviceConnection(resolveConnection(iotSettings({ protocol: 'ws', host: '::1', port: sim.wsPort })), quiet);
    connection.register({ onStatus: () => undefined });
    await waitFor(() => connection.connected, 'connected over ws to ::1');
    await new Promise<void>((resolve) => connection.close(resolve));
  });

  it('a client that cannot be built becomes a status and a logged error, never a throw at the registering node', function () {
    const errors: LogMessage[] = [];
    const statuses: ConnectionStatus[] = [];
    const connection = new DeviceConnection(resolveConnection(iotSettings({ protocol: 'ws', host: 'no such host', port: 8080 })), {
      ...quiet,
      error: (message) => errors.push(message),
    });
    assert.doesNotThrow(() => connection.register({ onStatus: (status) => statuses.push(status) }));
    assert.deepEqual(statuses.at(-1), { state: 'refused', reason: 'config-error' });
    assert.match(errors[0].text, /Cannot start the MQTT client/);
    connection.close();
  });
});

describe("robustness: the simulator's admin API", function () {
  let sim: Simulator;
  before(async function () {
    sim = await startTestSimulator();
  });
  after(async function () {
    await sim.stop();
  });

  function raw(method: string, target: string, body?: Buffer): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const request = http.request({ host: '127.0.0.1', port: sim.adminPort, method, path: target }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      });
      request.on('error', reject);
      request.end(body);
    });
  }

  it('answers 400 to a request target of // and to broken percent-encoding, 413 to a huge body, and stays up', async function () {
    assert.equal((await raw('GET', '//')).status, 400);
    assert.equal((await raw('GET', `/devices/${PK}/%E0%A4%A/properties`)).status, 400);
    assert.equal((await raw('POST', '/pub', Buffer.alloc(2 * 1024 * 1024, 0x20))).status, 413);
    assert.equal((await raw('GET', '/devices')).status, 200);
  });
});
