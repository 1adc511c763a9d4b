// What every part of the benchmark shares: the bench registry, the devices' logins and the topics.
import type { IClientOptions } from 'mqtt';
import { MqttLogin, signIotLogin } from '../nodes/lib/protocol';
import type { SimulatorConfig } from '../sim';

export const BENCH_PK = 'b1E2n3C4h5K';
export type Qos = 0 | 1;
/**
 * `cloud` is the simulator with its cloud-application side (AMQP, OpenAPI): a broker that also feeds consumer groups;
 * `gateway` the simulator with the gateway registry of (j) and (k).
 */
export type BrokerKind = 'sim' | 'aedes' | 'cloud' | 'gateway';

/** The cloud side of the bench: one AccessKey and one consumer group. */
export const BENCH_CLOUD = {
  uid: '1234567890',
  accessKeyId: 'LTAI_bench',
  accessKeySecret: 'bench_secret_0123456789',
  consumerGroupId: 'GROUP_BENCH',
} as const;

/** Devices of the load process and of the three forwarders. */
export const DEVICES = {
  gen: 'bench-gen',
  sink: 'bench-sink',
  ours: 'bench-ours',
  core: 'bench-core',
  raw: 'bench-raw',
} as const;

/** Config node devices of the connection-scale section: conn-001 ... */
export function scaleDevice(i: number): string {
  return `conn-${String(i + 1).padStart(3, '0')}`;
}

export const SCALE_DEVICES = 200;

export function benchSecret(deviceName: string): string {
  return `secret-${deviceName}`;
}

/**
 * The bench registry: one product whose custom topic class under any device's /user/bench/ may be published and
 * subscribed by every device of the product, so that generator, forwarders and sink can talk through the ACL.
 */
export function benchRegistry(scaleDevices = SCALE_DEVICES): SimulatorConfig {
  const names: string[] = [...Object.values(DEVICES)];
  for (let i = 0; i < scaleDevices; i++) names.push(scaleDevice(i));
  return {
    products: [
      {
        productKey: BENCH_PK,
        topics: [
          { topic: '/${productKey}/+/user/bench/#', access: 'all' },
          { topic: '/${productKey}/${deviceName}/user/get', access: 'sub' },
        ],
        devices: names.map((deviceName) => ({ deviceName, deviceSecret: benchSecret(deviceName) })),
      },
    ],
    mq: [],
  };
}

/**
 * Topics: the generator publishes to IN_TOPIC; each forwarder publishes on its own device's out topic (on the IoT
 * Platform a device publishes only on its own topics), and the sink listens to all of them with OUT_FILTER.
 */
export const IN_TOPIC = `/${BENCH_PK}/${DEVICES.gen}/user/bench/in`;
export const OUT_FILTER = `/${BENCH_PK}/+/user/bench/out`;

export function outTopic(deviceName: string): string {
  return `/${BENCH_PK}/${deviceName}/user/bench/out`;
}
export const DIRECT_TOPIC = `/${BENCH_PK}/${DEVICES.gen}/user/bench/direct`;

/**
 * `count` distinct filters for the dispatch section, every tenth with `+` and every tenth with `#`, and one topic per
 * filter that matches that filter only.
 */
export function dispatchFilters(count: number): Array<{ filter: string; topic: string }> {
  const base = `/${BENCH_PK}/${DEVICES.gen}/user/bench/c`;
  const list: Array<{ filter: string; topic: string }> = [];
  for (let i = 0; i < count; i++) {
    if (count > 1 && i % 10 === 1) list.push({ filter: `${base}/${i}/+`, topic: `${base}/${i}/x` });
    else if (count > 1 && i % 10 === 2) list.push({ filter: `${base}/${i}/#`, topic: `${base}/${i}/y/z` });
    else list.push({ filter: `${base}/${i}`, topic: `${base}/${i}` });
  }
  return list;
}

export function deviceLogin(deviceName: string): MqttLogin {
  return signIotLogin({ productKey: BENCH_PK, deviceName, deviceSecret: benchSecret(deviceName) }, { securemode: 3 });
}

/** Options of a raw mqtt.js client logged in as `deviceName`. */
export function rawClientOptions(port: number, deviceName: string): IClientOptions {
  return {
    host: '127.0.0.1',
    port,
    protocol: 'mqtt',
    protocolVersion: 4,
    clean: true,
    keepalive: 60,
    reconnectPeriod: 0,
    ...deviceLogin(deviceName),
  };
}

/** Gateways and sub-devices of sections (j) and (k). */
export const BENCH_GATEWAY_PK = 'b1GateWay01';
export const BENCH_SUB_PK = 'b1SubDev001';
export const BENCH_GATEWAYS = ['bench-gw1', 'bench-gw2'] as const;
/** Sub-devices in the gateway registry: (j)'s 1,000 and a few to warm up with. */
export const BENCH_SUB_DEVICES = 1010;

export function benchSubDevice(i: number): string {
  return `bench-sub-${String(i + 1).padStart(4, '0')}`;
}

/** A gateway product and a sub-device product, no topology yet: the gateways add it as a first start would. */
export function benchGatewayRegistry(): SimulatorConfig {
  return {
    products: [
      {
        productKey: BENCH_GATEWAY_PK,
        nodeType: 'gateway',
        devices: BENCH_GATEWAYS.map((deviceName) => ({ deviceName, deviceSecret: benchSecret(deviceName) })),
      },
      {
        productKey: BENCH_SUB_PK,
        nodeType: 'sub-device',
        devices: Array.from({ length: BENCH_SUB_DEVICES }, (_, i) => ({
          deviceName: benchSubDevice(i),
          deviceSecret: benchSecret(benchSubDevice(i)),
        })),
      },
    ],
    mq: [],
  };
}

/** The median of the finite values; NaN when there are none. */
export function median(values: number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
