// What every node that uses a connection does first and last: find the connection, mirror its status, leave it on close.
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeStatus } from 'node-red';
import type { ConnectionNotice, ConnectionStatus, ConnectionUser } from '../lib/connection';
import { ConnectionFor, ServiceNeed, connectionOf } from './connection-lookup';
import { newError } from './i18n';
import { nodeStatus } from './status';

export interface UserNodeDef extends NodeDef {
  /** The id of the aliyun-iot-connection config node. */
  connection?: string;
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
  const show = options.status ?? ((status: ConnectionStatus) => nodeStatus(status, RED));
  const user: ConnectionUser = { onStatus: (status) => node.status(show(status)) };
  if (options.notices) user.onNotice = noticeReporter(RED, node);
  connection.register(user);
  const cleanups: Array<(removed: boolean) => void> = [];
  node.on('close', (removed: boolean, done: () => void) => {
    for (const cleanup of cleanups) cleanup(removed);
    connection.deregister(user, removed);
    done();
  });
  return {
    node,
    connection,
    onClose: (cleanup) => {
      cleanups.push(cleanup);
    },
  };
}
