// A node's status for a connection state or a problem; its text is a catalog key the editor shows in the user's language.
import type { NodeStatus } from 'node-red';
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

export function nodeStatus(status: ConnectionStatus): NodeStatus {
  return { ...STATUS_LOOK[status.state], text: statusText(status.reason) };
}

export function errorStatus(reason: StatusCode): NodeStatus {
  return { fill: 'red', shape: 'dot', text: statusText(reason) };
}
