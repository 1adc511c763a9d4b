import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { DeviceConnection, PackPostPart, postClientOf, subDeviceManagerOf } from './lib/connection';
import { DEFAULTS } from './lib/protocol';
import { failure } from './support/failure';
import { localizeError, newError } from './support/i18n';
import { onInput } from './support/input';
import { startUserNode } from './support/user-node';

interface PostNodeDef extends NodeDef {
  connection: string;
  kind: 'property' | 'event' | 'pack';
  event: string;
  ack: boolean | string;
  timeout: string | number;
}

interface PostMessage extends NodeMessageInFlow {
  event?: unknown;
  code?: number;
  alink?: { id: string; method: string; code?: number; message?: string; parts?: PackPostPart[] };
}

export = function (RED: NodeAPI): void {
  /** Kind pack: msg.payload = [{productKey, deviceName, properties, events}] as the gateway's pack posts. */
  function startPackPost(
    node: Node,
    connection: DeviceConnection,
    options: { ack: boolean; timeoutMs: number },
    onClose: (handler: (removed: boolean) => void) => void,
  ): void {
    const manager = subDeviceManagerOf(connection);
    manager.attach();
    onClose((removed) => manager.detach(removed));
    onInput(RED, node, (msg: PostMessage, send, done) => {
      manager.packPost(msg.payload, options).then(
        ({ method, parts, code, message }) => {
          const refused = parts.find((part) => part.code !== undefined && part.code !== 200);
          msg.alink = { id: (refused ?? parts[0]).id, method, parts, ...(code === undefined ? {} : { code, message }) };
          if (code !== undefined) msg.code = code;
          if (refused)
            done(newError(RED, 'POST_REFUSED', { method, id: refused.id, code: refused.code ?? 0, message: refused.message ?? '' }));
          else {
            send(msg);
            done();
          }
        },
        (error: unknown) => done(failure(RED, msg, error)),
      );
    });
  }

  function AliyunIotPostNode(this: Node, config: PostNodeDef): void {
    const started = startUserNode(RED, this, config, { service: 'iot' });
    if (!started) return;
    const { node, connection, onClose } = started;
    const ack = config.ack !== false && config.ack !== 'false';
    const timeout = Number(config.timeout) > 0 ? Number(config.timeout) : DEFAULTS.postTimeoutMs;
    if (config.kind === 'pack') {
      startPackPost(node, connection, { ack, timeoutMs: timeout }, onClose);
      return;
    }
    const kind = config.kind === 'event' ? 'event' : 'property';
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
            msg.alink = { id: reply.id, method: request.method, code: reply.code, message: reply.message };
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
