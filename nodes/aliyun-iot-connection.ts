import * as path from 'node:path';
import type { NodeAPI, NodeDef } from 'node-red';
import {
  CloudApplicationConnection,
  ConnectionLogger,
  ConnectionSecrets,
  ConnectionSettings,
  DeviceConnection,
  SharedConnection,
  existingSubDeviceManager,
  resolveCloud,
  resolveConnection,
  runtimeOptions,
  withRuntimeLimits,
} from './lib/connection';
import { ConnectionConfigNode } from './support/connection-lookup';
import { localizeError, localizeLog } from './support/i18n';
import { registerConnectionPreview } from './support/preview';

type ConnectionNodeDef = NodeDef & Omit<ConnectionSettings, 'credentials'>;

export = function (RED: NodeAPI): void {
  registerConnectionPreview(RED);

  /** Where the disk queue of a config node lives: `<userDir>/aliyun-iot/queues/<config node id>/`. */
  function queueDirectory(id: string): string | undefined {
    const userDir = (RED.settings as { userDir?: unknown }).userDir;
    return typeof userDir === 'string' && userDir !== '' ? path.join(userDir, 'aliyun-iot', 'queues', id) : undefined;
  }

  function AliyunIotConnectionNode(this: ConnectionConfigNode, config: ConnectionNodeDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const log: ConnectionLogger = {
      debug: (message) => node.debug(localizeLog(RED, message)),
      info: (message) => node.log(localizeLog(RED, message)),
      warn: (message) => node.warn(localizeLog(RED, message)),
      error: (message) => node.error(localizeLog(RED, message)),
    };
    try {
      const settings: ConnectionSettings = { ...config, credentials: node.credentials ?? {} };
      const runtime = runtimeOptions((RED.settings as { aliyunIot?: unknown }).aliyunIot);
      const connection: SharedConnection =
        settings.mode === 'cloud'
          ? new CloudApplicationConnection(resolveCloud(settings), log, runtime.reconnect)
          : new DeviceConnection(withRuntimeLimits(resolveConnection(settings), runtime), log, runtime.reconnect, queueDirectory(node.id));
      node.connection = connection;
    } catch (err) {
      node.configError = localizeError(RED, err);
      node.error(node.configError.message);
    }
    node.on('close', (_removed: boolean, done: () => void) => {
      // Sub-devices log out before their gateway's connection goes (its user nodes have closed before it).
      if (node.connection instanceof DeviceConnection) existingSubDeviceManager(node.connection)?.releaseAllUnused();
      if (node.connection) node.connection.close(done);
      else done();
    });
  }

  RED.nodes.registerType<ConnectionConfigNode, ConnectionNodeDef, object, ConnectionSecrets>(
    'aliyun-iot-connection',
    AliyunIotConnectionNode,
    {
      credentials: {
        deviceSecret: { type: 'password' },
        accessKeyId: { type: 'text' },
        accessKeySecret: { type: 'password' },
        token: { type: 'password' },
      },
    },
  );
};
