// Child process for (d): a fresh Node-RED runtime that deploys N connection config nodes (each with an out node, so
// that it connects) against the broker on argv port; reports the time until all are connected and RSS per connection.
// A process of its own, so that what earlier sections allocated and freed does not blur the memory figure.
import { performance } from 'node:perf_hooks';
import type { ConnectionConfigNode } from '../nodes/support/connection-lookup';
import { FlowNode } from '../test/support/helpers';
import { helper } from '../test/support/node-harness';
import { deployFlow, oursConnection, startRuntime, stopRuntime, undeploy } from './runtime';
import { outTopic, scaleDevice } from './setup';

export interface ScaleRequest {
  port: number;
  devices: number;
}

export interface ScaleResult {
  devices: number;
  connectMs: number;
  rssKiBPerConnection: number;
  error?: string;
}

function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) gc?.();
}

async function connectionScale({ port, devices }: ScaleRequest): Promise<ScaleResult> {
  const flow: FlowNode[] = [];
  const credentials: Record<string, Record<string, string>> = {};
  for (let i = 0; i < devices; i++) {
    const connection = oursConnection(`conn${i}`, port, scaleDevice(i));
    flow.push(connection.node, {
      id: `out${i}`,
      type: 'aliyun-iot-out',
      connection: `conn${i}`,
      topic: outTopic(scaleDevice(i)),
      qos: '0',
      retain: '',
    });
    Object.assign(credentials, connection.credentials);
  }
  await startRuntime();
  // One deploy with a single connection first, so that the runtime's and mqtt.js's one-time costs are not counted.
  await deployFlow(flow.slice(0, 2), credentials);
  await waitConnected(1);
  await undeploy();
  collectGarbage();
  const before = process.memoryUsage().rss;
  const start = performance.now();
  await deployFlow(flow, credentials);
  await waitConnected(devices);
  const connectMs = performance.now() - start;
  collectGarbage();
  const after = process.memoryUsage().rss;
  await undeploy();
  await stopRuntime();
  return { devices, connectMs, rssKiBPerConnection: (after - before) / 1024 / devices };
}

async function waitConnected(devices: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  const connected = (): number => {
    let count = 0;
    for (let i = 0; i < devices; i++) {
      if ((helper.getNode(`conn${i}`) as ConnectionConfigNode | null)?.connection?.status.state === 'connected') count++;
    }
    return count;
  };
  while (connected() < devices) {
    if (Date.now() > deadline) throw new Error(`only ${connected()} of ${devices} devices connected`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

if (require.main === module) {
  process.once('message', (request: ScaleRequest) => {
    connectionScale(request)
      .then(
        (result) => process.send?.(result),
        (err: Error) => process.send?.({ devices: request.devices, connectMs: NaN, rssKiBPerConnection: NaN, error: err.message }),
      )
      .finally(() => process.disconnect());
  });
}
