import { createHmac, timingSafeEqual } from 'node:crypto';
import { AliyunIotError } from './errors';

export type SignMethod = 'hmacsha256' | 'hmacsha1' | 'hmacmd5';
export type Protocol = 'mqtts' | 'mqtt' | 'wss' | 'ws';
export type MqAuthMode = 'signature' | 'token' | 'device-credential';

export const SIGN_METHODS: readonly SignMethod[] = ['hmacsha256', 'hmacsha1', 'hmacmd5'];
export const PROTOCOLS: readonly Protocol[] = ['mqtts', 'mqtt', 'wss', 'ws'];
export const MQ_AUTH_MODES: readonly MqAuthMode[] = ['signature', 'token', 'device-credential'];

/** What an MQTT CONNECT carries to prove who we are. */
export interface MqttLogin {
  clientId: string;
  username: string;
  password: string;
}

export interface Endpoint {
  protocol: Protocol;
  host: string;
  port: number;
  /** WebSocket path; undefined for TCP and TLS. */
  path?: string;
}

const HMAC_ALGORITHM: Record<SignMethod, string> = { hmacsha256: 'sha256', hmacsha1: 'sha1', hmacmd5: 'md5' };
const WEBSOCKET_PATH = '/mqtt';

export const PRODUCT_KEY_PATTERN = /^[A-Za-z0-9]{11}$/;
export const DEVICE_NAME_PATTERN = /^[A-Za-z0-9_\-@.:]{4,32}$/;
/** Letters, digits and the separators real client ids use (MAC addresses, `pk.dn`, `pk&dn`); not `|`, `,` or `=`. */
export const IOT_CLIENT_ID_PATTERN = /^[A-Za-z0-9_\-@.:&]{1,64}$/;
export const GROUP_ID_PATTERN = /^GID[_-][A-Za-z0-9_-]{3,60}$/;
export const MQ_DEVICE_ID_PATTERN = /^[A-Za-z0-9_-]+$/;
export const REGION_PATTERN = /^[a-z]{2,}-[a-z]+(-[0-9]+)?$/;
export const INSTANCE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const MAX_CLIENT_ID_LENGTH = 64;

export function isSignMethod(value: unknown): value is SignMethod {
  return SIGN_METHODS.includes(value as SignMethod);
}

export function isProtocol(value: unknown): value is Protocol {
  return PROTOCOLS.includes(value as Protocol);
}

export function isMqAuthMode(value: unknown): value is MqAuthMode {
  return MQ_AUTH_MODES.includes(value as MqAuthMode);
}

export function isTlsProtocol(protocol: Protocol): boolean {
  return protocol === 'mqtts' || protocol === 'wss';
}

export function isWebSocketProtocol(protocol: Protocol): boolean {
  return protocol === 'ws' || protocol === 'wss';
}

export function endpointUrl(endpoint: Endpoint): string {
  return `${endpoint.protocol}://${endpoint.host}:${endpoint.port}${endpoint.path ?? ''}`;
}

export function hmacHex(method: SignMethod, key: string, text: string): string {
  return createHmac(HMAC_ALGORITHM[method], key).update(text, 'utf8').digest('hex');
}

export function hmacSha1Base64(key: string, text: string): string {
  return createHmac('sha1', key).update(text, 'utf8').digest('base64');
}

function requireMatch(value: string | undefined, pattern: RegExp, code: string, field: string): string {
  if (value === undefined || value === '') {
    throw new AliyunIotError('CONFIG_MISSING', { field });
  }
  if (!pattern.test(value)) {
    throw new AliyunIotError(code, { value });
  }
  return value;
}

function requireSecret(value: string | undefined, field: string): string {
  if (value === undefined || value === '') {
    throw new AliyunIotError('CREDENTIAL_MISSING', { field });
  }
  return value;
}

function checkPort(port: number | undefined): void {
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) {
    throw new AliyunIotError('PORT_INVALID', { value: String(port) });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// IoT Platform device (one secret per device)

export interface IotDevice {
  productKey: string;
  deviceName: string;
  deviceSecret: string;
}

export interface IotSignOptions {
  /** The client id inside the MQTT client id; omit for the `${productKey}.${deviceName}` default. */
  clientId?: string;
  signMethod?: SignMethod;
  /** Milliseconds; `null` leaves the timestamp out of both the client id and the signed text. */
  timestamp?: number | string | null;
  securemode: 2 | 3;
  /** Further `key=value` items announced after the standard ones, e.g. `{ext: '1'}`. */
  extra?: Record<string, string>;
}

export function validateProductKey(productKey: string | undefined): string {
  return requireMatch(productKey, PRODUCT_KEY_PATTERN, 'PRODUCT_KEY_INVALID', 'productKey');
}

export function validateDeviceName(deviceName: string | undefined): string {
  return requireMatch(deviceName, DEVICE_NAME_PATTERN, 'DEVICE_NAME_INVALID', 'deviceName');
}

export function validateIotClientId(clientId: string): string {
  return requireMatch(clientId, IOT_CLIENT_ID_PATTERN, 'CLIENT_ID_INVALID', 'clientId');
}

export function defaultIotClientId(productKey: string, deviceName: string): string {
  return `${productKey}.${deviceName}`;
}

/**
 * The text an IoT Platform password signs: the present fields as key+value, in sorted key order.
 * clientId and timestamp appear exactly when they appear in the MQTT client id.
 */
export function iotSignedText(fields: { clientId?: string; deviceName: string; productKey: string; timestamp?: string }): string {
  let text = '';
  if (fields.clientId !== undefined) text += `clientId${fields.clientId}`;
  text += `deviceName${fields.deviceName}productKey${fields.productKey}`;
  if (fields.timestamp !== undefined) text += `timestamp${fields.timestamp}`;
  return text;
}

export function signIotLogin(device: IotDevice, options: IotSignOptions): MqttLogin {
  const productKey = validateProductKey(device.productKey);
  const deviceName = validateDeviceName(device.deviceName);
  const deviceSecret = requireSecret(device.deviceSecret, 'deviceSecret');
  const clientId = validateIotClientId(options.clientId || defaultIotClientId(productKey, deviceName));
  const signMethod = options.signMethod ?? 'hmacsha256';
  if (!isSignMethod(signMethod)) {
    throw new AliyunIotError('SIGN_METHOD_INVALID', { value: String(signMethod) });
  }
  const timestamp = options.timestamp === null ? undefined : String(options.timestamp ?? Date.now());
  const items = [`securemode=${options.securemode}`, `signmethod=${signMethod}`];
  if (timestamp !== undefined) items.push(`timestamp=${timestamp}`);
  for (const [key, value] of Object.entries(options.extra ?? {})) items.push(`${key}=${value}`);
  return {
    clientId: `${clientId}|${items.join(',')}|`,
    username: `${deviceName}&${productKey}`,
    password: hmacHex(signMethod, deviceSecret, iotSignedText({ clientId, deviceName, productKey, timestamp })),
  };
}

export function securemodeFor(protocol: Protocol): 2 | 3 {
  return isTlsProtocol(protocol) ? 2 : 3;
}

// TLS on 1883 presents a GlobalSign R1 chain, which Node trusts; 8883 presents Alibaba Cloud's own IoT root, which
// must be given as an extra CA (Alibaba Cloud's MQTT-TLS connection page, DOC-73742).
const IOT_DEFAULT_PORTS: Record<Protocol, number> = { mqtts: 1883, mqtt: 1883, wss: 443, ws: 443 };
const MQ_DEFAULT_PORTS: Record<Protocol, number> = { mqtts: 8883, mqtt: 1883, wss: 443, ws: 80 };

function endpointFor(protocol: Protocol, host: string, port: number | undefined, defaults: Record<Protocol, number>): Endpoint {
  if (!isProtocol(protocol)) throw new AliyunIotError('PROTOCOL_INVALID', { value: String(protocol) });
  checkPort(port);
  const endpoint: Endpoint = { protocol, host, port: port ?? defaults[protocol] };
  if (isWebSocketProtocol(protocol)) endpoint.path = WEBSOCKET_PATH;
  return endpoint;
}

export interface IotEndpointOptions {
  productKey: string;
  protocol: Protocol;
  region?: string;
  instanceId?: string;
  host?: string;
  port?: number;
}

/** Old public instance by region, new and Enterprise instances by instance id, or an explicit host. */
export function iotEndpoint(options: IotEndpointOptions): Endpoint {
  let host = options.host;
  if (!host) {
    if (options.instanceId) {
      requireMatch(options.instanceId, INSTANCE_ID_PATTERN, 'INSTANCE_ID_INVALID', 'instanceId');
      host = `${options.instanceId}.mqtt.iothub.aliyuncs.com`;
    } else {
      const region = requireMatch(options.region || 'cn-shanghai', REGION_PATTERN, 'REGION_INVALID', 'region');
      host = `${validateProductKey(options.productKey)}.iot-as-mqtt.${region}.aliyuncs.com`;
    }
  }
  return endpointFor(options.protocol, host, options.port, IOT_DEFAULT_PORTS);
}

// ---------------------------------------------------------------------------------------------------------------
// ApsaraMQ for MQTT

export function mqClientId(groupId: string | undefined, deviceId: string | undefined): string {
  const group = requireMatch(groupId, GROUP_ID_PATTERN, 'GROUP_ID_INVALID', 'groupId');
  const device = requireMatch(deviceId, MQ_DEVICE_ID_PATTERN, 'DEVICE_ID_INVALID', 'deviceId');
  const clientId = `${group}@@@${device}`;
  if (clientId.length > MAX_CLIENT_ID_LENGTH) {
    throw new AliyunIotError('CLIENT_ID_TOO_LONG', { value: clientId, max: MAX_CLIENT_ID_LENGTH });
  }
  return clientId;
}

/** Splits `GroupID@@@DeviceID`; undefined when the text is not of that form. */
export function parseMqClientId(clientId: string): { groupId: string; deviceId: string } | undefined {
  const separator = clientId.indexOf('@@@');
  if (separator < 0) return undefined;
  const groupId = clientId.slice(0, separator);
  const deviceId = clientId.slice(separator + 3);
  if (!GROUP_ID_PATTERN.test(groupId) || !MQ_DEVICE_ID_PATTERN.test(deviceId) || clientId.length > MAX_CLIENT_ID_LENGTH) {
    return undefined;
  }
  return { groupId, deviceId };
}

export interface MqCredentials {
  authMode: MqAuthMode;
  instanceId: string;
  clientId: string;
  accessKeyId?: string;
  accessKeySecret?: string;
  token?: string;
}

const MQ_USERNAME_PREFIX: Record<MqAuthMode, string> = {
  signature: 'Signature',
  token: 'Token',
  'device-credential': 'DeviceCredential',
};

/** A bare token is sent as `RW|token`; text already of the `R|..|W|..` form is sent as given. */
export function mqTokenPassword(token: string): string {
  return token.includes('|') ? token : `RW|${token}`;
}

export function signMqLogin(credentials: MqCredentials): MqttLogin {
  const { authMode, clientId } = credentials;
  if (!isMqAuthMode(authMode)) throw new AliyunIotError('AUTH_MODE_INVALID', { value: String(authMode) });
  const instanceId = requireMatch(credentials.instanceId, INSTANCE_ID_PATTERN, 'INSTANCE_ID_INVALID', 'instanceId');
  const accessKeyId = requireSecret(credentials.accessKeyId, 'accessKeyId');
  const username = `${MQ_USERNAME_PREFIX[authMode]}|${accessKeyId}|${instanceId}`;
  const password = authMode === 'token'
    ? mqTokenPassword(requireSecret(credentials.token, 'token'))
    : hmacSha1Base64(requireSecret(credentials.accessKeySecret, 'accessKeySecret'), clientId);
  return { clientId, username, password };
}

export interface MqEndpointOptions {
  instanceId: string;
  protocol: Protocol;
  host?: string;
  port?: number;
}

export function mqEndpoint(options: MqEndpointOptions): Endpoint {
  const host = options.host
    || `${requireMatch(options.instanceId, INSTANCE_ID_PATTERN, 'INSTANCE_ID_INVALID', 'instanceId')}.mqtt.aliyuncs.com`;
  return endpointFor(options.protocol, host, options.port, MQ_DEFAULT_PORTS);
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing and verifying what clients send (the simulator's side). Lenient where real clients are sloppy.

/** CONNACK return codes of MQTT 3.1.1 that the platforms use for refused logins. */
export const CONNACK = { IDENTIFIER_REJECTED: 2, SERVER_UNAVAILABLE: 3, BAD_USERNAME_OR_PASSWORD: 4, NOT_AUTHORIZED: 5 } as const;
export type RefusalCode = (typeof CONNACK)[keyof typeof CONNACK];

export interface ParsedIotClientId {
  clientId: string;
  params: Record<string, string>;
}

/**
 * Reads `clientId|k1=v1,k2=v2|`: trims whitespace around every part (the Node SDK's older format has newlines in
 * it), skips empty items (a trailing comma), keeps unknown keys. Undefined when there is no `|`-delimited part.
 */
export function parseIotClientId(mqttClientId: string): ParsedIotClientId | undefined {
  const first = mqttClientId.indexOf('|');
  if (first < 0) return undefined;
  const last = mqttClientId.indexOf('|', first + 1);
  if (last < 0 || mqttClientId.slice(last + 1).trim() !== '') return undefined;
  const clientId = mqttClientId.slice(0, first).trim();
  if (clientId === '') return undefined;
  const params: Record<string, string> = {};
  for (const item of mqttClientId.slice(first + 1, last).split(',')) {
    const trimmed = item.trim();
    if (trimmed === '') continue;
    const equals = trimmed.indexOf('=');
    if (equals <= 0) return undefined;
    params[trimmed.slice(0, equals).trim()] = trimmed.slice(equals + 1).trim();
  }
  return { clientId, params };
}

export type IotLoginVerdict =
  | { ok: true; productKey: string; deviceName: string; clientId: string; params: Record<string, string>; ext: number }
  | { ok: false; returnCode: RefusalCode; reason: 'client-id-format' | 'sign-method' | 'username-format' | 'unknown-device' | 'bad-signature' };

function equalIgnoringCase(actual: string, expected: string): boolean {
  const a = Buffer.from(actual.toLowerCase(), 'utf8');
  const b = Buffer.from(expected.toLowerCase(), 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Checks an IoT Platform device login as the platform does: a missing signmethod means hmacmd5, either hex case is
 * accepted, the timestamp is signed when present but not checked for freshness.
 */
export function verifyIotLogin(
  login: { clientId: string; username?: string; password?: string },
  lookupSecret: (productKey: string, deviceName: string) => string | undefined,
): IotLoginVerdict {
  const parsed = parseIotClientId(login.clientId);
  if (!parsed) return { ok: false, returnCode: CONNACK.IDENTIFIER_REJECTED, reason: 'client-id-format' };
  const signMethod = parsed.params.signmethod ?? 'hmacmd5';
  if (!isSignMethod(signMethod)) return { ok: false, returnCode: CONNACK.IDENTIFIER_REJECTED, reason: 'sign-method' };
  const parts = (login.username ?? '').split('&');
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '' || login.password === undefined) {
    return { ok: false, returnCode: CONNACK.BAD_USERNAME_OR_PASSWORD, reason: 'username-format' };
  }
  const [deviceName, productKey] = parts;
  const secret = lookupSecret(productKey, deviceName);
  if (secret === undefined) return { ok: false, returnCode: CONNACK.BAD_USERNAME_OR_PASSWORD, reason: 'unknown-device' };
  const expected = hmacHex(signMethod, secret, iotSignedText({
    clientId: parsed.clientId, deviceName, productKey, timestamp: parsed.params.timestamp,
  }));
  if (!equalIgnoringCase(login.password, expected)) {
    return { ok: false, returnCode: CONNACK.NOT_AUTHORIZED, reason: 'bad-signature' };
  }
  const ext = Number.parseInt(parsed.params.ext ?? '0', 10);
  return { ok: true, productKey, deviceName, clientId: parsed.clientId, params: parsed.params, ext: Number.isNaN(ext) ? 0 : ext };
}

export interface ParsedMqUsername {
  authMode: MqAuthMode;
  accessKeyId: string;
  instanceId: string;
}

export function parseMqUsername(username: string): ParsedMqUsername | undefined {
  const parts = username.split('|');
  if (parts.length !== 3 || parts[1] === '' || parts[2] === '') return undefined;
  const authMode = (Object.keys(MQ_USERNAME_PREFIX) as MqAuthMode[]).find((mode) => MQ_USERNAME_PREFIX[mode] === parts[0]);
  return authMode ? { authMode, accessKeyId: parts[1], instanceId: parts[2] } : undefined;
}

export function verifyMqSignature(clientId: string, secret: string, password: string): boolean {
  const expected = Buffer.from(hmacSha1Base64(secret, clientId));
  const actual = Buffer.from(password);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

export interface MqTokenGrant {
  /** `R` (subscribe), `W` (publish) or `RW`. */
  actions: string;
  token: string;
}

/** Reads `R|t1|W|t2` or `RW|t`; undefined when malformed. */
export function parseMqTokenPassword(password: string): MqTokenGrant[] | undefined {
  const parts = password.split('|');
  if (parts.length < 2 || parts.length % 2 !== 0) return undefined;
  const grants: MqTokenGrant[] = [];
  for (let i = 0; i < parts.length; i += 2) {
    if (!/^(R|W|RW)$/.test(parts[i]) || parts[i + 1] === '') return undefined;
    grants.push({ actions: parts[i], token: parts[i + 1] });
  }
  return grants;
}

// ---------------------------------------------------------------------------------------------------------------
// Server-side subscription over AMQP 1.0 (aliyun-protocol.md §5): the aksign login of a consumer-group client.

export interface AmqpLoginOptions {
  clientId: string;
  accessKeyId: string;
  accessKeySecret: string;
  consumerGroupId: string;
  /** Empty for the old public instance. */
  iotInstanceId?: string;
  timestamp?: number;
}

export function amqpPassword(accessKeyId: string, accessKeySecret: string, timestamp: number | string): string {
  return hmacSha1Base64(accessKeySecret, `authId=${accessKeyId}&timestamp=${timestamp}`);
}

export function signAmqpLogin(options: AmqpLoginOptions): { username: string; password: string } {
  const timestamp = options.timestamp ?? Date.now();
  const accessKeyId = requireSecret(options.accessKeyId, 'accessKeyId');
  const secret = requireSecret(options.accessKeySecret, 'accessKeySecret');
  const username = `${options.clientId}|authMode=aksign,signMethod=hmacsha1,timestamp=${timestamp},authId=${accessKeyId},`
    + `iotInstanceId=${options.iotInstanceId ?? ''},consumerGroupId=${options.consumerGroupId}|`;
  return { username, password: amqpPassword(accessKeyId, secret, timestamp) };
}

export interface ParsedAmqpUsername {
  clientId: string;
  timestamp: string;
  accessKeyId: string;
  iotInstanceId: string;
  consumerGroupId: string;
  signMethod: string;
  authMode: string;
}

/** Reads `clientId|k=v,...|` as the AMQP server does; undefined when it is not of that form. */
export function parseAmqpUsername(username: string): ParsedAmqpUsername | undefined {
  const parsed = parseIotClientId(username);
  const params = parsed?.params;
  if (!parsed || !params || !params.authId || !params.timestamp || params.consumerGroupId === undefined) return undefined;
  return {
    clientId: parsed.clientId,
    timestamp: params.timestamp,
    accessKeyId: params.authId,
    iotInstanceId: params.iotInstanceId ?? '',
    consumerGroupId: params.consumerGroupId,
    signMethod: params.signMethod ?? '',
    authMode: params.authMode ?? '',
  };
}

export function verifyAmqpPassword(login: ParsedAmqpUsername, secret: string, password: string): boolean {
  const expected = Buffer.from(amqpPassword(login.accessKeyId, secret, login.timestamp));
  const actual = Buffer.from(password);
  return login.authMode === 'aksign' && login.signMethod === 'hmacsha1' && expected.length === actual.length && timingSafeEqual(expected, actual);
}
