// Who may log in and what each login may do: the platform's device registry, topic permissions and ApsaraMQ
// credentials, verified with the same functions the nodes sign with.
import {
  CONNACK, RefusalCode, parseMqClientId, parseMqTokenPassword, parseMqUsername, verifyIotLogin, verifyMqSignature,
} from '../nodes/lib/auth';
import { expandPlaceholders, filterCovers } from '../nodes/lib/topics';
import { BASIC_PRODUCT_TOPICS, SimMqInstance, SimProduct, SimToken, SimulatorConfig } from './config';

/** Topic filters a login may subscribe within, and publish to. */
export class TopicPermissions {
  private readonly publishVerdicts = new Map<string, boolean>();

  constructor(readonly subscribable: readonly string[], readonly publishable: readonly string[]) {}

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
}

export interface MqSession {
  kind: 'mq';
  instanceId: string;
  clientId: string;
  groupId: string;
  deviceId: string;
  authMode: 'signature' | 'token' | 'device-credential';
  /** Topics that reach this client without a subscription: ${parent}/p2p/${clientId}. */
  p2pTopics: string[];
  permissions: TopicPermissions;
}

export type Session = IotSession | MqSession;

export type LoginResult =
  | { ok: true; session: Session }
  | { ok: false; returnCode: RefusalCode; reason: string };

/** A device's own system topics (aliyun-protocol.md §2), as [filter, access]. */
function systemTopics(productKey: string, deviceName: string): Array<[string, 'sub' | 'pub' | 'all']> {
  return [
    [`/sys/${productKey}/${deviceName}/#`, 'all'],
    [`/ext/ntp/${productKey}/${deviceName}/#`, 'all'],
    [`/ext/rrpc/+/sys/${productKey}/${deviceName}/#`, 'all'],
    [`/ext/rrpc/+/${productKey}/${deviceName}/#`, 'all'],
    [`/shadow/+/${productKey}/${deviceName}`, 'all'],
    [`/ota/device/+/${productKey}/${deviceName}`, 'all'],
    [`/broadcast/${productKey}/#`, 'sub'],
  ];
}

function refuse(returnCode: RefusalCode, reason: string): LoginResult {
  return { ok: false, returnCode, reason };
}

export class Registry {
  private readonly products = new Map<string, SimProduct>();
  private readonly instances = new Map<string, SimMqInstance>();

  constructor(config: SimulatorConfig) {
    for (const product of config.products ?? []) this.products.set(product.productKey, product);
    for (const instance of config.mq ?? []) this.instances.set(instance.instanceId, instance);
  }

  deviceSecret(productKey: string, deviceName: string): string | undefined {
    return this.products.get(productKey)?.devices.find((device) => device.deviceName === deviceName)?.deviceSecret;
  }

  allDevices(): Array<{ productKey: string; deviceName: string }> {
    return [...this.products.values()].flatMap((product) =>
      product.devices.map((device) => ({ productKey: product.productKey, deviceName: device.deviceName })));
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
    const product = this.products.get(productKey) as SimProduct;
    const variables = { productKey, deviceName };
    const topics: Array<[string, string]> = [
      ...systemTopics(productKey, deviceName),
      ...(product.topics ?? BASIC_PRODUCT_TOPICS).map((entry): [string, string] => [expandPlaceholders(entry.topic, variables), entry.access]),
    ];
    const subscribable = topics.filter(([, access]) => access !== 'pub').map(([topic]) => topic);
    const publishable = topics.filter(([, access]) => access !== 'sub').map(([topic]) => topic);
    return {
      ok: true,
      session: {
        kind: 'iot', productKey, deviceName, clientId: verdict.clientId, ext: verdict.ext,
        permissions: new TopicPermissions(subscribable, publishable),
      },
    };
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
      const tokens: SimToken[] = [];
      for (const grant of grants) {
        const token = instance.tokens?.find((entry) => entry.token === grant.token && entry.accessKeyId === accessKeyId);
        if (!token) return refuse(CONNACK.NOT_AUTHORIZED, 'unknown-token');
        if (token.expireTime <= Date.now()) return refuse(CONNACK.NOT_AUTHORIZED, 'token-expired');
        tokens.push({ ...token, actions: grant.actions.split('').filter((action) => token.actions.includes(action)).join('') as SimToken['actions'] });
      }
      permissions = new TopicPermissions(
        tokens.filter((token) => token.actions.includes('R')).flatMap((token) => token.resources),
        tokens.filter((token) => token.actions.includes('W')).flatMap((token) => token.resources),
      );
    }
    return {
      ok: true,
      session: {
        kind: 'mq', instanceId, clientId, ...ids, authMode,
        p2pTopics: instance.parentTopics.map((parent) => `${parent}/p2p/${clientId}`),
        permissions,
      },
    };
  }
}
