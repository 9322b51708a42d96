/**
 * `npm run bench:sealing` (part of `npm run bench`): sealing and unsealing throughput and peak RSS, against in the same run:
 *   (a) AES-256-GCM over 8 KiB chunks, the chunking of AWS's sample;
 *   (b) age (X25519 recipient; ChaCha20-Poly1305 over 64 KiB chunks) on the same file;
 *   (c) this format again, its process started with glibc's malloc told to keep freed memory
 *       ({@link KEEP_FREED_MEMORY}): Node's cipher allocates its output at every call, and when glibc returns the
 *       freed memory to the kernel, each new allocation page-faults again;
 *   (d) `openssl speed -evp` for AES-256-GCM, SHA-384 and SHA-256: on one core of this machine, the cipher's limit
 *       and the two digests' limits. Every plaintext byte must pass through SHA-384 in order, so no sealing or
 *       unsealing of this format can be faster than the SHA-384 figure.
 * Sizes: BENCH_SIZES_GIB (default "1,4"). Files go to BENCH_DIR (default: a new folder in /dev/shm, memory-backed
 * like the appliance's model storage, so that the disk does not dominate; else the OS temp dir) and are removed at
 * the end. Each phase runs in a process of its own so that its peak RSS is its own, BENCH_RUNS times (default 3); the
 * fastest run counts.
 */
import { execFileSync, spawnSync } from 'child_process';
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

async function main(): Promise<void> {
  requireTool('age', 'age');
  requireTool('openssl', 'openssl');
  requireTool('time', 'time');
  const sizes = (process.env.BENCH_SIZES_GIB ?? '1,4').split(',').map(Number);
  const runs = Number(process.env.BENCH_RUNS ?? 3);
  if (!Number.isInteger(runs) || runs < 1) {
    throw new Error(`BENCH_RUNS must be a whole number of 1 or more, got ${process.env.BENCH_RUNS}`);
  }
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = process.env.BENCH_DIR ?? mkdtempSync(path.join(base, 'sealing-bench-'));
  const phase = path.join(dir, 'run-phase.js');
  await build({
    entryPoints: [path.join(__dirname, 'run-phase.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    outfile: phase,
    logLevel: 'warning',
  });
  const key = path.join(dir, 'data.key');
  writeFileSync(key, randomBytes(32), { mode: 0o600 });
  const ageKey = path.join(dir, 'age.key');
  execFileSync('age-keygen', ['-o', ageKey], { stdio: 'ignore' });
  const recipient = execFileSync('age-keygen', ['-y', ageKey], { encoding: 'utf8' }).trim();

  const results: Measurement[] = [];
  try {
    for (const gib of sizes) {
      const model = path.join(dir, `model-${gib}g.bin`);
      const file = (suffix: string) => path.join(dir, `model-${gib}g.${suffix}`);
      randomFile(model, gib * GIB);
      // The best of several runs: on a shared virtual machine, single runs vary by tens of percent.
      const run = (what: string, command: string, args: string[], environment?: string[]) => {
        const timings = Array.from({ length: runs }, () => timed(command, args, environment));
        const measured = timings.sort((a, b) => a.seconds - b.seconds)[0];
        results.push({ what, gib, ...measured });
        console.error(`${what}, ${gib} GiB: ${(gib * 1024 / measured.seconds).toFixed(0)} MiB/s, CPU ${measured.cpuSeconds.toFixed(1)} s`);
      };
      const sealArgs = [phase, 'seal', model, file('sealed'), key];
      const unsealArgs = [phase, 'unseal', file('sealed'), file('unsealed'), key];
      run('seal (this format)', process.execPath, sealArgs);
      // cmp fails (and execFileSync throws) unless the unsealed file is the model, byte for byte and size for size.
      const checkUnsealed = () => {
        execFileSync('cmp', [model, file('unsealed')]);
        rmSync(file('unsealed'));
      };
      run('unseal (this format)', process.execPath, unsealArgs);
      checkUnsealed();
      const keeping = 'glibc malloc keeping freed memory';
      run(`seal (this format), ${keeping}`, process.execPath, sealArgs, KEEP_FREED_MEMORY);
      run(`unseal (this format), ${keeping}`, process.execPath, unsealArgs, KEEP_FREED_MEMORY);
      checkUnsealed();
      run('AES-256-GCM, 8 KiB chunks (AWS sample)', process.execPath, [phase, 'gcm-8k', model, file('gcm8k'), key]);
      rmSync(file('gcm8k'));
      run('age encrypt', 'age', ['-r', recipient, '-o', file('age'), model]);
      run('age decrypt', 'age', ['-d', '-i', ageKey, '-o', file('age-out'), file('age')]);
      for (const suffix of ['sealed', 'age', 'age-out']) rmSync(file(suffix));
      rmSync(model);
    }
  } finally {
    if (!process.env.BENCH_DIR) rmSync(dir, { recursive: true, force: true });
  }

  const limits = ['aes-256-gcm', 'sha384', 'sha256'].map((algorithm) => ({ algorithm, mibps: opensslSpeed(algorithm) }));

  console.log(`Machine: ${cpus().length} × ${cpus()[0].model}, ${(totalmem() / GIB).toFixed(0)} GiB, Node.js ${process.version}`);
  // Other work on the machine shows here; it makes the figures noisy.
  console.log(`Load average (1, 5, 15 min) at the end: ${loadavg().map((load) => load.toFixed(1)).join(', ')}`);
  console.log('');
  console.log('| what | size | MiB/s | CPU s per GiB (all threads) | peak RSS (MiB) |');
  console.log('|---|---|---|---|---|');
  for (const r of results) {
    const mibps = ((r.gib * 1024) / r.seconds).toFixed(0);
    console.log(`| ${r.what} | ${r.gib} GiB | ${mibps} | ${(r.cpuSeconds / r.gib).toFixed(2)} | ${r.maxRssMiB.toFixed(0)} |`);
  }
  for (const { algorithm, mibps } of limits) {
    const cpuPerGiB = (1024 / mibps).toFixed(2);
    console.log(`| openssl speed -evp ${algorithm} (16 KiB blocks, one core) | | ${mibps.toFixed(0)} | ${cpuPerGiB} | |`);
  }
  const cores = cpus().length;
  const bound = `bound for this format here: SHA-384 in order on one core, the three computations over ${cores} cores, no I/O`;
  console.log(`| ${bound} | | ${formatBound(limits, cores).toFixed(0)} | | |`);
}

/**
 * The fastest any sealing or unsealing of this format can run on this machine, I/O aside: every plaintext byte passes
 * SHA-384 in order (one core at most), and SHA-384, SHA-256 and AES-256-GCM together share the machine's cores.
 */
function formatBound(limits: { algorithm: string; mibps: number }[], cores: number): number {
  const cpuSecondsPerMiB = limits.reduce((sum, { mibps }) => sum + 1 / mibps, 0);
  const sha384 = limits.find(({ algorithm }) => algorithm === 'sha384')!.mibps;
  return Math.min(sha384, cores / cpuSecondsPerMiB);
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
