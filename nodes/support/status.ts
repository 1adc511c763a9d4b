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
  // A disk queue that cannot store shows red, whatever the connection's state, as the problem's own text.
  const look = status.storeProblem ? { fill: 'red' as const, shape: 'ring' as const } : STATUS_LOOK[status.state];
  if (!RED) return { ...look, text: statusText(status.storeProblem ?? status.reason) };
  if (!status.queued && !status.storeProblem) return { ...look, text: statusText(status.reason) };
  const parts = [RED._(statusText(status.reason))];
  if (status.storeProblem) parts.push(RED._(statusText(status.storeProblem)));
  if (status.queued) {
    const queued = RED._(statusText('queued'), { count: status.queued });
    parts.push(queued.endsWith('status.queued') ? String(status.queued) : queued);
  }
  return { ...look, text: parts.join(' · ') };
}

export function errorStatus(reason: StatusCode): NodeStatus {
  return { fill: 'red', shape: 'dot', text: statusText(reason) };
}
