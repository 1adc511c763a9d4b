// Child processes the tests start: a whole Node-RED runtime, and the simulator's command line.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SimulatorConfig } from '../../sim';
import { waitFor } from './helpers';
import { BUILD_ROOT } from './paths';

/** Node-RED with this package installed (test/support/fixtures/node-red-server.ts), in a userDir of its own. */
export class NodeRedProcess {
  /** What it printed on stdout and stderr so far. */
  output = '';
  url = '';
  readonly userDir: string;
  private readonly child: ChildProcess;

  private constructor(env: NodeJS.ProcessEnv, userDir?: string) {
    this.userDir = userDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'aliyun-iot-node-red-'));
    this.child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'node-red-server.js'), this.userDir], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString();
    });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString();
    });
  }

  /**
   * Starts one and resolves once its editor and admin API serve, at `url`. With `userDir` (of one that was killed)
   * it starts again on that directory, its flows and stored files.
   */
  static async start(env: NodeJS.ProcessEnv = {}, userDir?: string): Promise<NodeRedProcess> {
    const nodeRed = new NodeRedProcess(env, userDir);
    await waitFor(() => /listening \d+/.test(nodeRed.output), 'Node-RED to listen', 30_000).catch((err: Error) => {
      throw new Error(`${err.message}; it printed: ${nodeRed.output.slice(-2000)}`);
    });
    nodeRed.url = `http://127.0.0.1:${/listening (\d+)/.exec(nodeRed.output)?.[1]}/`;
    return nodeRed;
  }

  /** A full deploy through the admin API, as the editor makes it (credentials inline in each node). */
  async deploy(flow: unknown[]): Promise<Response> {
    return fetch(`${this.url}flows`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Node-RED-API-Version': 'v1', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(flow),
    });
  }

  /** Kills it with SIGKILL, as a crash or a power cut would end it; its userDir stays. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }

  /** Stops it (once) and removes its userDir. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(this.userDir, { recursive: true, force: true });
  }
}

/** `aliyun-iot-sim` run with a registry file (a config written to a temporary file, or a file's path) and options. */
export class SimulatorCli {
  stdout = '';
  stderr = '';
  private readonly child: ChildProcess;
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aliyun-iot-sim-'));
  /** Resolves with the exit code when the process ends. */
  readonly exited: Promise<number | null>;

  /** `registry` 'demo': `--demo` instead of `--config FILE`. */
  constructor(registry: SimulatorConfig | object | string, args: string[]) {
    let file = registry;
    if (typeof file !== 'string') {
      file = path.join(this.dir, 'registry.json');
      fs.writeFileSync(file, JSON.stringify(registry));
    }
    const source = file === 'demo' ? ['--demo'] : ['--config', file];
    this.child = spawn(process.execPath, [path.join(BUILD_ROOT, 'sim', 'cli.js'), ...source, ...args]);
    this.child.stdout?.on('data', (chunk: Buffer) => {
      this.stdout += chunk.toString();
    });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString();
    });
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code) => {
        fs.rmSync(this.dir, { recursive: true, force: true });
        resolve(code);
      }),
    );
  }

  /** Waits for a line of its output, and returns the number in it (e.g. `port 1883`). */
  async portLine(name: string): Promise<number> {
    const line = new RegExp(`^${name} (\\d+)$`, 'm');
    await waitFor(() => line.test(this.stdout), `the ${name} line`, 10_000);
    return Number(line.exec(this.stdout)?.[1]);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGINT');
    await this.exited;
  }
}
