import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { InvokeAction } from './lib/connection';
import { localizeError } from './support/i18n';
import { onInput } from './support/input';
import { startUserNode } from './support/user-node';

interface InvokeNodeDef extends NodeDef {
  connection: string;
  action: InvokeAction;
  productKey: string;
  deviceName: string;
  identifier: string;
  topic: string;
  timeout: string | number;
}

interface InvokeMessage extends NodeMessageInFlow {
  productKey?: unknown;
  deviceName?: unknown;
  identifier?: unknown;
  messageId?: string;
  rrpcCode?: string;
  code?: string;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

export = function (RED: NodeAPI): void {
  function AliyunIotInvokeNode(this: Node, config: InvokeNodeDef): void {
    const started = startUserNode(RED, this, config, { service: 'cloud' });
    if (!started) return;
    const { node, connection } = started;
    const action: InvokeAction = ['set', 'service', 'rrpc'].includes(config.action) ? config.action : 'rrpc';
    const timeout = config.timeout === '' || config.timeout === undefined ? undefined : Number(config.timeout);

    onInput(RED, node, (msg: InvokeMessage, send, done) => {
      let topic: string | undefined;
      try {
        topic = config.topic ? connection.expandTopic(config.topic) : undefined;
      } catch (err) {
        done(localizeError(RED, err));
        return;
      }
      const request = {
        action,
        productKey: text(config.productKey) ?? text(msg.productKey) ?? '',
        deviceName: text(config.deviceName) ?? text(msg.deviceName) ?? '',
        identifier: text(config.identifier) ?? text(msg.identifier),
        topic,
        timeoutMs: timeout,
        payload: msg.payload,
      };
      connection.invoke(request).then((result) => {
        msg.payload = result.payload;
        msg.messageId = result.messageId;
        if (result.rrpcCode) msg.rrpcCode = result.rrpcCode;
        send(msg);
        done();
      }, (err: Error & { rrpcCode?: string; apiCode?: string }) => {
        if (err.rrpcCode) msg.rrpcCode = err.rrpcCode;
        if (err.apiCode) msg.code = err.apiCode;
        done(localizeError(RED, err));
      });
    });
  }

  RED.nodes.registerType('aliyun-iot-invoke', AliyunIotInvokeNode);
};
