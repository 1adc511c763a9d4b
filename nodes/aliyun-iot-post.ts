import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { postClientOf } from './lib/connection';
import { DEFAULTS } from './lib/protocol';
import { localizeError, newError } from './support/i18n';
import { onInput } from './support/input';
import { startUserNode } from './support/user-node';

interface PostNodeDef extends NodeDef {
  connection: string;
  kind: 'property' | 'event';
  event: string;
  ack: boolean | string;
  timeout: string | number;
}

interface PostMessage extends NodeMessageInFlow {
  event?: unknown;
  code?: number;
  alink?: { id: string; method: string; code?: number; message?: string; history?: { id: string; method: string } };
}

export = function (RED: NodeAPI): void {
  function AliyunIotPostNode(this: Node, config: PostNodeDef): void {
    const started = startUserNode(RED, this, config, { service: 'iot' });
    if (!started) return;
    const { node, connection, onClose } = started;
    const kind = config.kind === 'event' ? 'event' : 'property';
    const ack = config.ack !== false && config.ack !== 'false';
    const timeout = Number(config.timeout) > 0 ? Number(config.timeout) : DEFAULTS.postTimeoutMs;
    const client = postClientOf(connection);
    client.attach();
    onClose((removed) => client.detach(removed));

    onInput(RED, node, (msg: PostMessage, send, done) => {
      const eventId = config.event || (typeof msg.event === 'string' ? msg.event : undefined);
      try {
        const request = client.post({ kind, eventId, params: msg.payload, ack }, timeout, (error, result) => {
          if (error) {
            done(localizeError(RED, error));
            return;
          }
          const reply = result?.reply;
          if (reply) {
            msg.alink = { id: request.id, method: request.method, code: reply.code, message: reply.message };
            if (result?.history) msg.alink.history = result.history;
            msg.code = reply.code;
            if (reply.code !== 200) {
              done(newError(RED, 'POST_REFUSED', { method: request.method, id: reply.id, code: reply.code, message: reply.message ?? '' }));
              return;
            }
            msg.payload = reply.data;
          }
          send(msg);
          done();
        });
        msg.alink = { id: request.id, method: request.method };
      } catch (err) {
        done(localizeError(RED, err));
      }
    });
  }

  RED.nodes.registerType('aliyun-iot-post', AliyunIotPostNode);
};
