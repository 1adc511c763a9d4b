import type { Node, NodeAPI, NodeDef } from 'node-red';
import { DeviceConnection, SubDevice } from './lib/connection';
import { AliyunIotError } from './lib/errors';
import { SignMethod } from './lib/protocol';
import { ConnectionConfigNode } from './support/connection-lookup';
import { expandEnvironment } from './support/environment';
import { localizeError } from './support/i18n';
import { SubDeviceConfigNode } from './support/sub-device';

interface SubDeviceNodeDef extends NodeDef {
  gateway: string;
  productKey: string;
  deviceName: string;
  signMethod: SignMethod;
  cleanSession: boolean | string;
}

interface SubDeviceSecrets {
  deviceSecret?: string;
}

export = function (RED: NodeAPI): void {
  function AliyunIotSubDeviceNode(this: SubDeviceConfigNode & Node<SubDeviceSecrets>, config: SubDeviceNodeDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    node.gatewayId = config.gateway;
    try {
      const gateway = config.gateway ? (RED.nodes.getNode(config.gateway) as ConnectionConfigNode | null) : null;
      if (!(gateway?.connection instanceof DeviceConnection) || gateway.connection.mode !== 'iot') {
        throw new AliyunIotError('SUBDEVICE_GATEWAY_MISSING');
      }
      // The runtime expands `${NAME}` in the fields but not in the credentials.
      const { fields, unset } = expandEnvironment(
        RED,
        { productKey: config.productKey, deviceName: config.deviceName, deviceSecret: node.credentials?.deviceSecret ?? '' },
        node.id,
      );
      if (unset[0]) throw new AliyunIotError('VARIABLE_UNSET', { name: unset[0].name, field: unset[0].field });
      node.subDevice = new SubDevice(gateway.connection, {
        ...fields,
        signMethod: config.signMethod || undefined,
        cleanSession: config.cleanSession !== false && config.cleanSession !== 'false',
      });
    } catch (err) {
      node.configError = localizeError(RED, err);
      node.error(node.configError.message);
    }
    node.on('close', (_removed: boolean, done: () => void) => {
      node.subDevice?.shutdown();
      done();
    });
  }

  RED.nodes.registerType<SubDeviceConfigNode & Node<SubDeviceSecrets>, SubDeviceNodeDef, object, SubDeviceSecrets>(
    'aliyun-iot-subdevice',
    AliyunIotSubDeviceNode,
    { credentials: { deviceSecret: { type: 'password' } } },
  );
};
