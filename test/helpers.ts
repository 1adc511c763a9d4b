// Shared fixtures: the simulator's test registry, connection node definitions, polling.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Simulator, SimulatorConfig, SimulatorOptions, startSimulator } from '../sim';

export const PK = 'a1B2c3D4e5F';
export const MQ_INSTANCE = 'post-cn-test';
export const FAR_FUTURE = 4102444800000;

export function deviceSecret(deviceName: string): string {
  return deviceName === 'dev01' ? 'secret123' : `secret-${deviceName}`;
}

export const SIM_CONFIG: SimulatorConfig = {
  products: [{
    productKey: PK,
    topics: [
      { topic: '/${productKey}/${deviceName}/user/get', access: 'sub' },
      { topic: '/${productKey}/${deviceName}/user/update', access: 'pub' },
      { topic: '/${productKey}/${deviceName}/user/echo', access: 'all' },
      { topic: '/${productKey}/${deviceName}/user/data/#', access: 'all' },
      { topic: '/${productKey}/${deviceName}/user/fanout', access: 'pub' },
      { topic: '/${productKey}/+/user/fanout', access: 'sub' },
    ],
    devices: ['dev01', 'dev02', 'dev03', 'dev04', 'dev05', 'dev06', 'dev07', 'dev08', 'dev09']
      .map((deviceName) => ({ deviceName, deviceSecret: deviceSecret(deviceName) })),
  }],
  mq: [{
    instanceId: MQ_INSTANCE,
    accessKeys: [{ accessKeyId: 'AK', accessKeySecret: 'SK' }],
    groups: ['GID_test'],
    parentTopics: ['parent'],
    tokens: [
      { accessKeyId: 'AK', token: 'tok1', actions: 'RW', resources: ['parent/#'], expireTime: FAR_FUTURE },
      { accessKeyId: 'AK', token: 'tokExpired', actions: 'RW', resources: ['parent/#'], expireTime: 1000 },
    ],
    deviceCredentials: [{ clientId: 'GID_test@@@dev02', deviceAccessKeyId: 'DC.1', deviceAccessKeySecret: 'dsk' }],
  }],
};

/** A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost (test/fixtures/tls). */
export const TLS_DIR = path.join(__dirname, '..', '..', 'test', 'fixtures', 'tls');
export const TEST_CA = fs.readFileSync(path.join(TLS_DIR, 'ca.pem'), 'utf8');
export const SERVER_TLS = {
  key: fs.readFileSync(path.join(TLS_DIR, 'server.key')),
  cert: fs.readFileSync(path.join(TLS_DIR, 'server.pem')),
};

export function startTestSimulator(extra: Partial<SimulatorOptions> = {}): Promise<Simulator> {
  return startSimulator({ ...SIM_CONFIG, port: 0, ...extra });
}

/** The node modules of this package, compiled. */
export function nodeModule(type: string): unknown {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(path.join(__dirname, '..', 'nodes', `${type}.js`));
}

export interface FlowNode {
  id: string;
  type: string;
  [key: string]: unknown;
}

/** A connection config node for the simulator and its credentials, keyed for helper.load. */
export function iotConnection(id: string, sim: Simulator, deviceName: string, extra: Record<string, unknown> = {}):
{ node: FlowNode; credentials: Record<string, Record<string, string>> } {
  return {
    node: {
      id, type: 'aliyun-iot-connection', name: '', mode: 'iot', productKey: PK, deviceName,
      protocol: 'mqtt', host: '127.0.0.1', port: String(sim.port), keepalive: 60, cleanSession: true, queueSize: 1000,
      // Tests publish in bursts the platform would not take: no pacing unless a test asks for it.
      maxRate: '0', ...extra,
    },
    credentials: { [id]: { deviceSecret: deviceSecret(deviceName) } },
  };
}

export function mqConnection(id: string, sim: Simulator, deviceId: string, authMode: string,
  secrets: Record<string, string>, extra: Record<string, unknown> = {}):
{ node: FlowNode; credentials: Record<string, Record<string, string>> } {
  return {
    node: {
      id, type: 'aliyun-iot-connection', name: '', mode: 'mq', instanceId: MQ_INSTANCE, groupId: 'GID_test', deviceId,
      authMode, protocol: 'mqtt', host: '127.0.0.1', port: String(sim.port), keepalive: 60, cleanSession: true,
      queueSize: 1000, ...extra,
    },
    credentials: { [id]: secrets },
  };
}

export async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(10);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The part of the official Node device SDK (alibabacloud-iot-device-sdk 1.2.8) the tests use. */
export interface SdkDevice {
  on(event: string, listener: (...args: unknown[]) => void): void;
  subscribe(topic: string, options: unknown, callback: (err: unknown) => void): void;
  publish(topic: string, message: string): void;
  end(force: boolean, callback: () => void): void;
}

/** The official SDK as a device of the test registry, pointed at the simulator (it signs with sha1). */
export function sdkDevice(sim: Simulator, deviceName: string, secret = deviceSecret(deviceName)): SdkDevice {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sdk = require('alibabacloud-iot-device-sdk') as { device(config: Record<string, unknown>): SdkDevice };
  return sdk.device({ productKey: PK, deviceName, deviceSecret: secret, brokerUrl: `mqtt://127.0.0.1:${sim.port}`, clean: true });
}

export function endSdkDevice(device: SdkDevice): Promise<void> {
  return new Promise((resolve) => device.end(true, () => resolve()));
}

/** A call to the simulator's admin API; resolves with the JSON body, rejects on a status other than 200. */
export async function admin<T = Record<string, unknown>>(sim: Simulator, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${sim.adminPort}${path}`, {
    method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await response.json()) as T;
  if (response.status !== 200) throw new Error(`admin ${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}
