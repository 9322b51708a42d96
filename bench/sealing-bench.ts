/**
 * `npm run bench:sealing` (part of `npm run bench`): sealing and unsealing throughput, CPU time and peak RSS, against
 * in the same run:
 *   (a) age (X25519 recipient; ChaCha20-Poly1305 over 64 KiB chunks) on the same file;
 *   (b) this format with glibc's malloc keeping freed memory ({@link KEEP_FREED_MEMORY}), as the appliance's service
 *       runs it, and with glibc's defaults, as `sealed-inference seal` runs on a workstation by default;
 *   (c) the appliance's boot path: unsealing straight into a blob upload to a stand-in for Ollama
 *       (bench/ollama-blob-stand-in.ts, which writes then hashes on one thread, as Ollama does), against the plaintext
 *       uploaded to it as it is, the stand-in's own ingest rate;
 *   (d) AES-256-GCM over 8 KiB chunks, the chunking of AWS's sample (first size only: it is slow);
 *   (e) `openssl speed -evp` for AES-256-GCM, SHA-256 and SHA-384 on one core: the limits every plaintext byte
 *       must pass. Every byte passes SHA-256 in order, so no sealing or unsealing that hashes can beat that figure.
 * Sizes: BENCH_SIZES_GIB (default "1,4"). Files go to BENCH_DIR (default: a new folder in /dev/shm, memory-backed
 * like the appliance's model storage, so that the disk does not dominate; else the OS temp dir) and are removed at
 * the end. Each phase runs in a process of its own so that its peak RSS is its own, BENCH_RUNS times (default 3),
 * the runs interleaved (every phase once, then again) so that a burst of load on a shared machine hits all of them;
 * the median run counts, and the highest peak RSS.
 * BENCH_MEMORY_GIB (e.g. "8") adds sizes at which only sealing and unsealing run, once, for their peak RSS, in
 * BENCH_MEMORY_DIR (default /var/tmp, on disk: three copies of a large model may not fit in memory).
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from 'child_process';
import { randomBytes } from 'crypto';
import { cpus, loadavg, tmpdir, totalmem } from 'os';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'fs';
import * as path from 'path';
import { build } from 'esbuild';

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

/**
 * glibc settings that keep freed memory in the process rather than returning it to the kernel at once: the heap is
 * trimmed only above 256 MiB free, and allocations up to 32 MiB come from the heap rather than from fresh mappings.
 */
const KEEP_FREED_MEMORY = ['MALLOC_TRIM_THRESHOLD_=268435456', 'MALLOC_MMAP_THRESHOLD_=33554432'];

interface Measurement {
  readonly what: string;
  readonly gib: number;
  readonly seconds: number;
  /** User and system CPU time of the process, all its threads. */
  readonly cpuSeconds: number;
  readonly maxRssMiB: number;
}

function requireTool(tool: string, debianPackage: string): void {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0) return;
  if (process.getuid?.() === 0) {
    execFileSync('sh', ['-c', `apt-get update -qq && apt-get install -y -qq ${debianPackage}`], { stdio: 'inherit' });
    return;
  }
  throw new Error(`${tool} is missing: install it with  sudo apt-get install -y ${debianPackage}`);
}

/** A file of `bytes` random bytes, written in 64 MiB blocks. */
function randomFile(file: string, bytes: number): void {
  const fd = openSync(file, 'w');
  for (let written = 0; written < bytes; written += 64 * MIB) writeSync(fd, randomBytes(Math.min(64 * MIB, bytes - written)));
  closeSync(fd);
}

type Timing = Pick<Measurement, 'seconds' | 'cpuSeconds' | 'maxRssMiB'>;

/** Runs a command under GNU time with `environment` (NAME=value) added: wall and CPU seconds, peak RSS. */
function timed(command: string, args: string[], environment: string[] = []): Timing {
  const start = process.hrtime.bigint();
  const timeArgs = ['time', '-f', '%U %S %M', command, ...args];
  const result = spawnSync('/usr/bin/env', [...environment, ...timeArgs], { encoding: 'utf8' });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr}`);
  const [user, system, maxRssKiB] = result.stderr.trim().split('\n').pop()!.split(' ').map(Number);
  return { seconds, cpuSeconds: user + system, maxRssMiB: maxRssKiB / 1024 };
}

/** `openssl speed -evp <algorithm>` over 16 KiB blocks on one core, in MiB/s. */
function opensslSpeed(algorithm: string): number {
  const speed = execFileSync('openssl', ['speed', '-evp', algorithm, '-bytes', '16384', '-seconds', '3'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  // The last line reads "<algorithm> <thousands of bytes per second>k".
  const kBps = Number(speed.trim().split('\n').pop()!.trim().split(/\s+/).pop()!.replace('k', ''));
  if (!Number.isFinite(kBps)) throw new Error(`cannot read the result of openssl speed -evp ${algorithm}:\n${speed}`);
  return (kBps * 1000) / MIB;
}

/** Builds the phase runner and the Ollama stand-in into `dir`, as single files Node runs without ts-node. */
async function buildScripts(dir: string): Promise<{ phase: string; standIn: string }> {
  const bundle = async (name: string) => {
    const outfile = path.join(dir, `${name}.js`);
    await build({
      entryPoints: [path.join(__dirname, `${name}.ts`)],
      bundle: true,
      platform: 'node',
      target: 'node22',
      outfile,
      logLevel: 'warning',
    });
    return outfile;
  };
  return { phase: await bundle('run-phase'), standIn: await bundle('ollama-blob-stand-in') };
}

/** Starts the Ollama stand-in storing into `dir`; resolves with it and its URL. */
function startStandIn(script: string, dir: string): Promise<{ process: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the Ollama stand-in exited with ${code}`)));
    child.stdout!.once('data', (data: Buffer) => resolve({ process: child, url: data.toString().trim() }));
  });
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function main(): Promise<void> {
  requireTool('age', 'age');
  requireTool('openssl', 'openssl');
  requireTool('time', 'time');
  const sizes = (process.env.BENCH_SIZES_GIB ?? '1,4').split(',').filter(Boolean).map(Number);
  const memorySizes = (process.env.BENCH_MEMORY_GIB ?? '').split(',').filter(Boolean).map(Number);
  const runs = Number(process.env.BENCH_RUNS ?? 3);
  if (!Number.isInteger(runs) || runs < 1) {
    throw new Error(`BENCH_RUNS must be a whole number of 1 or more, got ${process.env.BENCH_RUNS}`);
  }
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = process.env.BENCH_DIR ?? mkdtempSync(path.join(base, 'sealing-bench-'));
  const scripts = await buildScripts(dir);
  const key = path.join(dir, 'data.key');
  writeFileSync(key, randomBytes(32), { mode: 0o600 });
  const ageKey = path.join(dir, 'age.key');
  execFileSync('age-keygen', ['-o', ageKey], { stdio: 'ignore' });
  const recipient = execFileSync('age-keygen', ['-y', ageKey], { encoding: 'utf8' }).trim();
  const blobs = mkdtempSync(path.join(dir, 'ollama-blobs-'));
  const standIn = await startStandIn(scripts.standIn, blobs);

  const results: Measurement[] = [];
  try {
    for (const [i, gib] of sizes.entries()) {
      const model = path.join(dir, `model-${gib}g.bin`);
      const file = (suffix: string) => path.join(dir, `model-${gib}g.${suffix}`);
      randomFile(model, gib * GIB);
      // cmp fails (and execFileSync throws) unless the unsealed file is the model, byte for byte and size for size.
      const checkUnsealed = () => {
        execFileSync('cmp', [model, file('unsealed')]);
        rmSync(file('unsealed'));
      };
      const node = (args: string[], environment?: string[]) => () => timed(process.execPath, args, environment);
      const keeping = 'glibc malloc keeping freed memory';
      const phases: Array<{ what: string; run: () => Timing; after?: () => void }> = [
        { what: `seal, ${keeping}`, run: node([scripts.phase, 'seal', model, file('sealed'), key], KEEP_FREED_MEMORY) },
        {
          what: `unseal, ${keeping}`,
          run: node([scripts.phase, 'unseal', file('sealed'), file('unsealed'), key], KEEP_FREED_MEMORY),
          after: checkUnsealed,
        },
        { what: 'seal, glibc defaults', run: node([scripts.phase, 'seal', model, file('sealed'), key]) },
        {
          what: 'unseal, glibc defaults',
          run: node([scripts.phase, 'unseal', file('sealed'), file('unsealed'), key]),
          after: checkUnsealed,
        },
        { what: 'age encrypt', run: () => timed('age', ['-r', recipient, '-o', file('age'), model]) },
        {
          what: 'age decrypt',
          run: () => timed('age', ['-d', '-i', ageKey, '-o', file('age-out'), file('age')]),
          after: () => rmSync(file('age-out')),
        },
        {
          what: 'Ollama stand-in: plaintext uploaded as it is',
          run: node([scripts.phase, 'upload', model, standIn.url, file('sealed')], KEEP_FREED_MEMORY),
        },
        {
          what: `Ollama stand-in: unseal into the upload, ${keeping}`,
          run: node([scripts.phase, 'unseal-ollama', file('sealed'), standIn.url, key], KEEP_FREED_MEMORY),
        },
      ];
      if (i === 0) {
        phases.push({
          what: 'AES-256-GCM, 8 KiB chunks (AWS sample)',
          run: node([scripts.phase, 'gcm-8k', model, file('gcm8k'), key]),
          after: () => rmSync(file('gcm8k')),
        });
      }
      const timings = new Map<string, Timing[]>(phases.map(({ what }) => [what, []]));
      for (let r = 0; r < runs; r++) {
        for (const { what, run, after } of phases) {
          const timing = run();
          after?.();
          timings.get(what)!.push(timing);
          console.error(`${what}, ${gib} GiB, run ${r + 1}: ${(gib * 1024 / timing.seconds).toFixed(0)} MiB/s, ` +
            `CPU ${timing.cpuSeconds.toFixed(1)} s, RSS ${timing.maxRssMiB.toFixed(0)} MiB`);
        }
      }
      for (const [what, measured] of timings) {
        results.push({
          what,
          gib,
          seconds: median(measured.map((t) => t.seconds)),
          cpuSeconds: median(measured.map((t) => t.cpuSeconds)),
          maxRssMiB: Math.max(...measured.map((t) => t.maxRssMiB)),
        });
      }
      for (const suffix of ['sealed', 'sealed.manifest.json', 'age']) rmSync(file(suffix));
      rmSync(model);
    }
    results.push(...memoryOnly(memorySizes, scripts.phase));
  } finally {
    standIn.process.kill();
    if (!process.env.BENCH_DIR) rmSync(dir, { recursive: true, force: true });
  }

  const limits = ['aes-256-gcm', 'sha256', 'sha384'].map((algorithm) => ({ algorithm, mibps: opensslSpeed(algorithm) }));
  report(results, limits);
}

/** Sealing and unsealing once at each of `sizes`, on disk, for their peak RSS only. */
function memoryOnly(sizes: number[], phase: string): Measurement[] {
  if (sizes.length === 0) return [];
  const dir = mkdtempSync(path.join(process.env.BENCH_MEMORY_DIR ?? '/var/tmp', 'sealing-bench-memory-'));
  const results: Measurement[] = [];
  try {
    const key = path.join(dir, 'data.key');
    writeFileSync(key, randomBytes(32), { mode: 0o600 });
    for (const gib of sizes) {
      const file = (suffix: string) => path.join(dir, `model-${gib}g.${suffix}`);
      randomFile(file('bin'), gib * GIB);
      const sealing = timed(process.execPath, [phase, 'seal', file('bin'), file('sealed'), key], KEEP_FREED_MEMORY);
      rmSync(file('bin'));
      const unsealing = timed(process.execPath, [phase, 'unseal', file('sealed'), file('unsealed'), key], KEEP_FREED_MEMORY);
      results.push({ what: 'seal, on disk, peak RSS only', gib, ...sealing });
      results.push({ what: 'unseal, on disk, peak RSS only', gib, ...unsealing });
      for (const suffix of ['sealed', 'sealed.manifest.json', 'unsealed']) rmSync(file(suffix));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

function report(results: Measurement[], limits: Array<{ algorithm: string; mibps: number }>): void {
  const rate = (r: Measurement) => (r.gib * 1024) / r.seconds;
  const find = (what: string, gib: number) => results.find((r) => r.what === what && r.gib === gib);
  console.log(`Machine: ${cpus().length} × ${cpus()[0].model}, ${(totalmem() / GIB).toFixed(0)} GiB, Node.js ${process.version}`);
  // Other work on the machine shows here; it makes the figures noisy.
  console.log(`Load average (1, 5, 15 min) at the end: ${loadavg().map((load) => load.toFixed(1)).join(', ')}`);
  console.log('');
  console.log('| what | size | MiB/s | × age | CPU s per GiB (all threads) | peak RSS (MiB) |');
  console.log('|---|---|---|---|---|---|');
  for (const r of results) {
    const age = r.what.startsWith('seal') ? find('age encrypt', r.gib) : r.what.startsWith('unseal') ? find('age decrypt', r.gib) : undefined;
    const versusAge = age ? (rate(r) / rate(age)).toFixed(2) : '';
    console.log(`| ${r.what} | ${r.gib} GiB | ${rate(r).toFixed(0)} | ${versusAge} | ${(r.cpuSeconds / r.gib).toFixed(2)} | ` +
      `${r.maxRssMiB.toFixed(0)} |`);
  }
  for (const gib of new Set(results.map((r) => r.gib))) {
    const upload = find('Ollama stand-in: plaintext uploaded as it is', gib);
    const unsealed = find('Ollama stand-in: unseal into the upload, glibc malloc keeping freed memory', gib);
    if (upload && unsealed) {
      console.log(`| unseal into the Ollama stand-in against its own ingest rate | ${gib} GiB | | ` +
        `${(100 * rate(unsealed) / rate(upload)).toFixed(0)} % | | |`);
    }
  }
  for (const { algorithm, mibps } of limits) {
    const cpuPerGiB = (1024 / mibps).toFixed(2);
    console.log(`| openssl speed -evp ${algorithm} (16 KiB blocks, one core) | | ${mibps.toFixed(0)} | | ${cpuPerGiB} | |`);
  }
  const cores = cpus().length;
  const bound = `bound for this format here: SHA-256 in order on one core, with AES-256-GCM over ${cores} cores, no I/O`;
  console.log(`| ${bound} | | ${formatBound(limits, cores).toFixed(0)} | | | |`);
}

/**
 * The fastest any sealing or unsealing of this format that hashes the plaintext can run on this machine, I/O aside:
 * every plaintext byte passes SHA-256 in order (one core at most), and SHA-256 and AES-256-GCM together share the
 * machine's cores.
 */
function formatBound(limits: { algorithm: string; mibps: number }[], cores: number): number {
  const speed = (algorithm: string) => limits.find((limit) => limit.algorithm === algorithm)!.mibps;
  const cpuSecondsPerMiB = 1 / speed('sha256') + 1 / speed('aes-256-gcm');
  return Math.min(speed('sha256'), cores / cpuSecondsPerMiB);
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
