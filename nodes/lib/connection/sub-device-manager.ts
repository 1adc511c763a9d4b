// A gateway's sub-devices on its DeviceConnection (docs/protocol.md §8): topology added when needed, logins and
// logouts batched within the platform's limits, re-login after a reconnect and after a 520 (the failed message then
// sent once more), a status per sub-device with the platform's reason, and the platform's notices for listeners.
import { AliyunIotError, ErrorCode, LogMessage, StatusCode, isLogCode } from '../errors';
import { Device, deviceKey } from '../protocol/alink';
import {
  AUTO_SUBSCRIBE_PARAM,
  GATEWAY_CODES,
  GatewayAnswer,
  GatewayRequest,
  SubDeviceCredentials,
  TOPOLOGY_CHANGE,
  autoSubscribedFilters,
  GATEWAY_METHODS,
  buildLogin,
  buildLogout,
  buildRegister,
  buildPackPost,
  buildTopologyAdd,
  buildTopologyDelete,
  buildTopologyGet,
  chunks,
  deviceOfAnyTopic,
  devicesIn,
  gatewayTopics,
  parseGatewayTopic,
  packEntries,
  readGatewayAnswer,
  readRegisterReply,
  splitPackEntries,
  subDeviceReason,
} from '../protocol/gateway';
import { GATEWAY_LIMITS, checkTimerDuration } from '../protocol/limits';
import { deviceOfTopic, filterCovers, isOwnPublishTopic } from '../protocol/topics';
import type { DeviceConnection } from './device-connection';
import { AlinkIds, PendingRequests } from './pending-requests';
import { PostClient } from './post-client';
import type { ConnectionStatus, ConnectionUser, MessageReceiver, PublishCallback, PublishOptions } from './types';
import { SubDeviceSends } from './sub-device-sends';

/** A sub-device thing/sub/register answered for. */
export type RegisteredSubDevice = ReturnType<typeof readRegisterReply>[number];

export type SubDeviceState = 'waiting' | 'logging-in' | 'online' | 'refused' | 'offline';

/** `reason` is a key under `status` in the connection node's catalog; `code` the platform's answer when refused. */
export interface SubDeviceStatus {
  state: SubDeviceState;
  reason: StatusCode;
  code?: number;
}

export interface SubDeviceUser {
  onStatus(device: Device, status: SubDeviceStatus): void;
}

/** What the platform told the gateway: topology changes, disable / enable / delete, kick-offs. */
export interface GatewayNotice {
  kind: 'topology-change' | 'disable' | 'enable' | 'delete' | 'kicked';
  devices: Device[];
  /** topology-change: created, deleted, enabled or disabled. */
  change?: string;
  code?: number;
  topic: string;
  payload: unknown;
}

export interface GatewayListener {
  onGatewayNotice(notice: GatewayNotice): void;
}

/** Each post a pack post was split into, with the platform's answer (absent when no reply was asked for). */
export interface PackPostPart {
  id: string;
  code?: number;
  message?: string;
}

/** A pack post's outcome: 200 when every part was taken, else the first refusal's code and message. */
export interface PackPostResult {
  method: string;
  parts: PackPostPart[];
  code?: number;
  message?: string;
}

export interface SubDeviceManagerOptions {
  /** How long a topology or session request waits for its reply. */
  timeoutMs?: number;
  /** Sub-devices per batch login / logout, at most the platform's 50. */
  batchSize?: number;
  /** How long a sub-device without users stays logged in, in case a redeployed node takes it again. */
  logoutGraceMs?: number;
  /**
   * How long after the gateway first connects a stored message of a sub-device nobody has taken yet (no node, no
   * login action) waits for one to (default 30 s): after a restart the store is back before the nodes' logins.
   */
  claimWaitMs?: number;
}

interface Entry {
  credentials: SubDeviceCredentials;
  users: Set<SubDeviceUser>;
  status: SubDeviceStatus;
  /** Publishes waiting for the sub-device to be online. */
  waiting: Array<() => void>;
  retryTimer?: NodeJS.Timeout;
  logoutTimer?: NodeJS.Timeout;
}

const WAITING_PER_DEVICE = 1000;
const RETRY_AFTER_429_MS = 60_000;
const LOGIN_BATCHES_IN_FLIGHT = 4;
/** thing/disable|enable|delete of every sub-device: three local filters, delivered by the auto-subscription. */
const NOTICE_FILTERS = (['disable', 'enable', 'delete'] as const).map((kind) =>
  gatewayTopics.notice({ productKey: '+', deviceName: '+' }, kind),
);

/** The error of each refusal reason (subDeviceReason). */
const REFUSAL_ERRORS: Readonly<Record<string, ErrorCode>> = {
  'bad-sign': 'SUBDEVICE_BAD_SIGN',
  'no-topology': 'SUBDEVICE_NO_TOPOLOGY',
  'unknown-device': 'SUBDEVICE_UNKNOWN_DEVICE',
  deleted: 'SUBDEVICE_DELETED',
  disabled: 'SUBDEVICE_DISABLED',
  elsewhere: 'SUBDEVICE_ELSEWHERE',
  'too-many-online': 'SUBDEVICE_TOO_MANY_ONLINE',
  'too-many-logins': 'SUBDEVICE_TOO_MANY_LOGINS',
  'bad-request': 'SUBDEVICE_BAD_REQUEST',
  'no-session': 'SUBDEVICE_NO_SESSION',
};

/** The status reason of a refusal: `subdevice-` and the platform code's reason (each a key of the catalog). */
export function refusalReason(code: number): StatusCode {
  return `subdevice-${subDeviceReason(code)}` as StatusCode;
}

/** The error of a refusal, readable: the platform's code and what it means. */
export function subDeviceError(device: Device, code: number, message = ''): AliyunIotError {
  return new AliyunIotError(REFUSAL_ERRORS[subDeviceReason(code)] ?? 'SUBDEVICE_CODE_OTHER', { device: deviceKey(device), code, message });
}

export class SubDeviceManager implements MessageReceiver, ConnectionUser {
  readonly gateway: Device;
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<GatewayListener>();
  private readonly pending = new PendingRequests<GatewayAnswer>();
  private readonly ids = new AlinkIds();
  private readonly sends: SubDeviceSends;
  private readonly queue = new Set<string>();
  private readonly postClients = new Map<string, PostClient>();
  private readonly timeoutMs: number;
  private readonly batchSize: number;
  private readonly logoutGraceMs: number;
  /** The gateway's topology as last learned (topo/get, then our adds and the platform's changes). */
  private topology?: Set<string>;
  /** Login batches waiting for their answers. */
  private loginsInFlight = 0;
  /** The topo/get under way, shared by the batches that need it. */
  private topologyLoading?: Promise<Device[]>;
  private attached = 0;
  private connected = false;
  /** Login batches sent, for diagnostics and the bench. */
  loginRequests = 0;

  constructor(
    readonly connection: DeviceConnection,
    options: SubDeviceManagerOptions = {},
  ) {
    if (connection.mode !== 'iot') throw new AliyunIotError('GATEWAY_NOT_IOT');
    const { productKey, deviceName } = connection.profile.variables;
    this.gateway = { productKey, deviceName };
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.batchSize = Math.min(options.batchSize ?? GATEWAY_LIMITS.batchLogin, GATEWAY_LIMITS.batchLogin);
    this.logoutGraceMs = options.logoutGraceMs ?? 1000;
    // The platform subscribes the system topics of the logged-in sub-devices for us (docs/protocol.md §8.4).
    Object.assign(connection.profile.clientParams ?? {}, AUTO_SUBSCRIBE_PARAM);
    // The client id announces it at CONNECT: a connection already up (a sub-device added by a redeploy) logs in again.
    const { state } = connection.status;
    if (state === 'connected' || state === 'connecting') connection.disconnect(() => connection.connect());
    connection.addLocalFilterRule((filter) => this.isAutoSubscribed(filter));
    connection.addPublishRule((topic) => this.isSubDeviceTopic(topic));
    this.sends = new SubDeviceSends(connection, this.gateway, (key) => this.entries.get(key)?.status.state, options.claimWaitMs);
  }

  /** A topic a known sub-device may publish on: the gateway publishes it for that sub-device. */
  private isSubDeviceTopic(topic: string): boolean {
    const owner = deviceOfTopic(topic);
    if (!owner.productKey || !owner.deviceName) return false;
    const device = { productKey: owner.productKey, deviceName: owner.deviceName };
    return this.entries.has(deviceKey(device)) && isOwnPublishTopic(topic, device.productKey, device.deviceName);
  }

  /** A user of the gateway (a node) starts: the first subscribes the gateway's answer topics. */
  attach(): void {
    if (this.attached++ > 0) return;
    for (const filter of [...gatewayTopics.replyFilters(this.gateway), ...NOTICE_FILTERS]) this.connection.subscribe(this, filter, 0);
    this.connection.register(this);
  }

  detach(removed: boolean): void {
    if (--this.attached > 0) return;
    this.connection.unsubscribeAll(this, removed);
    this.connection.deregister(this, removed);
    this.pending.rejectAll(() => new AliyunIotError('CONNECTION_CLOSED'));
  }

  /**
   * A filter of a sub-device's auto-subscribed topics, or of every sub-device's (`+` for product key and device
   * name: what the auto-subscription brings for any of them, the gateway's own messages still need their SUBSCRIBE).
   */
  private isAutoSubscribed(filter: string): boolean {
    if (NOTICE_FILTERS.includes(filter)) return true;
    const device = deviceOfAnyTopic(filter);
    if (!device || deviceKey(device) === deviceKey(this.gateway)) return false;
    const everyDevice = device.productKey === '+' && device.deviceName === '+';
    if (!everyDevice && (device.productKey === '+' || device.deviceName === '+')) return false;
    return autoSubscribedFilters(device).some((pattern) => filterCovers(pattern, filter));
  }

  addListener(listener: GatewayListener): void {
    this.listeners.add(listener);
  }

  removeListener(listener: GatewayListener): void {
    this.listeners.delete(listener);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Sub-devices and their users

  /** A sub-device to keep logged in while it has users; the user hears its status at once and on every change. */
  add(credentials: SubDeviceCredentials, user: SubDeviceUser): void {
    const key = deviceKey(credentials);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { credentials, users: new Set(), status: { state: 'waiting', reason: 'subdevice-waiting' }, waiting: [] };
      this.entries.set(key, entry);
    } else {
      entry.credentials = credentials;
    }
    clearTimeout(entry.logoutTimer);
    entry.users.add(user);
    user.onStatus(credentials, entry.status);
    if (entry.status.state !== 'online' && entry.status.state !== 'logging-in') this.scheduleLogin(entry);
  }

  /** `removed`: the user was deleted; the last one's removal logs the sub-device out (after a grace when redeployed). */
  remove(device: Device, user: SubDeviceUser, removed: boolean): void {
    const entry = this.entries.get(deviceKey(device));
    if (!entry || !entry.users.delete(user) || entry.users.size > 0) return;
    clearTimeout(entry.logoutTimer);
    if (removed) this.release(entry);
    else {
      entry.logoutTimer = setTimeout(() => this.release(entry), this.logoutGraceMs);
      entry.logoutTimer.unref();
    }
  }

  private release(entry: Entry): void {
    if (entry.users.size > 0) return;
    this.forget(entry);
    // Its stored posts no longer wait for its login (maySend).
    this.connection.flush();
    if (entry.status.state === 'online' && this.connected) {
      this.logout([entry.credentials]).catch((err: Error) =>
        this.connection.log.debug(new LogMessage('SUBDEVICE_LOGOUT_FAILED', { device: deviceKey(entry.credentials), reason: err.message })),
      );
    }
  }

  /** A sub-device nobody uses any more: no login, no notices, nothing waiting. */
  private forget(entry: Entry): void {
    const key = deviceKey(entry.credentials);
    this.entries.delete(key);
    this.sends.release(key);
    this.queue.delete(key);
    clearTimeout(entry.retryTimer);
    clearTimeout(entry.logoutTimer);
    for (const waiting of entry.waiting.splice(0)) waiting();
  }

  /** Logs a sub-device without users out now instead of after the grace (the runtime stops, its config node goes). */
  releaseUnused(device: Device): void {
    const entry = this.entries.get(deviceKey(device));
    if (!entry || entry.users.size > 0) return;
    clearTimeout(entry.logoutTimer);
    this.release(entry);
  }

  /** The connection closes (the runtime stops, or its config node is redeployed): every sub-device without users logs out. */
  releaseAllUnused(): void {
    for (const entry of [...this.entries.values()]) this.releaseUnused(entry.credentials);
  }

  statusOf(device: Device): SubDeviceStatus | undefined {
    return this.entries.get(deviceKey(device))?.status;
  }

  /** Sub-devices this gateway keeps, with their status. */
  list(): Array<Device & { status: SubDeviceStatus }> {
    return [...this.entries.values()].map((entry) => ({
      productKey: entry.credentials.productKey,
      deviceName: entry.credentials.deviceName,
      status: entry.status,
    }));
  }

  private setStatus(entry: Entry, status: SubDeviceStatus): void {
    entry.status = status;
    for (const user of [...entry.users]) {
      try {
        user.onStatus(entry.credentials, status);
      } catch (err) {
        this.connection.log.error(new LogMessage('STATUS_FAILED', { reason: (err as Error).message }));
      }
    }
    if (status.state === 'online' || status.state === 'refused') {
      for (const waiting of entry.waiting.splice(0)) waiting();
      this.connection.flush();
    }
  }

  private refuse(entry: Entry, code: number, message?: string): void {
    this.setStatus(entry, { state: 'refused', reason: refusalReason(code), code });
    this.connection.log.warn(new LogMessage('SUBDEVICE_REFUSED', { device: deviceKey(entry.credentials), code, message: message ?? '' }));
    if (code === GATEWAY_CODES.tooManyLogins) {
      clearTimeout(entry.retryTimer);
      entry.retryTimer = setTimeout(() => this.scheduleLogin(entry), RETRY_AFTER_429_MS);
      entry.retryTimer.unref();
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Publishing as a sub-device

  /**
   * Publishes on a sub-device's topic through the gateway. Waits while the sub-device is logging in; fails at once
   * with SUBDEVICE_UNKNOWN for a sub-device nobody added, or with the platform's reason when it was refused.
   */
  publishAs(device: Device, topic: string, payload: string | Buffer, options: PublishOptions, callback: PublishCallback): void {
    const state = this.entries.get(deviceKey(device))?.status.state;
    if (state !== undefined && state !== 'online' && state !== 'refused' && this.connection.durableQueue) {
      // Into the disk queue at once, so that it survives a restart; it leaves once the sub-device is online (maySend).
      this.connection.publish(topic, payload, options, callback);
      return;
    }
    if (state !== 'online') {
      this.whenOnline(device).then(() => this.publishAs(device, topic, payload, options, callback), callback);
      return;
    }
    this.connection.publish(topic, payload, options, callback);
  }

  /** Resolves once a known sub-device is online; rejects when it is unknown, refused, released or never gets there. */
  private whenOnline(device: Device): Promise<void> {
    const entry = this.entries.get(deviceKey(device));
    if (!entry) return Promise.reject(new AliyunIotError('SUBDEVICE_UNKNOWN', { device: deviceKey(device) }));
    if (entry.status.state === 'online') return Promise.resolve();
    if (entry.status.state === 'refused') return Promise.reject(subDeviceError(device, entry.status.code ?? 0));
    if (entry.waiting.length >= WAITING_PER_DEVICE)
      return Promise.reject(new AliyunIotError('SUBDEVICE_NOT_ONLINE', { device: deviceKey(device) }));
    return new Promise((resolve, reject) => {
      entry.waiting.push(() => {
        if (this.entries.get(deviceKey(device)) === entry && entry.status.state === 'online') resolve();
        else
          reject(
            entry.status.state === 'refused'
              ? subDeviceError(device, entry.status.code ?? 0)
              : new AliyunIotError('SUBDEVICE_NOT_ONLINE', { device: deviceKey(device) }),
          );
      });
    });
  }

  /**
   * thing.event.property.pack.post: `entries` ([{productKey, deviceName, properties, events}], the gateway's own
   * without identity) split to the platform's limits. Throws at once on bad entries; the sub-devices named must be
   * known here, and the posts leave once they are all online. With `ack`, resolves when every part is answered.
   */
  packPost(entries: unknown, options: { ack: boolean; timeoutMs: number }): Promise<PackPostResult> {
    const checked = packEntries(entries);
    if (options.ack) checkTimerDuration(options.timeoutMs, 'timeout');
    const posts = splitPackEntries(checked);
    const named = new Map<string, Device>();
    for (const { productKey, deviceName } of checked) {
      if (productKey !== undefined && deviceName !== undefined)
        named.set(deviceKey({ productKey, deviceName }), { productKey, deviceName });
    }
    const method = GATEWAY_METHODS.packPost;
    return Promise.all([...named.values()].map((device) => this.whenOnline(device)))
      .then(() => Promise.all(posts.map((params) => this.packPart(params, options))))
      .then((parts) => {
        const refused = parts.find((part) => part.code !== undefined && part.code !== GATEWAY_CODES.success);
        const code = options.ack ? (refused?.code ?? GATEWAY_CODES.success) : undefined;
        return { method, parts, ...(code === undefined ? {} : { code }), ...(refused?.message ? { message: refused.message } : {}) };
      });
  }

  private packPart(params: Record<string, unknown>, options: { ack: boolean; timeoutMs: number }): Promise<PackPostPart> {
    const id = this.ids.take();
    const request = buildPackPost(this.gateway, id, params, options.ack);
    return new Promise((resolve, reject) => {
      if (options.ack) {
        this.pending.add(
          id,
          options.timeoutMs,
          (error, answer) => (error ? reject(error) : resolve({ id, code: answer?.code, message: answer?.message })),
          () => new AliyunIotError('POST_TIMEOUT', { method: GATEWAY_METHODS.packPost, id, timeout: options.timeoutMs }),
        );
      }
      this.connection.publish(
        request.topic,
        request.payload,
        { qos: 1, ...(options.ack ? { queueTimeoutMs: options.timeoutMs } : {}) },
        (error) => {
          if (error) {
            if (options.ack) this.pending.reject(id, error);
            else reject(error);
          } else if (!options.ack) resolve({ id });
        },
      );
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Requests

  /** Publishes a gateway request and resolves with the reply of the same id. */
  call(build: (id: string) => GatewayRequest): Promise<GatewayAnswer> {
    const id = this.ids.take();
    const request = build(id);
    const operation = request.topic.slice(request.topic.lastIndexOf('/') + 1);
    return new Promise((resolve, reject) => {
      this.pending.add(
        id,
        this.timeoutMs,
        (error, answer) => (error ? reject(error) : resolve(answer as GatewayAnswer)),
        () => new AliyunIotError('GATEWAY_TIMEOUT', { operation, timeout: this.timeoutMs }),
      );
      this.connection.publish(request.topic, request.payload, { qos: 0, queueTimeoutMs: this.timeoutMs, control: true }, (error) => {
        if (error) this.pending.reject(id, error);
      });
    });
  }

  async topologyGet(): Promise<Device[]> {
    const answer = await this.call((id) => buildTopologyGet(this.gateway, id));
    if (answer.code !== 200) throw subDeviceError(this.gateway, answer.code, answer.message);
    const devices = devicesIn(answer.data);
    this.topology = new Set(devices.map(deviceKey));
    return devices;
  }

  /**
   * Adds topology in requests of at most 30; a request refused for a device named in its answer goes again without
   * it. Returns the refusals by device.
   */
  async topologyAdd(credentials: SubDeviceCredentials[]): Promise<Map<string, number>> {
    return this.perDevice(
      credentials,
      GATEWAY_LIMITS.topoAdd,
      (id, chunk) => buildTopologyAdd(this.gateway, id, chunk),
      (chunk) => {
        for (const device of chunk) this.topology?.add(deviceKey(device));
      },
    );
  }

  /** Deletes topology in requests of at most 30, as topologyAdd adds it; returns the refusals by device. */
  async topologyDelete(devices: Device[]): Promise<Map<string, number>> {
    return this.perDevice(
      devices,
      GATEWAY_LIMITS.topoAdd,
      (id, chunk) => buildTopologyDelete(this.gateway, id, chunk),
      (chunk) => {
        for (const device of chunk) this.topology?.delete(deviceKey(device));
      },
    );
  }

  /**
   * thing/sub/register in requests of at most 30; `registered` hears the secrets of each accepted request before
   * the next goes. A reply that does not give a secret for exactly the devices asked is REGISTER_REPLY_MALFORMED.
   */
  async register(devices: Device[], registered: (secrets: RegisteredSubDevice[]) => Promise<void>): Promise<Map<string, number>> {
    return this.perDevice(
      devices,
      GATEWAY_LIMITS.topoAdd,
      (id, chunk) => buildRegister(this.gateway, id, chunk),
      async (chunk, answer) => {
        const secrets = readRegisterReply(answer);
        const asked = new Set(chunk.map(deviceKey));
        const answered = new Set(secrets.map(deviceKey));
        if (answered.size !== asked.size || secrets.some((entry) => !asked.has(deviceKey(entry)))) {
          throw new AliyunIotError('REGISTER_REPLY_MALFORMED');
        }
        await registered(secrets);
      },
    );
  }

  /**
   * Sends `build` for chunks of at most `size` devices; a request refused for devices its answer names goes again
   * without them (one that names none of them refuses the whole chunk). Returns the refusals by device.
   */
  private async perDevice<T extends Device>(
    devices: readonly T[],
    size: number,
    build: (id: string, chunk: T[]) => GatewayRequest,
    accepted: (chunk: T[], answer: GatewayAnswer) => void | Promise<void>,
  ): Promise<Map<string, number>> {
    const refused = new Map<string, number>();
    for (let chunk of chunks(devices, size)) {
      while (chunk.length > 0) {
        const request = chunk;
        const answer = await this.call((id) => build(id, request));
        if (answer.code === 200) {
          await accepted(chunk, answer);
          break;
        }
        const named = new Set(devicesIn(answer.data).map(deviceKey));
        const namedHere = chunk.filter((device) => named.has(deviceKey(device)));
        // An answer that names none of the request's devices refuses them all.
        const failing = namedHere.length > 0 ? namedHere : chunk;
        for (const device of failing) refused.set(deviceKey(device), answer.code);
        chunk = chunk.filter((device) => !failing.includes(device));
      }
    }
    return refused;
  }

  /**
   * `user` lets go of `devices`: the ones no other user keeps are logged out now, in batches (one the platform does
   * not have online answers 520; one that is not online is not sent). Returns the platform's refusals by device; a device another user keeps is not sent.
   */
  async letGo(devices: Device[], user: SubDeviceUser): Promise<Map<string, number>> {
    const leaving: Device[] = [];
    for (const device of devices) {
      const entry = this.entries.get(deviceKey(device));
      if (entry) {
        entry.users.delete(user);
        if (entry.users.size > 0) continue;
        this.forget(entry);
        // Not online (refused, waiting): nothing to log out; logging in: logged out when its login is answered.
        if (entry.status.state !== 'online') continue;
      }
      leaving.push({ productKey: device.productKey, deviceName: device.deviceName });
    }
    return this.perDevice(
      leaving,
      this.batchSize,
      (id, chunk) => buildLogout(this.gateway, id, chunk),
      () => undefined,
    );
  }

  async logout(devices: Device[]): Promise<void> {
    for (const chunk of chunks(devices, this.batchSize)) {
      const answer = await this.call((id) => buildLogout(this.gateway, id, chunk));
      for (const device of chunk) {
        const entry = this.entries.get(deviceKey(device));
        if (entry) this.setStatus(entry, { state: 'offline', reason: 'subdevice-offline' });
      }
      if (answer.code !== 200 && answer.code !== GATEWAY_CODES.noSession) throw subDeviceError(chunk[0], answer.code, answer.message);
    }
  }

  private scheduleLogin(entry: Entry): void {
    this.queue.add(deviceKey(entry.credentials));
    if (this.connected) setImmediate(() => this.loginQueued());
  }

  /**
   * Logs in the queued sub-devices in batches, a few batches at a time: the connection's pacing, not the round trips,
   * sets the pace.
   */
  private loginQueued(): void {
    while (this.connected && this.queue.size > 0 && this.loginsInFlight < LOGIN_BATCHES_IN_FLIGHT) {
      const batch = [...this.queue].slice(0, this.batchSize).flatMap((key) => {
        this.queue.delete(key);
        const entry = this.entries.get(key);
        return entry ? [entry] : [];
      });
      if (batch.length === 0) continue;
      for (const entry of batch) this.setStatus(entry, { state: 'logging-in', reason: 'subdevice-logging-in' });
      this.loginsInFlight += 1;
      void this.loginBatch(batch).finally(() => {
        this.loginsInFlight -= 1;
        this.loginQueued();
      });
    }
  }

  private async loginBatch(batch: Entry[]): Promise<void> {
    try {
      if (!this.topology) {
        this.topologyLoading ??= this.topologyGet().finally(() => (this.topologyLoading = undefined));
        await this.topologyLoading;
      }
      const missing = batch.filter((entry) => !this.topology?.has(deviceKey(entry.credentials)));
      let remaining = await this.withTopology(batch, missing);
      let addedTopology = missing.length > 0;
      while (remaining.length > 0) {
        this.loginRequests += 1;
        const answer = await this.call((id) =>
          buildLogin(
            this.gateway,
            id,
            remaining.map((entry) => entry.credentials),
          ),
        );
        if (answer.code === 200) {
          for (const entry of remaining) this.setStatus(entry, { state: 'online', reason: 'subdevice-online' });
          // Released while their login was under way.
          const released = remaining.filter((entry) => this.entries.get(deviceKey(entry.credentials)) !== entry);
          if (released.length > 0) await this.logout(released.map((entry) => entry.credentials));
          return;
        }
        const failing = new Set(devicesIn(answer.data).map(deviceKey));
        if (answer.code === GATEWAY_CODES.noTopology && !addedTopology) {
          // The topology went away since we learned it: add it once for the devices named, then try again.
          addedTopology = true;
          const named = remaining.filter((entry) => failing.size === 0 || failing.has(deviceKey(entry.credentials)));
          for (const entry of named) this.topology?.delete(deviceKey(entry.credentials));
          remaining = await this.withTopology(remaining, named);
          continue;
        }
        const refused = remaining.filter((entry) => failing.size === 0 || failing.has(deviceKey(entry.credentials)));
        for (const entry of refused) this.refuse(entry, answer.code, answer.message);
        remaining = remaining.filter((entry) => !refused.includes(entry));
      }
    } catch (err) {
      // No answer (timeout, connection lost): they wait for the next connect, or try again after the timeout.
      this.connection.log.debug(
        new LogMessage('SUBDEVICE_LOGIN_FAILED', { gateway: deviceKey(this.gateway), reason: (err as Error).message }),
      );
      for (const entry of batch) {
        if (entry.status.state !== 'logging-in') continue;
        this.setStatus(entry, { state: 'waiting', reason: 'subdevice-waiting' });
        if (this.connected) {
          clearTimeout(entry.retryTimer);
          entry.retryTimer = setTimeout(() => this.scheduleLogin(entry), this.timeoutMs);
          entry.retryTimer.unref();
        }
      }
    }
  }

  /** Adds topology for `missing`; returns `batch` without the ones refused. */
  private async withTopology(batch: Entry[], missing: Entry[]): Promise<Entry[]> {
    if (missing.length === 0) return batch;
    const refused = await this.topologyAdd(missing.map((entry) => entry.credentials));
    for (const entry of missing) {
      const code = refused.get(deviceKey(entry.credentials));
      if (code !== undefined) this.refuse(entry, code === GATEWAY_CODES.authError ? GATEWAY_CODES.badSign : code);
    }
    return batch.filter((entry) => !refused.has(deviceKey(entry.credentials)));
  }

  // -------------------------------------------------------------------------------------------------------------
  // The connection and what arrives

  onStatus(status: ConnectionStatus): void {
    const connected = status.state === 'connected';
    if (connected === this.connected) return;
    this.connected = connected;
    for (const entry of this.entries.values()) {
      if (connected) {
        if (entry.status.state !== 'refused' || entry.status.code !== GATEWAY_CODES.tooManyLogins) this.scheduleLogin(entry);
      } else if (entry.status.state !== 'refused') {
        this.setStatus(entry, { state: 'waiting', reason: 'subdevice-waiting' });
      }
    }
  }

  onMessage(topic: string, payload: Buffer): void {
    const parsed = parseGatewayTopic(this.gateway, topic);
    const answer = readGatewayAnswer(payload);
    if (!parsed || !answer) {
      this.connection.log.debug(new LogMessage('ALINK_MALFORMED', { topic }));
      return;
    }
    switch (parsed.type) {
      case 'topology-reply':
      case 'session-reply':
      case 'register-reply':
      case 'pack-reply':
        if (answer.id === undefined || !this.pending.resolve(answer.id, answer)) {
          // Kick-offs may come on logout_reply too (docs/protocol.md §8.3).
          if (parsed.type === 'session-reply' && answer.code !== 200) this.onError(topic, answer);
        }
        break;
      case 'error':
        this.onError(topic, answer);
        break;
      case 'topology-change':
        this.onTopologyChange(topic, answer);
        break;
      case 'notice':
        if (this.entries.has(deviceKey(parsed.device)))
          this.notify({ kind: parsed.kind, devices: [parsed.device], topic, payload: answer });
        break;
      default:
        break;
    }
  }

  private onError(topic: string, answer: GatewayAnswer): void {
    const devices = devicesIn(answer.data);
    for (const device of devices) {
      const entry = this.entries.get(deviceKey(device));
      if (answer.code === GATEWAY_CODES.noSession) {
        if (!entry) continue;
        const failed = answer.id === undefined ? undefined : this.sends.takeRefused(device, answer.id);
        this.connection.log.debug(new LogMessage('SUBDEVICE_RELOGIN', { device: deviceKey(device) }));
        if (entry.status.state === 'online') {
          this.setStatus(entry, { state: 'waiting', reason: 'subdevice-waiting' });
          this.scheduleLogin(entry);
        }
        // Waits for the re-login, then goes once more.
        if (failed) this.publishAs(device, failed.topic, failed.payload, failed.options, () => undefined);
      } else {
        if (entry) this.refuse(entry, answer.code, answer.message);
        if (answer.code === GATEWAY_CODES.noTopology) this.topology?.delete(deviceKey(device));
      }
    }
    if (answer.code !== GATEWAY_CODES.noSession) this.notify({ kind: 'kicked', devices, code: answer.code, topic, payload: answer });
  }

  private onTopologyChange(topic: string, answer: GatewayAnswer): void {
    const params = (answer.params ?? {}) as { status?: unknown; subList?: unknown };
    const status = Number(params.status);
    const devices = devicesIn(params.subList);
    for (const device of devices) {
      const entry = this.entries.get(deviceKey(device));
      if (status === 0) this.topology?.add(deviceKey(device));
      if (status === 1) this.topology?.delete(deviceKey(device));
      if (entry && status === 2 && entry.status.state === 'refused') this.scheduleLogin(entry);
      if (entry && status === 8) this.refuse(entry, GATEWAY_CODES.disabled);
    }
    this.notify({ kind: 'topology-change', devices, change: TOPOLOGY_CHANGE[status] ?? String(params.status), topic, payload: answer });
  }

  private notify(notice: GatewayNotice): void {
    for (const listener of [...this.listeners]) {
      try {
        listener.onGatewayNotice(notice);
      } catch (err) {
        this.connection.log.error(new LogMessage('STATUS_FAILED', { reason: (err as Error).message }));
      }
    }
  }

  /** The thing-model post client of a sub-device: its posts go through publishAs, its replies arrive auto-subscribed. */
  postClientOf(device: Device): PostClient {
    let client = this.postClients.get(deviceKey(device));
    if (!client) {
      const target = { productKey: device.productKey, deviceName: device.deviceName };
      client = new PostClient(this.connection, target, (topic, payload, options, callback) =>
        this.publishAs(target, topic, payload, options, callback),
      );
      this.postClients.set(deviceKey(device), client);
    }
    return client;
  }

  onSubscribeError(_filter: string, error: AliyunIotError): void {
    if (isLogCode(error.code)) this.connection.log.error(new LogMessage(error.code, error.params));
  }
}

const managers = new WeakMap<DeviceConnection, SubDeviceManager>();

/** The sub-device manager of a connection if something made one: the connection is then a gateway's. */
export function existingSubDeviceManager(connection: DeviceConnection): SubDeviceManager | undefined {
  return managers.get(connection);
}

const managerWaiters = new WeakMap<DeviceConnection, Set<(manager: SubDeviceManager) => void>>();

/** The sub-device manager of a gateway's connection, made on first use and shared by every node on it. */
export function subDeviceManagerOf(connection: DeviceConnection, options?: SubDeviceManagerOptions): SubDeviceManager {
  let manager = managers.get(connection);
  if (!manager) {
    managers.set(connection, (manager = new SubDeviceManager(connection, options)));
    const waiters = managerWaiters.get(connection);
    managerWaiters.delete(connection);
    for (const waiter of waiters ?? []) waiter(manager);
  }
  return manager;
}

/**
 * Calls `use` with the connection's sub-device manager: at once if there is one, else when something makes one (a
 * node that starts later makes the connection a gateway's). Returns what cancels the wait.
 */
export function whenSubDeviceManager(connection: DeviceConnection, use: (manager: SubDeviceManager) => void): () => void {
  const manager = managers.get(connection);
  if (manager) {
    use(manager);
    return () => undefined;
  }
  let waiters = managerWaiters.get(connection);
  if (!waiters) managerWaiters.set(connection, (waiters = new Set()));
  waiters.add(use);
  return () => managerWaiters.get(connection)?.delete(use);
}
