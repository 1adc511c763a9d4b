// The bench's table: absolute figures and ratios against the references measured in the same run.
import { BenchResult, CLOUD_FILTERS, Measure } from './run';
import { median } from './setup';

function find(result: BenchResult, label: string): Measure | undefined {
  return result.measures.find((m) => m.label === label);
}

const rate = (m?: Measure): string => (m && Number.isFinite(m.perSecond) ? String(Math.round(m.perSecond)) : '-');
const ms = (v?: number): string => (v === undefined ? '-' : v.toFixed(2));
const cpu = (m?: Measure): string => (m?.cpuMicrosPerMessage === undefined ? '-' : m.cpuMicrosPerMessage.toFixed(1));
/** `a`'s CPU per message over `b`'s: the share of `a`'s rate that `b` keeps where the consumer's CPU is the limit. */
const cpuRatio = (a?: Measure, b?: Measure): string =>
  a?.cpuMicrosPerMessage && b?.cpuMicrosPerMessage ? `${(a.cpuMicrosPerMessage / b.cpuMicrosPerMessage).toFixed(2)}×` : '-';

/** The median of the round-by-round ratios: runs of one round are neighbours in time, so they share the machine's mood. */
export function ratio(a?: Measure, b?: Measure): string {
  if (!a || !b) return '-';
  const ratios = a.samples.flatMap((value, i) => (b.samples[i] > 0 && Number.isFinite(value) ? [value / b.samples[i]] : []));
  return ratios.length ? `${median(ratios).toFixed(2)}×` : '-';
}

function markdown(header: string[], rows: string[][]): string[] {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)];
}

/** Markdown tables, one per section that ran. */
export function formatReport(result: BenchResult): string {
  const lines: string[] = [];
  const aRows: string[][] = [];
  for (const kind of ['sim', 'aedes']) {
    for (const qos of [0, 1]) {
      const [ours, core, raw] = ['ours', 'core', 'raw'].map((v) => find(result, `a ${kind} qos${qos} ${v}`));
      if (ours || core || raw) aRows.push([kind, `QoS ${qos}`, rate(ours), rate(core), rate(raw), ratio(ours, core), ratio(ours, raw)]);
    }
  }
  if (aRows.length) {
    lines.push(
      '(a) forwarding in → out, 100 B, msg/s',
      ...markdown(['broker', 'QoS', 'ours', 'core', 'raw mqtt.js', 'ours/core', 'ours/raw'], aRows),
      '',
    );
  }
  const bRows: string[][] = [];
  for (const qos of [0, 1]) {
    const cells = ['ours', 'core', 'raw'].map((v) => find(result, `b sim qos${qos} ${v}`));
    if (cells.some(Boolean)) bRows.push([`QoS ${qos}`, ...cells.map((m) => `${ms(m?.p50)} / ${ms(m?.p99)}`)]);
  }
  if (bRows.length)
    lines.push('(b) latency p50 / p99, ms (simulator, fixed rate)', ...markdown(['QoS', 'ours', 'core', 'raw mqtt.js'], bRows), '');
  const cLabels = [...new Set(result.measures.filter((m) => m.label.startsWith('c ')).map((m) => Number(m.label.split(' ')[1])))];
  if (cLabels.length) {
    const oursAt1 = find(result, `c ${Math.min(...cLabels)} ours`);
    lines.push(
      '(c) dispatch: in nodes with distinct filters on one connection, msg/s (simulator, QoS 0)',
      ...markdown(
        ['in nodes', 'ours', 'core', 'ours/core', `ours/ours@${Math.min(...cLabels)}`],
        cLabels.map((count) => {
          const [ours, core] = [find(result, `c ${count} ours`), find(result, `c ${count} core`)];
          return [String(count), rate(ours), rate(core), ratio(ours, core), ratio(ours, oursAt1)];
        }),
      ),
      '',
    );
  }
  if (result.scale) {
    const s = result.scale;
    lines.push(
      '(d) connection scale (simulator)',
      ...markdown(
        ['devices', 'all connected after', 'RSS per connection'],
        [[String(s.devices), `${Math.round(s.connectMs)} ms`, `${Math.round(s.rssKiBPerConnection)} KiB`]],
      ),
      '',
    );
  }
  const eRows: string[][] = [];
  for (const qos of [0, 1]) {
    const [sim, aedes] = ['sim', 'aedes'].map((k) => find(result, `e ${k} qos${qos}`));
    if (sim || aedes) eRows.push([`QoS ${qos}`, rate(sim), rate(aedes), ratio(sim, aedes)]);
  }
  if (eRows.length)
    lines.push(
      '(e) broker capacity, publisher → subscriber, msg/s',
      ...markdown(['QoS', 'simulator (auth, ACL)', 'bare aedes', 'sim/aedes'], eRows),
      '',
    );
  const [fOurs, fRaw, fRawFlow] = ['ours', 'raw', 'raw-flow'].map((v) => find(result, `f ${v}`));
  // The last column is what Node-RED's function node alone, with no in node, leaves of raw rhea's rate.
  if (fOurs || fRaw) {
    lines.push(
      '(f) server-side subscription → in → function node, 100 B, msg/s (simulator AMQP)',
      ...markdown(
        ['ours', 'raw rhea', 'raw rhea → function node', 'ours/raw', 'ours/(raw → function node)', '(raw → function node)/raw'],
        [[rate(fOurs), rate(fRaw), rate(fRawFlow), ratio(fOurs, fRaw), ratio(fOurs, fRawFlow), ratio(fRawFlow, fRaw)]],
      ),
      '',
      "(f) the consumer process's CPU per message, µs (the feed runs in a process of its own)",
      ...markdown(
        ['ours', 'raw rhea', 'raw rhea → function node', 'raw/ours'],
        [[cpu(fOurs), cpu(fRaw), cpu(fRawFlow), cpuRatio(fRaw, fOurs)]],
      ),
      '',
    );
  }
  const [gOne, gMany] = [1, CLOUD_FILTERS].map((count) => find(result, `g ${count}`));
  if (gOne || gMany) {
    lines.push(
      '(g) dispatch on a cloud connection: in nodes with distinct filters, msg/s',
      ...markdown(['1 in node', `${CLOUD_FILTERS} in nodes`, `${CLOUD_FILTERS}/1`], [[rate(gOne), rate(gMany), ratio(gMany, gOne)]]),
      '',
    );
  }
  const [hOurs, hRaw] = ['ours', 'raw'].map((v) => find(result, `h ${v}`));
  if (hOurs || hRaw) {
    lines.push(
      '(h) OpenAPI Pub calls per second, same calls in flight (simulator OpenAPI)',
      ...markdown(['out node', '@alicloud/pop-core loop', 'ours/pop-core'], [[rate(hOurs), rate(hRaw), ratio(hOurs, hRaw)]]),
      '',
    );
  }
  const [memory, disk, fsync] = (['memory', 'disk', 'fsync'] as const).map((v) => find(result, `i enqueue ${v}`));
  if (memory || disk || fsync) {
    const [replayMemory, replayDisk] = (['memory', 'disk'] as const).map((v) => find(result, `i replay ${v}`));
    lines.push(
      '(i) queue stores, 100 B at QoS 1, msg/s: enqueue while offline (disk: until durable) and replay to the simulator',
      ...markdown(
        ['', 'memory queue', 'disk queue', 'appendFile + fsync each', 'disk/memory', 'disk/fsync each'],
        [
          ['enqueue', rate(memory), rate(disk), rate(fsync), ratio(disk, memory), ratio(disk, fsync)],
          ['replay', rate(replayMemory), rate(replayDisk), '-', ratio(replayDisk, replayMemory), '-'],
        ],
      ),
      '',
    );
  }
  const gateway = result.gateway;
  if (gateway) {
    const kib = (value: number): string => `${value.toFixed(2)} KiB`;
    lines.push(
      '(j) sub-devices logged in through one gateway connection (simulator, topology added first, default pacing)',
      ...markdown(
        [
          'sub-devices',
          'all online after',
          'target (limits + 2 s)',
          'requests the limits need',
          'login batches',
          'RSS per sub-device',
          'heap per sub-device',
          'target RSS',
        ],
        [
          [
            String(gateway.subDevices),
            `${Math.round(gateway.onlineMs)} ms`,
            `< ${Math.round(gateway.boundMs)} ms`,
            String(gateway.requests),
            String(gateway.loginBatches),
            kib(gateway.rssKiBPerSubDevice),
            kib(gateway.heapKiBPerSubDevice),
            '< 4 KiB',
          ],
        ],
      ),
      '',
      `(k) properties per second reaching the simulator (its replies), ${gateway.properties} properties per sub-device`,
      ...markdown(
        ['pacing', 'sub-devices', 'one post per sub-device', 'pack posts', 'pack/per device', 'target'],
        (['paced', 'unpaced'] as const).map((pacing) => {
          const rates = gateway[pacing];
          return [
            pacing === 'paced' ? 'platform uplink limits (default)' : 'off (maxRate 0): CPU only',
            String(pacing === 'paced' ? gateway.pacedSubDevices : gateway.postSubDevices),
            String(Math.round(rates.perDevice)),
            String(Math.round(rates.pack)),
            `${(rates.pack / rates.perDevice).toFixed(2)}×`,
            pacing === 'paced' ? '≥ 5×' : '-',
          ];
        }),
      ),
      '',
    );
  }
  const lost = result.measures.reduce((sum, m) => sum + m.lost, 0);
  lines.push(`messages lost: ${lost}`);
  for (const m of result.measures) {
    if (m.errors.length)
      lines.push(
        `${m.label}: ${m.errors.length} of ${m.rounds} rounds ended early (${[...new Set(m.errors)].join('; ')}); medians and ratios use the others`,
      );
  }
  return lines.join('\n');
}
