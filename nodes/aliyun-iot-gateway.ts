import type { Node, NodeAPI, NodeMessageInFlow, NodeStatus } from 'node-red';
import {
  ConnectionStatus,
  GatewayListener,
  actionFailureStatus,
  gatewayActionsOf,
  noticeMessage,
  subDeviceManagerOf,
} from './lib/connection';
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
    const secrets = gatewaySecrets(RED, config.connection ?? '');
    // A store that cannot be read stays in the status: registered secrets are unusable until it is fixed.
    const shown = (status: ConnectionStatus): NodeStatus => (secrets.problem ? errorStatus('secret-store-error') : nodeStatus(status, RED));
    const started = startUserNode(RED, this, config, { service: 'iot', status: shown });
    if (!started) {
      secrets.release();
      return;
    }
    const { node, connection, onClose } = started;
    if (secrets.problem) node.error(localizeError(RED, secrets.problem).message);
    const outputSecrets = config.outputSecrets === true || config.outputSecrets === 'true';
    const actions = gatewayActionsOf(subDeviceManagerOf(connection));
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
            node.status(shown(connection.status));
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
