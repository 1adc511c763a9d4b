// Child process: the load generator and the sink. The generator publishes 100-byte messages to one or more topics
// (flat out with a window of messages in flight, or at a fixed rate); the sink counts what arrives, once each.
import { performance } from 'node:perf_hooks';
import mqtt, { MqttClient } from 'mqtt';
import { DEVICES, Qos, rawClientOptions } from './setup';

export interface LoadRequest {
  id: number;
  port: number;
  qos: Qos;
  /** Topics published to in turn; the sink subscribes to `sink`. */
  topics: string[];
  sink: string;
  n: number;
  /** Throughput: most messages sent but not yet received. */
  window: number;
  /** Latency: messages per second; absent for throughput. */
  rate?: number;
  /** Before measuring, wait until a probe on every topic came through (the forwarder is subscribed). */
  probe: boolean;
}

export interface LoadResult {
  id: number;
  sent: number;
  received: number;
  lost: number;
  ms: number;
  perSecond: number;
  p50?: number;
  p99?: number;
  /** CPU time of the measuring process per message received, µs: (f)'s consumer cost. */
  cpuMicrosPerMessage?: number;
  error?: string;
}

export const PAYLOAD_BYTES = 100;
const STALL_MS = 10_000;
const PROBE_TIMEOUT_MS = 15_000;

function connect(port: number, deviceName: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(rawClientOptions(port, deviceName));
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}

/** `prefix` padded to the bench's 100-byte payload. */
export function padded(prefix: string): string {
  return prefix.length >= PAYLOAD_BYTES ? prefix : prefix + 'x'.repeat(PAYLOAD_BYTES - prefix.length);
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

export async function runLoad(request: LoadRequest): Promise<LoadResult> {
  const { n, qos, topics } = request;
  const [gen, sink] = await Promise.all([connect(request.port, DEVICES.gen), connect(request.port, DEVICES.sink)]);
  try {
    await new Promise<void>((resolve, reject) => sink.subscribe(request.sink, { qos }, (err) => (err ? reject(err) : resolve())));
    if (request.probe) await probe(gen, sink, request);
    return await measure(gen, sink, request, n, qos, topics);
  } finally {
    await Promise.all([gen.endAsync(true), sink.endAsync(true)]);
  }
}

/** Probes `p<id>:<topic index>` until one per topic came through. */
async function probe(gen: MqttClient, sink: MqttClient, request: LoadRequest): Promise<void> {
  const seen = new Set<number>();
  const prefix = `p${request.id}:`;
  let lastSeenAt = 0;
  const listener = (_topic: string, message: Buffer): void => {
    const text = message.toString();
    if (!text.startsWith(prefix)) return;
    seen.add(Number(text.slice(prefix.length).split(':')[0]));
    lastSeenAt = Date.now();
  };
  sink.on('message', listener);
  const start = Date.now();
  try {
    let sentAt = 0;
    while (seen.size < request.topics.length) {
      if (Date.now() - start > PROBE_TIMEOUT_MS) throw new Error(`forwarder not ready: ${seen.size}/${request.topics.length} probes`);
      // Probes again every half second for the topics not seen yet, checking often in between.
      if (Date.now() - sentAt >= 500) {
        sentAt = Date.now();
        request.topics.forEach((topic, i) => {
          if (!seen.has(i)) gen.publish(topic, padded(`${prefix}${i}:`), { qos: 0 });
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // Let late probes drain before counting: until none came for a moment.
    let last = -1;
    while (last !== lastSeenAt) {
      last = lastSeenAt;
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
  } finally {
    sink.off('message', listener);
  }
}

function measure(gen: MqttClient, sink: MqttClient, request: LoadRequest, n: number, qos: Qos, topics: string[]): Promise<LoadResult> {
  return new Promise((resolve) => {
    const prefix = `m${request.id}:`;
    const seen = new Uint8Array(n);
    const latencies = request.rate ? new Float64Array(n) : undefined;
    let sent = 0;
    let received = 0;
    let lastProgress = Date.now();
    let finished = false;
    const start = performance.now();

    const send = (): void => {
      const seq = sent++;
      const text = latencies ? `${prefix}${seq}:${performance.now().toFixed(3)}:` : `${prefix}${seq}:`;
      gen.publish(topics[seq % topics.length], padded(text), { qos });
    };
    const pump = (): void => {
      while (sent < n && sent - received < request.window) send();
    };
    const finish = (error?: string): void => {
      if (finished) return;
      finished = true;
      clearInterval(watchdog);
      clearTimeout(pacer);
      sink.off('message', onMessage);
      const ms = performance.now() - start;
      const result: LoadResult = { id: request.id, sent, received, lost: n - received, ms, perSecond: (received / ms) * 1000, error };
      if (latencies) {
        const sorted = latencies.slice(0, received).sort();
        result.p50 = percentile(sorted, 0.5);
        result.p99 = percentile(sorted, 0.99);
      }
      resolve(result);
    };
    const onMessage = (_topic: string, message: Buffer): void => {
      // m<id>:<seq>:[<sent at>:]xxxx
      if (message[0] !== 0x6d) return;
      const text = message.toString('latin1');
      if (!text.startsWith(prefix)) return;
      const end = text.indexOf(':', prefix.length);
      const seq = Number(text.slice(prefix.length, end));
      if (!(seq >= 0 && seq < n) || seen[seq]) return;
      seen[seq] = 1;
      if (latencies) latencies[received] = performance.now() - Number(text.slice(end + 1, text.indexOf(':', end + 1)));
      received++;
      lastProgress = Date.now();
      if (received === n) finish();
      else if (!latencies) pump();
    };
    sink.on('message', onMessage);
    const watchdog = setInterval(() => {
      if (Date.now() - lastProgress > STALL_MS) finish(`stalled at ${received}/${n}`);
    }, 250);
    let pacer: NodeJS.Timeout | undefined;
    if (request.rate) {
      const rate = request.rate;
      const tick = (): void => {
        const due = Math.min(n, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
        while (sent < due) send();
        if (sent < n) pacer = setTimeout(tick, 1);
      };
      tick();
    } else {
      pump();
    }
  });
}

if (require.main === module) {
  process.on('message', (request: LoadRequest) => {
    runLoad(request).then(
      (result) => process.send?.(result),
      (err: Error) => process.send?.({ id: request.id, sent: 0, received: 0, lost: request.n, ms: 0, perSecond: 0, error: err.message }),
    );
  });
  process.on('disconnect', () => process.exit(0));
}
