// The connection of the config node a user node names, of the service the node needs.
import type { Node, NodeAPI, NodeMessage } from 'node-red';
import { CloudApplicationConnection, ConnectionSecrets, DeviceConnection, SharedConnection } from '../lib/connection';
import { AliyunIotError, ErrorCode } from '../lib/errors';
import { failure } from './failure';
import { onInput } from './input';
import { errorStatus } from './status';

/** The config node as user nodes see it. */
export interface ConnectionConfigNode extends Node<ConnectionSecrets> {
  connection?: SharedConnection;
  configError?: Error;
}

interface ConnectionOfService {
  /** Device (IoT Platform or ApsaraMQ) or cloud application: the in and out nodes. */
  any: SharedConnection;
  /** An IoT Platform device: the thing-model nodes. */
  iot: DeviceConnection;
  /** A cloud application: the invoke node. */
  cloud: CloudApplicationConnection;
}

export type ServiceNeed = keyof ConnectionOfService;
export type ConnectionFor<Need extends ServiceNeed> = ConnectionOfService[Need];

/** The connection when it serves the need, else the code of the error that says why not. */
const SERVING: { [Need in ServiceNeed]: (connection: SharedConnection) => ConnectionFor<Need> | ErrorCode } = {
  any: (connection) => connection,
  iot: (connection) => (connection instanceof DeviceConnection && connection.mode === 'iot' ? connection : 'THING_MODEL_NEEDS_IOT'),
  cloud: (connection) => (connection instanceof CloudApplicationConnection ? connection : 'INVOKE_NEEDS_CLOUD'),
};

/**
 * The connection a user node names. Without one (no config node, or a misconfigured one, or one of a service the node
 * cannot use) the node shows why in its status, logs it once, fails every input with it, and gets undefined.
 */
export function connectionOf<Need extends ServiceNeed>(
  RED: NodeAPI,
  node: Node,
  configId: string | undefined,
  need: Need,
): ConnectionFor<Need> | undefined {
  const config = configId ? (RED.nodes.getNode(configId) as ConnectionConfigNode | null) : null;
  const serving: (connection: SharedConnection) => ConnectionFor<Need> | ErrorCode = SERVING[need];
  const found = config?.connection ? serving(config.connection) : undefined;
  if (found !== undefined && typeof found !== 'string') return found;
  let cause: AliyunIotError;
  if (found !== undefined) cause = new AliyunIotError(found);
  else if (config) cause = new AliyunIotError('CONFIG_ERROR', { reason: config.configError?.message ?? '' });
  else cause = new AliyunIotError('NO_CONNECTION');
  node.status(errorStatus(config ? 'config-error' : 'no-connection'));
  const reported: { code?: unknown } = {};
  node.error(failure(RED, reported, cause).message, reported as NodeMessage);
  onInput(RED, node, (msg, _send, done) => done(failure(RED, msg as { code?: unknown }, cause)));
  return undefined;
}
