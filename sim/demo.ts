// The demo: the registry `npm start` and `aliyun-iot-sim --demo` serve, on the ports they prefer, and the environment
// variables the examples read to find it.
import * as net from 'node:net';
import * as path from 'node:path';
import { SIMULATOR_VARIABLE_PREFIX } from '../nodes/lib/connection';
import { loadConfigFile } from './config';
import type { Simulator, SimulatorOptions } from './index';
import { startSimulator } from './index';

/**
 * The environment variables the examples read (`${ALIYUN_IOT_SIM_PORT}` and the like in their connection nodes): where
 * this simulator listens, for the Node-RED that runs them.
 */
export function simulatorEnvironment(simulator: Simulator): Record<string, string> {
  const host = simulator.host === '0.0.0.0' || simulator.host === '::' ? '127.0.0.1' : simulator.host;
  return {
    [`${SIMULATOR_VARIABLE_PREFIX}PORT`]: String(simulator.port),
    [`${SIMULATOR_VARIABLE_PREFIX}ADMIN_PORT`]: String(simulator.adminPort),
    ...(simulator.amqp
      ? {
          [`${SIMULATOR_VARIABLE_PREFIX}AMQP_ENDPOINT`]: `amqp://${host}:${simulator.amqpPort}`,
          [`${SIMULATOR_VARIABLE_PREFIX}API_ENDPOINT`]: `http://${host}:${simulator.apiPort}`,
        }
      : {}),
  };
}

/** The registry with the devices, rules and keys the examples use. */
export const DEMO_REGISTRY_FILE = path.join(__dirname, '..', '..', 'sim', 'demo-registry.json');

/** Where the demo simulator listens when these ports are free. */
export const DEMO_PORTS = Object.freeze({ port: 1883, adminPort: 1884, amqpPort: 5672, apiPort: 1885 });

/** `preferred` when nothing listens on it at `host`, else 0 (the OS chooses). */
export function preferredPortIfFree(preferred: number, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve) => {
    const probe = net.createServer().once('error', () => resolve(0));
    probe.listen(preferred, host, () => probe.close(() => resolve(preferred)));
  });
}

/** The demo registry's simulator on the demo ports, or OS-chosen ones where those are taken. */
export async function startDemoSimulator(options: Partial<SimulatorOptions> = {}): Promise<Simulator> {
  const host = options.host ?? '127.0.0.1';
  const port = async (name: keyof typeof DEMO_PORTS): Promise<number> => options[name] ?? preferredPortIfFree(DEMO_PORTS[name], host);
  return startSimulator({
    ...loadConfigFile(DEMO_REGISTRY_FILE),
    ...options,
    host,
    port: await port('port'),
    adminPort: await port('adminPort'),
    amqpPort: await port('amqpPort'),
    apiPort: await port('apiPort'),
  });
}
