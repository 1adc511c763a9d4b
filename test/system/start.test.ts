// `npm start` as a terminal, a service manager, `docker stop` or an IDE runs it: every signal, to npm or to the
// script, ends Node-RED and the simulator and frees their ports; a port in use is reported with what to do.
import { strict as assert } from 'node:assert';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { preferredPortIfFree } from '../../sim';
import { waitFor } from '../support/helpers';

const ROOT = path.join(__dirname, '..', '..');
/** "A few seconds": how long stopping everything may take. */
const STOP_WITHIN_MS = 5000;

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer().once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `npm start` (without the build: the suite runs on the build) with OS-chosen ports and a userDir of its own. */
class NpmStart {
  output = '';
  readonly userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aliyun-iot-start-'));
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(env: NodeJS.ProcessEnv = {}) {
    const npm = process.env.npm_execpath;
    const args = ['start', '--', '--no-build'];
    const environment = {
      ...process.env,
      PORT: '0',
      ALIYUN_IOT_SIM_PORT: '0',
      ALIYUN_IOT_SIM_ADMIN_PORT: '0',
      ALIYUN_IOT_SIM_AMQP_PORT: '0',
      ALIYUN_IOT_SIM_API_PORT: '0',
      ALIYUN_IOT_USER_DIR: this.userDir,
      ...env,
    };
    this.child = npm
      ? spawn(process.execPath, [npm, ...args], { cwd: ROOT, env: environment })
      : spawn('npm', args, { cwd: ROOT, env: environment });
    this.child.stdout?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString();
    });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString();
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Waits for the ready lines and reads the processes and ports from them. */
  async ready(): Promise<{ scriptPid: number; nodeRedPid: number; ports: number[] }> {
    await waitFor(() => /Ctrl-C \(or kill \d+\) stops both/.test(this.output), 'the ready lines of npm start', 30_000);
    const number = (pattern: RegExp): number => Number(pattern.exec(this.output)?.[1]);
    return {
      scriptPid: number(/or kill (\d+)\)/),
      nodeRedPid: number(/Node-RED: +\S+ \(process (\d+)/),
      ports: [
        number(/Node-RED: +http:\/\/127\.0\.0\.1:(\d+)\//),
        number(/Simulator: mqtt:\/\/127\.0\.0\.1:(\d+)/),
        number(/Simulator admin API: http:\/\/127\.0\.0\.1:(\d+)/),
        number(/AMQP amqp:\/\/127\.0\.0\.1:(\d+)/),
        number(/OpenAPI http:\/\/127\.0\.0\.1:(\d+)/),
      ],
    };
  }

  /** Ends whatever is left (after a failed test) and removes the userDir. */
  async cleanUp(pids: number[]): Promise<void> {
    for (const pid of pids.filter(isAlive)) process.kill(pid, 'SIGKILL');
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    fs.rmSync(this.userDir, { recursive: true, force: true });
  }
}

describe('npm start', function () {
  this.timeout(60_000);

  for (const target of ['npm', 'the script'] as const) {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      it(`${signal} to ${target} stops Node-RED and the simulator within ${STOP_WITHIN_MS / 1000} s, freeing every port`, async function () {
        const started = new NpmStart();
        let pids: number[] = [];
        try {
          const { scriptPid, nodeRedPid, ports } = await started.ready();
          pids = [scriptPid, nodeRedPid];
          assert.ok(
            ports.every((port) => port > 0),
            `five ports in:\n${started.output}`,
          );
          assert.ok(isAlive(scriptPid) && isAlive(nodeRedPid));
          const sentAt = Date.now();
          process.kill(target === 'npm' ? (started.child.pid as number) : scriptPid, signal);
          const timeout = new Promise<never>((_resolve, reject) => {
            setTimeout(
              () => reject(new Error(`npm start still runs ${STOP_WITHIN_MS} ms after ${signal}:\n${started.output}`)),
              STOP_WITHIN_MS,
            ).unref();
          });
          await Promise.race([started.exited, timeout]);
          assert.ok(Date.now() - sentAt < STOP_WITHIN_MS);
          assert.deepEqual(pids.filter(isAlive), [], 'no process is left');
          for (const port of ports) assert.ok(await portIsFree(port), `port ${port} is free again`);
        } finally {
          await started.cleanUp(pids);
        }
      });
    }
  }

  it('a Node-RED port in use is reported with what to do, and the simulator is stopped', async function () {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const busy = (blocker.address() as net.AddressInfo).port;
    const started = new NpmStart({ PORT: String(busy) });
    try {
      const { code } = await started.exited;
      assert.notEqual(code, 0);
      assert.match(started.output, new RegExp(`cannot listen on port ${busy}: something else uses it.*PORT`, 's'));
      const simulatorPort = Number(/\[simulator\] .*?mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(started.output)?.[1]);
      assert.ok(simulatorPort > 0, `the simulator's port in:\n${started.output}`);
      assert.ok(await portIsFree(simulatorPort), 'the simulator stopped');
    } finally {
      blocker.close();
      await started.cleanUp([]);
    }
  });

  it('takes the preferred port when it is free and lets the OS choose when it is not, as for the simulator and 1880', async function () {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const busy = (blocker.address() as net.AddressInfo).port;
    try {
      assert.equal(await preferredPortIfFree(busy), 0);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
    assert.equal(await preferredPortIfFree(busy), busy);
  });
});
