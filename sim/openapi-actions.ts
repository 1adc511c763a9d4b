// The IoT Platform actions the simulator's OpenAPI serves: Pub, RRpc, SetDeviceProperty, InvokeThingService, the
// device queries of sim/openapi-queries.ts and the topology actions of sim/openapi-topology.ts. They use the same
// platform machinery (sim/platform.ts) as the admin API; failures are shaped like the platform's.
import {
  Device,
  IDENTIFIER_PATTERNS,
  MAX_JSON_DEPTH,
  PROPERTY_LIMITS,
  RANGES,
  SERVICE_LIMITS,
  nestsDeeperThan,
  productOfTopic,
  validatePublishTopic,
} from '../nodes/lib/protocol';
import { SimulatedPlatform, MAX_SYNC_TIMEOUT_MS, checkProperties, messageIds } from './platform';
import { SimCloudConfig } from './config';
import { ActionHandler, ApiParams, business, missing } from './openapi';
import { createQueries } from './openapi-queries';
import { createTopologyActions } from './openapi-topology';
import type { Gateways } from './gateway';
import type { Registry } from './registry';
import type { DeviceActivity } from './sessions';

export interface ActionContext {
  cloud: SimulatedPlatform;
  registry: Registry;
  config: SimCloudConfig;
  activityOf: (device: Device) => DeviceActivity;
  gateways: Gateways;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function required(params: ApiParams, name: string): string {
  const value = params[name];
  if (value === undefined || value === '') throw missing(name);
  return value;
}

function invalid(name: string, why: string): never {
  throw business('iot.common.InvalidFormattedParameter', `The parameter ${name} is invalid: ${why}.`);
}

function base64(params: ApiParams, name: string): Buffer {
  const text = required(params, name);
  if (!BASE64.test(text)) invalid(name, 'not Base64');
  return Buffer.from(text, 'base64');
}

function jsonObject(params: ApiParams, name: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(required(params, name));
  } catch {
    invalid(name, 'not JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) invalid(name, 'not a JSON object');
  if (nestsDeeperThan(value, MAX_JSON_DEPTH)) invalid(name, `nested more than ${MAX_JSON_DEPTH} levels deep`);
  return value as Record<string, unknown>;
}

export function createActions(context: ActionContext): Record<string, ActionHandler> {
  const { cloud, registry, config } = context;
  const nextMessageId = messageIds();

  /** The instance named by IotInstanceId must be the simulator's; absent means the default one. */
  const checkInstance = (params: ApiParams): void => {
    const instance = params.IotInstanceId;
    if (instance && instance !== config.instanceId)
      throw business('iot.system.InstanceNotFound', `The instance ${instance} does not exist.`);
  };

  const product = (params: ApiParams): string => {
    checkInstance(params);
    const productKey = required(params, 'ProductKey');
    if (!registry.product(productKey)) throw business('iot.prod.NotExistedProduct', `The product ${productKey} does not exist.`);
    return productKey;
  };

  const device = (params: ApiParams): Device => {
    const productKey = product(params);
    const deviceName = required(params, 'DeviceName');
    if (registry.deviceSecret(productKey, deviceName) === undefined) {
      throw business('iot.device.NotExistedDevice', `The device ${productKey}/${deviceName} does not exist.`);
    }
    return { productKey, deviceName };
  };

  const offline = (target: Device): never => {
    throw business('iot.device.DeviceOffline', `The device ${target.productKey}/${target.deviceName} is offline.`);
  };

  return {
    ...createQueries({
      registry,
      activityOf: context.activityOf,
      properties: (target) => cloud.propertiesOf(target),
      device,
      checkInstance,
    }),
    ...createTopologyActions({ registry, device, checkInstance, gateways: context.gateways }),

    async Pub(params) {
      const productKey = product(params);
      const topic = required(params, 'TopicFullName');
      const payload = base64(params, 'MessageContent');
      const qos = params.Qos ?? '0';
      if (qos !== '0' && qos !== '1') invalid('Qos', 'must be 0 or 1');
      let valid = false;
      try {
        validatePublishTopic(topic, SERVICE_LIMITS.iot);
        valid = productOfTopic(topic) === productKey && topic.split('/').length > 3;
      } catch {
        valid = false;
      }
      if (!valid)
        throw business('iot.messagebroker.InvalidFormattedTopicName', `The topic ${topic} is not a topic of product ${productKey}.`);
      cloud.pub(topic, payload, qos === '1' ? 1 : 0);
      return { MessageId: nextMessageId() };
    },

    async RRpc(params) {
      const target = device(params);
      const request = base64(params, 'RequestBase64Byte');
      const timeout = Number(required(params, 'Timeout'));
      if (!Number.isInteger(timeout) || timeout < RANGES.rrpcTimeoutMs.min || timeout > RANGES.rrpcTimeoutMs.max) {
        invalid('Timeout', `must be ${RANGES.rrpcTimeoutMs.min}-${RANGES.rrpcTimeoutMs.max} ms`);
      }
      const topic = params.Topic || undefined;
      if (topic !== undefined && !(topic.startsWith(`/${target.productKey}/${target.deviceName}/user/`) && !/[+#]/.test(topic))) {
        throw business('iot.messagebroker.InvalidFormattedTopicName', `The RRPC topic ${topic} is not a custom topic of the device.`);
      }
      const result = await cloud.rrpc(target, request, timeout, topic);
      return {
        RrpcCode: result.rrpcCode,
        MessageId: result.messageId,
        ...(result.payload ? { PayloadBase64Byte: result.payload.toString('base64') } : {}),
      };
    },

    async SetDeviceProperty(params) {
      const target = device(params);
      const items = jsonObject(params, 'Items');
      const { refusedCode, dropped } = checkProperties(items);
      if (refusedCode !== undefined) invalid('Items', `more than ${PROPERTY_LIMITS.perPost} properties`);
      if (dropped.length > 0) invalid('Items', dropped.slice(0, 3).join('; '));
      const result = await cloud.setProperties(target, items);
      if (result.status === 'OFFLINE') offline(target);
      return { Data: { MessageId: result.id } };
    },

    async InvokeThingService(params) {
      const target = device(params);
      const identifier = required(params, 'Identifier');
      if (!IDENTIFIER_PATTERNS.thingIdentifier.test(identifier)) invalid('Identifier', 'not a service identifier');
      const args = jsonObject(params, 'Args');
      const sync = registry.product(target.productKey)?.syncServices?.includes(identifier) ?? false;
      const result = await cloud.invokeService(
        target,
        identifier,
        args,
        sync,
        sync ? (config.syncTimeoutMs ?? MAX_SYNC_TIMEOUT_MS) : undefined,
      );
      if (result.status === 'OFFLINE') offline(target);
      if (result.status === 'TIMEOUT')
        throw business('iot.messagebroker.RrpcTimeout', `The device did not answer the synchronous service ${identifier} in time.`);
      if (!sync) return { Data: { MessageId: result.id } };
      const reply = result.reply;
      if (!reply) throw business('iot.device.InvokeThingServiceFailed', `The device's answer to ${identifier} is not an Alink reply.`);
      if (reply.code !== 200) {
        throw business(
          'iot.device.InvokeThingServiceFailed',
          `The device answered ${identifier} with code ${reply.code}${reply.message ? `: ${reply.message}` : ''}.`,
        );
      }
      return { Data: { Result: JSON.stringify(reply.data ?? {}), MessageId: result.id } };
    },
  };
}
