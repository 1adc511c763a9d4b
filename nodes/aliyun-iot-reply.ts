import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { publishAsSubDevice } from './lib/connection';
import { buildAnswer, isCommandContext, parseThingTopic } from './lib/protocol';
import { AliyunIotError, shownValue } from './lib/errors';
import { failure } from './support/failure';
import { onInput } from './support/input';
import { deviceOfMessage } from './support/sub-device';
import { startUserNode } from './support/user-node';

interface ReplyNodeDef extends NodeDef {
  connection: string;
  code: string | number;
}

interface ReplyMessage extends NodeMessageInFlow {
  alink?: unknown;
  code?: unknown;
  message?: unknown;
  /** The sub-device logged in through this gateway that answers: {productKey, deviceName}. */
  device?: unknown;
}

/** A code given as a number or as its digits; anything else (a Symbol, an object) is no code. */
function replyCode(value: unknown): number {
  return typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
}

export = function (RED: NodeAPI): void {
  function AliyunIotReplyNode(this: Node, config: ReplyNodeDef): void {
    const started = startUserNode(RED, this, config, { service: 'iot' });
    if (!started) return;
    const { node, connection, subDevice } = started;
    const defaultCode = config.code === '' || config.code === undefined ? 200 : Number(config.code);

    onInput(RED, node, (msg: ReplyMessage, _send, done) => {
      const context = msg.alink;
      if (!isCommandContext(context)) {
        done(failure(RED, msg, new AliyunIotError('REPLY_NO_CONTEXT')));
        return;
      }
      // aliyun-iot-command with autoReplySet already answered this property set.
      if ((context as { autoReplied?: unknown }).autoReplied === true) {
        done();
        return;
      }
      const addressed = deviceOfMessage(node, connection, msg);
      // Who answers: the sub-device msg.device names, else the node's sub-device, else the connection's device.
      const own = connection.profile.variables;
      const acting = addressed ?? (subDevice && msg.device === undefined ? subDevice : undefined);
      const { productKey, deviceName } = acting ? acting.device : own;
      const target = typeof context.topic === 'string' ? parseThingTopic(context.topic) : undefined;
      if (target && (target.productKey !== productKey || target.deviceName !== deviceName)) {
        done(
          failure(
            RED,
            msg,
            new AliyunIotError('REPLY_OTHER_DEVICE', {
              device: `${target.productKey}/${target.deviceName}`,
              own: `${productKey}/${deviceName}`,
            }),
          ),
        );
        return;
      }
      const code = msg.code === undefined || msg.code === null || msg.code === '' ? defaultCode : replyCode(msg.code);
      if (!Number.isInteger(code)) {
        done(failure(RED, msg, new AliyunIotError('REPLY_CODE_INVALID', { value: shownValue(msg.code ?? config.code) })));
        return;
      }
      try {
        const answer = buildAnswer(context, code, msg.payload, typeof msg.message === 'string' ? msg.message : undefined);
        // Answers go at QoS 0, as the platform sends RRPC responses.
        const finish = (error?: Error): void => done(error ? failure(RED, msg, error) : undefined);
        if (acting) publishAsSubDevice(acting.manager, acting.device, answer.topic, answer.payload, { qos: 0 }, finish);
        else connection.publish(answer.topic, answer.payload, { qos: 0 }, finish);
      } catch (err) {
        done(failure(RED, msg, err));
      }
    });
  }

  RED.nodes.registerType('aliyun-iot-reply', AliyunIotReplyNode);
};
