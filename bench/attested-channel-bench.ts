/**
 * `npm run bench:channel`: what the attested channel costs a client, against the appliance's own service with its
 * doubles (bench/channel-upstream.ts, in a process of its own):
 *   (a) `verify` end to end: open a TLS 1.3 connection, ask for a fresh attestation over it, check the chain, the
 *       signature, the channel binding and the PCRs; wall time and the client's own CPU time per verification;
 * Runs: BENCH_VERIFY_RUNS (default 50); the first, which loads the modules, is left out.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { build } from 'esbuild';
import { PinnedConnection } from '../lib/attestation/pinned-connection';
import { verifyConnection } from '../lib/cli/verify-command';

interface Upstream {
  readonly url: string;
  readonly root: X509Certificate;
  readonly pcrs: { pcr4: string; pcr12: string };
  readonly process: ChildProcess;
}

/** Bundles bench/channel-upstream.ts as the appliance is bundled, starts it and reads the line it prints once listening. */
async function startUpstream(directory: string): Promise<Upstream> {
  const { uiAsText } = await import('../scripts/ui-as-text.mjs');
  const bundle = path.join(directory, 'channel-upstream.js');
  await build({
    entryPoints: [path.join(__dirname, 'channel-upstream.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    outfile: bundle,
    logLevel: 'warning',
    plugins: [uiAsText],
  });
  const child = spawn(process.execPath, [bundle], { stdio: ['ignore', 'pipe', 'inherit'] });
  let line: string | undefined;
  for await (const first of createInterface({ input: child.stdout! })) {
    line = first;
    break;
  }
  if (line === undefined) throw new Error('the upstream exited before listening');
  const { url, root, pcrs } = JSON.parse(line) as { url: string; root: string; pcrs: { pcr4: string; pcr12: string } };
  return { url, root: new X509Certificate(root), pcrs, process: child };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.ceil(values.length * p) - 1];

async function benchVerify(upstream: Upstream, runs: number): Promise<void> {
  const expectations = { images: [{ imageId: 'bench', ...upstream.pcrs }] };
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let run = 0; run <= runs; run++) {
    const startedCpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    const connection = await PinnedConnection.open(new URL(upstream.url), 10_000);
    const report = await verifyConnection(connection, expectations, { maxAge: 300, timeout: 10 }, { trustedRoots: [upstream.root] });
    connection.close();
    const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
    const used = process.cpuUsage(startedCpu);
    if (!report.verified) throw new Error(`verification failed: ${JSON.stringify(report.checks)}`);
    if (run > 0) {
      wall.push(elapsed);
      cpu.push((used.user + used.system) / 1000);
    }
  }
  console.log(`verify end to end (connect, attest, chain, signature, binding, PCRs), ${runs} runs after one warm-up:`);
  console.log('');
  console.log('| measure | median | p95 |');
  console.log('|---|---|---|');
  console.log(`| wall time (ms) | ${median(wall).toFixed(1)} | ${percentile(wall, 0.95).toFixed(1)} |`);
  console.log(`| client CPU time (ms, user + system) | ${median(cpu).toFixed(1)} | ${percentile(cpu, 0.95).toFixed(1)} |`);
  console.log('');
}

async function main(): Promise<void> {
  const directory = mkdtempSync(path.join(tmpdir(), 'channel-bench-'));
  const upstream = await startUpstream(directory);
  try {
    console.log(`Machine: ${cpus().length} × ${cpus()[0].model}, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, Node.js ${process.version}`);
    console.log('');
    await benchVerify(upstream, Number(process.env.BENCH_VERIFY_RUNS ?? 50));
    console.log(`Load average (1, 5, 15 min) at the end: ${loadavg().map((load) => load.toFixed(1)).join(', ')}`);
  } finally {
    upstream.process.kill();
    rmSync(directory, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
