// The benchmark's sections (a)-(k): child processes for the brokers and the load, forwarders in this process,
// variants interleaved round by round, medians reported.
import { ChildProcess, fork } from 'node:child_process';
import * as path from 'node:path';
import type { BrokerReply, BrokerRequest } from './broker';
import { CloudPorts, CloudVariant, Feeder, SubscriptionVariant, measurePub, measureSubscription } from './cloud';
import type { LoadRequest, LoadResult } from './load';
import type { GatewayBenchRequest, GatewayBenchResult } from './gateway';
import type { ScaleRequest, ScaleResult } from './scale';
import { Variant, liftSubscriptionLimit, startForwarder, stopRuntime } from './runtime';
import { measureEnqueue, measureReplay } from './store';
import { BrokerKind, DIRECT_TOPIC, IN_TOPIC, OUT_FILTER, Qos, SCALE_DEVICES, dispatchFilters, median } from './setup';

export type Size = 'smoke' | 'small' | 'full';
export type Section = 'a' | 'b' | 'c' | 'd' | 'e' | 'f' | 'g' | 'h' | 'i' | 'j' | 'k';
export const SECTIONS: readonly Section[] = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k'];

/** In nodes on one cloud connection in (g), against 1. */
export const CLOUD_FILTERS = 1000;

export interface SizeParams {
  messages: number;
  rounds: number;
  window: number;
  latencyMessages: number;
  latencyRate: number;
  filterCounts: number[];
  devices: number;
  /** (f): messages per enqueue and replay run. */
  storeMessages: number;
  /** (j): sub-devices logged in through one gateway connection. */
  subDevices: number;
  /** (k): sub-devices whose properties are posted at the default pacing and without, and properties each. */
  pacedSubDevices: number;
  postSubDevices: number;
  postProperties: number;
}

export const SIZES: Record<Size, SizeParams> = {
  smoke: {
    messages: 300,
    rounds: 1,
    window: 200,
    latencyMessages: 100,
    latencyRate: 500,
    filterCounts: [1, 100],
    devices: 20,
    storeMessages: 1000,
    subDevices: 100,
    pacedSubDevices: 10,
    postSubDevices: 20,
    postProperties: 10,
  },
  small: {
    messages: 5000,
    rounds: 3,
    window: 500,
    latencyMessages: 1000,
    latencyRate: 1000,
    filterCounts: [1, 100, 1000],
    devices: SCALE_DEVICES,
    storeMessages: 20000,
    subDevices: 1000,
    pacedSubDevices: 50,
    postSubDevices: 400,
    postProperties: 10,
  },
  full: {
    messages: 20000,
    rounds: 5,
    window: 500,
    latencyMessages: 3000,
    latencyRate: 1000,
    filterCounts: [1, 100, 1000],
    devices: SCALE_DEVICES,
    storeMessages: 50000,
    subDevices: 1000,
    pacedSubDevices: 100,
    postSubDevices: 400,
    postProperties: 10,
  },
};

/** One measured cell: the median over rounds, and what every round lost (must be 0). */
export interface Measure {
  label: string;
  perSecond: number;
  /** msg/s of each round, in round order: ratios are taken round by round, between neighbouring runs. */
  samples: number[];
  p50?: number;
  p99?: number;
  /** The median of the rounds' consumer CPU per message, µs ((f) and (g)). */
  cpuMicrosPerMessage?: number;
  lost: number;
  rounds: number;
  /** Why a round ended early (stalled, forwarder not ready); its messages count as lost. */
  errors: string[];
}

export interface BenchResult {
  size: Size;
  measures: Measure[];
  scale?: ScaleResult;
  /** (j) and (k). */
  gateway?: GatewayBenchResult;
}

export interface BenchOptions {
  size: Size;
  only?: Section[];
  /** One line per finished measurement. */
  progress?: (line: string) => void;
}

class Broker {
  private constructor(
    readonly kind: BrokerKind,
    readonly port: number,
    private readonly child: ChildProcess,
    readonly reply: BrokerReply,
  ) {}

  static start(kind: BrokerKind): Promise<Broker> {
    const child = fork(path.join(__dirname, 'broker.js'), [kind], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new Promise((resolve, reject) => {
      child.once('message', (reply: BrokerReply) => resolve(new Broker(kind, reply.port, child, reply)));
      child.once('exit', (code) => reject(new Error(`${kind} broker exited with ${code}`)));
    });
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.send({ cmd: 'stop' } satisfies BrokerRequest);
    });
  }
}

class Load {
  private nextId = 1;
  private readonly child = fork(path.join(__dirname, 'load.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });

  run(request: Omit<LoadRequest, 'id'>): Promise<LoadResult> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const listener = (result: LoadResult): void => {
        if (result.id !== id) return;
        this.child.off('message', listener);
        resolve(result);
      };
      this.child.on('message', listener);
      this.child.send({ ...request, id });
    });
  }

  stop(): void {
    this.child.disconnect();
  }
}

/** Collects rounds per label and reduces them to medians. */
class Table {
  private readonly cells = new Map<string, LoadResult[]>();

  add(label: string, result: LoadResult): void {
    const list = this.cells.get(label) ?? [];
    list.push(result);
    this.cells.set(label, list);
  }

  measures(): Measure[] {
    return [...this.cells].map(([label, results]) => {
      const p50 = results.map((r) => r.p50).filter((v): v is number => v !== undefined);
      const p99 = results.map((r) => r.p99).filter((v): v is number => v !== undefined);
      const cpu = results.map((r) => r.cpuMicrosPerMessage).filter((v): v is number => v !== undefined);
      return {
        // A round that ended early (stalled) has no rate: NaN, left out of medians and ratios, listed under errors.
        label,
        perSecond: median(results.filter((r) => !r.error).map((r) => r.perSecond)),
        samples: results.map((r) => (r.error ? NaN : r.perSecond)),
        lost: results.reduce((sum, r) => sum + r.lost, 0),
        rounds: results.length,
        errors: results.flatMap((r) => (r.error ? [r.error] : [])),
        ...(p50.length ? { p50: median(p50), p99: median(p99) } : {}),
        ...(cpu.length ? { cpuMicrosPerMessage: median(cpu) } : {}),
      };
    });
  }
}

/** Variants in a different order every round, so that no one always runs first (warm-up) or last. */
function interleaved<T>(variants: readonly T[], round: number): T[] {
  const shift = round % variants.length;
  return [...variants.slice(shift), ...variants.slice(0, shift)];
}

const FORWARDERS: readonly Variant[] = ['ours', 'core', 'raw'];
const CLOUD_VARIANTS: readonly CloudVariant[] = ['ours', 'raw'];
const SUBSCRIPTION_VARIANTS: readonly SubscriptionVariant[] = ['ours', 'raw', 'raw-flow'];

export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const params = SIZES[options.size];
  const wanted = new Set(options.only?.length ? options.only : SECTIONS);
  const progress = options.progress ?? (() => undefined);
  const table = new Table();
  const brokers: Partial<Record<BrokerKind, Broker>> = {};
  const load = new Load();
  let feedProcess: Feeder | undefined;
  const feeder = (): Feeder => (feedProcess ??= new Feeder());
  const result: BenchResult = { size: options.size, measures: [] };
  const broker = async (kind: BrokerKind): Promise<Broker> => (brokers[kind] ??= await Broker.start(kind));

  const forward = async (
    label: string,
    variant: Variant,
    kind: BrokerKind,
    qos: Qos,
    filters: Array<{ filter: string; topic: string }>,
    rate?: number,
  ): Promise<void> => {
    const { port } = await broker(kind);
    const forwarder = await startForwarder(variant, { port, qos, filters: filters.map((f) => f.filter) });
    try {
      const measured = await load.run({
        port,
        qos,
        topics: filters.map((f) => f.topic),
        sink: OUT_FILTER,
        probe: true,
        window: params.window,
        n: rate ? params.latencyMessages : params.messages,
        rate,
      });
      table.add(label, measured);
      progress(
        `${label}: ${Math.round(measured.perSecond)} msg/s${measured.p50 !== undefined ? `, p50 ${measured.p50.toFixed(2)} ms, p99 ${measured.p99?.toFixed(2)} ms` : ''}, lost ${measured.lost}${measured.error ? ` (${measured.error})` : ''}`,
      );
    } finally {
      await forwarder.stop();
    }
  };

  const cloudPorts = async (): Promise<CloudPorts> => {
    const { reply } = await broker('cloud');
    return { port: reply.port, amqpPort: reply.amqpPort ?? 0, apiPort: reply.apiPort ?? 0 };
  };
  const record = (label: string, measured: LoadResult): void => {
    table.add(label, measured);
    const cpu = measured.cpuMicrosPerMessage === undefined ? '' : `, ${measured.cpuMicrosPerMessage.toFixed(1)} µs CPU each`;
    progress(`${label}: ${Math.round(measured.perSecond)}/s${cpu}, lost ${measured.lost}${measured.error ? ` (${measured.error})` : ''}`);
  };

  try {
    const single = [{ filter: IN_TOPIC, topic: IN_TOPIC }];
    for (let round = 0; round < params.rounds; round++) {
      if (wanted.has('a')) {
        for (const kind of ['sim', 'aedes'] as const) {
          for (const qos of [0, 1] as const) {
            for (const variant of interleaved(FORWARDERS, round))
              await forward(`a ${kind} qos${qos} ${variant}`, variant, kind, qos, single);
          }
        }
      }
      if (wanted.has('b')) {
        for (const qos of [0, 1] as const) {
          for (const variant of interleaved(FORWARDERS, round)) {
            await forward(`b sim qos${qos} ${variant}`, variant, 'sim', qos, single, params.latencyRate);
          }
        }
      }
      if (wanted.has('c')) {
        for (const count of params.filterCounts) {
          const filters = dispatchFilters(count);
          const restore = liftSubscriptionLimit(count);
          try {
            for (const variant of interleaved(['ours', 'core'] as const, round))
              await forward(`c ${count} ${variant}`, variant, 'sim', 0, filters);
          } finally {
            restore();
          }
        }
      }
      if (wanted.has('f')) {
        const subscription = async (variant: SubscriptionVariant): Promise<LoadResult> =>
          measureSubscription(feeder(), variant, await cloudPorts(), single, params.messages, params.window);
        // Unmeasured: the first round of each would otherwise measure the JIT compiler, here and in the simulator.
        if (round === 0) for (const variant of SUBSCRIPTION_VARIANTS) await subscription(variant);
        for (const variant of interleaved(SUBSCRIPTION_VARIANTS, round)) record(`f ${variant}`, await subscription(variant));
      }
      if (wanted.has('g')) {
        const dispatch = async (count: number): Promise<LoadResult> =>
          measureSubscription(feeder(), 'ours', await cloudPorts(), dispatchFilters(count), params.messages, params.window);
        const counts = [1, CLOUD_FILTERS];
        if (round === 0) for (const count of counts) await dispatch(count);
        for (const count of interleaved(counts, round)) record(`g ${count}`, await dispatch(count));
      }
      if (wanted.has('h')) {
        for (const variant of interleaved(CLOUD_VARIANTS, round))
          record(`h ${variant}`, await measurePub(variant, await cloudPorts(), params.messages));
      }
      if (wanted.has('i')) {
        const { port } = await broker('sim');
        const n = params.storeMessages;
        // Unmeasured: a memory round takes milliseconds, and the first ones would measure the JIT compiler.
        if (round === 0) for (const variant of ['memory', 'disk'] as const) await measureEnqueue(variant, n, port);
        for (const variant of interleaved(['memory', 'disk', 'fsync'] as const, round)) {
          const perSecond = await measureEnqueue(variant, n, port);
          table.add(`i enqueue ${variant}`, storeRound(perSecond, variant === 'fsync' ? 0 : n));
          progress(`i enqueue ${variant}: ${Math.round(perSecond)} msg/s`);
        }
        for (const variant of interleaved(['memory', 'disk'] as const, round)) {
          const perSecond = await measureReplay(variant, n, port);
          table.add(`i replay ${variant}`, storeRound(perSecond, n));
          progress(`i replay ${variant}: ${Math.round(perSecond)} msg/s`);
        }
      }
      if (wanted.has('e')) {
        for (const qos of [0, 1] as const) {
          for (const kind of interleaved(['sim', 'aedes'] as const, round)) {
            const { port } = await broker(kind);
            const measured = await load.run({
              port,
              qos,
              topics: [DIRECT_TOPIC],
              sink: DIRECT_TOPIC,
              probe: false,
              window: params.window,
              n: params.messages,
            });
            table.add(`e ${kind} qos${qos}`, measured);
            progress(`e ${kind} qos${qos}: ${Math.round(measured.perSecond)} msg/s, lost ${measured.lost}`);
          }
        }
      }
    }
    if (wanted.has('d')) {
      result.scale = await connectionScale((await broker('sim')).port, params.devices);
      progress(
        `d ${result.scale.devices} devices: ${Math.round(result.scale.connectMs)} ms, ${Math.round(result.scale.rssKiBPerConnection)} KiB RSS each`,
      );
    }
    if (wanted.has('j') || wanted.has('k')) {
      const { port } = await broker('gateway');
      const gateway = await gatewayBench({
        port,
        subDevices: params.subDevices,
        pacedSubDevices: params.pacedSubDevices,
        postSubDevices: params.postSubDevices,
        properties: params.postProperties,
        rounds: params.rounds,
      });
      result.gateway = gateway;
      progress(
        `j ${gateway.subDevices} sub-devices: online after ${Math.round(gateway.onlineMs)} ms (bound ${Math.round(gateway.boundMs)} ms), ${gateway.loginBatches} login batches, ${gateway.rssKiBPerSubDevice.toFixed(2)} KiB RSS each`,
      );
      progress(
        `k properties/s paced: ${Math.round(gateway.paced.perDevice)} per device, ${Math.round(gateway.paced.pack)} pack; unpaced: ${Math.round(gateway.unpaced.perDevice)}, ${Math.round(gateway.unpaced.pack)}`,
      );
    }
  } finally {
    await stopRuntime();
    load.stop();
    feedProcess?.stop();
    await Promise.all(Object.values(brokers).map((b) => b.stop()));
  }
  result.measures = table.measures();
  return result;
}

/** A store measurement in the shape of a load round. */
function storeRound(perSecond: number, n: number): LoadResult {
  return { id: 0, sent: n, received: n, lost: 0, ms: (n / perSecond) * 1000, perSecond };
}

/** (d) in a child process of its own (see scale.ts). */
function connectionScale(port: number, devices: number): Promise<ScaleResult> {
  const child = fork(path.join(__dirname, 'scale.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (result: ScaleResult) =>
      result.error ? reject(new Error(`connection scale: ${result.error}`)) : resolve(result),
    );
    child.once('exit', (code) => reject(new Error(`connection scale exited with ${code}`)));
    child.send({ port, devices } satisfies ScaleRequest);
  });
}

/** (j) and (k) in a child process of their own (see gateway.ts). */
function gatewayBench(request: GatewayBenchRequest): Promise<GatewayBenchResult> {
  const child = fork(path.join(__dirname, 'gateway.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (result: GatewayBenchResult) => (result.error ? reject(new Error(`gateway: ${result.error}`)) : resolve(result)));
    child.once('exit', (code) => reject(new Error(`gateway bench exited with ${code}`)));
    child.send(request);
  });
}
