// The server-side subscription's AMQP 1.0 login (docs/protocol.md §5): the aksign username and password of a
// consumer-group client, and how the simulator reads and checks them.
import { hmacSha1Base64, safeEqual } from './hmac';
import { requireSecret } from './identifiers';
import { parseIotClientId } from './iot-login';

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
  const username =
    `${options.clientId}|authMode=aksign,signMethod=hmacsha1,timestamp=${timestamp},authId=${accessKeyId},` +
    `iotInstanceId=${options.iotInstanceId ?? ''},consumerGroupId=${options.consumerGroupId}|`;
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
  return (
    login.authMode === 'aksign' &&
    login.signMethod === 'hmacsha1' &&
    safeEqual(password, amqpPassword(login.accessKeyId, secret, login.timestamp))
  );
}
