// What the gateway node does with msg.action on a gateway's SubDeviceManager: the devices of msg.payload checked
// whole before anything is sent, batches within the platform's limits, DeviceSecrets from the secret store for the
// devices given without one, registered secrets kept there, and one result per device.
import { AliyunIotError, StatusCode } from '../errors';
import { Device, deviceKey } from '../protocol/alink';
import { GATEWAY_CODES, SubDeviceCredentials, subDeviceReason } from '../protocol/gateway';
import { isSignMethod, requireSecret, validateDeviceName, validateProductKey } from '../protocol/identifiers';
import { GATEWAY_LIMITS } from '../protocol/limits';
import type { SecretStore } from '../store/secret-store';
import { GatewayNotice, SubDeviceManager, SubDeviceStatus, SubDeviceUser, subDeviceError } from './sub-device-manager';

export const GATEWAY_ACTIONS = ['add', 'delete', 'list', 'login', 'logout', 'register'] as const;
export type GatewayAction = (typeof GATEWAY_ACTIONS)[number];

export function isGatewayAction(value: unknown): value is GatewayAction {
  return GATEWAY_ACTIONS.includes(value as GatewayAction);
}

/** The most sub-devices one message may name: what a gateway can have attached, or online. */
const HARD_LIMITS: Readonly<Record<Exclude<GatewayAction, 'list'>, number>> = {
  add: GATEWAY_LIMITS.topologyPerGateway,
  delete: GATEWAY_LIMITS.topologyPerGateway,
  register: GATEWAY_LIMITS.topologyPerGateway,
  login: GATEWAY_LIMITS.onlinePerGateway,
  logout: GATEWAY_LIMITS.onlinePerGateway,
};

/** How long a login may take per batch of 50: topology get and add, the login itself, each with its timeout. */
const LOGIN_WAIT_PER_BATCH_MS = 15_000;
const LOGIN_WINDOW_MS = 60_000;
/** Failures an error message names; the payload has them all. */
const NAMED_FAILURES = 5;

/** One device's outcome: `code` the platform's (200 when it went through), `state` for login and logout. */
export interface DeviceResult extends Device {
  code?: number;
  state?: SubDeviceStatus['state'];
  iotId?: string;
  /** register, with the node's "output secrets" on only. */
  deviceSecret?: string;
}

export interface ActionOutcome {
  action: GatewayAction;
  /** list: the topology; otherwise one entry per device, in the order given. */
  payload: DeviceResult[];
  /** Set when a device did not go through: the results are still in `payload`. */
  error?: AliyunIotError;
}

export interface ActionContext {
  /** The store of registered secrets; throws when there is none or it cannot be read. */
  secrets: () => SecretStore;
  outputSecrets: boolean;
}

type Entry = Device & Partial<Pick<SubDeviceCredentials, 'deviceSecret' | 'signMethod' | 'cleanSession' | 'clientId'>>;

const SHAPES: Readonly<Record<Exclude<GatewayAction, 'list'>, string>> = {
  add: '{productKey, deviceName, deviceSecret}',
  login: '{productKey, deviceName, deviceSecret}',
  delete: '{productKey, deviceName}',
  logout: '{productKey, deviceName}',
  register: '{productKey, deviceName}',
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The devices of msg.payload (one or an array), checked whole: shape, identifiers, repeats and the hard limit. */
export function readDevices(action: Exclude<GatewayAction, 'list'>, payload: unknown): Entry[] {
  const list: unknown[] = Array.isArray(payload) ? payload : [payload];
  const invalid = (index: number): AliyunIotError => new AliyunIotError('GATEWAY_DEVICE_INVALID', { action, shape: SHAPES[action], index });
  if (list.length === 0) throw invalid(0);
  if (list.length > HARD_LIMITS[action])
    throw new AliyunIotError('GATEWAY_TOO_MANY', { action, count: list.length, max: HARD_LIMITS[action] });
  const seen = new Set<string>();
  return list.map((value, index) => {
    if (!isRecord(value) || typeof value.productKey !== 'string' || typeof value.deviceName !== 'string') throw invalid(index);
    const { deviceSecret, signMethod, cleanSession, clientId } = value;
    if (deviceSecret !== undefined && typeof deviceSecret !== 'string') throw invalid(index);
    if (cleanSession !== undefined && typeof cleanSession !== 'boolean') throw invalid(index);
    if (clientId !== undefined && typeof clientId !== 'string') throw invalid(index);
    if (signMethod !== undefined && !isSignMethod(signMethod))
      throw new AliyunIotError('SIGN_METHOD_INVALID', { value: String(signMethod) });
    const device: Entry = { productKey: validateProductKey(value.productKey), deviceName: validateDeviceName(value.deviceName) };
    if (seen.has(deviceKey(device))) throw new AliyunIotError('GATEWAY_DEVICE_REPEATED', { action, device: deviceKey(device) });
    seen.add(deviceKey(device));
    if (action !== 'add' && action !== 'login') return device;
    return Object.assign(
      device,
      deviceSecret === undefined || deviceSecret === '' ? {} : { deviceSecret },
      signMethod === undefined ? {} : { signMethod },
      cleanSession === undefined ? {} : { cleanSession },
      clientId === undefined ? {} : { clientId },
    );
  });
}

/** The status a failed action shows. */
export function actionFailureStatus(err: unknown): StatusCode {
  const code = err instanceof AliyunIotError ? err.code : '';
  if (code.startsWith('SECRET_STORE_')) return 'secret-store-error';
  if (code === 'GATEWAY_TIMEOUT' || code === 'CONNECTION_CLOSED') return 'gateway-no-answer';
  if (code === 'REGISTER_REPLY_MALFORMED') return 'gateway-bad-reply';
  if (code === 'GATEWAY_SOME_REFUSED') return 'gateway-refused';
  if (code.startsWith('SUBDEVICE_') && code !== 'SUBDEVICE_SECRET_UNKNOWN') {
    const reason = `subdevice-${subDeviceReason(Number((err as AliyunIotError).params.code))}`;
    return reason as StatusCode;
  }
  return 'gateway-bad-input';
}

/** A notice as the gateway node sends it: msg.topic and msg.event name it, msg.payload lists its devices. */
export interface NoticeMessage {
  topic: string;
  event: string;
  payload: Device[];
  code?: number;
}

export function noticeMessage(notice: GatewayNotice): NoticeMessage {
  const payload = notice.devices.map(({ productKey, deviceName }) => ({ productKey, deviceName }));
  switch (notice.kind) {
    case 'topology-change':
      return { topic: 'topo/change', event: notice.change ?? 'unknown', payload };
    case 'kicked':
      return { topic: 'kick-off', event: subDeviceReason(notice.code ?? 0), payload, code: notice.code };
    default:
      return { topic: `thing/${notice.kind}`, event: notice.kind, payload };
  }
}

interface LoginWait {
  resolve: (status: SubDeviceStatus) => void;
}

/**
 * The gateway node's actions on one gateway. The devices it logs in stay logged in (through reconnects) until it logs
 * them out, or the connection closes, whatever node of it sent the login: it is their user in the SubDeviceManager.
 */
export class GatewayActions implements SubDeviceUser {
  private readonly waits = new Map<string, Set<LoginWait>>();
  private readonly loginTimes = new Map<string, number[]>();
  private readonly held = new Set<string>();
  private holders = 0;
  /** Within manager.add, which tells the status it has now. */
  private adding = false;

  constructor(readonly manager: SubDeviceManager) {}

  /** A gateway node starts using the actions. */
  attach(): void {
    this.holders += 1;
    this.manager.attach();
  }

  /** A gateway node stops; when the last one is removed, the devices it logged in are logged out. */
  detach(removed: boolean): void {
    this.holders -= 1;
    if (this.holders === 0 && removed && this.held.size > 0) {
      const devices = [...this.held].map((key) => this.deviceOf(key));
      this.held.clear();
      this.manager.letGo(devices, this).catch(() => undefined);
    }
    this.manager.detach(removed);
  }

  private deviceOf(key: string): Device {
    const at = key.indexOf('/');
    return { productKey: key.slice(0, at), deviceName: key.slice(at + 1) };
  }

  onStatus(device: Device, status: SubDeviceStatus): void {
    if (status.state !== 'online' && (status.state !== 'refused' || this.adding)) return;
    const waits = this.waits.get(deviceKey(device));
    if (!waits) return;
    this.waits.delete(deviceKey(device));
    for (const wait of waits) wait.resolve(status);
  }

  /** Runs one action. Bad input throws before anything is sent; refusals come back per device with `error` set. */
  async run(action: unknown, payload: unknown, context: ActionContext): Promise<ActionOutcome> {
    if (!isGatewayAction(action)) throw new AliyunIotError('GATEWAY_ACTION_INVALID', { value: String(action) });
    if (action === 'list') {
      const topology = await this.manager.topologyGet();
      return { action, payload: topology.map(({ productKey, deviceName }) => ({ productKey, deviceName })) };
    }
    const devices = readDevices(action, payload);
    switch (action) {
      case 'add':
        return this.outcome(action, devices, await this.manager.topologyAdd(this.withSecrets(devices, context)));
      case 'delete': {
        const refused = await this.manager.topologyDelete(devices);
        const deleted = devices.filter((device) => !refused.has(deviceKey(device)));
        await this.letGo(deleted);
        return this.outcome(action, devices, refused);
      }
      case 'register':
        return this.register(devices, context);
      case 'login':
        return this.login(this.withSecrets(devices, context));
      case 'logout':
        return this.logout(devices);
    }
  }

  private letGo(devices: Device[]): Promise<Map<string, number>> {
    for (const device of devices) this.held.delete(deviceKey(device));
    return this.manager.letGo(devices, this);
  }

  /** Each device with its secret: the one given, else the stored one (checked for all before any is used). */
  private withSecrets(devices: Entry[], context: ActionContext): SubDeviceCredentials[] {
    let store: SecretStore | undefined;
    return devices.map((device) => {
      if (device.deviceSecret !== undefined) return { ...device, deviceSecret: device.deviceSecret };
      store ??= context.secrets();
      const deviceSecret = store.secretOf(device);
      if (deviceSecret === undefined) throw new AliyunIotError('SUBDEVICE_SECRET_UNKNOWN', { device: deviceKey(device) });
      return { ...device, deviceSecret: requireSecret(deviceSecret, 'deviceSecret') };
    });
  }

  private outcome(action: GatewayAction, devices: Device[], refused: Map<string, number>, results?: DeviceResult[]): ActionOutcome {
    const payload =
      results ??
      devices.map(({ productKey, deviceName }) => ({
        productKey,
        deviceName,
        code: refused.get(deviceKey({ productKey, deviceName })) ?? 200,
      }));
    const failed = payload.filter((result) => result.code !== 200);
    return { action, payload, error: failed.length > 0 ? failureOf(action, failed, payload.length) : undefined };
  }

  private async register(devices: Device[], context: ActionContext): Promise<ActionOutcome> {
    const store = context.secrets();
    const answered = new Map<string, DeviceResult>();
    const refused = await this.manager.register(devices, async (secrets) => {
      await store.put(secrets);
      for (const { productKey, deviceName, deviceSecret, iotId } of secrets) {
        answered.set(deviceKey({ productKey, deviceName }), {
          productKey,
          deviceName,
          code: 200,
          ...(iotId === undefined ? {} : { iotId }),
          ...(context.outputSecrets ? { deviceSecret } : {}),
        });
      }
    });
    const results = devices.map(
      (device) =>
        answered.get(deviceKey(device)) ?? {
          productKey: device.productKey,
          deviceName: device.deviceName,
          code: refused.get(deviceKey(device)),
        },
    );
    return this.outcome('register', devices, refused, results);
  }

  /**
   * Logs the devices in through the manager (batched, topology added when missing) and waits for each verdict. A
   * device that tried to log in 5 times within a minute is refused here with 429, as the platform would.
   */
  private async login(devices: SubDeviceCredentials[]): Promise<ActionOutcome> {
    const now = Date.now();
    const verdicts = devices.map((device): Promise<SubDeviceStatus> => {
      const key = deviceKey(device);
      const current = this.manager.statusOf(device);
      if (current?.state !== 'online') {
        const times = (this.loginTimes.get(key) ?? []).filter((time) => time > now - LOGIN_WINDOW_MS);
        this.loginTimes.set(key, times);
        if (times.length >= GATEWAY_LIMITS.loginsPerMinute) {
          return Promise.resolve({ state: 'refused', reason: 'subdevice-too-many-logins', code: GATEWAY_CODES.tooManyLogins });
        }
        times.push(now);
      }
      this.held.add(key);
      return new Promise((resolve) => {
        const timer = setTimeout(
          () => {
            waits.delete(wait);
            wait.resolve(this.manager.statusOf(device) ?? { state: 'waiting', reason: 'subdevice-waiting' });
          },
          LOGIN_WAIT_PER_BATCH_MS * Math.ceil(devices.length / GATEWAY_LIMITS.batchLogin),
        );
        const wait: LoginWait = {
          resolve: (status) => {
            clearTimeout(timer);
            resolve(status);
          },
        };
        const waits = this.waits.get(key) ?? new Set();
        waits.add(wait);
        this.waits.set(key, waits);
        timer.unref();
        // The manager tells the current status at once: online already, or a refusal of an earlier login, which
        // this login may undo and so is not its verdict.
        this.adding = true;
        try {
          this.manager.add(device, this);
        } finally {
          this.adding = false;
        }
      });
    });
    const statuses = await Promise.all(verdicts);
    const results = devices.map(({ productKey, deviceName }, index) => {
      const status = statuses[index];
      const code = status.state === 'online' ? 200 : status.code;
      return { productKey, deviceName, state: status.state, ...(code === undefined ? {} : { code }) };
    });
    // A refused device is not kept: no login again at the next reconnect with what the platform refused.
    const refused = results.filter((result) => result.state === 'refused');
    if (refused.length > 0) await this.letGo(refused);
    return this.outcome('login', devices, new Map(), results);
  }

  private async logout(devices: Device[]): Promise<ActionOutcome> {
    const refused = await this.letGo(devices);
    const results = devices.map(({ productKey, deviceName }) => {
      const device = { productKey, deviceName };
      const code = refused.get(deviceKey(device)) ?? 200;
      const state = this.manager.statusOf(device)?.state ?? 'offline';
      return { productKey, deviceName, code, state };
    });
    return this.outcome('logout', devices, refused, results);
  }
}

/** The error of an action some devices did not get through: the device's own when one, else a summary. */
function failureOf(action: GatewayAction, failed: DeviceResult[], count: number): AliyunIotError {
  if (failed.length === 1) {
    const [result] = failed;
    if (result.code === undefined)
      return new AliyunIotError('GATEWAY_TIMEOUT', { operation: `${action} ${deviceKey(result)}`, timeout: LOGIN_WAIT_PER_BATCH_MS });
    return subDeviceError(result, result.code);
  }
  const devices = failed
    .slice(0, NAMED_FAILURES)
    .map((result) => `${deviceKey(result)} (${result.code ?? '-'})`)
    .join(', ');
  return new AliyunIotError('GATEWAY_SOME_REFUSED', {
    action,
    failed: failed.length,
    count,
    devices: failed.length > NAMED_FAILURES ? `${devices}, ...` : devices,
  });
}

const actionsByManager = new WeakMap<SubDeviceManager, GatewayActions>();

/** The gateway actions of a manager, shared by every gateway node on its connection. */
export function gatewayActionsOf(manager: SubDeviceManager): GatewayActions {
  let actions = actionsByManager.get(manager);
  if (!actions) actionsByManager.set(manager, (actions = new GatewayActions(manager)));
  return actions;
}
