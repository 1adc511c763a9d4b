// The thing model (Alink JSON): topics, reading and answering requests, building posts.
// Used by the thing-model nodes on the device side and by the simulator on the cloud side.
import { AliyunIotError } from '../errors';
import { IDENTIFIER_PATTERNS } from './identifiers';
import { Datatype, decodePayload, encodePayload, jsonText } from './payload';

export interface Device {
  productKey: string;
  deviceName: string;
}

/** A device as one string, `productKey/deviceName`: a map key, and how logs and statuses name it. */
export function deviceKey(device: Device): string {
  return `${device.productKey}/${device.deviceName}`;
}

const sys = (device: Device): string => `/sys/${device.productKey}/${device.deviceName}`;

/** Topic of every row of the thing-model table (docs/protocol.md §2). `+` may stand for an id in filters. */
export const thingTopics = {
  propertyPost: (device: Device): string => `${sys(device)}/thing/event/property/post`,
  eventPost: (device: Device, eventId: string): string => `${sys(device)}/thing/event/${eventId}/post`,
  /** Replies to property and event posts, for one subscription. */
  postReplies: (device: Device): string => `${sys(device)}/thing/event/+/post_reply`,
  /** Properties with their times, the device's own or (a gateway's) its sub-devices' (docs/protocol.md §9.2). */
  historyPost: (device: Device): string => `${sys(device)}/thing/event/property/history/post`,
  propertySet: (device: Device): string => `${sys(device)}/thing/service/property/set`,
  service: (device: Device, serviceId: string): string => `${sys(device)}/thing/service/${serviceId}`,
  rrpcRequest: (device: Device, messageId: string): string => `${sys(device)}/rrpc/request/${messageId}`,
  rrpcResponse: (device: Device, messageId: string): string => `${sys(device)}/rrpc/response/${messageId}`,
  extRrpc: (device: Device, messageId: string, serviceId: string): string =>
    `/ext/rrpc/${messageId}${sys(device)}/thing/service/${serviceId}`,
  /** `customTopic` is the device's own custom topic, e.g. /pk/dn/user/rpc. */
  customRrpc: (messageId: string, customTopic: string): string => `/ext/rrpc/${messageId}${customTopic}`,
  ntpRequest: (device: Device): string => `/ext/ntp/${device.productKey}/${device.deviceName}/request`,
  ntpResponse: (device: Device): string => `/ext/ntp/${device.productKey}/${device.deviceName}/response`,
  shadowUpdate: (device: Device): string => `/shadow/update/${device.productKey}/${device.deviceName}`,
  shadowGet: (device: Device): string => `/shadow/get/${device.productKey}/${device.deviceName}`,
  otaInform: (device: Device): string => `/ota/device/inform/${device.productKey}/${device.deviceName}`,
  otaUpgrade: (device: Device): string => `/ota/device/upgrade/${device.productKey}/${device.deviceName}`,
  otaProgress: (device: Device): string => `/ota/device/progress/${device.productKey}/${device.deviceName}`,
  broadcast: (productKey: string, name: string): string => `/broadcast/${productKey}/${name}`,
  replyTo: (requestTopic: string): string => `${requestTopic}_reply`,
};

export const METHODS = {
  propertyPost: 'thing.event.property.post',
  historyPost: 'thing.event.property.history.post',
  eventPost: (eventId: string): string => `thing.event.${eventId}.post`,
  propertySet: 'thing.service.property.set',
  service: (serviceId: string): string => `thing.service.${serviceId}`,
};

/** A thing-model topic taken apart; anything else is undefined. */
export type ThingTopic = Device &
  (
    | { type: 'post'; eventId: string }
    | { type: 'post-reply'; eventId: string }
    | { type: 'history-post' }
    | { type: 'history-post-reply' }
    | { type: 'property-set' }
    | { type: 'property-set-reply' }
    | { type: 'service'; serviceId: string }
    | { type: 'service-reply'; serviceId: string }
    | { type: 'rrpc-request'; messageId: string }
    | { type: 'rrpc-response'; messageId: string }
    | { type: 'ext-rrpc'; messageId: string; serviceId: string }
    | { type: 'custom-rrpc'; messageId: string; customTopic: string }
    | { type: 'ntp-request' }
    | { type: 'ntp-response' }
  );

/** Reads /sys/..., /ext/rrpc/... and /ext/ntp/... topics. A service id ending in `_reply` reads as a reply. */
export function parseThingTopic(topic: string): ThingTopic | undefined {
  const levels = topic.split('/');
  if (levels[0] !== '') return undefined;
  if (levels[1] === 'ext' && levels[2] === 'ntp' && levels.length === 6) {
    const device = { productKey: levels[3], deviceName: levels[4] };
    if (levels[5] === 'request') return { ...device, type: 'ntp-request' };
    if (levels[5] === 'response') return { ...device, type: 'ntp-response' };
    return undefined;
  }
  if (levels[1] === 'ext' && levels[2] === 'rrpc' && levels.length > 4 && levels[3] !== '') {
    const messageId = levels[3];
    const inner = parseThingTopic(`/${levels.slice(4).join('/')}`);
    if (inner?.type === 'service') return { ...inner, type: 'ext-rrpc', messageId };
    if (levels[4] !== 'sys' && levels.length > 7 && levels[6] === 'user') {
      return { productKey: levels[4], deviceName: levels[5], type: 'custom-rrpc', messageId, customTopic: `/${levels.slice(4).join('/')}` };
    }
    return undefined;
  }
  if (levels[1] !== 'sys' || levels.length < 6) return undefined;
  const device = { productKey: levels[2], deviceName: levels[3] };
  const rest = levels.slice(4);
  if (rest[0] === 'rrpc' && rest.length === 3) {
    if (rest[1] === 'request') return { ...device, type: 'rrpc-request', messageId: rest[2] };
    if (rest[1] === 'response') return { ...device, type: 'rrpc-response', messageId: rest[2] };
    return undefined;
  }
  if (rest[0] !== 'thing') return undefined;
  if (rest.length === 5 && rest[1] === 'event' && rest[2] === 'property' && rest[3] === 'history') {
    if (rest[4] === 'post') return { ...device, type: 'history-post' };
    if (rest[4] === 'post_reply') return { ...device, type: 'history-post-reply' };
    return undefined;
  }
  if (rest[1] === 'event' && rest.length === 4) {
    if (rest[3] === 'post') return { ...device, type: 'post', eventId: rest[2] };
    if (rest[3] === 'post_reply') return { ...device, type: 'post-reply', eventId: rest[2] };
    return undefined;
  }
  if (rest[1] === 'service' && rest.length === 4 && rest[2] === 'property') {
    if (rest[3] === 'set') return { ...device, type: 'property-set' };
    if (rest[3] === 'set_reply') return { ...device, type: 'property-set-reply' };
    return undefined;
  }
  if (rest[1] === 'service' && rest.length === 3) {
    return rest[2].endsWith('_reply')
      ? { ...device, type: 'service-reply', serviceId: rest[2].slice(0, -'_reply'.length) }
      : { ...device, type: 'service', serviceId: rest[2] };
  }
  return undefined;
}

export type AlinkObject = Record<string, unknown>;

/** The JSON object a payload holds, or undefined when it is not one. */
export function parseAlink(payload: Buffer | string): AlinkObject | undefined {
  try {
    const value: unknown = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as AlinkObject) : undefined;
  } catch {
    return undefined;
  }
}

/** Ids travel as strings; some clients send numbers. Anything else is no id. */
export function alinkId(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

export interface AlinkReply {
  id: string;
  code: number;
  data: unknown;
  message?: string;
  method?: string;
}

export function readReply(payload: Buffer): AlinkReply | undefined {
  const json = parseAlink(payload);
  const id = alinkId(json?.id);
  if (!json || id === undefined) return undefined;
  const code = typeof json.code === 'number' ? json.code : typeof json.code === 'string' ? Number(json.code) : NaN;
  return {
    id,
    code: Number.isFinite(code) ? code : 0,
    data: json.data,
    message: typeof json.message === 'string' ? json.message : undefined,
    method: typeof json.method === 'string' ? json.method : undefined,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Requests down to a device, as the command node emits them, and the answers the reply node sends.

export type CommandKind = 'set' | 'async' | 'rrpc' | 'ext-rrpc' | 'custom-rrpc';

/** What routes an answer: `msg.alink` of the command node's output. */
export interface CommandContext {
  id?: string;
  topic: string;
  replyTopic: string;
  kind: CommandKind;
  messageId?: string;
}

export interface Command {
  /** params of an Alink request; the decoded payload of an RRPC request that is not Alink JSON. */
  payload: unknown;
  method?: string;
  /** The service identifier; `property.set` for property sets. */
  service?: string;
  alink: CommandContext;
}

/**
 * Reads a request that arrived on one of the device's down topics; undefined for anything else (including the
 * device's own answers, which some brokers echo back). A property set, service call or ext RRPC that is not an
 * Alink request (JSON with id and params) throws ALINK_MALFORMED.
 */
export function readCommand(device: Device, topic: string, payload: Buffer, rawDatatype: Datatype = 'auto-detect'): Command | undefined {
  const parsed = parseThingTopic(topic);
  if (!parsed || parsed.productKey !== device.productKey || parsed.deviceName !== device.deviceName) return undefined;
  const json = parseAlink(payload);
  const id = alinkId(json?.id);
  const method = typeof json?.method === 'string' ? json.method : undefined;
  const alinkRequest = json !== undefined && id !== undefined && 'params' in json;
  const context = (kind: CommandKind, replyTopic: string, messageId?: string): CommandContext => ({
    id,
    topic,
    replyTopic,
    kind,
    ...(messageId === undefined ? {} : { messageId }),
  });
  const requireAlink = (): AlinkObject => {
    if (!alinkRequest) throw new AliyunIotError('ALINK_MALFORMED', { topic });
    return json;
  };
  switch (parsed.type) {
    case 'property-set':
      return {
        payload: requireAlink().params,
        method: method ?? METHODS.propertySet,
        service: 'property.set',
        alink: context('set', thingTopics.replyTo(topic)),
      };
    case 'service':
      return { payload: requireAlink().params, method, service: parsed.serviceId, alink: context('async', thingTopics.replyTo(topic)) };
    case 'ext-rrpc':
      return { payload: requireAlink().params, method, service: parsed.serviceId, alink: context('ext-rrpc', topic, parsed.messageId) };
    case 'rrpc-request': {
      const replyTopic = thingTopics.rrpcResponse(device, parsed.messageId);
      if (alinkRequest) {
        return { payload: json.params, method, service: serviceOf(method), alink: context('rrpc', replyTopic, parsed.messageId) };
      }
      return { payload: decodePayload(payload, rawDatatype), alink: { topic, replyTopic, kind: 'rrpc', messageId: parsed.messageId } };
    }
    case 'custom-rrpc':
      return {
        payload: decodePayload(payload, rawDatatype),
        alink: { topic, replyTopic: topic, kind: 'custom-rrpc', messageId: parsed.messageId },
      };
    default:
      return undefined;
  }
}

function serviceOf(method: string | undefined): string | undefined {
  const match = method === undefined ? null : /^thing\.service\.(.+)$/.exec(method);
  return match ? match[1] : undefined;
}

/** The topic and payload answering a command: Alink JSON `{id, code, data, message?}`, or raw bytes for raw RRPC. */
export function buildAnswer(context: unknown, code: number, data: unknown, message?: string): { topic: string; payload: Buffer | string } {
  if (!isCommandContext(context)) throw new AliyunIotError('REPLY_NO_CONTEXT');
  if (context.kind === 'custom-rrpc' || context.id === undefined) {
    return { topic: context.replyTopic, payload: encodePayload(data) };
  }
  const body: AlinkObject = { id: context.id, code, data: data === undefined ? {} : data };
  if (message !== undefined) body.message = message;
  return { topic: context.replyTopic, payload: jsonText(body) };
}

const KINDS: readonly CommandKind[] = ['set', 'async', 'rrpc', 'ext-rrpc', 'custom-rrpc'];

export function isCommandContext(value: unknown): value is CommandContext {
  if (!value || typeof value !== 'object') return false;
  const context = value as Partial<CommandContext>;
  return typeof context.replyTopic === 'string' && context.replyTopic !== '' && KINDS.includes(context.kind as CommandKind);
}

// ---------------------------------------------------------------------------------------------------------------
// Posts up from a device.

export interface PostRequest {
  kind: 'property' | 'event';
  /** Required for events. */
  eventId?: string;
  params: unknown;
  ack: boolean;
}

/** Topic, method and JSON body of a property or event post. */
export function buildPost(device: Device, id: string, request: PostRequest): { topic: string; method: string; payload: string } {
  if (request.params === null || typeof request.params !== 'object' || Array.isArray(request.params)) {
    throw new AliyunIotError('POST_PARAMS_INVALID');
  }
  let topic: string;
  let method: string;
  let params = request.params as AlinkObject;
  if (request.kind === 'event') {
    const eventId = request.eventId ?? '';
    if (!IDENTIFIER_PATTERNS.eventIdentifier.test(eventId)) throw new AliyunIotError('EVENT_ID_INVALID', { value: eventId });
    topic = thingTopics.eventPost(device, eventId);
    method = METHODS.eventPost(eventId);
    if (!isEventParams(params)) params = { value: params, time: Date.now() };
  } else {
    topic = thingTopics.propertyPost(device);
    method = METHODS.propertyPost;
  }
  const payload = jsonText({ id, version: '1.0', sys: { ack: request.ack ? 1 : 0 }, params, method });
  return { topic, method, payload };
}

/** Already in the event form {value: {...}, time?}. */
function isEventParams(params: AlinkObject): boolean {
  const keys = Object.keys(params);
  return (
    keys.includes('value') &&
    keys.every((key) => key === 'value' || key === 'time') &&
    params.value !== null &&
    typeof params.value === 'object'
  );
}
