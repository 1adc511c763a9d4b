// Shared fixtures: connection node definitions, TLS material, waiting for the simulator's events, the official SDK.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Simulator, SimulatorEvents, SimulatorOptions, startSimulator } from '../../sim';
import { BUILD_ROOT, FIXTURES_DIR } from './paths';
import { MQ_INSTANCE, PK, SIM_CONFIG, deviceSecret } from './registry';

/** A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost (test/support/fixtures/tls). */
export const TLS_DIR = path.join(FIXTURES_DIR, 'tls');
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
  return require(path.join(BUILD_ROOT, 'nodes', `${type}.js`));
}

export interface FlowNode {
  id: string;
  type: string;
  [key: string]: unknown;
}

/** A connection config node for the simulator and its credentials, keyed for helper.load. */
export function iotConnection(
  id: string,
  sim: Simulator,
  deviceName: string,
  extra: Record<string, unknown> = {},
): { node: FlowNode; credentials: Record<string, Record<string, string>> } {
  return {
    node: {
      id,
      type: 'aliyun-iot-connection',
      name: '',
      mode: 'iot',
      productKey: PK,
      deviceName,
      protocol: 'mqtt',
      host: '127.0.0.1',
      port: String(sim.port),
      keepalive: 60,
      cleanSession: true,
      queueSize: 1000,
      // Tests publish in bursts the platform would not take: no pacing unless a test asks for it.
      maxRate: '0',
      ...extra,
    },
    credentials: { [id]: { deviceSecret: deviceSecret(deviceName) } },
  };
}

export function mqConnection(
  id: string,
  sim: Simulator,
  deviceId: string,
  authMode: string,
  secrets: Record<string, string>,
  extra: Record<string, unknown> = {},
): { node: FlowNode; credentials: Record<string, Record<string, string>> } {
  return {
    node: {
      id,
      type: 'aliyun-iot-connection',
      name: '',
      mode: 'mq',
      instanceId: MQ_INSTANCE,
      groupId: 'GID_test',
      deviceId,
      authMode,
      protocol: 'mqtt',
      host: '127.0.0.1',
      port: String(sim.port),
      keepalive: 60,
      cleanSession: true,
      queueSize: 1000,
      ...extra,
    },
    credentials: { [id]: secrets },
  };
}

/**
 * Polls `condition` (which may be async, e.g. a request) until it holds; the timeout only bounds a failing test, it
 * is never the expected outcome.
 */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!(await condition())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Whether `sent` (the client id on the wire, IoT Platform's with its `|...|` parameters) is the client `clientId`. */
export function isClient(sent: string, clientId: string): boolean {
  return sent === clientId || sent.startsWith(`${clientId}|`);
}

/** Resolves with the arguments of the simulator's next `event` that `matches`; call it before what causes the event. */
export function nextEvent<E extends keyof SimulatorEvents>(
  sim: Simulator,
  event: E,
  matches: (...args: SimulatorEvents[E]) => boolean,
  what: string,
  timeoutMs = 5000,
): Promise<SimulatorEvents[E]> {
  const emitter = sim as unknown as {
    on(name: string, listener: (...args: unknown[]) => void): void;
    off(name: string, listener: (...args: unknown[]) => void): void;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const listener = (...args: unknown[]): void => {
      if (!matches(...(args as SimulatorEvents[E]))) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args as SimulatorEvents[E]);
    };
    emitter.on(event, listener);
  });
}

/**
 * Resolves when the simulator has granted `filter` to the client `clientId` (its `subscribe` event, after which
 * messages on the filter are routed to it). Call it before what makes the client subscribe.
 */
export async function waitForSubscribed(sim: Simulator, clientId: string, filter: string, timeoutMs = 5000): Promise<void> {
  await nextEvent(
    sim,
    'subscribe',
    (info) => isClient(info.clientId, clientId) && info.topics.includes(filter),
    `${clientId} to be subscribed to ${filter}`,
    timeoutMs,
  );
}

/** Resolves when the simulator has removed `filter` for the client `clientId` (its `unsubscribe` event). */
export async function waitForUnsubscribed(sim: Simulator, clientId: string, filter: string, timeoutMs = 5000): Promise<void> {
  await nextEvent(
    sim,
    'unsubscribe',
    (info) => isClient(info.clientId, clientId) && info.topics.includes(filter),
    `${clientId} to be unsubscribed from ${filter}`,
    timeoutMs,
  );
}

/** The payload of the message a test publishes last and waits for: once it arrived, nothing sent before it is still on the way. */
export const SENTINEL = 'sentinel: the last message of the test';

/** Whether a received message is the sentinel (its payload as a string, a Buffer or decoded JSON). */
export function isSentinel(msg: { payload?: unknown }): boolean {
  const payload = msg.payload;
  return (Buffer.isBuffer(payload) ? payload.toString() : payload) === SENTINEL;
}

/** The messages that are not the sentinel. */
export function withoutSentinel<T extends { payload?: unknown }>(messages: T[]): T[] {
  return messages.filter((msg) => !isSentinel(msg));
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
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await response.json()) as T;
  if (response.status !== 200) throw new Error(`admin ${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}
