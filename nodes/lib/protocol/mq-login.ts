// ApsaraMQ for MQTT's logins (docs/protocol.md §4): client ids, the three username/password forms, token topics, and
// how the simulator reads and checks them.
import { AliyunIotError } from '../errors';
import { hmacSha1Base64, safeEqual } from './hmac';
import { IDENTIFIER_PATTERNS, MqAuthMode, isMqAuthMode, requireMatch, requireSecret, validateInstanceId } from './identifiers';
import type { MqttLogin } from './iot-login';
import { RANGES } from './limits';

/** Topics of ApsaraMQ's token handling, which reach a client without a subscription. */
export const TOKEN_TOPICS = Object.freeze({
  upload: '$SYS/uploadToken',
  expireNotice: '$SYS/tokenExpireNotice',
  invalidNotice: '$SYS/tokenInvalidNotice',
});

/** Between the Group ID and the Device ID of an ApsaraMQ client id. */
export const MQ_CLIENT_ID_SEPARATOR = '@@@';

export function mqClientId(groupId: string | undefined, deviceId: string | undefined): string {
  const group = requireMatch(groupId, 'groupId', 'GROUP_ID_INVALID', 'groupId');
  const device = requireMatch(deviceId, 'mqDeviceId', 'DEVICE_ID_INVALID', 'deviceId');
  const clientId = `${group}${MQ_CLIENT_ID_SEPARATOR}${device}`;
  if (clientId.length > RANGES.clientIdLength.max) {
    throw new AliyunIotError('CLIENT_ID_TOO_LONG', { value: clientId, max: RANGES.clientIdLength.max });
  }
  return clientId;
}

/** Splits `GroupID@@@DeviceID`; undefined when the text is not of that form. */
export function parseMqClientId(clientId: string): { groupId: string; deviceId: string } | undefined {
  const separator = clientId.indexOf(MQ_CLIENT_ID_SEPARATOR);
  if (separator < 0) return undefined;
  const groupId = clientId.slice(0, separator);
  const deviceId = clientId.slice(separator + MQ_CLIENT_ID_SEPARATOR.length);
  if (
    !IDENTIFIER_PATTERNS.groupId.test(groupId) ||
    !IDENTIFIER_PATTERNS.mqDeviceId.test(deviceId) ||
    clientId.length > RANGES.clientIdLength.max
  ) {
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
  const instanceId = validateInstanceId(credentials.instanceId);
  const accessKeyId = requireSecret(credentials.accessKeyId, 'accessKeyId');
  const username = `${MQ_USERNAME_PREFIX[authMode]}|${accessKeyId}|${instanceId}`;
  const password =
    authMode === 'token'
      ? mqTokenPassword(requireSecret(credentials.token, 'token'))
      : hmacSha1Base64(requireSecret(credentials.accessKeySecret, 'accessKeySecret'), clientId);
  return { clientId, username, password };
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
  return safeEqual(password, hmacSha1Base64(secret, clientId));
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
    if (!IDENTIFIER_PATTERNS.mqTokenActions.test(parts[i]) || parts[i + 1] === '') return undefined;
    grants.push({ actions: parts[i], token: parts[i + 1] });
  }
  return grants;
}
