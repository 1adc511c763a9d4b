#!/usr/bin/env node
// aliyun-iot-sim --config FILE | --demo [--port N] [--host 127.0.0.1] [--ws-port N] [--admin-port N]
//   [--tls-port N --tls-key FILE --tls-cert FILE] [--amqp-port N] [--api-port N] [--amqp-tls-port N] [--api-tls-port N]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { RANGES } from '../nodes/lib/protocol';
import { loadConfigFile } from './config';
import { Simulator, simulatorEnvironment, startDemoSimulator, startSimulator } from './index';

const USAGE =
  'usage: aliyun-iot-sim --config FILE | --demo [--port N] [--host 127.0.0.1] [--ws-port N] [--admin-port N]' +
  ' [--tls-port N --tls-key FILE --tls-cert FILE] [--amqp-port N] [--api-port N] [--amqp-tls-port N] [--api-tls-port N] [--quiet]' +
  ' (every --*tls-port needs --tls-key and --tls-cert)';

function portOption(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > RANGES.port.max)
    throw new Error(`--${name} must be a port number (0 lets the OS choose)`);
  return port;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      'ws-port': { type: 'string' },
      'admin-port': { type: 'string' },
      'tls-port': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-cert': { type: 'string' },
      'amqp-port': { type: 'string' },
      'api-port': { type: 'string' },
      'amqp-tls-port': { type: 'string' },
      'api-tls-port': { type: 'string' },
      quiet: { type: 'boolean' },
      demo: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help || (!values.config && !values.demo)) {
    console.log(USAGE);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const tlsPort = portOption(values['tls-port'], 'tls-port');
  const amqpTlsPort = portOption(values['amqp-tls-port'], 'amqp-tls-port');
  const apiTlsPort = portOption(values['api-tls-port'], 'api-tls-port');
  const anyTls = [tlsPort, amqpTlsPort, apiTlsPort].some((port) => port !== undefined);
  for (const [name, port] of [
    ['tls-port', tlsPort],
    ['amqp-tls-port', amqpTlsPort],
    ['api-tls-port', apiTlsPort],
  ] as const) {
    if (port !== undefined && (!values['tls-key'] || !values['tls-cert']))
      throw new Error(`--${name} needs --tls-key FILE and --tls-cert FILE`);
  }
  const options = {
    host: values.host ?? '127.0.0.1',
    wsPort: portOption(values['ws-port'], 'ws-port'),
    tlsPort,
    tls: anyTls ? { key: readFileSync(values['tls-key'] as string), cert: readFileSync(values['tls-cert'] as string) } : undefined,
    amqpTlsPort,
    apiTlsPort,
    log: values.quiet ? undefined : (line: string) => console.log(line),
  };
  const port = portOption(values.port, 'port');
  const adminPort = portOption(values['admin-port'], 'admin-port');
  const amqpPort = portOption(values['amqp-port'], 'amqp-port');
  const apiPort = portOption(values['api-port'], 'api-port');
  // --demo: the demo registry on the ports `npm start` prefers, so that the examples run in any Node-RED.
  const simulator: Simulator =
    values.demo && !values.config
      ? await startDemoSimulator({ ...options, port, adminPort, amqpPort, apiPort })
      : await startSimulator({
          ...loadConfigFile(values.config as string),
          ...options,
          port: port ?? 1883,
          adminPort: adminPort ?? 0,
          amqpPort: amqpPort ?? 0,
          apiPort: apiPort ?? 0,
        });
  console.log(`port ${simulator.port}`);
  if (simulator.tlsPort !== undefined) console.log(`tls port ${simulator.tlsPort}`);
  console.log(`admin port ${simulator.adminPort}`);
  if (simulator.amqp) {
    console.log(`amqp port ${simulator.amqpPort}`);
    console.log(`api port ${simulator.apiPort}`);
    if (simulator.amqpTlsPort !== undefined) console.log(`amqp tls port ${simulator.amqpTlsPort}`);
    if (simulator.apiTlsPort !== undefined) console.log(`api tls port ${simulator.apiTlsPort}`);
  }
  const environment = Object.entries(simulatorEnvironment(simulator))
    .map(([name, value]) => `${name}=${value}`)
    .join(' ');
  console.log(`for Node-RED: ${environment}`);
  const stop = (): void => {
    simulator.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err: Error) => {
  console.error(`aliyun-iot-sim: ${err.message}`);
  process.exit(1);
});
