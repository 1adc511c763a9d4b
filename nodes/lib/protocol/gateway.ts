// Gateways and sub-devices (docs/protocol.md §8): topology and session topics, the sub-device signature, the
// requests a gateway sends and the answers and notices it reads. Pure: the simulator checks with the same functions.
import { AliyunIotError } from '../errors';
import { AlinkObject, Device, alinkId, parseAlink } from './alink';
import { hmacHex, safeEqual } from './hmac';
import { SignMethod, isSignMethod, requireSecret, validateDeviceName, validateProductKey } from './identifiers';
import { GATEWAY_LIMITS, TOO_MANY_PROPERTIES_CODE, deepFreeze } from './limits';

/** The platform's answer codes for gateway requests and notices (docs/protocol.md §8.3). */
export const GATEWAY_CODES = deepFreeze({
  success: 200,
  authError: 401,
  tooManyLogins: 429,
  tooManyOnline: 428,
  elsewhere: 427,
  badRequest: 460,
  serverError: 500,
  noSession: 520,
  deleted: 521,
  disabled: 522,
  unknownDevice: 6100,
  badSign: 6287,
  tooManyTopology: 6400,
  noTopology: 6401,
  addSelf: 6402,
  packTooManyProperties: TOO_MANY_PROPERTIES_CODE,
  packTooManySubDevices: 6357,
  packTooManyEvents: 6356,
});

/** The key under `status` / `errors` in the catalogs for each platform code; unlisted codes read as `code-other`. */
export const SUB_DEVICE_REASONS: Readonly<Record<number, string>> = deepFreeze({
  6287: 'bad-sign',
  401: 'bad-sign',
  6401: 'no-topology',
  // The topology could not be added: the gateway has as many sub-devices attached as it may.
  6400: 'no-topology',
  6100: 'unknown-device',
  521: 'deleted',
  522: 'disabled',
  6204: 'disabled',
  427: 'elsewhere',
  428: 'too-many-online',
  429: 'too-many-logins',
  460: 'bad-request',
  520: 'no-session',
});

export function subDeviceReason(code: number): string {
  return SUB_DEVICE_REASONS[code] ?? 'code-other';
}

const sys = (device: Device): string => `/sys/${device.productKey}/${device.deviceName}`;
const session = (gateway: Device): string => `/ext/session/${gateway.productKey}/${gateway.deviceName}/combine`;

export type SessionOperation = 'login' | 'batch_login' | 'logout' | 'batch_logout';
export type TopologyOperation = 'add' | 'delete' | 'get';
export type SubDeviceNoticeKind = 'disable' | 'enable' | 'delete';

/** Topics of a gateway's own requests and notices; every one carries the gateway's pk/dn. */
export const gatewayTopics = {
  topology: (gateway: Device, operation: TopologyOperation): string => `${sys(gateway)}/thing/topo/${operation}`,
  topologyChange: (gateway: Device): string => `${sys(gateway)}/thing/topo/change`,
  session: (gateway: Device, operation: SessionOperation): string => `${session(gateway)}/${operation}`,
  error: (gateway: Device): string => `/ext/error/${gateway.productKey}/${gateway.deviceName}`,
  register: (gateway: Device): string => `${sys(gateway)}/thing/sub/register`,
  packPost: (gateway: Device): string => `${sys(gateway)}/thing/event/property/pack/post`,
  /** Pushed on the sub-device's own topic (docs/protocol.md §8.7, inferred). */
  notice: (device: Device, kind: SubDeviceNoticeKind): string => `${sys(device)}/thing/${kind}`,
  /** What a gateway subscribes for its own answers: topology replies and change, session replies, errors, register. */
  replyFilters: (gateway: Device): string[] => [
    `${sys(gateway)}/thing/topo/#`,
    `/ext/session/${gateway.productKey}/${gateway.deviceName}/#`,
    `/ext/error/${gateway.productKey}/${gateway.deviceName}`,
    `${sys(gateway)}/thing/sub/register_reply`,
    `${sys(gateway)}/thing/event/property/pack/post_reply`,
  ],
};

export const GATEWAY_METHODS = {
  topology: (operation: TopologyOperation): string => `thing.topo.${operation}`,
  topologyChange: 'thing.topo.change',
  register: 'thing.sub.register',
  packPost: 'thing.event.property.pack.post',
  notice: (kind: SubDeviceNoticeKind): string => `thing.${kind}`,
};

/**
 * The downlink system topics the platform subscribes on a gateway's behalf for each sub-device logged in through it
 * when the gateway announces `_ss=1` in its client id (docs/protocol.md §8.4; the trigger is inferred). A filter of a
 * sub-device that one of these covers needs no SUBSCRIBE.
 */
export function autoSubscribedFilters(device: Device): string[] {
  return [
    `${sys(device)}/thing/service/property/set`,
    `${sys(device)}/thing/service/+`,
    `${sys(device)}/thing/event/+/post_reply`,
    `${sys(device)}/rrpc/request/+`,
    `/ext/rrpc/+${sys(device)}/thing/service/+`,
    `${sys(device)}/thing/disable`,
    `${sys(device)}/thing/enable`,
    `${sys(device)}/thing/delete`,
  ];
}

/** The client-id parameter a gateway announces to get the auto-subscription. */
export const AUTO_SUBSCRIBE_PARAM = { _ss: '1' } as const;

/** The device a topic belongs to: /sys/, /ext/ntp/, /ext/rrpc/ (thing or custom), /shadow/, /ota/ or a custom /pk/dn/... */
export function deviceOfAnyTopic(topic: string): Device | undefined {
  const levels = topic.split('/');
  if (levels[0] !== '') return undefined;
  let productKey: string | undefined;
  let deviceName: string | undefined;
  if (levels[1] === 'ext' && levels[2] === 'rrpc') {
    const at = levels[4] === 'sys' ? 5 : 4;
    [productKey, deviceName] = [levels[at], levels[at + 1]];
  } else if (levels[1] === 'ext') {
    [productKey, deviceName] = [levels[3], levels[4]];
  } else if (levels[1] === 'sys' || (levels[1] === 'shadow' && levels.length === 5)) {
    [productKey, deviceName] = levels[1] === 'sys' ? [levels[2], levels[3]] : [levels[3], levels[4]];
  } else if (levels[1] === 'ota') {
    [productKey, deviceName] = [levels[4], levels[5]];
  } else if (levels[1] !== 'broadcast') {
    [productKey, deviceName] = [levels[1], levels[2]];
  }
  return productKey && deviceName ? { productKey, deviceName } : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// The sub-device's signature (topo/add and combine/login).

/** Keys that are never signed: the signature itself, its method (either spelling) and cleanSession. */
const UNSIGNED = new Set(['sign', 'signmethod', 'signMethod', 'cleanSession']);

/** The signed text: every other param, sorted by name, as name+value. */
export function subDeviceSignedText(params: Record<string, unknown>): string {
  return Object.keys(params)
    .filter((key) => !UNSIGNED.has(key))
    .sort()
    .map((key) => `${key}${String(params[key])}`)
    .join('');
}

/** A sign method as the platform spells it in either case (hmacSha256, hmacsha256), or undefined. */
export function readSignMethod(value: unknown): SignMethod | undefined {
  const lower = typeof value === 'string' ? value.toLowerCase() : undefined;
  return isSignMethod(lower) ? lower : undefined;
}

export interface SubDeviceCredentials extends Device {
  deviceSecret: string;
  signMethod?: SignMethod;
  /** Default `${productKey}.${deviceName}`. */
  clientId?: string;
  /** Default true: the platform drops what the sub-device missed while offline. */
  cleanSession?: boolean;
}

export interface SignedSubDevice {
  productKey: string;
  deviceName: string;
  clientId: string;
  timestamp: string;
  sign: string;
}

function validated(credentials: SubDeviceCredentials): SubDeviceCredentials & { signMethod: SignMethod } {
  validateProductKey(credentials.productKey);
  validateDeviceName(credentials.deviceName);
  requireSecret(credentials.deviceSecret, 'deviceSecret');
  const signMethod = credentials.signMethod ?? 'hmacsha256';
  if (!isSignMethod(signMethod)) throw new AliyunIotError('SIGN_METHOD_INVALID', { value: String(signMethod) });
  return { ...credentials, signMethod };
}

/** The signed identity of a sub-device, as topo/add and combine/login carry it. */
export function signSubDevice(
  credentials: SubDeviceCredentials,
  timestamp: number | string = Date.now(),
): SignedSubDevice & { signMethod: SignMethod } {
  const checked = validated(credentials);
  const fields = {
    productKey: checked.productKey,
    deviceName: checked.deviceName,
    clientId: checked.clientId ?? `${checked.productKey}.${checked.deviceName}`,
    timestamp: String(timestamp),
  };
  return {
    ...fields,
    signMethod: checked.signMethod,
    sign: hmacHex(checked.signMethod, checked.deviceSecret, subDeviceSignedText(fields)),
  };
}

/** Whether `params` carry a good signature by `deviceSecret`; a missing or unknown method is a bad one. */
export function verifySubDeviceSign(params: Record<string, unknown>, signMethod: unknown, deviceSecret: string): boolean {
  const method = readSignMethod(signMethod);
  if (!method || typeof params.sign !== 'string') return false;
  return safeEqual(params.sign.toLowerCase(), hmacHex(method, deviceSecret, subDeviceSignedText(params)));
}

// ---------------------------------------------------------------------------------------------------------------
// Requests from the gateway.

export interface GatewayRequest {
  topic: string;
  payload: string;
}

function request(topic: string, id: string, params: unknown, method?: string): GatewayRequest {
  const body: AlinkObject = { id, version: '1.0', params };
  if (method !== undefined) Object.assign(body, { sys: { ack: 1 }, method });
  return { topic, payload: JSON.stringify(body) };
}

function checkCount(count: number, max: number): void {
  if (count === 0) throw new AliyunIotError('GATEWAY_BATCH_EMPTY');
  if (count > max) throw new AliyunIotError('GATEWAY_BATCH_TOO_LARGE', { count, max });
}

export function buildTopologyAdd(
  gateway: Device,
  id: string,
  subDevices: SubDeviceCredentials[],
  timestamp: number | string = Date.now(),
): GatewayRequest {
  checkCount(subDevices.length, GATEWAY_LIMITS.topoAdd);
  const params = subDevices.map((credentials) => {
    const { signMethod, ...signed } = signSubDevice(credentials, timestamp);
    return { ...signed, signmethod: signMethod };
  });
  return request(gatewayTopics.topology(gateway, 'add'), id, params, GATEWAY_METHODS.topology('add'));
}

export function buildTopologyDelete(gateway: Device, id: string, subDevices: Device[]): GatewayRequest {
  checkCount(subDevices.length, GATEWAY_LIMITS.topoAdd);
  const params = subDevices.map(({ productKey, deviceName }) => ({ productKey, deviceName }));
  return request(gatewayTopics.topology(gateway, 'delete'), id, params, GATEWAY_METHODS.topology('delete'));
}

export function buildTopologyGet(gateway: Device, id: string): GatewayRequest {
  return request(gatewayTopics.topology(gateway, 'get'), id, {}, GATEWAY_METHODS.topology('get'));
}

function loginEntry(credentials: SubDeviceCredentials, timestamp: number | string): AlinkObject {
  return { ...signSubDevice(credentials, timestamp), cleanSession: String(credentials.cleanSession ?? true) };
}

/** combine/login for one sub-device, batch_login (with the method per device, as documented) for several. */
export function buildLogin(
  gateway: Device,
  id: string,
  subDevices: SubDeviceCredentials[],
  timestamp: number | string = Date.now(),
): GatewayRequest {
  checkCount(subDevices.length, GATEWAY_LIMITS.batchLogin);
  if (subDevices.length === 1) return request(gatewayTopics.session(gateway, 'login'), id, loginEntry(subDevices[0], timestamp));
  return request(gatewayTopics.session(gateway, 'batch_login'), id, {
    deviceList: subDevices.map((entry) => loginEntry(entry, timestamp)),
  });
}

export function buildLogout(gateway: Device, id: string, subDevices: Device[]): GatewayRequest {
  checkCount(subDevices.length, GATEWAY_LIMITS.batchLogin);
  const entries = subDevices.map(({ productKey, deviceName }) => ({ productKey, deviceName }));
  if (entries.length === 1) return request(gatewayTopics.session(gateway, 'logout'), id, entries[0]);
  return request(gatewayTopics.session(gateway, 'batch_logout'), id, entries);
}

export function buildRegister(gateway: Device, id: string, subDevices: Device[]): GatewayRequest {
  checkCount(subDevices.length, GATEWAY_LIMITS.topoAdd);
  const params = subDevices.map(({ productKey, deviceName }) => ({
    productKey: validateProductKey(productKey),
    deviceName: validateDeviceName(deviceName),
  }));
  return request(gatewayTopics.register(gateway), id, params, GATEWAY_METHODS.register);
}

/** Splits `items` into chunks of at most `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const result: T[][] = [];
  for (let at = 0; at < items.length; at += size) result.push(items.slice(at, at + size));
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// The pack post: the gateway's own properties and events and those of up to 20 sub-devices in one message.

export type TimedValues = Record<string, { value: unknown; time: number }>;

export interface PackEntry {
  /** Absent for the gateway's own entry. */
  productKey?: string;
  deviceName?: string;
  properties?: Record<string, unknown>;
  events?: Record<string, unknown>;
}

function timed(values: Record<string, unknown> | undefined, now: number): TimedValues {
  const result: TimedValues = {};
  for (const [name, value] of Object.entries(values ?? {})) {
    const already = value !== null && typeof value === 'object' && 'value' in value;
    result[name] = already
      ? ({ time: now, ...(value as { value: unknown; time?: number }) } as { value: unknown; time: number })
      : { value, time: now };
  }
  return result;
}

function isGroup(value: unknown): value is Record<string, unknown> | undefined {
  return value === undefined || (value !== null && typeof value === 'object' && !Array.isArray(value));
}

/** Checks a pack post's entries: PACK_INVALID for no array or nothing to post, PACK_ENTRY_INVALID for a bad entry. */
export function packEntries(entries: unknown): PackEntry[] {
  if (!Array.isArray(entries) || entries.length === 0) throw new AliyunIotError('PACK_INVALID');
  let items = 0;
  const checked = entries.map((entry: unknown, index) => {
    const bad = (): AliyunIotError => new AliyunIotError('PACK_ENTRY_INVALID', { index });
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) throw bad();
    const { productKey, deviceName, properties, events } = entry as PackEntry;
    if ((productKey === undefined) !== (deviceName === undefined)) throw bad();
    if (productKey !== undefined) {
      validateProductKey(productKey);
      validateDeviceName(deviceName);
    }
    if (!isGroup(properties) || !isGroup(events)) throw bad();
    items += Object.keys(properties ?? {}).length + Object.keys(events ?? {}).length;
    return { productKey, deviceName, properties, events };
  });
  if (items === 0) throw new AliyunIotError('PACK_INVALID');
  return checked;
}

interface PackGroups {
  properties: TimedValues;
  events: TimedValues;
}

interface PackDraft extends PackGroups {
  subDevices: Array<PackGroups & { identity: Device }>;
  counts: { properties: number; events: number };
}

const PACK_MAX = { properties: GATEWAY_LIMITS.packProperties, events: GATEWAY_LIMITS.packEvents } as const;

/**
 * Splits entries into pack posts within the platform's limits: at most 20 sub-devices, 200 properties and 20 events
 * per post. An entry too large for the post it starts in goes on in the next ones, its properties and its events each
 * filling from where the entry started. Returns each post's `params`.
 */
export function splitPack(entriesValue: unknown, now = Date.now()): AlinkObject[] {
  return splitPackEntries(packEntries(entriesValue), now);
}

/** splitPack of entries packEntries already checked. */
export function splitPackEntries(entries: readonly PackEntry[], now = Date.now()): AlinkObject[] {
  const posts: PackDraft[] = [];
  const open = (): PackDraft => {
    const post: PackDraft = { properties: {}, events: {}, subDevices: [], counts: { properties: 0, events: 0 } };
    posts.push(post);
    return post;
  };
  open();
  for (const entry of entries) {
    const identity = entry.productKey === undefined ? undefined : { productKey: entry.productKey, deviceName: entry.deviceName as string };
    if (identity && posts[posts.length - 1].subDevices.length >= GATEWAY_LIMITS.packSubDevices) open();
    const first = posts.length - 1;
    const targets = new Map<PackDraft, PackGroups>();
    const groupsIn = (post: PackDraft): PackGroups => {
      let target = targets.get(post);
      if (!target) {
        target = identity ? { properties: {}, events: {} } : post;
        if (identity) post.subDevices.push({ identity, ...target });
        targets.set(post, target);
      }
      return target;
    };
    for (const group of ['properties', 'events'] as const) {
      let at = first;
      for (const [name, value] of Object.entries(timed(entry[group], now))) {
        while (at < posts.length && posts[at].counts[group] >= PACK_MAX[group]) at += 1;
        const post = at < posts.length ? posts[at] : open();
        groupsIn(post)[group][name] = value;
        post.counts[group] += 1;
      }
    }
  }
  return posts.map(({ properties, events, subDevices }) => {
    const params: AlinkObject = { properties, events };
    if (subDevices.length > 0) params.subDevices = subDevices;
    return params;
  });
}

export function buildPackPost(gateway: Device, id: string, params: AlinkObject, ack = true): GatewayRequest {
  return {
    topic: gatewayTopics.packPost(gateway),
    payload: JSON.stringify({ id, version: '1.0', sys: { ack: ack ? 1 : 0 }, params, method: GATEWAY_METHODS.packPost }),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// What comes back.

/** A reply or notice on a gateway topic, with the code as a number whether it came as number or string. */
export interface GatewayAnswer {
  id?: string;
  code: number;
  message?: string;
  data: unknown;
  params?: unknown;
  method?: string;
}

export function readGatewayAnswer(payload: Buffer | string): GatewayAnswer | undefined {
  const json = parseAlink(payload);
  if (!json) return undefined;
  const code = typeof json.code === 'number' ? json.code : Number(json.code ?? NaN);
  return {
    id: alinkId(json.id),
    code: Number.isFinite(code) ? code : 0,
    message: typeof json.message === 'string' ? json.message : undefined,
    data: json.data,
    params: json.params,
    method: typeof json.method === 'string' ? json.method : undefined,
  };
}

/** The devices an answer's data (object or array) names. */
export function devicesIn(value: unknown): Device[] {
  const list = Array.isArray(value) ? value : value && typeof value === 'object' ? [value] : [];
  return list.flatMap((entry: unknown) => {
    const { productKey, deviceName } = (entry ?? {}) as Partial<Device>;
    return typeof productKey === 'string' && typeof deviceName === 'string' ? [{ productKey, deviceName }] : [];
  });
}

/** What a gateway topic says, read from its topic. */
export type GatewayTopic =
  | { type: 'topology-reply'; operation: TopologyOperation }
  | { type: 'topology-change' }
  | { type: 'session-reply'; operation: SessionOperation }
  | { type: 'error' }
  | { type: 'register-reply' }
  | { type: 'pack-reply' }
  | { type: 'notice'; kind: SubDeviceNoticeKind; device: Device };

export function parseGatewayTopic(gateway: Device, topic: string): GatewayTopic | undefined {
  if (topic === gatewayTopics.topologyChange(gateway)) return { type: 'topology-change' };
  if (topic === gatewayTopics.error(gateway)) return { type: 'error' };
  if (topic === `${gatewayTopics.register(gateway)}_reply`) return { type: 'register-reply' };
  if (topic === `${gatewayTopics.packPost(gateway)}_reply`) return { type: 'pack-reply' };
  for (const operation of ['add', 'delete', 'get'] as const) {
    if (topic === `${gatewayTopics.topology(gateway, operation)}_reply`) return { type: 'topology-reply', operation };
  }
  for (const operation of ['login', 'batch_login', 'logout', 'batch_logout'] as const) {
    if (topic === `${gatewayTopics.session(gateway, operation)}_reply`) return { type: 'session-reply', operation };
  }
  const notice = /^\/sys\/([^/]+)\/([^/]+)\/thing\/(disable|enable|delete)$/.exec(topic);
  if (notice) return { type: 'notice', kind: notice[3] as SubDeviceNoticeKind, device: { productKey: notice[1], deviceName: notice[2] } };
  return undefined;
}

/** thing/topo/change statuses (docs/protocol.md §8.6). */
export const TOPOLOGY_CHANGE = deepFreeze({ 0: 'created', 1: 'deleted', 2: 'enabled', 8: 'disabled' } as Record<number, string>);

/** Secrets thing/sub/register returned; malformed replies throw REGISTER_REPLY_MALFORMED. */
export function readRegisterReply(answer: GatewayAnswer): Array<Device & { deviceSecret: string; iotId?: string }> {
  if (!Array.isArray(answer.data)) throw new AliyunIotError('REGISTER_REPLY_MALFORMED');
  return answer.data.map((entry: unknown) => {
    const { productKey, deviceName, deviceSecret, iotId } = (entry ?? {}) as Record<string, unknown>;
    if (typeof productKey !== 'string' || typeof deviceName !== 'string' || typeof deviceSecret !== 'string' || deviceSecret === '') {
      throw new AliyunIotError('REGISTER_REPLY_MALFORMED');
    }
    return { productKey, deviceName, deviceSecret, ...(typeof iotId === 'string' ? { iotId } : {}) };
  });
}
