import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { loadConfigFile, validateConfig } from '../sim';
import { CLOUD_CONFIG } from './cloud-fixtures';
import { SIM_CONFIG, waitFor } from './helpers';
import { SimulatorCli } from './processes';

const DEMO_REGISTRY = path.join(__dirname, '..', '..', 'sim', 'demo-registry.json');

describe('simulator: the cloud section of the config', function () {
  const withCloud = (cloud: unknown): unknown => ({ ...SIM_CONFIG, cloud });

  it('accepts a full cloud section and products with syncServices', function () {
    assert.doesNotThrow(() => validateConfig(CLOUD_CONFIG));
    assert.doesNotThrow(() => validateConfig(withCloud({ accessKeys: [{ accessKeyId: 'a', accessKeySecret: 'b' }] })));
    assert.doesNotThrow(() => validateConfig(withCloud({
      instanceId: 'iot-06z00abc', accessKeys: [{ accessKeyId: 'a', accessKeySecret: 'b' }], consumerGroups: [], syncTimeoutMs: 500,
    })));
  });

  it('names the bad field of a malformed cloud section', function () {
    const cases: Array<[unknown, RegExp]> = [
      [withCloud('yes'), /simulator config: cloud must be an object$/],
      [withCloud([]), /simulator config: cloud must be an object$/],
      [withCloud({}), /cloud\.accessKeys must be an array/],
      [withCloud({ accessKeys: [] }), /cloud\.accessKeys must hold at least one AccessKey/],
      [withCloud({ accessKeys: [{ accessKeyId: 'a' }] }), /cloud\.accessKeys\[0\]\.accessKeySecret must be a non-empty string/],
      [withCloud({ accessKeys: [{ accessKeySecret: 'b' }] }), /cloud\.accessKeys\[0\]\.accessKeyId must be a non-empty string/],
      [withCloud({ accessKeys: [{ accessKeyId: 'a', accessKeySecret: 'b' }], consumerGroups: 'G' }), /cloud\.consumerGroups must be an array/],
      [withCloud({ accessKeys: [{ accessKeyId: 'a', accessKeySecret: 'b' }], consumerGroups: ['bad group'] }), /cloud\.consumerGroups\[0\] must be a consumer group id/],
      [withCloud({ accessKeys: [{ accessKeyId: 'a', accessKeySecret: 'b' }], uid: 'abc' }), /cloud\.uid must be digits/],
      [withCloud({ accessKeys: [{ accessKeyId: 'a', accessKeySecret: 'b' }], instanceId: '' }), /cloud\.instanceId must be a non-empty string/],
      [withCloud({ accessKeys: [{ accessKeyId: 'a', accessKeySecret: 'b' }], syncTimeoutMs: -1 }), /cloud\.syncTimeoutMs must be a positive whole number/],
      [{ products: [{ productKey: 'pk', devices: [], syncServices: 'getStatus' }] }, /products\[0\]\.syncServices must be an array/],
      [{ products: [{ productKey: 'pk', devices: [], syncServices: ['get status'] }] }, /products\[0\]\.syncServices\[0\] must be a service identifier/],
    ];
    for (const [config, message] of cases) assert.throws(() => validateConfig(config), message);
  });

  it('the demo registry has a cloud AccessKey, a consumer group and a synchronous service', function () {
    const demo = loadConfigFile(DEMO_REGISTRY);
    assert.deepEqual(demo.cloud?.accessKeys, [{ accessKeyId: 'LTAI_sim_ak', accessKeySecret: 'sim_secret_1234567890' }]);
    assert.deepEqual(demo.cloud?.consumerGroups, ['DEFAULT_GROUP']);
    assert.deepEqual(demo.products?.[0].syncServices, ['getStatus']);
  });

  it('--demo serves the demo registry and prints the environment the examples read, for Node-RED', async function () {
    const cli = new SimulatorCli('demo', ['--port', '0', '--admin-port', '0', '--amqp-port', '0', '--api-port', '0', '--quiet']);
    try {
      const [port, adminPort, amqpPort, apiPort] = [await cli.portLine('port'), await cli.portLine('admin port'), await cli.portLine('amqp port'), await cli.portLine('api port')];
      await waitFor(() => /^for Node-RED: .*$/m.test(cli.stdout), 'the environment line');
      assert.equal(/^for Node-RED: (.*)$/m.exec(cli.stdout)?.[1], `ALIYUN_IOT_SIM_PORT=${port} ALIYUN_IOT_SIM_ADMIN_PORT=${adminPort}`
        + ` ALIYUN_IOT_SIM_AMQP_ENDPOINT=amqp://127.0.0.1:${amqpPort} ALIYUN_IOT_SIM_API_ENDPOINT=http://127.0.0.1:${apiPort}`);
      const { devices } = await fetch(`http://127.0.0.1:${adminPort}/devices`).then((res) => res.json()) as { devices: unknown[] };
      assert.equal(devices.length, loadConfigFile(DEMO_REGISTRY).products?.[0].devices.length);
    } finally {
      await cli.stop();
    }
  });

  it('the CLI prints the amqp and api ports and takes --amqp-port/--api-port', async function () {
    const cli = new SimulatorCli(DEMO_REGISTRY, ['--port', '0', '--amqp-port', '0', '--api-port', '0', '--quiet']);
    try {
      const apiPort = await cli.portLine('api port');
      assert.match(cli.stdout, /^port \d+$/m);
      assert.match(cli.stdout, /^amqp port [1-9]\d*$/m);
      const response = await fetch(`http://127.0.0.1:${apiPort}/?Action=Pub`);
      assert.equal(response.status, 400);
      assert.equal(((await response.json()) as { Code: string }).Code, 'MissingAccessKeyId');
    } finally {
      await cli.stop();
    }
  });
});
