// The error contract of the nodes: what reaches a Catch node carries `msg.code`, so a flow can branch on it.
import type { NodeAPI } from 'node-red';
import { AliyunIotError } from '../lib/errors';
import { localizeError } from './i18n';

/** An error's code for a flow: the platform's code when the platform refused a call, else this package's code. */
export function codeOf(err: unknown): string | undefined {
  const apiCode = (err as { apiCode?: unknown } | null)?.apiCode;
  if (typeof apiCode === 'string' && apiCode !== '') return apiCode;
  return err instanceof AliyunIotError ? err.code : undefined;
}

/** Sets `msg.code` from `err` and returns the error in the runtime's language, for done(err) or node.error. */
export function failure(RED: NodeAPI, msg: { code?: unknown }, err: unknown): Error {
  const code = codeOf(err);
  if (code !== undefined) msg.code = code;
  return localizeError(RED, err);
}
