import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { DeviceConnection, publishAddressed } from './lib/connection';
import { failure } from './support/failure';
import { AliyunIotError, shownValue } from './lib/errors';
import { onInput } from './support/input';
import { deviceOfMessage } from './support/sub-device';
import { startUserNode } from './support/user-node';

interface OutNodeDef extends NodeDef {
  connection: string;
  topic: string;
  qos: string | number;
  retain: string | boolean;
}

interface OutMessage extends NodeMessageInFlow {
  action?: unknown;
  qos?: unknown;
  retain?: unknown;
  /** A sub-device logged in through this gateway to publish as: {productKey, deviceName}. */
  device?: unknown;
  /** Set on a failure: the platform's error code, or this package's (see support/failure.ts). */
  code?: unknown;
}

/** Stands in for a token in a msg that reports a failed upload. */
const REDACTED = '<redacted>';

export = function (RED: NodeAPI): void {
  function AliyunIotOutNode(this: Node, config: OutNodeDef): void {
    const started = startUserNode(RED, this, config, { service: 'any', notices: true });
    if (!started) return;
    const { node, connection, subDevice } = started;
    const fixedTopic = config.topic || undefined;
    const fixedQos = config.qos === '' || config.qos === undefined ? undefined : Number(config.qos);
    const fixedRetain =
      config.retain === '' || config.retain === undefined ? undefined : config.retain === true || config.retain === 'true';

    onInput(RED, node, (msg: OutMessage, _send, done) => {
      if (msg.action !== undefined) {
        if (msg.action === 'connect') connection.connect();
        else if (msg.action === 'disconnect') connection.disconnect();
        else if (msg.action === 'uploadToken') {
          const body = msg.payload as { token?: unknown; type?: unknown } | string | undefined;
          const token = typeof body === 'string' ? body : body?.token;
          const type = typeof body === 'object' && body !== null ? body.type : undefined;
          // A failed upload reaches Catch nodes with its msg: the token in it is a secret, so it goes first.
          const fail = (error: Error): void => {
            msg.payload = typeof body === 'object' && body !== null ? { ...body, token: REDACTED } : REDACTED;
            done(failure(RED, msg, error));
          };
          if (!(connection instanceof DeviceConnection)) fail(new AliyunIotError('TOKEN_MODE_ONLY'));
          else connection.uploadToken(token, type, (error) => (error ? fail(error) : done()));
          return;
        } else {
          done(failure(RED, msg, new AliyunIotError('ACTION_UNKNOWN', { action: shownValue(msg.action) })));
          return;
        }
        done();
        return;
      }
      const options = { qos: fixedQos ?? msg.qos ?? 0, retain: fixedRetain ?? msg.retain === true };
      const addressed = deviceOfMessage(node, connection, msg);
      const finish = (err?: Error): void => (err ? done(failure(RED, msg, err)) : done());
      const topic = fixedTopic ?? msg.topic;
      if (addressed) publishAddressed(addressed, topic, msg.payload, options, finish);
      else if (subDevice && msg.device === undefined) subDevice.publish(topic, msg.payload, options, finish);
      else connection.publish(topic, msg.payload, options, finish);
    });
  }

  RED.nodes.registerType('aliyun-iot-out', AliyunIotOutNode);
};
