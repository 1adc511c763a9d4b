// `npm start`: the simulator with the demo registry, and Node-RED on http://127.0.0.1:1880 with this package
// installed in a userDir inside the repository. Ctrl-C stops both.
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { startSimulator, loadConfigFile } = require('../dist/sim');

const root = path.join(__dirname, '..');
const userDir = path.join(root, '.node-red');
const preferredSimulatorPort = Number(process.env.ALIYUN_IOT_SIM_PORT) || 1883;
const preferredAdminPort = Number(process.env.ALIYUN_IOT_SIM_ADMIN_PORT) || 1884;

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

async function main() {
  const port = (await portIsFree(preferredSimulatorPort)) ? preferredSimulatorPort : 0;
  const adminPort = (await portIsFree(preferredAdminPort)) ? preferredAdminPort : 0;
  const simulator = await startSimulator({
    ...loadConfigFile(path.join(root, 'sim', 'demo-registry.json')),
    port,
    adminPort,
    host: '127.0.0.1',
    log: (line) => console.log(`[simulator] ${line}`),
  });
  installIntoUserDir();
  const nodeRed = spawn(process.execPath, [
    require.resolve('node-red/red.js'), '--userDir', userDir, '--settings', path.join(__dirname, 'node-red-settings.js'),
  ], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ALIYUN_IOT_SIM_PORT: String(simulator.port), ALIYUN_IOT_SIM_ADMIN_PORT: String(simulator.adminPort) } });
  nodeRed.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    if (/Server now running at/.test(chunk.toString())) {
      console.log(`\nNode-RED:  http://127.0.0.1:${Number(process.env.PORT) || 1880}/`);
      console.log(`Simulator: mqtt://127.0.0.1:${simulator.port} (demo registry: sim/demo-registry.json)`);
      console.log(`Simulator admin API: http://127.0.0.1:${simulator.adminPort}/devices`);
      console.log('Ctrl-C stops both.\n');
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
