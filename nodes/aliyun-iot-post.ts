import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { DeviceConnection, PackPostPart, PostClient, postClientOf, subDeviceManagerOf } from './lib/connection';
import { DEFAULTS } from './lib/protocol';
import { failure } from './support/failure';
import { newError } from './support/i18n';
import { onInput } from './support/input';
import { deviceOfMessage } from './support/sub-device';
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
  /** A sub-device logged in through this gateway to post as: {productKey, deviceName}. */
  device?: unknown;
  code?: number;
  alink?: {
    id: string;
    method: string;
    code?: number;
    message?: string;
    history?: { id: string; method: string };
    parts?: PackPostPart[];
  };
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
    const { node, connection, onClose, subDevice } = started;
    const ack = config.ack !== false && config.ack !== 'false';
    const timeout = Number(config.timeout) > 0 ? Number(config.timeout) : DEFAULTS.postTimeoutMs;
    if (config.kind === 'pack') {
      startPackPost(node, connection, { ack, timeoutMs: timeout }, onClose);
      return;
    }
    const kind = config.kind === 'event' ? 'event' : 'property';
    const ownClient = subDevice ? subDevice.postClient() : postClientOf(connection);
    // The post clients this node uses, its own and those of the sub-devices msg.device named: each attached once.
    const attached = new Set<PostClient>();
    const use = (client: PostClient): PostClient => {
      if (!attached.has(client)) {
        attached.add(client);
        client.attach();
      }
      return client;
    };
    use(ownClient);
    onClose((removed) => {
      for (const client of attached) client.detach(removed);
    });

    onInput(RED, node, (msg: PostMessage, send, done) => {
      const eventId = config.event || (typeof msg.event === 'string' ? msg.event : undefined);
      const addressed = deviceOfMessage(node, connection, msg);
      const client = use(
        addressed ? addressed.manager.postClientOf(addressed.device) : msg.device === undefined ? ownClient : postClientOf(connection),
      );
      try {
        const request = client.post({ kind, eventId, params: msg.payload, ack }, timeout, (error, result) => {
          if (error) {
            done(failure(RED, msg, error));
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
        done(failure(RED, msg, err));
      }
    });
  }

  RED.nodes.registerType('aliyun-iot-post', AliyunIotPostNode);
};
