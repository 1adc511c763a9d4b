// What identifiers may look like (docs/protocol.md §1, §2, §4, §5): the one source the runtime, the simulator and the
// editor (the build writes these patterns into the editor files) use.
import { AliyunIotError, ErrorCode } from '../errors';
import { PROPERTY_LIMITS } from './limits';

const THING_IDENTIFIER = `[A-Za-z0-9_]{1,${PROPERTY_LIMITS.identifierLength}}`;

export type SignMethod = 'hmacsha256' | 'hmacsha1' | 'hmacmd5';
export type Protocol = 'mqtts' | 'mqtt' | 'wss' | 'ws';
export type MqAuthMode = 'signature' | 'token' | 'device-credential';

export const SIGN_METHODS: readonly SignMethod[] = Object.freeze(['hmacsha256', 'hmacsha1', 'hmacmd5']);
export const PROTOCOLS: readonly Protocol[] = Object.freeze(['mqtts', 'mqtt', 'wss', 'ws']);
export const MQ_AUTH_MODES: readonly MqAuthMode[] = Object.freeze(['signature', 'token', 'device-credential']);

export const IDENTIFIER_PATTERNS = Object.freeze({
  productKey: /^[A-Za-z0-9]{11}$/,
  deviceName: /^[A-Za-z0-9_\-@.:]{4,32}$/,
  /** Letters, digits and the separators real client ids use (MAC addresses, `pk.dn`, `pk&dn`); not `|`, `,` or `=`. */
  iotClientId: /^[A-Za-z0-9_\-@.:&]{1,64}$/,
  /** The AMQP client id of a cloud application: `&` and `|` would break its `clientId|params|` username. */
  cloudClientId: /^[A-Za-z0-9_.:@-]{1,64}$/,
  groupId: /^GID[_-][A-Za-z0-9_-]{3,60}$/,
  mqDeviceId: /^[A-Za-z0-9_-]+$/,
  region: /^[a-z]{2,}-[a-z]+(-[0-9]+)?$/,
  instanceId: /^[A-Za-z0-9_-]{1,64}$/,
  /** The Alibaba Cloud account id in the old public instance's AMQP host name. */
  uid: /^[0-9]{1,32}$/,
  consumerGroupId: /^[A-Za-z0-9_.-]{1,64}$/,
  /** An OpenAPI action name: QueryDeviceDetail, BatchGetDeviceState. */
  apiAction: /^[A-Z][A-Za-z0-9]{1,63}$/,
  /** An OpenAPI parameter name, flattened lists included: DeviceName, DeviceName.1, TopoAddItem.1.Sign. */
  apiParam: /^[A-Za-z][A-Za-z0-9_]{0,63}(\.[A-Za-z0-9_]{1,64})*$/,
  /** Properties, events and services of the thing model. */
  thingIdentifier: new RegExp(`^${THING_IDENTIFIER}$`),
  /** A property's name in a post: a thing identifier, in a custom module prefixed `functionBlockId:`. */
  propertyName: new RegExp(`^(${THING_IDENTIFIER}:)?${THING_IDENTIFIER}$`),
  /** An event of the thing model: a thing identifier other than `property`, whose topic carries property posts. */
  eventIdentifier: new RegExp(`^(?!property$)${THING_IDENTIFIER}$`),
  /** What an ApsaraMQ token grants: R subscribes, W publishes. */
  mqTokenActions: /^(R|W|RW)$/,
  /** A field given as `${NAME}` takes the value of an environment variable when the flow starts. */
  environmentVariable: /^\$\{[A-Za-z0-9_]+\}$/,
});

export type IdentifierKind = keyof typeof IDENTIFIER_PATTERNS;

export function isSignMethod(value: unknown): value is SignMethod {
  return SIGN_METHODS.includes(value as SignMethod);
}

export function isProtocol(value: unknown): value is Protocol {
  return PROTOCOLS.includes(value as Protocol);
}

export function isMqAuthMode(value: unknown): value is MqAuthMode {
  return MQ_AUTH_MODES.includes(value as MqAuthMode);
}

export function matches(kind: IdentifierKind, value: unknown): value is string {
  return typeof value === 'string' && IDENTIFIER_PATTERNS[kind].test(value);
}

/**
 * `value`, present and of the pattern of `kind`; CONFIG_MISSING names `field` (a key of the catalog's `label` section)
 * when absent, `code` (with the value and its length) when malformed.
 */
export function requireMatch(value: string | undefined, kind: IdentifierKind, code: ErrorCode, field: string): string {
  if (value === undefined || value === '') throw new AliyunIotError('CONFIG_MISSING', { field });
  if (!IDENTIFIER_PATTERNS[kind].test(value)) throw new AliyunIotError(code, { value, length: value.length });
  return value;
}

export function requireSecret(value: string | undefined, field: string): string {
  if (value === undefined || value === '') throw new AliyunIotError('CREDENTIAL_MISSING', { field });
  return value;
}

export function validateProductKey(productKey: string | undefined): string {
  return requireMatch(productKey, 'productKey', 'PRODUCT_KEY_INVALID', 'productKey');
}

export function validateDeviceName(deviceName: string | undefined): string {
  return requireMatch(deviceName, 'deviceName', 'DEVICE_NAME_INVALID', 'deviceName');
}

export function validateIotClientId(clientId: string): string {
  return requireMatch(clientId, 'iotClientId', 'CLIENT_ID_INVALID', 'clientId');
}

export function validateInstanceId(instanceId: string | undefined): string {
  return requireMatch(instanceId, 'instanceId', 'INSTANCE_ID_INVALID', 'instanceId');
}

export function validateRegion(region: string | undefined): string {
  return requireMatch(region, 'region', 'REGION_INVALID', 'region');
}
