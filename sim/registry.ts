// Who may log in and what each login may do: the platform's device registry, topic permissions and ApsaraMQ
// credentials, verified with the same functions the nodes sign with.
import { randomBytes } from 'node:crypto';
import {
  AUTO_SUBSCRIBE_PARAM,
  CONNACK,
  Device,
  RefusalCode,
  deviceSystemTopics,
  expandPlaceholders,
  filterCovers,
  parseMqClientId,
  parseMqTokenPassword,
  parseMqUsername,
  verifyIotLogin,
  verifyMqSignature,
  deviceKey,
} from '../nodes/lib/protocol';
import { BASIC_PRODUCT_TOPICS, SimMqInstance, SimNodeType, SimProduct, SimToken, SimulatorConfig } from './config';

/** Topic filters a login may subscribe within, and publish to. */
export class TopicPermissions {
  private readonly publishVerdicts = new Map<string, boolean>();

  constructor(
    readonly subscribable: readonly string[],
    readonly publishable: readonly string[],
  ) {}

  canSubscribe(filter: string): boolean {
    return this.subscribable.some((pattern) => filterCovers(pattern, filter));
  }

  canPublish(topic: string): boolean {
    let verdict = this.publishVerdicts.get(topic);
    if (verdict === undefined) {
      verdict = this.publishable.some((pattern) => filterCovers(pattern, topic));
      if (this.publishVerdicts.size >= 10_000) this.publishVerdicts.clear();
      this.publishVerdicts.set(topic, verdict);
    }
    return verdict;
  }
}

export interface IotSession {
  kind: 'iot';
  productKey: string;
  deviceName: string;
  /** The client id without its `|...|` parameters. */
  clientId: string;
  /** Bit 0: the device takes synchronous service calls on /ext/rrpc/... */
  ext: number;
  permissions: TopicPermissions;
  /** The client id announced `_ss=1`: the platform subscribes its sub-devices' system topics for it. */
  autoSubscribe?: boolean;
  /** A sub-device's session: the gateway it is logged in through. */
  gateway?: { productKey: string; deviceName: string };
}

export interface MqSession {
  kind: 'mq';
  instanceId: string;
  clientId: string;
  groupId: string;
  deviceId: string;
  authMode: 'signature' | 'token' | 'device-credential';
  accessKeyId: string;
  /** Token mode: the tokens the client holds now, each with the actions granted to this client. */
  tokens: SimToken[];
  /** Topics that reach this client without a subscription: ${parent}/p2p/${clientId}. */
  p2pTopics: string[];
  permissions: TopicPermissions;
}

export type Session = IotSession | MqSession;

/** When a token-mode client's tokens stop being valid: the earliest expiry among them. */
export function tokensExpireAt(session: MqSession): number | undefined {
  return session.tokens.length ? Math.min(...session.tokens.map((token) => token.expireTime)) : undefined;
}

/** The actions of `actions` that `allowed` has too ('' when none). */
function commonActions(actions: string, allowed: string): SimToken['actions'] {
  return actions
    .split('')
    .filter((action) => allowed.includes(action))
    .join('') as SimToken['actions'];
}

function tokenPermissions(tokens: readonly SimToken[]): TopicPermissions {
  return new TopicPermissions(
    tokens.filter((token) => token.actions.includes('R')).flatMap((token) => token.resources),
    tokens.filter((token) => token.actions.includes('W')).flatMap((token) => token.resources),
  );
}

export type LoginResult = { ok: true; session: Session } | { ok: false; returnCode: RefusalCode; reason: string };

/** What a gateway may subscribe besides a device's topics: its session answers and errors (docs/protocol.md §8.3). */
function gatewayTopics(productKey: string, deviceName: string): Array<[string, 'sub' | 'pub' | 'all']> {
  return [
    [`/ext/session/${productKey}/${deviceName}/#`, 'sub'],
    [`/ext/error/${productKey}/${deviceName}`, 'sub'],
  ];
}

export type DeviceState = 'active' | 'disabled' | 'deleted';

function refuse(returnCode: RefusalCode, reason: string): LoginResult {
  return { ok: false, returnCode, reason };
}

function newDeviceSecret(): string {
  return randomBytes(16).toString('hex');
}

export class Registry {
  private readonly products = new Map<string, SimProduct>();
  private readonly instances = new Map<string, SimMqInstance>();
  private readonly revokedTokens = new Set<string>();
  /** Devices disabled or deleted through the admin API; absent means active. */
  private readonly states = new Map<string, Exclude<DeviceState, 'active'>>();

  constructor(config: SimulatorConfig) {
    // Copies: registration adds devices, and the config may be shared by several simulators.
    for (const product of config.products ?? []) {
      const devices = product.devices.map((device) => ({ ...device, deviceSecret: device.deviceSecret ?? newDeviceSecret() }));
      this.products.set(product.productKey, { ...product, devices });
    }
    for (const instance of config.mq ?? []) this.instances.set(instance.instanceId, { ...instance, tokens: [...(instance.tokens ?? [])] });
  }

  /** Like ApplyToken: a new token of an instance's AccessKey. */
  applyToken(instanceId: string, grant: Omit<SimToken, 'token'>): SimToken {
    const instance = this.instances.get(instanceId);
    if (!instance) throw new Error(`no ApsaraMQ instance ${instanceId}`);
    if (!instance.accessKeys?.some((key) => key.accessKeyId === grant.accessKeyId)) throw new Error(`no AccessKey ${grant.accessKeyId}`);
    const token: SimToken = { ...grant, token: `tok-${randomBytes(12).toString('hex')}` };
    instance.tokens?.push(token);
    return token;
  }

  /** Like RevokeToken; returns whether the token existed. */
  revokeToken(token: string): boolean {
    const known = [...this.instances.values()].some((instance) => instance.tokens?.some((entry) => entry.token === token));
    if (known) this.revokedTokens.add(token);
    return known;
  }

  /** A token as it stands now, or why it cannot be used. */
  private validToken(instance: SimMqInstance, accessKeyId: string, token: string): SimToken | 'unknown-token' | 'token-expired' {
    const found = instance.tokens?.find((entry) => entry.token === token && entry.accessKeyId === accessKeyId);
    if (!found) return 'unknown-token';
    return this.isLive(found) ? found : 'token-expired';
  }

  private isLive(token: SimToken): boolean {
    return token.expireTime > Date.now() && !this.revokedTokens.has(token.token);
  }

  /**
   * `$SYS/uploadToken` on a live token-mode connection: the new token replaces the client's tokens of its type
   * (R, W or both) and the client's permissions follow. Returns why it was not taken, or undefined.
   */
  uploadToken(session: MqSession, token: unknown, type: unknown): string | undefined {
    const instance = this.instances.get(session.instanceId);
    if (session.authMode !== 'token' || !instance) return 'not-token-mode';
    if (typeof token !== 'string' || (type !== 'R' && type !== 'W' && type !== 'RW')) return 'bad-request';
    const found = this.validToken(instance, session.accessKeyId, token);
    if (typeof found === 'string') return found;
    // What the client keeps of its tokens: the actions the new one does not take over.
    const kept = session.tokens
      .map((held) => ({ ...held, actions: commonActions(held.actions, 'RW'.replace(type, '')) }))
      .filter((held) => held.actions !== ('' as SimToken['actions']));
    session.tokens = [...kept, { ...found, actions: commonActions(type, found.actions) }];
    session.permissions = tokenPermissions(session.tokens);
    return undefined;
  }

  /** Whether a client's tokens are all still valid (not expired, not revoked). */
  tokensValid(session: MqSession): boolean {
    return session.tokens.every((token) => this.isLive(token));
  }

  deviceSecret(productKey: string, deviceName: string): string | undefined {
    return this.products.get(productKey)?.devices.find((device) => device.deviceName === deviceName)?.deviceSecret;
  }

  /** A device created in a product, as in the console or by RegisterDevice: its generated DeviceSecret. */
  addDevice(device: Device): string {
    const product = this.products.get(device.productKey);
    if (!product) throw new Error(`no product ${device.productKey}`);
    if (this.deviceSecret(device.productKey, device.deviceName) !== undefined)
      throw new Error(`device ${device.productKey}/${device.deviceName} exists`);
    const deviceSecret = newDeviceSecret();
    product.devices.push({ deviceName: device.deviceName, deviceSecret });
    return deviceSecret;
  }

  nodeType(productKey: string): SimNodeType {
    return this.products.get(productKey)?.nodeType ?? 'device';
  }

  isSubDevice(device: Device): boolean {
    return this.nodeType(device.productKey) === 'sub-device' && this.deviceSecret(device.productKey, device.deviceName) !== undefined;
  }

  stateOf(device: Device): DeviceState {
    return this.states.get(deviceKey(device)) ?? 'active';
  }

  setState(device: Device, state: DeviceState): void {
    const key = deviceKey(device);
    if (state === 'active') this.states.delete(key);
    else this.states.set(key, state);
  }

  product(productKey: string): SimProduct | undefined {
    return this.products.get(productKey);
  }

  allDevices(): Array<{ productKey: string; deviceName: string }> {
    return [...this.products.values()].flatMap((product) =>
      product.devices.map((device) => ({ productKey: product.productKey, deviceName: device.deviceName })),
    );
  }

  mqInstance(instanceId: string): SimMqInstance | undefined {
    return this.instances.get(instanceId);
  }

  /** Verifies a CONNECT; the username decides between ApsaraMQ (`Mode|AccessKeyId|InstanceId`) and a device. */
  login(clientId: string, username: string | undefined, password: string | undefined): LoginResult {
    if (username !== undefined && parseMqUsername(username)) return this.mqLogin(clientId, username, password ?? '');
    return this.iotLogin(clientId, username, password);
  }

  private iotLogin(clientId: string, username: string | undefined, password: string | undefined): LoginResult {
    const verdict = verifyIotLogin({ clientId, username, password }, (pk, dn) => this.deviceSecret(pk, dn));
    if (!verdict.ok) return refuse(verdict.returnCode, verdict.reason);
    const { productKey, deviceName } = verdict;
    if (this.stateOf(verdict) !== 'active') return refuse(CONNACK.NOT_AUTHORIZED, `device-${this.stateOf(verdict)}`);
    return {
      ok: true,
      session: {
        kind: 'iot',
        productKey,
        deviceName,
        clientId: verdict.clientId,
        ext: verdict.ext,
        permissions: this.devicePermissions({ productKey, deviceName }),
        autoSubscribe: verdict.params._ss === AUTO_SUBSCRIBE_PARAM._ss,
      },
    };
  }

  /** The topics a registered device may use: its platform topics and its product's custom topics. */
  devicePermissions(device: Device): TopicPermissions {
    const { productKey, deviceName } = device;
    const product = this.products.get(productKey) as SimProduct;
    const variables = { productKey, deviceName };
    const topics: Array<[string, string]> = [
      ...deviceSystemTopics(productKey, deviceName),
      ...(product.nodeType === 'gateway' ? gatewayTopics(productKey, deviceName) : []),
      ...(product.topics ?? BASIC_PRODUCT_TOPICS).map((entry): [string, string] => [
        expandPlaceholders(entry.topic, variables),
        entry.access,
      ]),
    ];
    const subscribable = topics.filter(([, access]) => access !== 'pub').map(([topic]) => topic);
    const publishable = topics.filter(([, access]) => access !== 'sub').map(([topic]) => topic);
    return new TopicPermissions(subscribable, publishable);
  }

  private mqLogin(clientId: string, username: string, password: string): LoginResult {
    const { authMode, accessKeyId, instanceId } = parseMqUsername(username) as NonNullable<ReturnType<typeof parseMqUsername>>;
    const instance = this.instances.get(instanceId);
    if (!instance) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'unknown-instance');
    const ids = parseMqClientId(clientId);
    if (!ids) return refuse(CONNACK.IDENTIFIER_REJECTED, 'client-id-format');
    if (instance.groups?.length && !instance.groups.includes(ids.groupId)) {
      return refuse(CONNACK.IDENTIFIER_REJECTED, 'unknown-group');
    }
    const everything = instance.parentTopics.map((parent) => `${parent}/#`);
    let permissions = new TopicPermissions(everything, everything);
    const tokens: SimToken[] = [];

    if (authMode === 'signature') {
      const key = instance.accessKeys?.find((entry) => entry.accessKeyId === accessKeyId);
      if (!key) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'unknown-access-key');
      if (!verifyMqSignature(clientId, key.accessKeySecret, password)) return refuse(CONNACK.NOT_AUTHORIZED, 'bad-signature');
    } else if (authMode === 'device-credential') {
      const credential = instance.deviceCredentials?.find((entry) => entry.deviceAccessKeyId === accessKeyId);
      if (!credential) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'unknown-access-key');
      if (credential.clientId !== clientId) return refuse(CONNACK.NOT_AUTHORIZED, 'credential-of-another-client');
      if (!verifyMqSignature(clientId, credential.deviceAccessKeySecret, password)) {
        return refuse(CONNACK.NOT_AUTHORIZED, 'bad-signature');
      }
    } else {
      const grants = parseMqTokenPassword(password);
      if (!grants) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'token-format');
      for (const grant of grants) {
        const token = this.validToken(instance, accessKeyId, grant.token);
        if (typeof token === 'string') return refuse(CONNACK.NOT_AUTHORIZED, token);
        tokens.push({ ...token, actions: commonActions(grant.actions, token.actions) });
      }
      permissions = tokenPermissions(tokens);
    }
    return {
      ok: true,
      session: {
        kind: 'mq',
        instanceId,
        clientId,
        ...ids,
        authMode,
        accessKeyId,
        tokens,
        p2pTopics: instance.parentTopics.map((parent) => `${parent}/p2p/${clientId}`),
        permissions,
      },
    };
  }
}
