// npm run bench -- [--size smoke|small|full] [--only a,c] [--json] [--cpu-prof]
// Runs the sections, prints progress on stderr and the table (or JSON) on stdout.
import { spawnSync } from 'node:child_process';
import { formatReport } from './report';
import { SECTIONS, SIZES, Section, Size, runBench } from './run';

interface Args {
  size: Size;
  only: Section[];
  json: boolean;
  cpuProf: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { size: 'small', only: [], json: false, cpuProf: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.split('=', 2);
    const value = (): string => inline ?? argv[++i] ?? '';
    if (flag === '--size') {
      const size = value();
      if (!(size in SIZES)) throw new Error(`--size: one of ${Object.keys(SIZES).join(', ')}`);
      args.size = size as Size;
    } else if (flag === '--only') {
      args.only = value()
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean) as Section[];
      const bad = args.only.filter((s) => !SECTIONS.includes(s));
      if (bad.length) throw new Error(`--only: sections are ${SECTIONS.join(',')}`);
    } else if (flag === '--json') args.json = true;
    else if (flag === '--cpu-prof') args.cpuProf = true;
    else throw new Error(`unknown argument ${arg}`);
  }
  return args;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const hasGc = typeof (globalThis as { gc?: unknown }).gc === 'function';
  if (!hasGc || (args.cpuProf && !process.execArgv.includes('--cpu-prof'))) {
    // Again with the flags the bench needs; the child processes inherit them, so --cpu-prof profiles them too.
    const flags = ['--expose-gc', ...(args.cpuProf ? ['--cpu-prof', '--cpu-prof-dir=bench-profiles'] : [])];
    const run = spawnSync(process.execPath, [...flags, __filename, ...process.argv.slice(2)], { stdio: 'inherit' });
    process.exit(run.status ?? 1);
  }
  const started = Date.now();
  const result = await runBench({ size: args.size, only: args.only, progress: (line) => process.stderr.write(`${line}\n`) });
  const meta = {
    date: new Date().toISOString().slice(0, 10),
    node: process.version,
    cpus: (await import('node:os')).cpus().length,
    seconds: Math.round((Date.now() - started) / 1000),
  };
  if (args.json) process.stdout.write(`${JSON.stringify({ ...meta, ...result }, null, 2)}\n`);
  else process.stdout.write(`size ${args.size}, ${meta.cpus} cores, Node ${meta.node}, ${meta.seconds} s\n\n${formatReport(result)}\n`);
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
