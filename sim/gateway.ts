// The platform's gateway side (docs/protocol.md §8): topologies (kept while the Simulator object lives, across
// stop and start), sub-device sessions through a gateway's connection, their limits and codes, and the notices.
import type { Client } from 'aedes';
import {
  Device,
  deviceKey,
  GATEWAY_CODES,
  GATEWAY_LIMITS,
  GATEWAY_METHODS,
  TOPOLOGY_CHANGE,
  alinkId,
  autoSubscribedFilters,
  deviceOfAnyTopic,
  gatewayTopics,
  matches,
  parseAlink,
  readSignMethod,
  verifySubDeviceSign,
} from '../nodes/lib/protocol';
import { SimGatewayLimits } from './config';
import type { Publish } from './platform';
import type { IotSession, Registry } from './registry';

function named(entry: unknown): Device | undefined {
  const { productKey, deviceName } = (entry ?? {}) as Partial<Device>;
  return typeof productKey === 'string' && productKey !== '' && typeof deviceName === 'string' && deviceName !== ''
    ? { productKey, deviceName }
    : undefined;
}

/** thing/sub/register for a product whose dynamic registration is off. */
const REGISTRATION_OFF = 6288;

const MESSAGES: Record<number, string> = {
  [GATEWAY_CODES.success]: 'success',
  [GATEWAY_CODES.authError]: 'request auth error',
  [GATEWAY_CODES.badRequest]: 'request parameter error',
  [GATEWAY_CODES.tooManyLogins]: 'rate limit, too many subDeviceOnline msg in one minute',
  [GATEWAY_CODES.tooManyOnline]: 'too many subdevices under gateway',
  [GATEWAY_CODES.elsewhere]: 'device connect in elsewhere',
  [GATEWAY_CODES.noSession]: 'device no session',
  [GATEWAY_CODES.deleted]: 'device deleted',
  [GATEWAY_CODES.disabled]: 'device forbidden',
  [GATEWAY_CODES.unknownDevice]: 'device not found',
  [GATEWAY_CODES.badSign]: 'invalid sign',
  [GATEWAY_CODES.tooManyTopology]: 'too many sub devices under gateway',
  [GATEWAY_CODES.noTopology]: 'topo relation not exist',
  [GATEWAY_CODES.addSelf]: 'topo relation cannot add by self',
  [REGISTRATION_OFF]: 'dynamic register not allowed',
  [GATEWAY_CODES.packTooManyProperties]: 'too many properties',
  [GATEWAY_CODES.packTooManySubDevices]: 'too many sub devices in one post',
  [GATEWAY_CODES.packTooManyEvents]: 'too many events',
};

/** A request the platform refuses, with its device-side code and the device it names. */
export class Refusal {
  constructor(
    readonly code: number,
    readonly device?: Device,
  ) {}
}

type Values = Record<string, unknown>;

function isValues(value: unknown): value is Values | undefined {
  return value === undefined || (value !== null && typeof value === 'object' && !Array.isArray(value));
}

/** A pack post's properties and events of one device, objects or absent (460 otherwise). */
function groups(properties: unknown, events: unknown, device?: Device): { properties: Values; events: Values } {
  if (!isValues(properties) || !isValues(events)) throw new Refusal(GATEWAY_CODES.badRequest, device);
  return { properties: properties ?? {}, events: events ?? {} };
}

/** A sub-device online through a gateway. */
interface SubSession {
  session: IotSession;
  gateway: Device;
  client: Client;
}

export interface GatewayEvents {
  'subdevice-login': [info: { gateway: string; productKey: string; deviceName: string }];
  'subdevice-logout': [info: { gateway: string; productKey: string; deviceName: string; code: number }];
  'subdevice-refused': [info: { gateway: string; productKey: string; deviceName: string; code: number }];
}

export type EmitGatewayEvent = <E extends keyof GatewayEvents>(event: E, ...args: GatewayEvents[E]) => void;

export class Gateways {
  /** gateway key → its sub-devices; kept across stop and start. */
  private readonly topology = new Map<string, Map<string, Device>>();
  private readonly online = new Map<string, SubSession>();
  private readonly onlineByGateway = new Map<string, Set<string>>();
  private readonly loginTimes = new Map<string, number[]>();
  private readonly replacements = new Map<string, Array<Record<string, unknown> | string | null>>();
  private readonly limits: Required<SimGatewayLimits>;

  constructor(
    private readonly registry: Registry,
    private readonly publish: Publish,
    private readonly clientOf: (device: Device) => Client | undefined,
    private readonly log: (line: string) => void,
    private readonly emit: EmitGatewayEvent,
    /** A device's properties and events arrived in a pack post. */
    private readonly posted: (
      device: Device,
      id: string | undefined,
      properties: Record<string, unknown>,
      events: Record<string, unknown>,
    ) => void,
    limits: SimGatewayLimits = {},
  ) {
    this.limits = {
      onlinePerGateway: limits.onlinePerGateway ?? GATEWAY_LIMITS.onlinePerGateway,
      topologyPerGateway: limits.topologyPerGateway ?? GATEWAY_LIMITS.topologyPerGateway,
      loginsPerMinute: limits.loginsPerMinute ?? GATEWAY_LIMITS.loginsPerMinute,
    };
    for (const device of registry.allDevices()) {
      const subDevices = registry.product(device.productKey)?.devices.find((entry) => entry.deviceName === device.deviceName)?.subDevices;
      for (const sub of subDevices ?? []) this.attach(device, sub);
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // What the broker hooks ask

  /** A gateway's own topology, session or register request: consumed here. */
  isRequest(session: IotSession, topic: string): boolean {
    if (this.registry.nodeType(session.productKey) !== 'gateway') return false;
    return (
      topic.startsWith(`/ext/session/${session.productKey}/${session.deviceName}/combine/`) ||
      ['add', 'delete', 'get'].some((operation) => topic === gatewayTopics.topology(session, operation as 'add')) ||
      topic === gatewayTopics.register(session) ||
      topic === gatewayTopics.packPost(session)
    );
  }

  /**
   * Whose topic a client uses: its own session, the session of a sub-device logged in through it, or null for a
   * sub-device that is not (its messages earn 520).
   */
  actingAs(session: IotSession, topic: string): IotSession | null {
    if (this.registry.nodeType(session.productKey) !== 'gateway') return session;
    const device = deviceOfAnyTopic(topic);
    if (!device) return session;
    if (device.productKey === session.productKey && device.deviceName === session.deviceName) return session;
    const sub = this.online.get(deviceKey(device));
    if (sub && deviceKey(sub.gateway) === deviceKey(session)) return sub.session;
    return this.registry.isSubDevice(device) ? null : session;
  }

  /** A gateway published for a sub-device that is not online through it: 520 on its /ext/error topic. */
  noSession(gateway: IotSession, topic: string, payload: Buffer): void {
    const device = deviceOfAnyTopic(topic) as Device;
    this.log(`${deviceKey(gateway)}: ${deviceKey(device)} is not online through it: 520 for ${topic}`);
    this.sendError(gateway, GATEWAY_CODES.noSession, device, parseAlink(payload)?.id);
  }

  /** The session of a sub-device online through some gateway. */
  sessionOf(device: Device): IotSession | undefined {
    return this.online.get(deviceKey(device))?.session;
  }

  onRequest(client: Client, gateway: IotSession, topic: string, payload: Buffer): void {
    const request = parseAlink(payload);
    const id = request?.id;
    const replyTopic = `${topic}_reply`;
    const operation = topic.slice(topic.lastIndexOf('/') + 1);
    const answer = (code: number, data: unknown): void => {
      const body: Record<string, unknown> = { id, code, message: MESSAGES[code] ?? 'error', data };
      if (typeof request?.method === 'string') body.method = request.method;
      const replaced = this.replacement(operation);
      this.publish(replyTopic, typeof replaced === 'string' ? replaced : JSON.stringify(replaced ? { id, ...replaced } : body), 0);
    };
    const params = request?.params;
    try {
      if (!request) throw new Refusal(GATEWAY_CODES.badRequest);
      if (topic.startsWith('/ext/session/')) {
        answer(GATEWAY_CODES.success, this.session(client, gateway, operation, params));
      } else if (operation === 'add') {
        answer(GATEWAY_CODES.success, this.addTopology(gateway, this.list(params, GATEWAY_LIMITS.topoAdd), true));
      } else if (operation === 'delete') {
        answer(
          GATEWAY_CODES.success,
          this.deleteTopology(
            gateway,
            this.list(params, GATEWAY_LIMITS.topoAdd).map((entry) => this.device(entry)),
          ),
        );
      } else if (operation === 'get') {
        answer(GATEWAY_CODES.success, this.topologyOf(gateway));
      } else if (topic === gatewayTopics.packPost(gateway)) {
        this.packPost(gateway, alinkId(id), params);
        if ((request.sys as { ack?: unknown } | undefined)?.ack !== 0) answer(GATEWAY_CODES.success, {});
      } else {
        answer(GATEWAY_CODES.success, this.register(this.list(params, GATEWAY_LIMITS.topoAdd)));
      }
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      this.log(`${deviceKey(gateway)} ${topic}: refused with ${err.code}`);
      answer(err.code, err.device ? [err.device] : {});
    }
  }

  /** A gateway's connection ended: the sub-devices it logged in are offline. */
  gatewayGone(gateway: IotSession, client: Client): void {
    for (const key of [...(this.onlineByGateway.get(deviceKey(gateway)) ?? [])]) {
      const sub = this.online.get(key);
      if (sub?.client === client) this.end(sub, GATEWAY_CODES.success, false);
    }
  }

  /** The simulator stopped: nobody is online; topologies stay. */
  clearOnline(): void {
    this.online.clear();
    this.onlineByGateway.clear();
  }

  // -------------------------------------------------------------------------------------------------------------
  // Requests

  private list(params: unknown, max: number): unknown[] {
    if (!Array.isArray(params) || params.length === 0 || params.length > max) throw new Refusal(GATEWAY_CODES.badRequest);
    return params;
  }

  private device(entry: unknown): Device {
    const device = named(entry);
    if (!device) throw new Refusal(GATEWAY_CODES.badRequest);
    if (!this.registry.isSubDevice(device)) throw new Refusal(GATEWAY_CODES.unknownDevice, device);
    return device;
  }

  private secretOf(device: Device): string {
    return this.registry.deviceSecret(device.productKey, device.deviceName) as string;
  }

  /** `signed`: entries carry a signature by the sub-device's secret, checked before anything changes. */
  addTopology(gateway: Device, entries: unknown[], signed: boolean): Device[] {
    const devices = entries.map((entry) => {
      const device = named(entry);
      if (device && deviceKey(device) === deviceKey(gateway)) throw new Refusal(GATEWAY_CODES.addSelf, device);
      const checked = this.device(entry);
      const record = entry as Record<string, unknown>;
      if (signed && !verifySubDeviceSign(record, record.signmethod ?? record.signMethod, this.secretOf(checked))) {
        throw new Refusal(GATEWAY_CODES.authError, checked);
      }
      return checked;
    });
    const attached = this.topology.get(deviceKey(gateway));
    const added = devices.filter((device) => !attached?.has(deviceKey(device))).length;
    if ((attached?.size ?? 0) + added > this.limits.topologyPerGateway) throw new Refusal(GATEWAY_CODES.tooManyTopology);
    for (const device of devices) this.attach(gateway, device);
    return devices;
  }

  private attach(gateway: Device, device: Device): void {
    let attached = this.topology.get(deviceKey(gateway));
    if (!attached) this.topology.set(deviceKey(gateway), (attached = new Map()));
    attached.set(deviceKey(device), { productKey: device.productKey, deviceName: device.deviceName });
  }

  deleteTopology(gateway: Device, devices: Device[]): Device[] {
    const attached = this.topology.get(deviceKey(gateway));
    const missing = devices.find((device) => !attached?.has(deviceKey(device)));
    if (missing) throw new Refusal(GATEWAY_CODES.noTopology, missing);
    for (const device of devices) {
      attached?.delete(deviceKey(device));
      const sub = this.online.get(deviceKey(device));
      if (sub && deviceKey(sub.gateway) === deviceKey(gateway)) this.end(sub, GATEWAY_CODES.noTopology, true);
    }
    return devices;
  }

  topologyOf(gateway: Device): Device[] {
    return [...(this.topology.get(deviceKey(gateway))?.values() ?? [])];
  }

  /**
   * thing.event.property.pack.post: checked whole (shape, limits, topology, and each sub-device online through this
   * gateway), then each device's properties and events recorded as its own posts.
   */
  private packPost(gateway: IotSession, id: string | undefined, params: unknown): void {
    const record = (params ?? {}) as { properties?: unknown; events?: unknown; subDevices?: unknown };
    const subDevices = record.subDevices === undefined ? [] : record.subDevices;
    if (!Array.isArray(subDevices)) throw new Refusal(GATEWAY_CODES.badRequest);
    if (subDevices.length > GATEWAY_LIMITS.packSubDevices) throw new Refusal(GATEWAY_CODES.packTooManySubDevices);
    const entries = [
      { device: { productKey: gateway.productKey, deviceName: gateway.deviceName }, ...groups(record.properties, record.events) },
      ...subDevices.map((entry: unknown) => {
        const { identity, properties, events } = (entry ?? {}) as { identity?: unknown; properties?: unknown; events?: unknown };
        const device = named(identity);
        if (!device) throw new Refusal(GATEWAY_CODES.badRequest);
        if (!this.topology.get(deviceKey(gateway))?.has(deviceKey(device))) throw new Refusal(GATEWAY_CODES.noTopology, device);
        const sub = this.online.get(deviceKey(device));
        if (!sub || deviceKey(sub.gateway) !== deviceKey(gateway)) throw new Refusal(GATEWAY_CODES.noSession, device);
        return { device, ...groups(properties, events, device) };
      }),
    ];
    const count = (key: 'properties' | 'events'): number => entries.reduce((sum, entry) => sum + Object.keys(entry[key]).length, 0);
    if (count('properties') > GATEWAY_LIMITS.packProperties) throw new Refusal(GATEWAY_CODES.packTooManyProperties);
    if (count('events') > GATEWAY_LIMITS.packEvents) throw new Refusal(GATEWAY_CODES.packTooManyEvents);
    for (const { device, properties, events } of entries) this.posted(device, id, properties, events);
  }

  /**
   * thing/sub/register: each device of a sub-device product with dynamic registration gets its DeviceSecret (and an
   * IotId). Sub-devices are pre-registered only: a device not created first (registry, admin API) is refused with 6100.
   */
  private register(entries: unknown[]): Array<Device & { deviceSecret: string; iotId: string }> {
    const devices = entries.map((entry) => {
      const device = named(entry);
      if (!device) throw new Refusal(GATEWAY_CODES.badRequest);
      if (this.registry.nodeType(device.productKey) !== 'sub-device' || !this.registry.product(device.productKey))
        throw new Refusal(GATEWAY_CODES.unknownDevice, device);
      if (!this.registry.product(device.productKey)?.dynamicRegistration) throw new Refusal(REGISTRATION_OFF, device);
      if (!matches('deviceName', device.deviceName)) throw new Refusal(GATEWAY_CODES.badRequest, device);
      return device;
    });
    return devices.map((device) => {
      const deviceSecret = this.registry.deviceSecret(device.productKey, device.deviceName);
      if (deviceSecret === undefined) throw new Refusal(GATEWAY_CODES.unknownDevice, device);
      return { ...device, deviceSecret, iotId: `${device.productKey}${device.deviceName}` };
    });
  }

  /**
   * A test's stand-ins for the platform's next replies to `operation` (add, delete, get, register, login, ...), in
   * order: a body (the request's id is added), a raw payload, or null for the platform's own answer.
   */
  answerNextWith(operation: string, ...replies: Array<Record<string, unknown> | string | null>): void {
    this.replacements.set(operation, [...(this.replacements.get(operation) ?? []), ...replies]);
  }

  private replacement(operation: string): Record<string, unknown> | string | null | undefined {
    const queued = this.replacements.get(operation);
    const next = queued?.shift();
    if (queued?.length === 0) this.replacements.delete(operation);
    return next;
  }

  private session(client: Client, gateway: IotSession, operation: string, params: unknown): unknown {
    const record = (params ?? {}) as Record<string, unknown>;
    switch (operation) {
      case 'login':
        return this.login(client, gateway, [params], undefined)[0];
      case 'batch_login':
        return this.login(client, gateway, this.list(record.deviceList, GATEWAY_LIMITS.batchLogin), record.signMethod);
      case 'logout':
        return this.logout(gateway, [params])[0];
      case 'batch_logout':
        return this.logout(gateway, this.list(params, GATEWAY_LIMITS.batchLogin));
      default:
        throw new Refusal(GATEWAY_CODES.badRequest);
    }
  }

  /** All or nothing: every entry is checked before any sub-device goes online. */
  private login(client: Client, gateway: IotSession, entries: unknown[], batchSignMethod: unknown): Device[] {
    const now = Date.now();
    const online = this.onlineByGateway.get(deviceKey(gateway));
    let newlyOnline = 0;
    const accepted = entries.map((entry) => {
      const device = named(entry);
      if (!device) throw new Refusal(GATEWAY_CODES.badRequest);
      const refused = (code: number): Refusal => {
        this.emit('subdevice-refused', { gateway: deviceKey(gateway), ...device, code });
        return new Refusal(code, device);
      };
      if (this.registry.deviceSecret(device.productKey, device.deviceName) === undefined) throw refused(GATEWAY_CODES.unknownDevice);
      const state = this.registry.stateOf(device);
      if (state !== 'active') throw refused(state === 'deleted' ? GATEWAY_CODES.deleted : GATEWAY_CODES.disabled);
      const record = entry as Record<string, unknown>;
      if (
        !readSignMethod(record.signMethod ?? batchSignMethod) ||
        !verifySubDeviceSign(record, record.signMethod ?? batchSignMethod, this.secretOf(device))
      )
        throw refused(GATEWAY_CODES.badSign);
      if (!this.topology.get(deviceKey(gateway))?.has(deviceKey(device))) throw refused(GATEWAY_CODES.noTopology);
      const times = (this.loginTimes.get(deviceKey(device)) ?? []).filter((time) => time > now - 60_000);
      this.loginTimes.set(deviceKey(device), times);
      if (times.length >= this.limits.loginsPerMinute) throw refused(GATEWAY_CODES.tooManyLogins);
      times.push(now);
      if (!online?.has(deviceKey(device))) newlyOnline += 1;
      return { device, clientId: typeof record.clientId === 'string' ? record.clientId : deviceKey(device) };
    });
    if ((online?.size ?? 0) + newlyOnline > this.limits.onlinePerGateway) {
      const first = accepted.find(({ device }) => !online?.has(deviceKey(device)))?.device;
      if (first) this.emit('subdevice-refused', { gateway: deviceKey(gateway), ...first, code: GATEWAY_CODES.tooManyOnline });
      throw new Refusal(GATEWAY_CODES.tooManyOnline, first);
    }
    return accepted.map(({ device, clientId }) => {
      this.goOnline(client, gateway, device, clientId);
      return device;
    });
  }

  private goOnline(client: Client, gateway: IotSession, device: Device, clientId: string): void {
    const previous = this.online.get(deviceKey(device));
    if (previous && deviceKey(previous.gateway) !== deviceKey(gateway)) {
      this.log(`${deviceKey(device)} logs in through ${deviceKey(gateway)}: knocks it off ${deviceKey(previous.gateway)}`);
      this.end(previous, GATEWAY_CODES.elsewhere, true);
    }
    if (previous && deviceKey(previous.gateway) === deviceKey(gateway)) return;
    const session: IotSession = {
      kind: 'iot',
      ...device,
      clientId: clientId.split('|')[0],
      ext: gateway.ext,
      permissions: this.registry.devicePermissions(device),
      gateway: { productKey: gateway.productKey, deviceName: gateway.deviceName },
    };
    this.online.set(deviceKey(device), { session, gateway: session.gateway as Device, client });
    let set = this.onlineByGateway.get(deviceKey(gateway));
    if (!set) this.onlineByGateway.set(deviceKey(gateway), (set = new Set()));
    set.add(deviceKey(device));
    if (gateway.autoSubscribe) {
      client.subscribe(
        autoSubscribedFilters(device).map((topic) => ({ topic, qos: 1 as const })),
        (err) => {
          if (err) this.log(`auto-subscription for ${deviceKey(device)} failed: ${err.message}`);
        },
      );
    }
    this.log(`${deviceKey(device)} online through ${deviceKey(gateway)}`);
    this.emit('subdevice-login', { gateway: deviceKey(gateway), ...device });
  }

  private logout(gateway: IotSession, entries: unknown[]): Device[] {
    const subs = entries.map((entry) => {
      const device = named(entry);
      if (!device) throw new Refusal(GATEWAY_CODES.badRequest);
      const sub = this.online.get(deviceKey(device));
      if (!sub || deviceKey(sub.gateway) !== deviceKey(gateway)) throw new Refusal(GATEWAY_CODES.noSession, device);
      return sub;
    });
    for (const sub of subs) this.end(sub, GATEWAY_CODES.success, false);
    return subs.map(({ session }) => ({ productKey: session.productKey, deviceName: session.deviceName }));
  }

  /** A sub-device goes offline; with `notify`, its gateway hears why on /ext/error. */
  private end(sub: SubSession, code: number, notify: boolean): void {
    const device = { productKey: sub.session.productKey, deviceName: sub.session.deviceName };
    if (this.online.get(deviceKey(device)) !== sub) return;
    this.online.delete(deviceKey(device));
    this.onlineByGateway.get(deviceKey(sub.gateway))?.delete(deviceKey(device));
    if (!sub.client.closed) {
      sub.client.unsubscribe(
        autoSubscribedFilters(device).map((topic) => ({ topic, qos: 0 as const })),
        () => undefined,
      );
    }
    if (notify) this.sendError(sub.gateway, code, device);
    this.emit('subdevice-logout', { gateway: deviceKey(sub.gateway), ...device, code });
  }

  private sendError(gateway: Device, code: number, device: Device, id?: unknown): void {
    const body: Record<string, unknown> = { code, message: MESSAGES[code] ?? 'error', data: device };
    if (id !== undefined) body.id = id;
    this.publish(gatewayTopics.error(gateway), JSON.stringify(body), 0);
  }

  // -------------------------------------------------------------------------------------------------------------
  // The admin API's changes, each with the platform's notices

  private gatewaysOf(device: Device): Device[] {
    return [...this.topology.entries()]
      .filter(([, subs]) => subs.has(deviceKey(device)))
      .map(([key]) => ({ productKey: key.slice(0, key.indexOf('/')), deviceName: key.slice(key.indexOf('/') + 1) }));
  }

  private notifyChange(gateway: Device, status: number, devices: Device[]): void {
    if (!(status in TOPOLOGY_CHANGE)) return;
    this.publish(
      gatewayTopics.topologyChange(gateway),
      JSON.stringify({
        id: String(Date.now()),
        version: '1.0',
        params: { status, subList: devices },
        method: GATEWAY_METHODS.topologyChange,
      }),
      0,
    );
  }

  /** Pushes thing/disable|enable|delete on the sub-device's topic to each connected gateway that has it. */
  private notice(device: Device, kind: 'disable' | 'enable' | 'delete', gateways: Device[]): void {
    const payload = JSON.stringify({ id: String(Date.now()), version: '1.0', params: {}, method: GATEWAY_METHODS.notice(kind) });
    for (const gateway of gateways) {
      this.clientOf(gateway)?.publish(
        { cmd: 'publish', topic: gatewayTopics.notice(device, kind), payload, qos: 0, retain: false, dup: false },
        () => undefined,
      );
    }
  }

  adminAdd(gateway: Device, devices: Device[]): Device[] {
    const added = this.wrap(() => this.addTopology(gateway, devices, false));
    this.notifyChange(gateway, 0, added);
    return added;
  }

  adminDelete(gateway: Device, devices: Device[]): Device[] {
    const removed = this.wrap(() =>
      this.deleteTopology(
        gateway,
        devices.map((device) => this.device(device)),
      ),
    );
    this.notifyChange(gateway, 1, removed);
    return removed;
  }

  // -------------------------------------------------------------------------------------------------------------
  // The OpenAPI's topology actions (sim/openapi-topology.ts): refusals are thrown as Refusal for it to word

  /**
   * BatchAddThingTopo: the entries are signed as a gateway's topo/add signs them and checked all before any change; a
   * sub-device attached to another gateway moves to this one. Each gateway concerned hears of it on topo/change.
   */
  apiAdd(gateway: Device, entries: Array<Record<string, string>>): Device[] {
    const added = this.addTopology(gateway, entries, true);
    for (const device of added) {
      for (const other of this.gatewaysOf(device).filter((candidate) => deviceKey(candidate) !== deviceKey(gateway))) {
        this.deleteTopology(other, [device]);
        this.notifyChange(other, 1, [device]);
      }
    }
    this.notifyChange(gateway, 0, added);
    return added;
  }

  /** RemoveThingTopo: a gateway loses all its sub-devices, a sub-device its gateway; false when there was none. */
  apiRemove(device: Device): boolean {
    const attached = this.topologyOf(device);
    if (attached.length > 0) {
      this.notifyChange(device, 1, this.deleteTopology(device, attached));
      return true;
    }
    const gateways = this.gatewaysOf(device);
    for (const gateway of gateways) this.notifyChange(gateway, 1, this.deleteTopology(gateway, [device]));
    return gateways.length > 0;
  }

  /** Disable, enable or delete a device; a sub-device's gateways hear of it. */
  setState(device: Device, state: 'disabled' | 'active' | 'deleted'): void {
    if (this.registry.deviceSecret(device.productKey, device.deviceName) === undefined) throw new Error(`no device ${deviceKey(device)}`);
    const gateways = this.gatewaysOf(device);
    this.registry.setState(device, state);
    const kind = state === 'disabled' ? 'disable' : state === 'active' ? 'enable' : 'delete';
    this.notice(device, kind, gateways);
    for (const gateway of gateways) this.notifyChange(gateway, state === 'disabled' ? 8 : state === 'active' ? 2 : 1, [device]);
    const sub = this.online.get(deviceKey(device));
    if (sub && state !== 'active') this.end(sub, state === 'deleted' ? GATEWAY_CODES.deleted : GATEWAY_CODES.disabled, true);
    if (state === 'deleted') for (const gateway of gateways) this.topology.get(deviceKey(gateway))?.delete(deviceKey(device));
  }

  private wrap<T>(action: () => T): T {
    try {
      return action();
    } catch (err) {
      if (err instanceof Refusal)
        throw new Error(`refused with ${err.code}${err.device ? ` for ${deviceKey(err.device)}` : ''}: ${MESSAGES[err.code] ?? 'error'}`);
      throw err;
    }
  }

  /** Who is online through a gateway. */
  onlineThrough(gateway: Device): Device[] {
    return [...(this.onlineByGateway.get(deviceKey(gateway)) ?? [])].map((key) => {
      const { session } = this.online.get(key) as SubSession;
      return { productKey: session.productKey, deviceName: session.deviceName };
    });
  }

  /** The client id a sub-device logged in with, for the admin API's device list. */
  clientIdOf(device: Device): string | undefined {
    return this.online.get(deviceKey(device))?.session.clientId;
  }
}
