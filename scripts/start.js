// `npm start`: the simulator with the demo registry, and Node-RED on http://127.0.0.1:1880 with this package
// installed in a userDir inside the repository. Ctrl-C stops both.
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { startSimulator, loadConfigFile } = require('../dist/sim');

const root = path.join(__dirname, '..');
const demoFlowFile = path.join(root, 'examples', '00 Demo with the simulator.json');
const userDir = path.join(root, '.node-red');
const preferredSimulatorPort = Number(process.env.ALIYUN_IOT_SIM_PORT) || 1883;
const preferredAdminPort = Number(process.env.ALIYUN_IOT_SIM_ADMIN_PORT) || 1884;
const preferredAmqpPort = 5672;
const preferredApiPort = 1885;

function portIsFree(port) {
  return new Promise((resolve) => {
    const probe = net.createServer().once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/** Node-RED loads packages from <userDir>/node_modules; a link there makes it load this working tree. */
function installIntoUserDir() {
  const link = path.join(userDir, 'node_modules', 'node-red-contrib-aliyun-iot');
  fs.mkdirSync(path.dirname(link), { recursive: true });
  fs.rmSync(link, { recursive: true, force: true });
  fs.symlinkSync(root, link, 'dir');
  const manifest = path.join(userDir, 'package.json');
  if (!fs.existsSync(manifest)) {
    fs.writeFileSync(manifest, JSON.stringify({ name: 'aliyun-iot-demo', private: true, dependencies: { 'node-red-contrib-aliyun-iot': 'file:..' } }, null, 2));
  }
}

/** Deploys the demo flow, with the demo registry's secrets, unless the user already has flows of their own. */
async function deployDemo(editorUrl, registry) {
  const current = await fetch(`${editorUrl}flows`, { headers: { 'Node-RED-API-Version': 'v1' } }).then((res) => res.json());
  if (current.some((node) => node.type !== 'tab' || current.length > 1)) return false;
  const secrets = new Map(registry.products.flatMap((product) => product.devices.map((device) => [device.deviceName, device.deviceSecret])));
  const flow = JSON.parse(fs.readFileSync(demoFlowFile, 'utf8')).map((node) =>
    (node.type === 'aliyun-iot-connection' ? { ...node, credentials: { deviceSecret: secrets.get(node.deviceName) } } : node));
  const response = await fetch(`${editorUrl}flows`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Node-RED-API-Version': 'v1', 'Node-RED-Deployment-Type': 'full' },
    body: JSON.stringify(flow),
  });
  if (!response.ok) throw new Error(`deploying the demo flow failed: ${response.status} ${await response.text()}`);
  return true;
}

async function main() {
  const port = (await portIsFree(preferredSimulatorPort)) ? preferredSimulatorPort : 0;
  const adminPort = (await portIsFree(preferredAdminPort)) ? preferredAdminPort : 0;
  const amqpPort = (await portIsFree(preferredAmqpPort)) ? preferredAmqpPort : 0;
  const apiPort = (await portIsFree(preferredApiPort)) ? preferredApiPort : 0;
  const registry = loadConfigFile(path.join(root, 'sim', 'demo-registry.json'));
  const simulator = await startSimulator({
    ...registry,
    port,
    adminPort,
    amqpPort,
    apiPort,
    host: '127.0.0.1',
    log: (line) => console.log(`[simulator] ${line}`),
  });
  installIntoUserDir();
  const nodeRed = spawn(process.execPath, [
    require.resolve('node-red/red.js'), '--userDir', userDir, '--settings', path.join(__dirname, 'node-red-settings.js'),
  ], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      ALIYUN_IOT_SIM_PORT: String(simulator.port),
      ALIYUN_IOT_SIM_ADMIN_PORT: String(simulator.adminPort),
      ALIYUN_IOT_SIM_AMQP_ENDPOINT: `amqp://127.0.0.1:${simulator.amqpPort}`,
      ALIYUN_IOT_SIM_API_ENDPOINT: `http://127.0.0.1:${simulator.apiPort}`,
    },
  });
  const editorUrl = `http://127.0.0.1:${Number(process.env.PORT) || 1880}/`;
  nodeRed.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    if (/Server now running at/.test(chunk.toString())) {
      deployDemo(editorUrl, registry).then((deployed) => {
        console.log(`\nNode-RED:  ${editorUrl}${deployed ? ' (with the demo flow)' : ''}`);
        console.log(`Simulator: mqtt://127.0.0.1:${simulator.port} (demo registry: sim/demo-registry.json)`);
        console.log(`Simulator admin API: http://127.0.0.1:${simulator.adminPort}/devices`);
        if (simulator.amqp) {
          console.log(`Simulator cloud side: AMQP amqp://127.0.0.1:${simulator.amqpPort}, OpenAPI http://127.0.0.1:${simulator.apiPort}`);
        }
        console.log('Ctrl-C stops both.\n');
      }, (err) => console.error(err.message));
    }
  });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    nodeRed.kill('SIGINT');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  nodeRed.on('exit', async (code) => {
    await simulator.stop();
    process.exit(stopping ? 0 : code ?? 1);
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
