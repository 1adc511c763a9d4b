// A node's status for a connection state or a problem; its text is a catalog key the editor shows in the user's language.
import type { NodeAPI, NodeStatus } from 'node-red';
import type { ConnectionStatus } from '../lib/connection';
import type { StatusCode } from '../lib/errors';
import { CONNECTION_MESSAGES } from './i18n';

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
export function statusText(reason: StatusCode): string {
  return `${CONNECTION_MESSAGES}.status.${reason}`;
}

/**
 * The status a connection's user shows. A queue's size needs the runtime's catalog (the editor translates a bare key
 * only): with RED the text is translated here and the size appended.
 */
export function nodeStatus(status: ConnectionStatus, RED?: NodeAPI): NodeStatus {
  const look = STATUS_LOOK[status.state];
  if (!status.queued || !RED) return { ...look, text: statusText(status.reason) };
  const reason = RED._(statusText(status.reason));
  const queued = RED._(statusText('queued'), { count: status.queued });
  return { ...look, text: `${reason} · ${queued.endsWith('status.queued') ? status.queued : queued}` };
}

export function errorStatus(reason: StatusCode): NodeStatus {
  return { fill: 'red', shape: 'dot', text: statusText(reason) };
}
