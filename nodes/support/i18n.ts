// Texts of nodes/lib in the runtime's language: errors a flow can catch and log lines, from the connection node's catalog.
import type { NodeAPI } from 'node-red';
import { AliyunIotError, ErrorCode, ErrorParams, LogCode, LogMessage, shownValue, withFieldLabel } from '../lib/errors';

/** Common texts live in the connection node's catalog; keys with a namespace are found from any node. */
export const CONNECTION_MESSAGES = 'node-red-contrib-aliyun-iot/aliyun-iot-connection:aliyun-iot-connection';

/** A text of the connection node's catalog in the runtime's language, or undefined when the catalog is not loaded. */
function catalogText(RED: NodeAPI, key: string, params: ErrorParams = {}): string | undefined {
  const text = RED._(`${CONNECTION_MESSAGES}.${key}`, params);
  // Without a loaded catalog (e.g. under node-red-node-test-helper) i18next answers with the key itself.
  return text && !text.endsWith(key) ? text : undefined;
}

/** A catalog text in the runtime's language, or `english` when the catalog is not loaded. */
function translate(RED: NodeAPI, section: 'errors' | 'log', code: ErrorCode | LogCode, params: ErrorParams, english: string): string {
  const labelled = withFieldLabel(params, (field) => catalogText(RED, `label.${field}`));
  return catalogText(RED, `${section}.${code}`, labelled) ?? english;
}

/** The runtime's language for an error of nodes/lib; its code stays on the returned Error. */
export function localizeError(RED: NodeAPI, err: unknown): Error {
  if (!(err instanceof AliyunIotError)) return err instanceof Error ? err : new Error(shownValue(err));
  const localized = new Error(translate(RED, 'errors', err.code, err.params, err.message));
  Object.assign(localized, { code: err.code });
  return localized;
}

/** A log line of nodes/lib in the runtime's language. */
export function localizeLog(RED: NodeAPI, message: LogMessage): string {
  return translate(RED, 'log', message.code, message.params, message.text);
}

export function newError(RED: NodeAPI, code: ErrorCode, params: ErrorParams = {}): Error {
  return localizeError(RED, new AliyunIotError(code, params));
}
