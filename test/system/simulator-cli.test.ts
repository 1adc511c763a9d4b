// The simulator's command line, run as a child process: ports, TLS and the cloud-application listeners, bad configs.
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { Simulator, loadConfigFile } from '../../sim';
import { connectDevice, endClients } from '../support/cloud-fixtures';
import { TLS_DIR, waitFor } from '../support/helpers';
import { SimulatorCli } from '../support/processes';
import { DEMO_REGISTRY_FILE, PK, SIM_CONFIG } from '../support/registry';

describe('simulator: command line', function () {
  it('starts from a config file and prints the port it listens on', async function () {
    const cli = new SimulatorCli(SIM_CONFIG, ['--port', '0', '--host', '127.0.0.1']);
    try {
      const port = await cli.portLine('port');
      const client = await connectDevice({ port } as Simulator, 'dev01');
      await endClients(client);
    } finally {
      await cli.stop();
    }
  });

  it('names the bad field of a malformed config', async function () {
    const cli = new SimulatorCli({ products: [{ productKey: PK, devices: [{ deviceName: 'x', deviceSecret: '' }] }] }, []);
    assert.equal(await cli.exited, 1);
    assert.match(cli.stderr, /products\[0\]\.devices\[0\]\.deviceSecret must be a non-empty string/);
  });
});

describe('simulator: TLS on the command line', function () {
  it('--tls-port with --tls-key and --tls-cert prints the TLS port', async function () {
    const cli = new SimulatorCli(SIM_CONFIG, [
      '--port',
      '0',
      '--tls-port',
      '0',
      '--tls-key',
      path.join(TLS_DIR, 'server.key'),
      '--tls-cert',
      path.join(TLS_DIR, 'server.pem'),
      '--quiet',
    ]);
    try {
      await cli.portLine('tls port');
      assert.match(cli.stdout, /^port \d+$/m);
    } finally {
      await cli.stop();
    }
  });

  it('--tls-port without a key and certificate is an error', async function () {
    const cli = new SimulatorCli(SIM_CONFIG, ['--port', '0', '--tls-port', '0']);
    assert.equal(await cli.exited, 1);
    assert.match(cli.stderr, /--tls-key/);
  });
});

describe('simulator: the cloud-application listeners on the command line', function () {
  it('--demo serves the demo registry and prints the environment the examples read, for Node-RED', async function () {
    const cli = new SimulatorCli('demo', ['--port', '0', '--admin-port', '0', '--amqp-port', '0', '--api-port', '0', '--quiet']);
    try {
      const [port, adminPort, amqpPort, apiPort] = [
        await cli.portLine('port'),
        await cli.portLine('admin port'),
        await cli.portLine('amqp port'),
        await cli.portLine('api port'),
      ];
      await waitFor(() => /^for Node-RED: .*$/m.test(cli.stdout), 'the environment line');
      assert.equal(
        /^for Node-RED: (.*)$/m.exec(cli.stdout)?.[1],
        `ALIYUN_IOT_SIM_PORT=${port} ALIYUN_IOT_SIM_ADMIN_PORT=${adminPort}` +
          ` ALIYUN_IOT_SIM_AMQP_ENDPOINT=amqp://127.0.0.1:${amqpPort} ALIYUN_IOT_SIM_API_ENDPOINT=http://127.0.0.1:${apiPort}`,
      );
      const { devices } = (await fetch(`http://127.0.0.1:${adminPort}/devices`).then((res) => res.json())) as { devices: unknown[] };
      const products = loadConfigFile(DEMO_REGISTRY_FILE).products ?? [];
      assert.equal(
        devices.length,
        products.reduce((sum, product) => sum + product.devices.length, 0),
      );
    } finally {
      await cli.stop();
    }
  });

  it('the CLI prints the amqp and api ports and takes --amqp-port/--api-port', async function () {
    const cli = new SimulatorCli(DEMO_REGISTRY_FILE, ['--port', '0', '--amqp-port', '0', '--api-port', '0', '--quiet']);
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
