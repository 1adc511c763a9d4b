// What every node that uses a connection does first and last: find the connection, mirror its status, leave it on close.
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeStatus } from 'node-red';
import type { ConnectionNotice, ConnectionStatus, ConnectionUser, SubDevice, SubDeviceStatus, SubDeviceUser } from '../lib/connection';
import { ConnectionFor, ServiceNeed, connectionOf } from './connection-lookup';
import { newError } from './i18n';
import { nodeStatus } from './status';
import { subDeviceNodeStatus, subDeviceOf } from './sub-device';

export interface UserNodeDef extends NodeDef {
  /** The id of the aliyun-iot-connection config node. */
  connection?: string;
  /** The id of an aliyun-iot-subdevice config node: the node acts as that sub-device through its gateway. */
  subdevice?: string;
}

export interface UserNodeOptions<Need extends ServiceNeed> {
  /** The service the node needs of the connection. */
  service: Need;
  /** Whether ApsaraMQ's token notices become errors of the node, so that Catch nodes can act on them. */
  notices?: boolean;
  /** The node's status for a status of the connection; nodeStatus by default. */
  status?: (status: ConnectionStatus) => NodeStatus;
}

export interface UserNode<Need extends ServiceNeed> {
  node: Node;
  connection: ConnectionFor<Need>;
  /** Runs `cleanup` when the node closes, before it leaves the connection (in the order given). */
  onClose(cleanup: (removed: boolean) => void): void;
  /** The sub-device the node acts as, when its `subdevice` names one. */
  subDevice?: SubDevice;
  /** Hears the sub-device's status now and on every change (nothing without a sub-device). */
  onSubDeviceStatus(listener: (status: SubDeviceStatus) => void): void;
}

/** Reports ApsaraMQ's token notices as errors of the node. */
function noticeReporter(RED: NodeAPI, node: Node): (notice: ConnectionNotice) => void {
  return (notice) => {
    const code = notice.kind === 'token-expiring' ? 'TOKEN_EXPIRING_NOTICE' : 'TOKEN_INVALID_NOTICE';
    node.error(newError(RED, code, { target: notice.target }).message, { topic: notice.topic, payload: notice.payload } as NodeMessage);
  };
}

/**
 * Makes `node` a Node-RED node of `config` that uses the connection its config node names: registers it as a user of
 * that connection, whose status it shows, and deregisters it on close. Without a usable connection the node shows
 * why and fails every input (see connectionOf), and the answer is undefined.
 */
export function startUserNode<Need extends ServiceNeed>(
  RED: NodeAPI,
  node: Node,
  config: UserNodeDef,
  options: UserNodeOptions<Need>,
): UserNode<Need> | undefined {
  RED.nodes.createNode(node, config);
  const connection = connectionOf(RED, node, config.connection, options.service);
  if (!connection) return undefined;
  const cleanups: Array<(removed: boolean) => void> = [];
  const listeners: Array<(status: SubDeviceStatus) => void> = [];
  let subDevice: SubDevice | undefined;
  let leave: (removed: boolean) => void;
  if (config.subdevice) {
    subDevice = subDeviceOf(RED, node, config.subdevice, connection);
    if (!subDevice) return undefined;
    const acting = subDevice;
    // The node shows the sub-device's status, which says when the gateway is not connected.
    const user: SubDeviceUser = {
      onStatus: (_device, status) => {
        node.status(subDeviceNodeStatus(status, RED));
        for (const listener of listeners) listener(status);
      },
    };
    acting.use(user);
    leave = (removed) => acting.leave(user, removed);
  } else {
    const show = options.status ?? ((status: ConnectionStatus) => nodeStatus(status, RED));
    const user: ConnectionUser = { onStatus: (status) => node.status(show(status)) };
    if (options.notices) user.onNotice = noticeReporter(RED, node);
    connection.register(user);
    leave = (removed) => connection.deregister(user, removed);
  }
  node.on('close', (removed: boolean, done: () => void) => {
    for (const cleanup of cleanups) cleanup(removed);
    leave(removed);
    done();
  });
  return {
    node,
    connection,
    subDevice,
    onClose: (cleanup) => {
      cleanups.push(cleanup);
    },
    onSubDeviceStatus: (listener) => {
      listeners.push(listener);
      const status = subDevice?.status;
      if (status) listener(status);
    },
  };
}
