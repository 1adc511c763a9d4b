// The IoT Platform's device login, one secret per device (docs/protocol.md §1): what a client signs and sends, and
// how the simulator reads and checks it (lenient where real clients are sloppy).
import { AliyunIotError } from '../errors';
import { hmacHex, safeEqual } from './hmac';
import { SignMethod, isSignMethod, requireSecret, validateDeviceName, validateIotClientId, validateProductKey } from './identifiers';

/** What an MQTT CONNECT carries to prove who we are. */
export interface MqttLogin {
  clientId: string;
  username: string;
  password: string;
}

/** CONNACK return codes of MQTT 3.1.1 that the platforms use for refused logins. */
export const CONNACK = { IDENTIFIER_REJECTED: 2, SERVER_UNAVAILABLE: 3, BAD_USERNAME_OR_PASSWORD: 4, NOT_AUTHORIZED: 5 } as const;
export type RefusalCode = (typeof CONNACK)[keyof typeof CONNACK];

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
  | {
      ok: false;
      returnCode: RefusalCode;
      reason: 'client-id-format' | 'sign-method' | 'username-format' | 'unknown-device' | 'bad-signature';
    };

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
  const expected = hmacHex(
    signMethod,
    secret,
    iotSignedText({
      clientId: parsed.clientId,
      deviceName,
      productKey,
      timestamp: parsed.params.timestamp,
    }),
  );
  if (!safeEqual(login.password.toLowerCase(), expected.toLowerCase())) {
    return { ok: false, returnCode: CONNACK.NOT_AUTHORIZED, reason: 'bad-signature' };
  }
  const ext = Number.parseInt(parsed.params.ext ?? '0', 10);
  return { ok: true, productKey, deviceName, clientId: parsed.clientId, params: parsed.params, ext: Number.isNaN(ext) ? 0 : ext };
}
