// Mocha root hooks for `npm run test:unit`: unit tests open no socket and start no process, so every way to do
// either throws for the length of the run. A test that needs one belongs in test/integration or test/system.
import * as childProcess from 'node:child_process';
import * as dgram from 'node:dgram';
import * as net from 'node:net';

type Patch = [target: object, key: string];

const PATCHES: Patch[] = [
  [net, 'connect'],
  [net, 'createConnection'],
  [net, 'createServer'],
  [net.Socket.prototype, 'connect'],
  [net.Server.prototype, 'listen'],
  [dgram, 'createSocket'],
  [childProcess, 'spawn'],
  [childProcess, 'fork'],
  [childProcess, 'exec'],
  [childProcess, 'execFile'],
];

const originals = new Map<Patch, unknown>();

export const mochaHooks = {
  beforeAll(): void {
    for (const patch of PATCHES) {
      const [target, key] = patch;
      originals.set(patch, Reflect.get(target, key));
      Reflect.set(target, key, () => {
        throw new Error(`a unit test called ${key}(): unit tests open no socket and start no process`);
      });
    }
  },
  afterAll(): void {
    for (const [patch, original] of originals) Reflect.set(patch[0], patch[1], original);
  },
};
