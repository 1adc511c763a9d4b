// Section (f), the queue stores: how fast a connection takes publishes while it is offline (the memory queue, the disk
// queue up to durable, and a plain appendFile + fsync per message for scale), and how fast a stored queue is replayed
// to the broker once the connection is up. In this process, like the forwarders.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConnectionLogger, ConnectionSettings, DeviceConnection, resolveConnection } from '../nodes/lib/connection';
import { BENCH_PK, DEVICES, benchSecret, outTopic } from './setup';

const OUT_TOPIC = outTopic(DEVICES.ours);

export type StoreVariant = 'memory' | 'disk' | 'fsync';

const QUIET: ConnectionLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const PAYLOAD = Buffer.alloc(100, 'x');
/** appendFile + fsync per message is slow: it gets fewer messages, enough for a stable rate. */
const FSYNC_MESSAGES = 500;

function settings(port: number, queueStore: 'memory' | 'disk', queueSize: number): ConnectionSettings {
  return {
    mode: 'iot',
    productKey: BENCH_PK,
    deviceName: DEVICES.ours,
    protocol: 'mqtt',
    host: '127.0.0.1',
    port,
    queueSize,
    queueStore,
    maxRate: '0',
    queueMaxBytes: 0,
    credentials: { deviceSecret: benchSecret(DEVICES.ours) },
  };
}

function closeConnection(connection: DeviceConnection): Promise<void> {
  return new Promise((resolve) => connection.close(resolve));
}

/**
 * Publishes `n` messages on a connection that never connected, through the same call with the same message and
 * callback for both stores; resolves when the queue has taken each: for the disk queue when every callback said
 * durable (its done()), for the memory queue, whose done() comes only at the PUBACK, once `publish` returned for all
 * of them and the event loop turned (the disk queue needs that turn too, before it writes).
 */
function enqueue(connection: DeviceConnection, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let left = n;
    const done = (error?: Error): void => {
      if (error) reject(error);
      else if (--left === 0) resolve();
    };
    for (let i = 0; i < n; i++) connection.publish(OUT_TOPIC, PAYLOAD, { qos: 1 }, done);
    if (!connection.durableQueue) {
      setImmediate(() => {
        if (connection.queuedCount === n) resolve();
        else reject(new Error(`the memory queue holds ${connection.queuedCount} of ${n}`));
      });
    }
  });
}

async function appendAndSync(file: string, n: number): Promise<void> {
  const handle = await fs.promises.open(file, 'a');
  try {
    for (let i = 0; i < n; i++) {
      await handle.appendFile(PAYLOAD);
      await handle.sync();
    }
  } finally {
    await handle.close();
  }
}

/** One round of one variant: enqueue rate in msg/s. */
export async function measureEnqueue(variant: StoreVariant, n: number, port: number): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aliyun-iot-bench-store-'));
  try {
    if (variant === 'fsync') {
      const started = performance.now();
      await appendAndSync(path.join(dir, 'plain.log'), FSYNC_MESSAGES);
      return FSYNC_MESSAGES / ((performance.now() - started) / 1000);
    }
    const connection = new DeviceConnection(resolveConnection(settings(port, variant, n)), QUIET, {}, dir);
    const started = performance.now();
    await enqueue(connection, n);
    const seconds = (performance.now() - started) / 1000;
    await closeConnection(connection);
    return n / seconds;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * One round of replay: `n` messages queued while offline (on disk: stored by one connection and sent by the next, as
 * after a restart), then the connection comes up; msg/s from connected to the last PUBACK.
 */
export async function measureReplay(variant: 'memory' | 'disk', n: number, port: number): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aliyun-iot-bench-store-'));
  try {
    let acknowledged = 0;
    let allAcknowledged = (): void => undefined;
    const finished = new Promise<void>((resolve) => {
      allAcknowledged = resolve;
    });
    const onAck = (error?: Error): void => {
      if (!error && ++acknowledged === n) allAcknowledged();
    };
    let connection = new DeviceConnection(resolveConnection(settings(port, variant, n)), QUIET, {}, dir);
    if (variant === 'disk') {
      await enqueue(connection, n);
      await closeConnection(connection);
      connection = new DeviceConnection(resolveConnection(settings(port, variant, n)), QUIET, {}, dir);
    } else {
      for (let i = 0; i < n; i++) connection.publish(OUT_TOPIC, PAYLOAD, { qos: 1 }, onAck);
    }
    let started = 0;
    await new Promise<void>((resolve, reject) => {
      const timeout = setTimeout(() => reject(new Error('replay did not finish in 60 s')), 60_000);
      const watch = setInterval(() => {
        if (variant === 'disk' && started > 0 && connection.queuedCount === 0) allAcknowledged();
      }, 1);
      connection.register({
        onStatus: (status) => {
          if (status.state === 'connected' && started === 0) started = performance.now();
        },
      });
      void finished.then(() => {
        clearTimeout(timeout);
        clearInterval(watch);
        resolve();
      });
    });
    const seconds = (performance.now() - started) / 1000;
    await closeConnection(connection);
    return n / seconds;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
