// One sub-device as nodes use it: its gateway's SubDeviceManager and credentials, its topic placeholders, publishing
// as it through the gateway, and subscriptions made only while it is online (the platform refuses them otherwise);
// and the sub-device a message's `msg.device` addresses on a gateway connection.
import { AliyunIotError } from '../errors';
import { Device, deviceKey } from '../protocol/alink';
import { SubDeviceCredentials, deviceOfAnyTopic } from '../protocol/gateway';
import { isSignMethod, validateDeviceName, validateProductKey } from '../protocol/identifiers';
import { encodePayload } from '../protocol/payload';
import { Qos, TopicVariables, expandPlaceholders, parseQos } from '../protocol/topics';
import { DeviceConnection } from './device-connection';
import type { PostClient } from './post-client';
import { SubDeviceManager, SubDeviceStatus, SubDeviceUser, existingSubDeviceManager, subDeviceManagerOf } from './sub-device-manager';
import type { MessageReceiver, PublishCallback, PublishOptions, SharedConnection } from './types';

function sameDevice(a: Device | undefined, b: Device): boolean {
  return a !== undefined && a.productKey === b.productKey && a.deviceName === b.deviceName;
}

/** Publishes as a sub-device through its gateway: on that sub-device's topics only, waiting while it logs in. */
export function publishAsSubDevice(
  manager: SubDeviceManager,
  device: Device,
  topic: unknown,
  value: unknown,
  options: PublishOptions,
  callback: PublishCallback,
): void {
  let payload: string | Buffer;
  try {
    if (typeof topic !== 'string' || !sameDevice(deviceOfAnyTopic(topic), device)) {
      throw new AliyunIotError('SUBDEVICE_TOPIC_OTHER', { topic: typeof topic === 'string' ? topic : '', device: deviceKey(device) });
    }
    payload = encodePayload(value);
  } catch (err) {
    callback(err as Error);
    return;
  }
  manager.publishAs(device, topic, payload, options, callback);
}

export class SubDevice {
  readonly device: Device;
  readonly manager: SubDeviceManager;
  readonly variables: TopicVariables;

  /** Validates the credentials (throwing the problem) and takes the gateway's manager, made on first use. */
  constructor(
    gateway: DeviceConnection,
    readonly credentials: SubDeviceCredentials,
  ) {
    const productKey = validateProductKey(credentials.productKey);
    const deviceName = validateDeviceName(credentials.deviceName);
    if (!credentials.deviceSecret) throw new AliyunIotError('CREDENTIAL_MISSING', { field: 'deviceSecret' });
    if (credentials.signMethod !== undefined && !isSignMethod(credentials.signMethod)) {
      throw new AliyunIotError('SIGN_METHOD_INVALID', { value: String(credentials.signMethod) });
    }
    this.device = { productKey, deviceName };
    this.variables = { productKey, deviceName, clientId: credentials.clientId ?? `${productKey}.${deviceName}` };
    this.manager = subDeviceManagerOf(gateway);
  }

  get connection(): DeviceConnection {
    return this.manager.connection;
  }

  get status(): SubDeviceStatus | undefined {
    return this.manager.statusOf(this.device);
  }

  /** `${productKey}`, `${deviceName}` and `${clientId}` as the sub-device's. */
  expandTopic(topic: string): string {
    return expandPlaceholders(topic, this.variables);
  }

  /** A node starts acting as the sub-device: the first one logs it in (once the gateway is connected). */
  use(user: SubDeviceUser): void {
    this.manager.attach();
    this.manager.add(this.credentials, user);
  }

  /** The node stops; the last one's removal logs the sub-device out. */
  leave(user: SubDeviceUser, removed: boolean): void {
    this.manager.remove(this.device, user, removed);
    this.manager.detach(removed);
  }

  /** Logs the sub-device out now if no node uses it any more (the runtime stops or its config node goes). */
  shutdown(): void {
    this.manager.releaseUnused(this.device);
  }

  publish(topicTemplate: unknown, value: unknown, options: PublishOptions, callback: PublishCallback): void {
    let topic: unknown = topicTemplate;
    try {
      if (typeof topicTemplate === 'string') topic = this.expandTopic(topicTemplate);
    } catch (err) {
      callback(err as Error);
      return;
    }
    publishAsSubDevice(this.manager, this.device, topic, value, options, callback);
  }

  postClient(): PostClient {
    return this.manager.postClientOf(this.device);
  }
}

/**
 * A receiver's subscriptions to a sub-device's topics: held on the gateway's connection while the sub-device is
 * online, dropped when it goes offline and made again after every login.
 */
export class SubDeviceSubscriptions {
  private readonly wanted = new Map<string, Qos>();
  private online = false;

  constructor(
    private readonly subDevice: SubDevice,
    private readonly receiver: MessageReceiver,
  ) {}

  /** Checks and records a filter (the sub-device's placeholders expanded); returns it as expanded. */
  add(filterTemplate: string, qosValue: unknown): string {
    const qos = parseQos(qosValue);
    const [filter] = this.subDevice.connection.checkSubscriptions([{ topic: this.subDevice.expandTopic(filterTemplate), qos }]);
    this.wanted.set(filter, qos);
    if (this.online) this.subDevice.connection.subscribe(this.receiver, filter, qos);
    return filter;
  }

  /** Checks every request before recording any. */
  addAll(requests: Array<{ topic: string; qos?: unknown }>): void {
    this.subDevice.connection.checkSubscriptions(
      requests.map((request) => ({ topic: this.subDevice.expandTopic(request.topic), qos: request.qos })),
    );
    for (const request of requests) this.add(request.topic, request.qos);
  }

  remove(filterTemplate: string): void {
    let filter: string;
    try {
      filter = this.subDevice.expandTopic(filterTemplate);
    } catch {
      return;
    }
    if (!this.wanted.delete(filter)) return;
    this.subDevice.connection.unsubscribe(this.receiver, filter, true);
  }

  list(): Array<{ topic: string; qos: Qos }> {
    return [...this.wanted].map(([topic, qos]) => ({ topic, qos }));
  }

  /** Follows the sub-device's status: subscribes when it comes online, lets go when it leaves. */
  onStatus(status: SubDeviceStatus): void {
    const online = status.state === 'online';
    if (online === this.online) return;
    this.online = online;
    const connection = this.subDevice.connection;
    for (const [filter, qos] of this.wanted) {
      if (online) connection.subscribe(this.receiver, filter, qos);
      else connection.unsubscribe(this.receiver, filter, true);
    }
  }

  close(removed: boolean): void {
    this.wanted.clear();
    this.online = false;
    this.subDevice.connection.unsubscribeAll(this.receiver, removed);
  }
}

/** The sub-device a message addresses with `msg.device`, with the manager of the gateway it is logged in through. */
export interface AddressedDevice {
  manager: SubDeviceManager;
  device: Device;
}

/**
 * Reads `msg.device` for a node on `connection`: undefined when absent or naming the gateway itself; else the
 * sub-device, which must be one this gateway keeps logged in. Throws DEVICE_INVALID (not an object), the identifier
 * errors, DEVICE_NEEDS_GATEWAY (not an IoT Platform device connection) or SUBDEVICE_UNKNOWN.
 */
export function addressedDevice(connection: SharedConnection, value: unknown): AddressedDevice | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new AliyunIotError('DEVICE_INVALID');
  const { productKey, deviceName } = value as { productKey?: unknown; deviceName?: unknown };
  if (typeof productKey !== 'string' || typeof deviceName !== 'string') throw new AliyunIotError('DEVICE_INVALID');
  if (!(connection instanceof DeviceConnection) || connection.mode !== 'iot') throw new AliyunIotError('DEVICE_NEEDS_GATEWAY');
  const device = { productKey: validateProductKey(productKey), deviceName: validateDeviceName(deviceName) };
  const own = connection.profile.variables;
  if (own.productKey === device.productKey && own.deviceName === device.deviceName) return undefined;
  const manager = existingSubDeviceManager(connection);
  if (!manager || !manager.statusOf(device)) throw new AliyunIotError('SUBDEVICE_UNKNOWN', { device: deviceKey(device) });
  return { manager, device };
}

/** Publishes as an addressed sub-device, the placeholders of a topic template expanded to it. */
export function publishAddressed(
  addressed: AddressedDevice,
  topicTemplate: unknown,
  value: unknown,
  options: PublishOptions,
  callback: PublishCallback,
): void {
  const { productKey, deviceName } = addressed.device;
  let topic: unknown = topicTemplate;
  try {
    if (typeof topicTemplate === 'string') {
      topic = expandPlaceholders(topicTemplate, { productKey, deviceName, clientId: `${productKey}.${deviceName}` });
    }
  } catch (err) {
    callback(err as Error);
    return;
  }
  publishAsSubDevice(addressed.manager, addressed.device, topic, value, options, callback);
}

/** The sub-device a message on a gateway's connection belongs to, when it belongs to one this gateway keeps. */
export function subDeviceOfTopic(connection: SharedConnection, topic: string): Device | undefined {
  if (!(connection instanceof DeviceConnection) || connection.mode !== 'iot') return undefined;
  // Every message of an in or command node comes here: a connection that is no gateway parses no topic.
  const manager = existingSubDeviceManager(connection);
  if (!manager) return undefined;
  const device = deviceOfAnyTopic(topic);
  if (!device || !manager.statusOf(device)) return undefined;
  return { productKey: device.productKey, deviceName: device.deviceName };
}
