import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { CLOUD_ACTIONS, CloudAction, CloudApplicationConnection, InvokeAction } from './lib/connection';
import { failure } from './support/failure';
import { onInput } from './support/input';
import { startUserNode } from './support/user-node';

interface InvokeNodeDef extends NodeDef {
  connection: string;
  action: CloudAction;
  productKey: string;
  deviceName: string;
  identifier: string;
  topic: string;
  timeout: string | number;
  /** Action `api`: the OpenAPI action's name; blank takes msg.api. */
  api?: string;
}

interface InvokeMessage extends NodeMessageInFlow {
  productKey?: unknown;
  deviceName?: unknown;
  identifier?: unknown;
  api?: unknown;
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
    const action: CloudAction = CLOUD_ACTIONS.includes(config.action) ? config.action : 'rrpc';
    const timeout = config.timeout === '' || config.timeout === undefined ? undefined : Number(config.timeout);

    onInput(RED, node, (msg: InvokeMessage, send, done) => {
      const fail = (err: Error & { rrpcCode?: string }): void => {
        if (err.rrpcCode) msg.rrpcCode = err.rrpcCode;
        done(failure(RED, msg, err));
      };
      if (action === 'api') {
        connection.callApi(text(config.api) ?? msg.api, msg.payload).then((answer) => {
          msg.payload = answer;
          send(msg);
          done();
        }, fail);
        return;
      }
      invoke(connection, action, msg, config, timeout).then((result) => {
        msg.payload = result.payload;
        msg.messageId = result.messageId;
        if (result.rrpcCode) msg.rrpcCode = result.rrpcCode;
        send(msg);
        done();
      }, fail);
    });
  }

  /** A device's action, the device from the node's settings or the msg. */
  function invoke(
    connection: CloudApplicationConnection,
    action: InvokeAction,
    msg: InvokeMessage,
    config: InvokeNodeDef,
    timeoutMs?: number,
  ) {
    return Promise.resolve().then(() =>
      connection.invoke({
        action,
        productKey: text(config.productKey) ?? text(msg.productKey) ?? '',
        deviceName: text(config.deviceName) ?? text(msg.deviceName) ?? '',
        identifier: text(config.identifier) ?? text(msg.identifier),
        topic: config.topic ? connection.expandTopic(config.topic) : undefined,
        timeoutMs,
        payload: msg.payload,
      }),
    );
  }

  RED.nodes.registerType('aliyun-iot-invoke', AliyunIotInvokeNode);
};
