// What every node adapter needs: the connection of its config node, status texts and localized errors.
import type { Node, NodeAPI, NodeMessage, NodeStatus } from 'node-red';
import { ConnectionNotice, ConnectionSecrets, ConnectionStatus, ConnectionUser, DeviceConnection, SharedConnection } from './lib/connection';
import { AliyunIotError, ErrorParams, LogMessage, withFieldLabel } from './lib/errors';

/** Common texts live in the connection node's catalog; keys with a namespace are found from any node. */
export const CONNECTION_MESSAGES = 'node-red-contrib-aliyun-iot/aliyun-iot-connection:aliyun-iot-connection';

/** The config node as user nodes see it. */
export interface ConnectionConfigNode extends Node<ConnectionSecrets> {
  connection?: SharedConnection;
  configError?: Error;
}

const STATUS_LOOK: Record<ConnectionStatus['state'], Pick<NodeStatus, 'fill' | 'shape'>> = {
  idle: { fill: 'grey', shape: 'ring' },
  connecting: { fill: 'yellow', shape: 'ring' },
  connected: { fill: 'green', shape: 'dot' },
  disconnected: { fill: 'red', shape: 'ring' },
  refused: { fill: 'red', shape: 'dot' },
  kicked: { fill: 'red', shape: 'dot' },
  closed: { fill: 'grey', shape: 'ring' },
};

/** The status text is an i18n key: the editor shows it in the user's language. */
export function statusText(reason: string): string {
  return `${CONNECTION_MESSAGES}.status.${reason}`;
}

export function nodeStatus(status: ConnectionStatus): NodeStatus {
  return { ...STATUS_LOOK[status.state], text: statusText(status.reason) };
}

export function errorStatus(reason: string): NodeStatus {
  return { fill: 'red', shape: 'dot', text: statusText(reason) };
}

/** A text of the connection node's catalog in the runtime's language, or undefined when the catalog is not loaded. */
function catalogText(RED: NodeAPI, key: string, params: ErrorParams = {}): string | undefined {
  const text = RED._(`${CONNECTION_MESSAGES}.${key}`, params);
  // Without a loaded catalog (e.g. under node-red-node-test-helper) i18next answers with the key itself.
  return text && !text.endsWith(key) ? text : undefined;
}

/** A catalog text in the runtime's language, or `english` when the catalog is not loaded. */
function translate(RED: NodeAPI, section: 'errors' | 'log', code: string, params: ErrorParams, english: string): string {
  const labelled = withFieldLabel(params, (field) => catalogText(RED, `label.${field}`));
  return catalogText(RED, `${section}.${code}`, labelled) ?? english;
}

/** The runtime's language for an error of nodes/lib; its code stays on the returned Error. */
export function localizeError(RED: NodeAPI, err: unknown): Error {
  if (!(err instanceof AliyunIotError)) return err instanceof Error ? err : new Error(String(err));
  const localized = new Error(translate(RED, 'errors', err.code, err.params, err.message));
  Object.assign(localized, { code: err.code });
  return localized;
}

/** A log line of nodes/lib in the runtime's language. */
export function localizeLog(RED: NodeAPI, message: LogMessage): string {
  return translate(RED, 'log', message.code, message.params, message.text);
}

export function newError(RED: NodeAPI, code: string, params: ErrorParams = {}): Error {
  return localizeError(RED, new AliyunIotError(code, params));
}

/**
 * The connection a user node names. Without one (no config node, or a misconfigured one, or one of a service the node
 * cannot use) the node shows why in its status, logs it once, fails every input with it, and gets undefined.
 */
export function connectionOf(RED: NodeAPI, node: Node, configId: string | undefined, service?: 'iot' | 'cloud'): SharedConnection | undefined {
  const config = configId ? (RED.nodes.getNode(configId) as ConnectionConfigNode | null) : null;
  const connection = config?.connection;
  if (connection && (!service || connection.mode === service)) return connection;
  let error: Error;
  if (connection) error = newError(RED, service === 'iot' ? 'THING_MODEL_NEEDS_IOT' : 'INVOKE_NEEDS_CLOUD');
  else if (config) error = newError(RED, 'CONFIG_ERROR', { reason: config.configError?.message ?? '' });
  else error = newError(RED, 'NO_CONNECTION');
  node.status(errorStatus(config ? 'config-error' : 'no-connection'));
  node.error(error.message);
  node.on('input', (_msg, _send, done) => done(error));
  return undefined;
}

/** The IoT Platform device connection the thing-model nodes need. */
export function deviceConnectionOf(RED: NodeAPI, node: Node, configId: string | undefined): DeviceConnection | undefined {
  return connectionOf(RED, node, configId, 'iot') as DeviceConnection | undefined;
}

/** Reports ApsaraMQ's token notices as errors of the node, so that Catch nodes can act on them. */
export function noticeReporter(RED: NodeAPI, node: Node): (notice: ConnectionNotice) => void {
  return (notice) => {
    const code = notice.kind === 'token-expiring' ? 'TOKEN_EXPIRING_NOTICE' : 'TOKEN_INVALID_NOTICE';
    node.error(newError(RED, code, { target: notice.target }).message, { topic: notice.topic, payload: notice.payload } as NodeMessage);
  };
}

/** A user of the connection that mirrors its state in the node's status (and, with RED, reports token notices). */
export function statusUser(node: Node, RED?: NodeAPI): ConnectionUser {
  return { onStatus: (status) => node.status(nodeStatus(status)), ...(RED ? { onNotice: noticeReporter(RED, node) } : {}) };
}
