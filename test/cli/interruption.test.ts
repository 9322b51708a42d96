import { ChildProcess, execFileSync, spawn } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';

/**
 * Ctrl-C and `kill` during the compiled CLI's long commands, as a user does them: the partial output is removed,
 * the command says so in one line and exits 128 + the signal's number; what a SIGKILL leaves, the next run removes.
 */

/** The CLI as the package's `bin` installs it, built by `npm run build` (which `npm test` runs first). */
const CLI = path.join(__dirname, '../../dist/bin/sealed-inference.js');
const MiB = 1024 * 1024;

let dir: string;
let keyFile: string;
let model: string;
let sealed: string;

beforeAll(() => {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  // Memory-backed where there is one, so that sealing a large model takes a moment, not the test's time.
  dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'interruption-'));
  keyFile = path.join(dir, 'key.bin');
  fs.writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
  model = path.join(dir, 'llama.gguf');
  const file = fs.openSync(model, 'w');
  for (let i = 0; i < 16; i++) fs.writeSync(file, randomBytes(32 * MiB));
  fs.closeSync(file);
  execFileSync(process.execPath, [CLI, 'seal', model, '--out', path.join(dir, 'sealed'), '--data-key-file', keyFile]);
  sealed = path.join(dir, 'sealed', 'llama.sealed');
}, 60_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The CLI running `args`, with what it printed and how it ended. */
function run(args: string[]): { child: ChildProcess; ended: Promise<{ code: number | null; stderr: string }> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const ended = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, stderr })));
  return { child, ended };
}

/** Waits until a partial file in `directory` has some bytes, and returns its path. */
async function partialFileIn(directory: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const partial = fs.readdirSync(directory).find((name) => name.endsWith('.partial'));
    if (partial !== undefined && fs.statSync(path.join(directory, partial)).size > 0) return path.join(directory, partial);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`no partial file appeared in ${directory}`);
}

/** A pipe the sealed model is fed through: the CLI reads its first 64 MiB, then waits for more that never comes. */
function stalledSource(): { fifo: string; close: () => void } {
  const fifo = path.join(dir, `stalled-${randomBytes(4).toString('hex')}.sealed`);
  execFileSync('mkfifo', [fifo]);
  const writer = fs.createWriteStream(fifo);
  // The CLI closes its end when it stops: the rest of the write fails, as expected.
  writer.on('error', () => undefined);
  const input = fs.createReadStream(sealed, { end: 64 * MiB - 1 });
  input.pipe(writer, { end: false });
  return { fifo, close: () => writer.destroy() };
}

describe.each([['SIGINT', 130], ['SIGTERM', 143]] as const)('%s', (signal, exitCode) => {
  test('during unseal removes the partial plaintext, which was readable by its owner only', async () => {
    const out = fs.mkdtempSync(path.join(dir, 'out-'));
    const source = stalledSource();
    try {
      const target = path.join(out, 'llama.gguf');
      const { child, ended } = run(['unseal', source.fifo, '--data-key-file', keyFile, '--out', target]);
      const partial = await partialFileIn(out);
      expect(fs.statSync(partial).mode & 0o777).toBe(0o600);
      child.kill(signal);
      const { code, stderr } = await ended;
      expect(code).toBe(exitCode);
      expect(stderr.trimEnd().split('\n').at(-1)).toBe(
        `sealed-inference: interrupted by ${signal}; ${target} was not written, and its partial file was removed`);
      expect(fs.readdirSync(out)).toEqual([]);
    } finally {
      source.close();
    }
  }, 30_000);

  test('during an offline seal removes the partial sealed model', async () => {
    const out = fs.mkdtempSync(path.join(dir, 'out-'));
    const { child, ended } = run(['seal', model, '--out', out, '--data-key-file', keyFile, '--chunk-size', '1']);
    await partialFileIn(out);
    child.kill(signal);
    const { code, stderr } = await ended;
    expect(code).toBe(exitCode);
    expect(stderr.trimEnd().split('\n').at(-1)).toBe(
      `sealed-inference: interrupted by ${signal}; nothing was written to ${out}, and the partial file was removed`);
    expect(fs.readdirSync(out)).toEqual([]);
  }, 30_000);
});

test("the next unseal removes the partial plaintext a killed run left, and leaves a running one's", async () => {
  const out = fs.mkdtempSync(path.join(dir, 'out-'));
  const target = path.join(out, 'llama.gguf');
  const abandoned = path.join(out, '.llama.gguf.0123456789ab.partial');
  const live = path.join(out, '.llama.gguf.ba9876543210.partial');
  fs.writeFileSync(abandoned, 'plaintext of a killed run', { mode: 0o600 });
  const twoMinutesAgo = new Date(Date.now() - 120_000);
  fs.utimesSync(abandoned, twoMinutesAgo, twoMinutesAgo);
  fs.writeFileSync(live, 'plaintext being written', { mode: 0o600 });

  const { code, stderr } = await run(['unseal', sealed, '--data-key-file', keyFile, '--out', target]).ended;
  expect(code).toBe(0);
  expect(stderr).toContain(`Removed ${abandoned}, the partial plaintext of an unsealing that was killed\n`);
  expect(fs.readdirSync(out).sort()).toEqual(['.llama.gguf.ba9876543210.partial', 'llama.gguf']);
}, 60_000);

test('unseal into a directory that does not exist says so, naming no temporary file', async () => {
  const target = path.join(dir, 'missing', 'llama.gguf');
  const { code, stderr } = await run(['unseal', sealed, '--data-key-file', keyFile, '--out', target]).ended;
  expect(code).toBe(1);
  expect(stderr).toBe(`sealed-inference: ${path.dirname(target)} does not exist: create it or choose another --out\n`);
});
