import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { buildAnswer, isCommandContext, parseThingTopic } from './lib/protocol';
import { localizeError, newError } from './support/i18n';
import { startUserNode } from './support/user-node';

interface ReplyNodeDef extends NodeDef {
  connection: string;
  code: string | number;
}

interface ReplyMessage extends NodeMessageInFlow {
  alink?: unknown;
  code?: unknown;
  message?: unknown;
}

export = function (RED: NodeAPI): void {
  function AliyunIotReplyNode(this: Node, config: ReplyNodeDef): void {
    const started = startUserNode(RED, this, config, { service: 'iot' });
    if (!started) return;
    const { node, connection } = started;
    const { productKey, deviceName } = connection.profile.variables;
    const defaultCode = config.code === '' || config.code === undefined ? 200 : Number(config.code);

    node.on('input', (msg: ReplyMessage, _send, done) => {
      const context = msg.alink;
      if (!isCommandContext(context)) {
        done(newError(RED, 'REPLY_NO_CONTEXT'));
        return;
      }
      // aliyun-iot-command with autoReplySet already answered this property set.
      if ((context as { autoReplied?: unknown }).autoReplied === true) {
        done();
        return;
      }
      const target = parseThingTopic(context.topic);
      if (target && (target.productKey !== productKey || target.deviceName !== deviceName)) {
        done(newError(RED, 'REPLY_OTHER_DEVICE', { device: `${target.productKey}/${target.deviceName}`, own: `${productKey}/${deviceName}` }));
        return;
      }
      const code = msg.code === undefined || msg.code === null || msg.code === '' ? defaultCode : Number(msg.code);
      if (!Number.isInteger(code)) {
        done(newError(RED, 'REPLY_CODE_INVALID', { value: String(msg.code ?? config.code) }));
        return;
      }
      try {
        const answer = buildAnswer(context, code, msg.payload, typeof msg.message === 'string' ? msg.message : undefined);
        // Answers go at QoS 0, as the platform sends RRPC responses.
        connection.publish(answer.topic, answer.payload, { qos: 0 }, (error) => done(error ? localizeError(RED, error) : undefined));
      } catch (err) {
        done(localizeError(RED, err));
      }
    });
  }

  RED.nodes.registerType('aliyun-iot-reply', AliyunIotReplyNode);
};
