// The sub-device a user node acts as (its `subdevice` property names an aliyun-iot-subdevice config node), and the
// node's status for the sub-device's.
import type { Node, NodeAPI, NodeStatus } from 'node-red';
import { AddressedDevice, SharedConnection, SubDevice, SubDeviceStatus, addressedDevice } from '../lib/connection';
import { AliyunIotError } from '../lib/errors';
import { localizeError, newError } from './i18n';
import { onInput } from './input';
import { errorStatus, statusText } from './status';

/** The aliyun-iot-subdevice config node as user nodes see it. */
export interface SubDeviceConfigNode extends Node {
  /** The id of its gateway's aliyun-iot-connection. */
  gatewayId?: string;
  subDevice?: SubDevice;
  configError?: Error;
}

const STATUS_LOOK: Record<SubDeviceStatus['state'], Pick<NodeStatus, 'fill' | 'shape'>> = {
  waiting: { fill: 'yellow', shape: 'ring' },
  'logging-in': { fill: 'yellow', shape: 'ring' },
  online: { fill: 'green', shape: 'dot' },
  refused: { fill: 'red', shape: 'dot' },
  offline: { fill: 'grey', shape: 'ring' },
};

/**
 * The status of a node acting as a sub-device. A refusal names the platform's code after its reason; that needs the
 * runtime's catalog (the editor translates a bare key only), so without one the bare key is shown.
 */
export function subDeviceNodeStatus(status: SubDeviceStatus, RED?: NodeAPI): NodeStatus {
  const look = STATUS_LOOK[status.state];
  const key = statusText(status.reason);
  if (status.code === undefined || !RED) return { ...look, text: key };
  const reason = RED._(key);
  return { ...look, text: reason === key || reason.endsWith(status.reason) ? key : `${reason} (${status.code})` };
}

/**
 * The sub-device a user node's `subdevice` names, which must log in through the node's own connection. Without a
 * usable one the node shows why, logs it once, fails every input with it, and gets undefined.
 */
export function subDeviceOf(RED: NodeAPI, node: Node, configId: string, connection: SharedConnection): SubDevice | undefined {
  const config = RED.nodes.getNode(configId) as SubDeviceConfigNode | null;
  let error: Error | undefined;
  if (!config) error = newError(RED, 'SUBDEVICE_CONFIG_MISSING');
  else if (!config.subDevice) error = newError(RED, 'CONFIG_ERROR', { reason: config.configError?.message ?? '' });
  else if (config.subDevice.connection !== connection) {
    const { productKey, deviceName } = config.subDevice.device;
    error = localizeError(RED, new AliyunIotError('SUBDEVICE_OTHER_GATEWAY', { device: `${productKey}/${deviceName}` }));
  }
  if (!error) return config?.subDevice;
  node.status(errorStatus('config-error'));
  node.error(error.message);
  const failed = error;
  onInput(RED, node, (_msg, _send, done) => done(failed));
  return undefined;
}

/**
 * The sub-device `msg.device` addresses on the node's connection (undefined without one, or for the gateway itself).
 * Bad input shows in the node's status and throws, for the input handler to end the message in done(err).
 */
export function deviceOfMessage(node: Node, connection: SharedConnection, msg: { device?: unknown }): AddressedDevice | undefined {
  try {
    return addressedDevice(connection, msg.device);
  } catch (err) {
    node.status(errorStatus('device-refused'));
    throw err;
  }
}
