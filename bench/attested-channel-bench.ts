/**
 * `npm run bench:channel`: what the attested channel costs a client, against the appliance's own service with its
 * doubles (bench/channel-upstream.ts, in a process of its own):
 *   (a) `verify` end to end: open a TLS 1.3 connection, ask for a fresh attestation over it, check the chain, the
 *       signature, the channel binding and the PCRs; wall time and the client's own CPU time per verification;
 *   (b) a streamed completion of 100,000 events from a stub Ollama that streams as fast as it can, read directly over
 *       a TLS connection to the appliance's service, and through the verified gateway (bench/channel-gateway.ts, a
 *       process of its own, its upstream connection verified beforehand): events per second from the first event to
 *       the last; and the time to the first event of a short answer, which the request's fixed costs make.
 * Runs: BENCH_VERIFY_RUNS (default 50) verifications; BENCH_STREAM_RUNS (default 5) streams each way, interleaved;
 * the first of each, which loads the modules and makes the connections, is left out.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import * as http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { build } from 'esbuild';
import { PinnedConnection } from '../lib/attestation/pinned-connection';
import { verifyConnection } from '../lib/cli/verify-connection';

interface Upstream {
  readonly url: string;
  readonly root: X509Certificate;
  readonly pcrs: { pcr4: string; pcr12: string };
  readonly process: ChildProcess;
}

/**
 * Bundles `bench/<name>.ts` as the appliance is bundled, starts it with `args` and resolves with the JSON line it
 * prints once listening.
 */
async function startBundled(directory: string, name: string, args: string[] = []): Promise<{ line: string; child: ChildProcess }> {
  const { uiAsText } = await import('../scripts/ui-as-text.mjs');
  const bundle = path.join(directory, `${name}.js`);
  await build({
    entryPoints: [path.join(__dirname, `${name}.ts`)],
    bundle: true,
    platform: 'node',
    target: 'node20',
    outfile: bundle,
    logLevel: 'warning',
    plugins: [uiAsText],
  });
  const child = spawn(process.execPath, [bundle, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  for await (const line of createInterface({ input: child.stdout! })) return { line, child };
  throw new Error(`bench/${name}.ts exited before listening`);
}

async function startUpstream(directory: string): Promise<Upstream & { line: string }> {
  const { line, child } = await startBundled(directory, 'channel-upstream');
  const { url, root, pcrs } = JSON.parse(line) as { url: string; root: string; pcrs: { pcr4: string; pcr12: string } };
  return { url, root: new X509Certificate(root), pcrs, process: child, line };
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

/** One streamed completion: milliseconds to the first event, and events per second from the first to the last. */
interface StreamTiming {
  readonly firstEventMs: number;
  readonly eventsPerSecond: number;
  readonly events: number;
}

/** A completion the stub streams one event a word, `You said: <prompt>`, twenty times over. */
const completion = (prompt: string) => JSON.stringify({ model: 'bench', stream: true, messages: [{ role: 'user', content: prompt }] });
/** For the rate: 100,000 events. */
const LONG = completion(Array.from({ length: 5000 }, (_, i) => `w${i}`).join(' '));
/** For the time to the first event: 60 events, the request's fixed costs. */
const SHORT = completion('hello');

/** Sends `body` with the request made by `send` and reads the SSE answer to its end. */
function streamOnce(send: () => http.ClientRequest, body: string): Promise<StreamTiming> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const since = () => Number(process.hrtime.bigint() - started) / 1e6;
    const request = send();
    request.once('error', reject);
    request.once('response', (response) => {
      if (response.statusCode !== 200) reject(new Error(`HTTP ${response.statusCode}`));
      let firstEventMs: number | undefined;
      let events = 0;
      let partial = '';
      response.setEncoding('utf8');
      response.on('data', (text: string) => {
        const lines = (partial + text).split('\n');
        partial = lines.pop()!;
        for (const line of lines) {
          if (!line.startsWith('data: {')) continue;
          firstEventMs ??= since();
          events++;
        }
      });
      response.once('end', () => {
        const first = firstEventMs ?? NaN;
        resolve({ firstEventMs: first, events, eventsPerSecond: (events - 1) / ((since() - first) / 1000) });
      });
    });
    request.end(body);
  });
}

async function benchStreaming(upstream: Upstream, gatewayUrl: string, runs: number): Promise<void> {
  const headers = { 'content-type': 'application/json' };
  let direct: PinnedConnection | undefined;
  const viaGateway = new http.Agent({ keepAlive: true });
  const directly = () => {
    // The appliance closes a connection idle for 5 s; a new one is made outside the timing.
    if (direct?.isOpen !== true) throw new Error('no open connection');
    return direct.request('/v1/chat/completions', { method: 'POST', headers });
  };
  const throughGateway = () => http.request(`${gatewayUrl}/v1/chat/completions`, { method: 'POST', headers, agent: viaGateway });
  const results = { direct: [] as StreamTiming[], gateway: [] as StreamTiming[], directShort: [] as StreamTiming[], gatewayShort: [] as StreamTiming[] };
  for (let run = 0; run <= runs; run++) {
    direct?.close();
    direct = await PinnedConnection.open(new URL(upstream.url), 10_000);
    const d = await streamOnce(directly, LONG);
    const g = await streamOnce(throughGateway, LONG);
    const ds = await streamOnce(directly, SHORT);
    const gs = await streamOnce(throughGateway, SHORT);
    if (d.events !== g.events) throw new Error(`direct streamed ${d.events} events, the gateway ${g.events}`);
    if (run > 0) {
      results.direct.push(d);
      results.gateway.push(g);
      results.directShort.push(ds);
      results.gatewayShort.push(gs);
    }
  }
  direct?.close();
  viaGateway.destroy();
  const rate = (timings: StreamTiming[]) => median(timings.map((t) => t.eventsPerSecond));
  const first = (timings: StreamTiming[]) => median(timings.map((t) => t.firstEventMs));
  console.log(`Streamed completions, ${runs} runs each way after one warm-up, interleaved (medians): events per second ` +
    `over ${results.direct[0].events} events, time to the first event of a ${results.directShort[0].events}-event answer:`);
  console.log('');
  console.log('| path | events per second | time to first event (ms) |');
  console.log('|---|---|---|');
  console.log(`| direct, TLS to the appliance's service | ${rate(results.direct).toFixed(0)} | ${first(results.directShort).toFixed(1)} |`);
  console.log(`| through the verified gateway | ${rate(results.gateway).toFixed(0)} | ${first(results.gatewayShort).toFixed(1)} |`);
  console.log(`| gateway against direct | ${(100 * rate(results.gateway) / rate(results.direct)).toFixed(1)} % | ` +
    `+${(first(results.gatewayShort) - first(results.directShort)).toFixed(1)} ms |`);
  console.log('');
}

async function main(): Promise<void> {
  const directory = mkdtempSync(path.join(tmpdir(), 'channel-bench-'));
  const upstream = await startUpstream(directory);
  try {
    console.log(`Machine: ${cpus().length} × ${cpus()[0].model}, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, Node.js ${process.version}`);
    console.log('');
    await benchVerify(upstream, Number(process.env.BENCH_VERIFY_RUNS ?? 50));
    const gateway = await startBundled(directory, 'channel-gateway', [upstream.line]);
    try {
      const { url } = JSON.parse(gateway.line) as { url: string };
      await benchStreaming(upstream, url, Number(process.env.BENCH_STREAM_RUNS ?? 5));
    } finally {
      gateway.child.kill();
    }
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
