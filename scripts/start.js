// `npm start`: builds, then runs the simulator with the demo registry and Node-RED on http://127.0.0.1:1880 with this
// package installed in a userDir inside the repository. Ctrl-C, SIGINT or SIGTERM (to npm or to this script) stops
// both, as does the end of the npm process that started it.
//
// Environment: PORT (Node-RED; default 1880 when free, 0: the OS chooses), ALIYUN_IOT_SIM_PORT,
// ALIYUN_IOT_SIM_ADMIN_PORT, ALIYUN_IOT_SIM_AMQP_PORT, ALIYUN_IOT_SIM_API_PORT (the simulator; default 1883, 1884,
// 5672 and 1885 when free; 0: the OS chooses), ALIYUN_IOT_USER_DIR (Node-RED's userDir; default .node-red).
// `node scripts/start.js --no-build` skips the build.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');

const root = path.join(__dirname, '..');
const demoFlowFile = path.join(root, 'examples', '00 Demo with the simulator.json');
const userDir = path.resolve(process.env.ALIYUN_IOT_USER_DIR || path.join(root, '.node-red'));
const PREFERRED_EDITOR_PORT = 1880;
/** How long Node-RED may take to stop before it is killed. */
const STOP_GRACE_MS = 5000;

/** A port from the environment: undefined when unset (take the preferred one if free), 0 for an OS-chosen one. */
function portFromEnvironment(name) {
  const text = process.env[name];
  if (text === undefined || text === '') return undefined;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${name}=${text} is not a port number (0 lets the OS choose)`);
  return port;
}

/** Node-RED loads packages from <userDir>/node_modules; a link there makes it load this working tree. */
function installIntoUserDir() {
  const link = path.join(userDir, 'node_modules', 'node-red-contrib-aliyun-iot');
  fs.mkdirSync(path.dirname(link), { recursive: true });
  fs.rmSync(link, { recursive: true, force: true });
  fs.symlinkSync(root, link, 'dir');
  const manifest = path.join(userDir, 'package.json');
  if (!fs.existsSync(manifest)) {
    fs.writeFileSync(
      manifest,
      JSON.stringify({ name: 'aliyun-iot-demo', private: true, dependencies: { 'node-red-contrib-aliyun-iot': `file:${root}` } }, null, 2),
    );
  }
}

/** Deploys the demo flow, with the demo registry's secrets, unless the user already has flows of their own. */
async function deployDemo(editorUrl, registry) {
  const current = await fetch(`${editorUrl}flows`, { headers: { 'Node-RED-API-Version': 'v1' } }).then((res) => res.json());
  if (current.some((node) => node.type !== 'tab' || current.length > 1)) return false;
  const secrets = new Map(
    registry.products.flatMap((product) => product.devices.map((device) => [device.deviceName, device.deviceSecret])),
  );
  const flow = JSON.parse(fs.readFileSync(demoFlowFile, 'utf8')).map((node) =>
    node.type === 'aliyun-iot-connection' ? { ...node, credentials: { deviceSecret: secrets.get(node.deviceName) } } : node,
  );
  const response = await fetch(`${editorUrl}flows`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Node-RED-API-Version': 'v1', 'Node-RED-Deployment-Type': 'full' },
    body: JSON.stringify(flow),
  });
  if (!response.ok) throw new Error(`deploying the demo flow failed: ${response.status} ${await response.text()}`);
  return true;
}

/**
 * What runs, and how to stop it. A signal, or the end of the process that started this one (npm runs scripts through
 * a shell, which dies of SIGTERM without passing it on), stops Node-RED first, then the simulator.
 */
const running = { build: undefined, nodeRed: undefined, simulator: undefined, stopping: false };

function stopAll(reason, exitCode = 0) {
  if (running.stopping) return;
  running.stopping = true;
  if (reason) console.log(`\n${reason}: stopping Node-RED and the simulator`);
  const finish = () => {
    const simulator = running.simulator;
    (simulator ? simulator.stop() : Promise.resolve()).finally(() => process.exit(exitCode));
  };
  if (running.build) running.build.kill('SIGTERM');
  const nodeRed = running.nodeRed;
  if (!nodeRed || nodeRed.exitCode !== null || nodeRed.signalCode !== null) {
    finish();
    return;
  }
  const killer = setTimeout(() => nodeRed.kill('SIGKILL'), STOP_GRACE_MS);
  nodeRed.once('exit', () => {
    clearTimeout(killer);
    finish();
  });
  nodeRed.kill('SIGTERM');
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (running.stopping) process.exit(1); // a second signal: do not wait any longer
    stopAll(signal);
  });
}
const parentPid = process.ppid;
setInterval(() => {
  if (process.ppid !== parentPid) stopAll('the process that started npm start ended');
}, 250).unref();

function build() {
  return new Promise((resolve, reject) => {
    const npm = process.env.npm_execpath;
    running.build = npm
      ? spawn(process.execPath, [npm, 'run', 'build'], { stdio: 'inherit' })
      : spawn('npm', ['run', 'build'], { stdio: 'inherit', shell: process.platform === 'win32' });
    running.build.on('exit', (code, signal) => {
      running.build = undefined;
      if (code === 0) resolve();
      else reject(new Error(`the build failed (${signal ?? `exit code ${code}`})`));
    });
  });
}

async function main() {
  if (!process.argv.includes('--no-build')) await build();
  if (running.stopping) return;
  const { loadConfigFile, startDemoSimulator, simulatorEnvironment, preferredPortIfFree, DEMO_REGISTRY_FILE } = require('../dist/sim');
  const simulatorPorts = {
    port: portFromEnvironment('ALIYUN_IOT_SIM_PORT'),
    adminPort: portFromEnvironment('ALIYUN_IOT_SIM_ADMIN_PORT'),
    amqpPort: portFromEnvironment('ALIYUN_IOT_SIM_AMQP_PORT'),
    apiPort: portFromEnvironment('ALIYUN_IOT_SIM_API_PORT'),
  };
  const requestedEditorPort = portFromEnvironment('PORT');
  const editorPort = requestedEditorPort ?? (await preferredPortIfFree(PREFERRED_EDITOR_PORT));
  if (requestedEditorPort === undefined && editorPort === 0) {
    console.log(`Port ${PREFERRED_EDITOR_PORT} is in use (another Node-RED?): Node-RED takes a free port instead; set PORT to choose one.`);
  }
  const registry = loadConfigFile(DEMO_REGISTRY_FILE);
  const simulator = await startDemoSimulator({ ...simulatorPorts, log: (line) => console.log(`[simulator] ${line}`) });
  running.simulator = simulator;
  if (running.stopping) {
    await simulator.stop();
    return;
  }
  installIntoUserDir();
  // The preload ends Node-RED when this script's IPC channel closes, i.e. when this script ended without stopping it.
  const nodeRed = spawn(
    process.execPath,
    [
      '--require',
      path.join(__dirname, 'exit-with-parent.js'),
      require.resolve('node-red/red.js'),
      '--userDir',
      userDir,
      '--settings',
      path.join(__dirname, 'node-red-settings.js'),
      '--port',
      String(editorPort),
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
      env: { ...process.env, ...simulatorEnvironment(simulator) },
    },
  );
  running.nodeRed = nodeRed;
  nodeRed.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    const listening = /Server now running at (http\S+?)\/?\s/.exec(chunk.toString());
    if (listening) {
      const editorUrl = `${listening[1]}/`;
      deployDemo(editorUrl, registry).then(
        (deployed) => {
          console.log(`\nNode-RED:  ${editorUrl} (process ${nodeRed.pid}${deployed ? ', with the demo flow' : ''})`);
          console.log(`Simulator: mqtt://127.0.0.1:${simulator.port} (demo registry: sim/demo-registry.json)`);
          console.log(`Simulator admin API: http://127.0.0.1:${simulator.adminPort}/devices`);
          if (simulator.amqp) {
            console.log(`Simulator cloud side: AMQP amqp://127.0.0.1:${simulator.amqpPort}, OpenAPI http://127.0.0.1:${simulator.apiPort}`);
          }
          console.log(`Ctrl-C (or kill ${process.pid}) stops both.\n`);
        },
        (err) => console.error(err.message),
      );
    }
  });
  nodeRed.on('exit', async (code) => {
    if (running.stopping) return;
    if (editorPort !== 0 && (await preferredPortIfFree(editorPort)) === 0) {
      console.error(
        `\nNode-RED cannot listen on port ${editorPort}: something else uses it. Stop that program, or start with` +
          ' PORT set to a free port (PORT=0 lets the OS choose).',
      );
    }
    stopAll(undefined, code || 1);
  });
}

main().catch((err) => {
  console.error(err.message ?? err);
  stopAll(undefined, 1);
});
