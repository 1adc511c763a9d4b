import type { Node, NodeAPI, NodeMessageInFlow } from 'node-red';
import { GatewayListener, actionFailureStatus, gatewayActionsOf, noticeMessage, subDeviceManagerOf } from './lib/connection';
import { failure } from './support/failure';
import { gatewaySecrets } from './support/gateway-secrets';
import { localizeError } from './support/i18n';
import { onInput } from './support/input';
import { errorStatus, nodeStatus } from './support/status';
import { UserNodeDef, startUserNode } from './support/user-node';

interface GatewayNodeDef extends UserNodeDef {
  outputSecrets: boolean | string;
}

interface GatewayMessage extends NodeMessageInFlow {
  action?: unknown;
  code?: unknown;
}

export = function (RED: NodeAPI): void {
  function AliyunIotGatewayNode(this: Node, config: GatewayNodeDef): void {
    const started = startUserNode(RED, this, config, { service: 'iot' });
    if (!started) return;
    const { node, connection, onClose } = started;
    const outputSecrets = config.outputSecrets === true || config.outputSecrets === 'true';
    const actions = gatewayActionsOf(subDeviceManagerOf(connection));
    const secrets = gatewaySecrets(RED, config.connection ?? '');
    if (secrets.problem) {
      node.status(errorStatus('secret-store-error'));
      node.error(localizeError(RED, secrets.problem).message);
    }
    const listener: GatewayListener = { onGatewayNotice: (notice) => node.send({ ...noticeMessage(notice) }) };
    actions.attach();
    actions.manager.addListener(listener);
    onClose((removed) => {
      actions.manager.removeListener(listener);
      actions.detach(removed);
      secrets.release();
    });

    onInput(RED, node, (msg: GatewayMessage, send, done) => {
      const fail = (err: unknown): void => {
        node.status(errorStatus(actionFailureStatus(err)));
        done(failure(RED, msg, err));
      };
      actions
        .run(msg.action, msg.payload, { secrets: secrets.get, outputSecrets })
        .then((outcome) => {
          msg.action = outcome.action;
          msg.payload = outcome.payload;
          if (!outcome.error) {
            send(msg);
            node.status(nodeStatus(connection.status, RED));
            done();
            return;
          }
          // The results of the devices that went through are sent, and the refusals reach Catch nodes.
          const error = failure(RED, msg, outcome.error);
          send(msg);
          node.status(errorStatus(actionFailureStatus(outcome.error)));
          done(error);
        })
        .catch(fail);
    });
  }

  RED.nodes.registerType('aliyun-iot-gateway', AliyunIotGatewayNode);
};
