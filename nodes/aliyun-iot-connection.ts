import type { NodeAPI, NodeDef } from 'node-red';
import { Connection, ConnectionLogger } from './lib/connection';
import { ConnectionSecrets, ConnectionSettings, resolveConnection } from './lib/settings';
import { ConnectionConfigNode, localizeError } from './shared';

interface ConnectionNodeDef extends NodeDef, Omit<ConnectionSettings, 'credentials' | 'port' | 'keepalive' | 'queueSize'> {
  port?: string | number;
  keepalive?: string | number;
  queueSize?: string | number;
}

export = function (RED: NodeAPI): void {
  function AliyunIotConnectionNode(this: ConnectionConfigNode, config: ConnectionNodeDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const log: ConnectionLogger = {
      debug: (text) => node.debug(text),
      info: (text) => node.log(text),
      warn: (text) => node.warn(text),
      error: (text) => node.error(text),
    };
    try {
      const profile = resolveConnection({
        ...config,
        port: config.port === '' || config.port === undefined ? undefined : Number(config.port),
        keepalive: config.keepalive === '' || config.keepalive === undefined ? undefined : Number(config.keepalive),
        queueSize: config.queueSize === '' || config.queueSize === undefined ? undefined : Number(config.queueSize),
        credentials: node.credentials ?? {},
      });
      node.connection = new Connection(profile, log);
    } catch (err) {
      node.configError = localizeError(RED, err);
      node.error(node.configError.message);
    }
    node.on('close', (_removed: boolean, done: () => void) => {
      if (node.connection) node.connection.close(done);
      else done();
    });
  }

  RED.nodes.registerType<ConnectionConfigNode, ConnectionNodeDef, object, ConnectionSecrets>('aliyun-iot-connection', AliyunIotConnectionNode, {
    credentials: {
      deviceSecret: { type: 'password' },
      accessKeyId: { type: 'text' },
      accessKeySecret: { type: 'password' },
      token: { type: 'password' },
    },
  });
};
