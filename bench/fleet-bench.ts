/**
 * `npm run bench:fleet`: what a fleet gives the verified gateway, against appliance doubles behind a real HAProxy in
 * TCP mode (test/cli/doubles/haproxy-fleet.ts), as SealedInferenceFleet puts instances behind a Network Load
 * Balancer:
 *   (a) throughput with 1, 2 and 3 appliances: BENCH_FLEET_CLIENTS (default 6) clients stream completions through
 *       one gateway in fleet mode for BENCH_FLEET_SECONDS (default 5) each. Each appliance answers one completion at a
 *       time, as a model served by Ollama does, and paces its chunks (BENCH_FLEET_CHUNK_MS, default 10 ms), so that the
 *       appliances, not this machine's CPU, bound the rate;
 *   (b) that re-verification does not stall streams in flight: the gaps between the chunks of each stream with
 *       --reverify 300 and with --reverify 0.5 (a fresh connection verified twice a second, connections retired as
 *       soon as they are released), against 3 appliances.
 * Prints the machine and a markdown table of the figures measured in this run.
 */
import { execFileSync } from 'node:child_process';
import * as http from 'node:http';
import { cpus, loadavg, totalmem } from 'node:os';
import { startGateway } from '../lib/gateway/gateway';
import { createTestChain, TestChain } from '../test/attestation/test-attestation';
import { attestedAnswer, IMAGE, MODEL } from '../test/cli/doubles/attested-answer';
import { FakeAppliance } from '../test/cli/doubles/fake-appliance';
import { HAPROXY, HaproxyFleet } from '../test/cli/doubles/haproxy-fleet';

const CLIENTS = Number(process.env.BENCH_FLEET_CLIENTS ?? 6);
const SECONDS = Number(process.env.BENCH_FLEET_SECONDS ?? 5);
const CHUNK_MS = Number(process.env.BENCH_FLEET_CHUNK_MS ?? 10);
/** Words in the prompt, which the doubles echo one chunk a word: 20 chunks a stream. */
const PROMPT = Array.from({ length: 18 }, (_, index) => `word${index}`).join(' ');

interface StreamTiming {
  /** Milliseconds between consecutive chunks after the first. */
  readonly gaps: number[];
  readonly chunks: number;
}

interface RunResult {
  readonly streams: number;
  readonly chunks: number;
  readonly seconds: number;
  readonly timings: StreamTiming[];
  readonly failures: number;
  /** Attestations the appliances answered: connections verified. */
  readonly verifications: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.max(0, Math.ceil(values.length * p) - 1)] ?? 0;

/** One streamed completion through the gateway: the arrival time of each SSE event. */
function stream(agent: http.Agent, gatewayUrl: string): Promise<StreamTiming> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ model: 'any', stream: true, messages: [{ role: 'user', content: PROMPT }] });
    const url = new URL('/v1/chat/completions', gatewayUrl);
    const request = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        reject(new Error(`HTTP ${response.statusCode}`));
        return;
      }
      const arrivals: number[] = [];
      let pending = '';
      response.setEncoding('utf8').on('data', (text: string) => {
        pending += text;
        const events = pending.split('\n\n');
        pending = events.pop()!;
        for (const event of events) if (event.includes('"content"')) arrivals.push(performance.now());
      });
      response.once('end', () => resolve({ gaps: arrivals.slice(1).map((at, index) => at - arrivals[index]), chunks: arrivals.length }));
      response.once('error', reject);
    });
    request.once('error', reject);
    request.end(body);
  });
}

/** `CLIENTS` clients streaming back to back through a fleet gateway for `SECONDS`, against `count` appliances. */
async function run(chain: TestChain, count: number, reverifySeconds: number): Promise<RunResult> {
  const fakes = await Promise.all(Array.from({ length: count }, async () => {
    const fake = await FakeAppliance.start((nonce, binding) => attestedAnswer(chain, IMAGE, nonce, binding));
    fake.oneAtATime = true;
    fake.pace = () => sleep(CHUNK_MS);
    return fake;
  }));
  const haproxy = await HaproxyFleet.start(fakes.map((fake) => fake.url));
  const gateway = await startGateway({
    serviceUrl: new URL(haproxy.url),
    expectations: { images: [IMAGE], model: MODEL },
    listen: { host: '127.0.0.1', port: 0 },
    maxAgeSeconds: 60,
    timeoutSeconds: 5,
    reverifySeconds,
    // Room beyond the clients' connections, so that the scheduled verification of a fresh connection runs meanwhile.
    maxConnections: CLIENTS + 2,
    fleet: true,
    trustedRoots: [chain.root.certificate],
    stdout: () => undefined,
    // What the run proves is in its figures: failed streams are counted, and verifications.
    stderr: () => undefined,
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const timings: StreamTiming[] = [];
  let failures = 0;
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (performance.now() < deadline) {
      try {
        timings.push(await stream(agent, gateway.url));
      } catch {
        failures++;
      }
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  const verifications = fakes.reduce((sum, fake) => sum + fake.attestationRequests.length, 0);
  agent.destroy();
  await gateway.close();
  await haproxy.stop();
  await Promise.all(fakes.map((fake) => fake.stop()));
  return { streams: timings.length, chunks: timings.reduce((sum, timing) => sum + timing.chunks, 0), seconds, timings, failures, verifications };
}

async function main(): Promise<void> {
  const chain = await createTestChain();
  const haproxyVersion = execFileSync(HAPROXY, ['-v']).toString().split('\n')[0];
  console.log(`Machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} CPUs, ${Math.round(totalmem() / 2 ** 30)} GiB, ` +
    `Node ${process.version}, ${haproxyVersion}, load average ${loadavg().map((load) => load.toFixed(2)).join(' ')}`);
  console.log(`${CLIENTS} clients streaming back to back for ${SECONDS} s a row; each appliance answers one completion at a time, ` +
    `20 chunks ${CHUNK_MS} ms apart\n`);

  console.log('| appliances | streams | streams/s | chunks/s | × one appliance | verifications | failed |');
  console.log('|---|---|---|---|---|---|---|');
  let single = 0;
  for (const count of [1, 2, 3]) {
    const result = await run(chain, count, 300);
    const rate = result.streams / result.seconds;
    single ||= rate;
    console.log(`| ${count} | ${result.streams} | ${rate.toFixed(1)} | ${(result.chunks / result.seconds).toFixed(0)} | ` +
      `${(rate / single).toFixed(2)} | ${result.verifications} | ${result.failures} |`);
  }

  console.log('\n| 3 appliances, --reverify | streams | streams/s | verifications | gap p50 (ms) | gap p99 (ms) | gap max (ms) | failed |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const reverify of [300, 0.5]) {
    const result = await run(chain, 3, reverify);
    const gaps = result.timings.flatMap((timing) => timing.gaps);
    console.log(`| ${reverify} s | ${result.streams} | ${(result.streams / result.seconds).toFixed(1)} | ${result.verifications} | ` +
      `${percentile(gaps, 0.5).toFixed(1)} | ${percentile(gaps, 0.99).toFixed(1)} | ${Math.max(...gaps).toFixed(1)} | ${result.failures} |`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
