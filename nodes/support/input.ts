// The input handler of every node of the package: each msg ends in exactly one done() or done(err), whatever it holds.
import type { Node, NodeAPI, NodeMessage, NodeMessageInFlow } from 'node-red';
import { failure } from './failure';

export type Done = (error?: Error) => void;
export type Send = (msg: NodeMessage | Array<NodeMessage | NodeMessage[] | null>) => void;
export type InputHandler<Msg extends NodeMessageInFlow> = (msg: Msg, send: Send, done: Done) => void;

/**
 * A done that runs once and never throws. Node-RED clones the msg for Catch and Complete nodes inside done; a msg it
 * cannot clone (nested too deep for its stack) makes done throw, in a promise callback an unhandled rejection that
 * ends the process. The error then reaches Catch nodes with a msg of only its id and code, and a failed done() is logged.
 */
export function safeDone(node: Node, msg: NodeMessageInFlow, done: Done): Done {
  let finished = false;
  return (error) => {
    if (finished) return;
    finished = true;
    try {
      done(error);
    } catch (failure) {
      const reported = error ?? (failure instanceof Error ? failure : new Error(String(failure)));
      const code = (msg as { code?: unknown }).code;
      if (error) node.error(reported, { _msgid: msg._msgid, ...(code === undefined ? {} : { code }) } as NodeMessage);
      else node.error(reported.message);
    }
  };
}

/** Registers `handler` for the node's input: with a safe done, and a throw from the handler ends the msg in done(err),
 * with msg.code set as for every other failure. */
export function onInput<Msg extends NodeMessageInFlow>(RED: NodeAPI, node: Node, handler: InputHandler<Msg>): void {
  node.on('input', (msg, send, done) => {
    const finish = safeDone(node, msg, done);
    try {
      handler(msg as Msg, send, finish);
    } catch (err) {
      finish(failure(RED, msg as { code?: unknown }, err));
    }
  });
}
