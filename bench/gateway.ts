// Child process for (j) and (k): the library's gateway (DeviceConnection + SubDeviceManager) against the simulator on
// the port it is given. (j) logs N sub-devices in through one gateway connection: time until all are online, login
// batches, RSS per sub-device; (k) posts the properties of K sub-devices as one post each and as pack posts.
// A process of its own, so that what other sections allocated does not blur the memory figure.
import { performance } from 'node:perf_hooks';
import { ConnectionLogger, DeviceConnection, SubDeviceManager, SubDeviceStatus, resolveConnection } from '../nodes/lib/connection';
import { Device, GATEWAY_LIMITS, UPLINK_RATE_LIMITS } from '../nodes/lib/protocol';
import { BENCH_GATEWAYS, BENCH_GATEWAY_PK, BENCH_SUB_DEVICES, BENCH_SUB_PK, benchSecret, benchSubDevice, median } from './setup';

export interface GatewayBenchRequest {
  port: number;
  /** (j): sub-devices logged in through one connection. */
  subDevices: number;
  /** (k): sub-devices whose properties are posted, each with `properties` of them, paced and unpaced. */
  pacedSubDevices: number;
  postSubDevices: number;
  properties: number;
  /** (k) without pacing: measured rounds, after one round of each style to warm up. */
  rounds: number;
}

/** Properties per second that reached the simulator (its replies say it took them), per post style. */
export interface PostRates {
  perDevice: number;
  pack: number;
}

export interface GatewayBenchResult {
  subDevices: number;
  onlineMs: number;
  /** What the platform's limits allow: every request of the login paced at the QoS 0 uplink limit, plus 2 s. */
  boundMs: number;
  loginBatches: number;
  /** Requests the login took: topo/get, topo/add in 30s, batch_login in 50s. */
  requests: number;
  rssKiBPerSubDevice: number;
  heapKiBPerSubDevice: number;
  /** (k) at the connection's default pacing (the platform's uplink limits) and with pacing off. */
  paced: PostRates;
  unpaced: PostRates;
  pacedSubDevices: number;
  postSubDevices: number;
  properties: number;
  error?: string;
}

const quiet: ConnectionLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const WARM_UP = BENCH_SUB_DEVICES - 1000;

function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) gc?.();
}

/**
 * Grows V8's young generation to the size a busy process keeps. A fresh process grows it (by some 30 MB of RSS) while
 * the first 1,000 logins make their garbage, and keeps it after GC: memory of the process's age, not of the
 * sub-devices it holds.
 */
function growYoungGeneration(): void {
  let kept: unknown;
  for (let i = 0; i < 3_000_000; i++) kept = { i, text: `garbage ${i}`, list: [i] };
  if (kept === undefined) throw new Error('unreachable');
}

function subDevice(i: number): Device & { deviceSecret: string } {
  return { productKey: BENCH_SUB_PK, deviceName: benchSubDevice(i), deviceSecret: benchSecret(benchSubDevice(i)) };
}

function gatewayConnection(port: number, deviceName: string, maxRate?: string): DeviceConnection {
  return new DeviceConnection(
    resolveConnection({
      mode: 'iot',
      productKey: BENCH_GATEWAY_PK,
      deviceName,
      protocol: 'mqtt',
      host: '127.0.0.1',
      port,
      credentials: { deviceSecret: benchSecret(deviceName) },
      ...(maxRate === undefined ? {} : { maxRate }),
    }),
    quiet,
  );
}

/** Adds sub-devices `from`..`to`-1 and resolves once all are online; rejects on a refusal. */
function logIn(manager: SubDeviceManager, from: number, to: number): Promise<void> {
  let online = 0;
  return new Promise((resolve, reject) => {
    const user = {
      onStatus(device: Device, status: SubDeviceStatus): void {
        if (status.state === 'refused') reject(new Error(`${device.deviceName} refused with ${status.code}`));
        if (status.state === 'online' && ++online === to - from) resolve();
      },
    };
    for (let i = from; i < to; i++) manager.add(subDevice(i), user);
  });
}

function close(connection: DeviceConnection): Promise<void> {
  return new Promise((resolve) => connection.close(resolve));
}

/** The login's requests at the QoS 0 uplink limit, plus 2 s. */
export function loginBoundMs(subDevices: number): { requests: number; boundMs: number } {
  const requests = 1 + Math.ceil(subDevices / GATEWAY_LIMITS.topoAdd) + Math.ceil(subDevices / GATEWAY_LIMITS.batchLogin);
  const qos0 = UPLINK_RATE_LIMITS.iot?.qos0 ?? 1;
  return { requests, boundMs: (requests / qos0) * 1000 + 2000 };
}

async function loginScale(
  port: number,
  count: number,
): Promise<Omit<GatewayBenchResult, 'paced' | 'unpaced' | 'pacedSubDevices' | 'postSubDevices' | 'properties'>> {
  const connection = gatewayConnection(port, BENCH_GATEWAYS[0]);
  const manager = new SubDeviceManager(connection, { timeoutMs: 10_000 });
  manager.attach();
  try {
    // The connection, the manager's first requests and the code paths warmed up with a few, not counted.
    await logIn(manager, BENCH_SUB_DEVICES - WARM_UP, BENCH_SUB_DEVICES);
    growYoungGeneration();
    collectGarbage();
    const before = process.memoryUsage();
    const batchesBefore = manager.loginRequests;
    const start = performance.now();
    await logIn(manager, 0, count);
    const onlineMs = performance.now() - start;
    collectGarbage();
    const after = process.memoryUsage();
    return {
      subDevices: count,
      onlineMs,
      ...loginBoundMs(count),
      loginBatches: manager.loginRequests - batchesBefore,
      rssKiBPerSubDevice: (after.rss - before.rss) / 1024 / count,
      heapKiBPerSubDevice: (after.heapUsed - before.heapUsed) / 1024 / count,
    };
  } finally {
    manager.detach(true);
    await close(connection);
  }
}

function propertiesOf(count: number, seed: number): Record<string, number> {
  return Object.fromEntries(Array.from({ length: count }, (_, i) => [`p${i}`, seed + i]));
}

/** Posts `properties` of each of `devices` one post per sub-device, all at once; properties per second. */
async function perDevicePosts(manager: SubDeviceManager, devices: Device[], properties: number): Promise<number> {
  const clients = devices.map((device) => manager.postClientOf(device));
  for (const client of clients) client.attach();
  const start = performance.now();
  await Promise.all(
    clients.map(
      (client, i) =>
        new Promise<void>((resolve, reject) =>
          client.post({ kind: 'property', params: propertiesOf(properties, i), ack: true }, 120_000, (error, result) =>
            error || result?.reply?.code !== 200 ? reject(error ?? new Error(`post answered ${result?.reply?.code}`)) : resolve(),
          ),
        ),
    ),
  );
  const seconds = (performance.now() - start) / 1000;
  for (const client of clients) client.detach(true);
  return (devices.length * properties) / seconds;
}

async function packPosts(manager: SubDeviceManager, devices: Device[], properties: number): Promise<number> {
  const entries = devices.map((device, i) => ({ ...device, properties: propertiesOf(properties, i) }));
  const start = performance.now();
  const result = await manager.packPost(entries, { ack: true, timeoutMs: 120_000 });
  if (result.code !== 200) throw new Error(`pack post answered ${result.code}`);
  return (devices.length * properties) / ((performance.now() - start) / 1000);
}

/**
 * (k) on its own gateway connection: each style `rounds` times, alternating which goes first, medians. With
 * `warmUp`, one round of each first that is not counted (the first call of a code path runs before the JIT).
 */
async function postRates(
  port: number,
  gateway: string,
  maxRate: string | undefined,
  from: number,
  count: number,
  properties: number,
  rounds: number,
  warmUp: boolean,
): Promise<PostRates> {
  const connection = gatewayConnection(port, gateway, maxRate);
  const manager = new SubDeviceManager(connection, { timeoutMs: 10_000 });
  manager.attach();
  try {
    await logIn(manager, from, from + count);
    const devices = Array.from({ length: count }, (_, i) => subDevice(from + i));
    const styles = {
      perDevice: () => perDevicePosts(manager, devices, properties),
      pack: () => packPosts(manager, devices, properties),
    };
    if (warmUp) for (const style of Object.values(styles)) await style();
    const samples: Record<keyof PostRates, number[]> = { perDevice: [], pack: [] };
    for (let round = 0; round < rounds; round++) {
      const order: Array<keyof PostRates> = round % 2 === 0 ? ['perDevice', 'pack'] : ['pack', 'perDevice'];
      for (const style of order) samples[style].push(await styles[style]());
    }
    return { perDevice: median(samples.perDevice), pack: median(samples.pack) };
  } finally {
    manager.detach(true);
    await close(connection);
  }
}

async function gatewayBench(request: GatewayBenchRequest): Promise<GatewayBenchResult> {
  const scale = await loginScale(request.port, request.subDevices);
  // Each style on its own gateway and sub-devices, so that no sub-device logs in through two gateways.
  // Paced, the rates are the pacing's: one round, no warm-up (a round of per-device posts takes K / 10 s).
  const { port, pacedSubDevices, postSubDevices, properties, rounds } = request;
  const paced = await postRates(port, BENCH_GATEWAYS[0], undefined, 0, pacedSubDevices, properties, 1, false);
  const unpaced = await postRates(port, BENCH_GATEWAYS[1], '0', pacedSubDevices, postSubDevices, properties, rounds, true);
  return { ...scale, paced, unpaced, pacedSubDevices, postSubDevices, properties };
}

if (require.main === module) {
  process.once('message', (request: GatewayBenchRequest) => {
    gatewayBench(request)
      .then(
        (result) => process.send?.(result),
        (err: Error) => process.send?.({ error: err.message }),
      )
      .finally(() => process.disconnect());
  });
}
