// Child process: a broker for the benchmark, the simulator (auth, ACL, cloud) or a bare aedes, on a free port.
// argv[2]: sim | aedes | cloud | gateway. Tells the parent {port} (and the AMQP and OpenAPI ports of cloud); exits on {cmd:'stop'}.
import * as net from 'node:net';
import { AddressInfo } from 'node:net';
import { startSimulator } from '../sim';
import { BENCH_CLOUD, BrokerKind, benchGatewayRegistry, benchRegistry } from './setup';

export interface BrokerRequest {
  cmd: 'stop';
}

export interface BrokerReply {
  port: number;
  amqpPort?: number;
  apiPort?: number;
}

async function start(kind: BrokerKind): Promise<BrokerReply & { stop(): Promise<void> }> {
  if (kind === 'sim') {
    const sim = await startSimulator({ ...benchRegistry(), port: 0 });
    return { port: sim.port, stop: () => sim.stop() };
  }
  if (kind === 'gateway') {
    const sim = await startSimulator({ ...benchGatewayRegistry(), port: 0 });
    return { port: sim.port, stop: () => sim.stop() };
  }
  if (kind === 'cloud') {
    const { uid, accessKeyId, accessKeySecret, consumerGroupId } = BENCH_CLOUD;
    const sim = await startSimulator({
      ...benchRegistry(0),
      port: 0,
      cloud: { uid, accessKeys: [{ accessKeyId, accessKeySecret }], consumerGroups: [consumerGroupId] },
    });
    return { port: sim.port, amqpPort: sim.amqpPort, apiPort: sim.apiPort, stop: () => sim.stop() };
  }
  const { Aedes } = await import('aedes');
  const broker = await Aedes.createBroker({ maxClientsIdLength: 1024 });
  // The same socket treatment as the simulator's, so that (e) compares the brokers' work only.
  const server = net.createServer({ noDelay: true }, (socket) => broker.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    stop: () => new Promise<void>((resolve) => broker.close(() => server.close(() => resolve()))),
  };
}

if (require.main === module) {
  const kind: BrokerKind = (['aedes', 'cloud', 'gateway'] as const).find((name) => name === process.argv[2]) ?? 'sim';
  start(kind)
    .then((broker) => {
      const send = (reply: BrokerReply): void => {
        process.send?.(reply);
      };
      send({ port: broker.port, amqpPort: broker.amqpPort, apiPort: broker.apiPort });
      process.on('message', (request: BrokerRequest) => {
        if (request.cmd === 'stop') void broker.stop().finally(() => process.exit(0));
      });
      process.on('disconnect', () => process.exit(0));
    })
    .catch((err: Error) => {
      console.error(err);
      process.exit(1);
    });
}
