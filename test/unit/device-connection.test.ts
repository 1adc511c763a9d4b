// What a device connection decides before it ever connects.
import { strict as assert } from 'node:assert';
import { ConnectionLogger, DeviceConnection, resolveConnection } from '../../nodes/lib/connection';
import { MQ_INSTANCE } from '../support/registry';

const quiet: ConnectionLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

describe('device connection: before connecting', function () {
  it('refuses more distinct subscriptions than the service allows', function () {
    // Never registered, so it never connects: the port is never dialled.
    const connection = new DeviceConnection(
      resolveConnection({
        mode: 'mq',
        instanceId: MQ_INSTANCE,
        groupId: 'GID_test',
        deviceId: 'limits',
        protocol: 'mqtt',
        host: '127.0.0.1',
        port: 1883,
        credentials: { accessKeyId: 'AK', accessKeySecret: 'SK' },
      }),
      quiet,
    );
    const receiver = { onMessage: () => undefined, onSubscribeError: () => undefined };
    for (let i = 0; i < 30; i++) connection.subscribe(receiver, `parent/${i}`, 0);
    connection.subscribe(receiver, 'parent/p2p/${clientId}', 0);
    assert.throws(() => connection.subscribe(receiver, 'parent/30', 0), /allows 30 subscriptions per client/);
    connection.close();
  });
});
