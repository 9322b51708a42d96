import { randomBytes } from 'crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, truncateSync, unlinkSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { modelMeasurement } from '../../lib/sealing/model-measurement';
import { endsWithFailure, failure, runCaptured } from './capture';

/** A model of a few chunks of 64 KiB, its key file (mode 0600) and a folder to seal into. */
function setUp() {
  const dir = mkdtempSync(path.join(tmpdir(), 'offline-sealing-'));
  const model = path.join(dir, 'tiny-llm.Q4_K_M.gguf');
  const plaintext = randomBytes(200_000);
  writeFileSync(model, plaintext);
  const keyFile = path.join(dir, 'key.bin');
  writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  return { dir, model, plaintext, keyFile, out: path.join(dir, 'sealed') };
}

type Fixture = ReturnType<typeof setUp>;

async function sealOffline(s: Fixture, ...extra: string[]) {
  return runCaptured(['seal', s.model, '--out', s.out, '--data-key-file', s.keyFile, '--chunk-size', '0.0625', ...extra]);
}

test('seal, inspect and unseal a model offline, through the CLI', async () => {
  const s = setUp();
  const sealed = await sealOffline(s);
  expect(sealed).toMatchObject({ code: 0, stderr: `Sealed tiny-llm.Q4_K_M (195.3 KiB) into ${s.out}\n` });
  const { artifacts, manifest } = JSON.parse(sealed.stdout);
  expect(artifacts).toEqual({
    sealed: path.join(s.out, 'tiny-llm.Q4_K_M.sealed'),
    manifest: path.join(s.out, 'tiny-llm.Q4_K_M.manifest.json'),
  });
  expect(readdirSync(s.out).sort()).toEqual(['tiny-llm.Q4_K_M.manifest.json', 'tiny-llm.Q4_K_M.sealed']);
  expect(JSON.parse(readFileSync(artifacts.manifest, 'utf8'))).toEqual(manifest);
  expect(manifest).toMatchObject({ modelName: 'tiny-llm.Q4_K_M', plaintextSize: 200_000, chunkSize: 65536 });
  expect(manifest.keyArn).toBeUndefined();

  const header = await runCaptured(['inspect', artifacts.sealed, '--json']);
  expect(header.code).toBe(0);
  expect(JSON.parse(header.stdout)).toMatchObject({
    kind: 'sealed-model',
    header: { modelName: 'tiny-llm.Q4_K_M', plaintextSize: 200_000, chunkSize: 65536, cipher: 'AES-256-GCM' },
    headerSha256: manifest.headerSha256,
    chunkCount: 4,
    expectedSealedSize: manifest.sealedSize,
    fileSize: manifest.sealedSize,
  });
  const text = await runCaptured(['inspect', artifacts.sealed]);
  expect(text.stdout).toContain(`sealed model (sealed-inference/model version 2)\n`);
  expect(text.stdout).toContain(`  chunks:             4, then the trailer\n`);
  expect(text.stdout).toContain(`  file size:          ${manifest.sealedSize} bytes (195.7 KiB), as expected\n`);
  const described = await runCaptured(['inspect', artifacts.manifest, '--json']);
  expect(JSON.parse(described.stdout)).toEqual({ kind: 'manifest', file: artifacts.manifest, manifest });
  const manifestText = (await runCaptured(['inspect', artifacts.manifest])).stdout;
  expect(manifestText).toContain('  KMS key:            (none: sealed offline)\n');
  expect(manifestText).toContain(`  SHA-256:            ${manifest.sha256}\n`);
  expect(manifestText).toContain(`  PCR15 measurement:  ${modelMeasurement(manifest)}\n`);

  const model = path.join(s.dir, 'unsealed.gguf');
  const unsealed = await runCaptured(['unseal', artifacts.sealed, '--data-key-file', s.keyFile, '--out', model]);
  expect(unsealed.stderr).toBe(
    `Checking against the manifest ${artifacts.manifest}\nUnsealed and verified tiny-llm.Q4_K_M (195.3 KiB)\n`,
  );
  expect(unsealed.code).toBe(0);
  expect(JSON.parse(unsealed.stdout)).toEqual({
    model,
    modelName: 'tiny-llm.Q4_K_M',
    plaintextSize: 200_000,
    sha256: manifest.sha256,
    measurement: modelMeasurement(manifest),
    manifest: artifacts.manifest,
  });
  expect(readFileSync(model).equals(s.plaintext)).toBe(true);
});

describe('data key files', () => {
  test.each([16, 33, 64])('refuses a key file of %d bytes and writes nothing', async (size) => {
    const s = setUp();
    writeFileSync(s.keyFile, randomBytes(size));
    const { code, stdout, stderr } = await sealOffline(s);
    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    expect(stderr).toMatch(failure(new RegExp(
      `The data key file ${s.keyFile} has ${size} bytes: it must hold exactly 32 raw bytes .*: make one with sealed-inference keygen <file>`,
    )));
    expect(existsSync(s.out)).toBe(false);
  });

  test('warns when others than its owner may read the key file', async () => {
    const s = setUp();
    chmodSync(s.keyFile, 0o644);
    const { code, stderr } = await sealOffline(s);
    expect(code).toBe(0);
    expect(stderr).toMatch(new RegExp(`^warning: the data key file ${s.keyFile} has mode 0644: .*; chmod 600 `));
  });
});

describe('sealing into a directory that has the model already', () => {
  test('refuses, saying to pass --force, and leaves both files as they were', async () => {
    const s = setUp();
    const first = JSON.parse((await sealOffline(s)).stdout);
    const sealedBefore = readFileSync(first.artifacts.sealed);
    const again = await sealOffline(s);
    expect({ code: again.code, stdout: again.stdout }).toEqual({ code: 1, stdout: '' });
    expect(again.stderr).toMatch(failure(new RegExp(
      `${first.artifacts.sealed} already exists: pass --force to replace it, or choose another --out or --name`,
    )));
    expect(readFileSync(first.artifacts.sealed).equals(sealedBefore)).toBe(true);
    expect(JSON.parse(readFileSync(first.artifacts.manifest, 'utf8'))).toEqual(first.manifest);
  });

  test('a manifest left alone is refused too', async () => {
    const s = setUp();
    const first = JSON.parse((await sealOffline(s)).stdout);
    unlinkSync(first.artifacts.sealed);
    const again = await sealOffline(s);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(failure(new RegExp(`${first.artifacts.manifest} already exists: pass --force`)));
  });

  test('replaces them with --force', async () => {
    const s = setUp();
    const first = JSON.parse((await sealOffline(s)).stdout);
    const forced = await sealOffline(s, '--force');
    expect(forced.code).toBe(0);
    const { manifest } = JSON.parse(forced.stdout);
    // A fresh salt for every sealing: a new header, which the new manifest describes.
    expect(manifest.headerSha256).not.toBe(first.manifest.headerSha256);
    expect(JSON.parse(readFileSync(first.artifacts.manifest, 'utf8'))).toEqual(manifest);
  });

  test('an --out that is a file is refused', async () => {
    const s = setUp();
    writeFileSync(s.out, 'not a directory');
    const { code, stderr } = await sealOffline(s);
    expect(code).toBe(1);
    expect(stderr).toMatch(failure(new RegExp(`--out ${s.out} is a file, not a directory: choose a directory to seal into`)));
    expect(readFileSync(s.out, 'utf8')).toBe('not a directory');
  });
});

describe('a path that is missing or a directory is named, with what it was meant to be', () => {
  test.each([
    ['the model file, sealing', (s: Fixture) => ['seal', s.dir, '--name', 'm', '--out', s.out, '--data-key-file', s.keyFile],
      'The model file (DIR) is a directory: name the file in it'],
    ['the data key file, sealing', (s: Fixture) => ['seal', s.model, '--out', s.out, '--data-key-file', s.dir],
      'The data key file (DIR) is a directory: name the file in it'],
    ['the data key file, unsealing', (s: Fixture) => ['unseal', s.model, '--out', path.join(s.dir, 'm'), '--data-key-file', path.join(s.dir, 'nokey')],
      'The data key file (DIR)/nokey does not exist: check its path'],
    ['the sealed model', (s: Fixture) => ['unseal', path.join(s.dir, 'x.sealed'), '--out', path.join(s.dir, 'm'), '--data-key-file', s.keyFile],
      'The sealed model (DIR)/x.sealed does not exist: check its path'],
    ['the sealed model, a directory', (s: Fixture) => ['unseal', s.dir, '--out', path.join(s.dir, 'm'), '--data-key-file', s.keyFile],
      'The sealed model (DIR) is a directory: name the file in it'],
    ['the manifest', (s: Fixture) => ['unseal', s.model, '--manifest', path.join(s.dir, 'x.json'), '--out', path.join(s.dir, 'm'), '--data-key-file', s.keyFile],
      'The manifest (DIR)/x.json does not exist: check its path'],
    ['the file to inspect', (s: Fixture) => ['inspect', s.dir], 'The file to inspect (DIR) is a directory: name the file in it'],
    ['the file to inspect, missing', (s: Fixture) => ['inspect', path.join(s.dir, 'x.sealed')],
      'The file to inspect (DIR)/x.sealed does not exist: check its path'],
  ])('%s', async (_name, args, message) => {
    const s = setUp();
    const { code, stdout, stderr } = await runCaptured(args(s));
    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    // The failure is the last line, after any notes.
    expect(stderr.split('\n').slice(-2)).toEqual([`sealed-inference: ${message.replace(/\(DIR\)/g, s.dir)}`, '']);
    expect(readdirSync(s.dir).sort()).toEqual(['key.bin', 'tiny-llm.Q4_K_M.gguf']);
  });
});

describe('unsealing refuses, exit code 1 with the reason, and leaves no output', () => {
  let s: ReturnType<typeof setUp>;
  let sealedFile: string;
  beforeEach(async () => {
    s = setUp();
    sealedFile = JSON.parse((await sealOffline(s)).stdout).artifacts.sealed;
  });
  const unsealTo = (...extra: string[]) =>
    runCaptured(['unseal', sealedFile, '--data-key-file', s.keyFile, '--out', path.join(s.dir, 'model.gguf'), ...extra]);
  const expectNoOutput = () => expect(readdirSync(s.dir).sort()).toEqual(['key.bin', 'sealed', 'tiny-llm.Q4_K_M.gguf']);

  test('a tampered chunk', async () => {
    const bytes = readFileSync(sealedFile);
    // In chunk 2: before the trailer (104 bytes) and the last chunk (200,000 - 3 × 65,536 bytes and its tag).
    bytes[bytes.length - 104 - 3408 - 100] ^= 1;
    writeFileSync(sealedFile, bytes);
    const { code, stdout, stderr } = await unsealTo();
    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    expect(stderr).toMatch(endsWithFailure(/Could not unseal .*tiny-llm.Q4_K_M.sealed: chunk 2 of 4 fails authentication/));
    expectNoOutput();
  });

  test('a truncated file, which inspect also shows', async () => {
    truncateSync(sealedFile, 150_000);
    const { code, stderr } = await unsealTo();
    expect(code).toBe(1);
    expect(stderr).toMatch(endsWithFailure(/Could not unseal .*: the sealed model ends inside chunk 2 of 4/));
    expectNoOutput();
    expect((await runCaptured(['inspect', sealedFile])).stdout).toMatch(/file size: +150000 bytes \(146.5 KiB\), \d+ bytes short: truncated\n/);
  });

  test('the wrong key', async () => {
    writeFileSync(s.keyFile, randomBytes(32));
    const { code, stderr } = await unsealTo();
    expect(code).toBe(1);
    expect(stderr).toMatch(endsWithFailure(/Could not unseal .*: the data key does not open this sealed model/));
    expectNoOutput();
  });

  test('a manifest of another sealing', async () => {
    const other = setUp();
    const otherManifest = JSON.parse((await sealOffline(other)).stdout).artifacts.manifest;
    const { code, stderr } = await unsealTo('--manifest', otherManifest);
    expect(code).toBe(1);
    expect(stderr).toMatch(endsWithFailure(/Could not unseal .*: the manifest's headerSha256 /));
    expectNoOutput();
  });

  test('an output that exists already', async () => {
    writeFileSync(path.join(s.dir, 'model.gguf'), 'keep me');
    const { code, stderr } = await unsealTo();
    expect(code).toBe(1);
    expect(stderr).toMatch(failure(/.*model.gguf already exists: remove it or choose another --out/));
    expect(readFileSync(path.join(s.dir, 'model.gguf'), 'utf8')).toBe('keep me');
  });
});

test('without a manifest beside it, unsealing says it checks the sealed model alone', async () => {
  const s = setUp();
  const { artifacts } = JSON.parse((await sealOffline(s)).stdout);
  const renamed = path.join(s.dir, 'copy.bin');
  writeFileSync(renamed, readFileSync(artifacts.sealed));
  const { code, stderr } = await runCaptured(['unseal', renamed, '--data-key-file', s.keyFile, '--out', path.join(s.dir, 'm')]);
  expect(code).toBe(0);
  expect(stderr).toMatch(/^No manifest beside .*copy.bin: checking the sealed model's own authentication only\n/);
});

test('inspect refuses a file that is neither a sealed model nor a manifest', async () => {
  const s = setUp();
  const { code, stdout, stderr } = await runCaptured(['inspect', s.model]);
  expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
  expect(stderr).toMatch(failure(/.*tiny-llm.Q4_K_M.gguf is neither a sealed model \(no sealed-inference magic\) nor a manifest/));
});

test('unseal requires its key file and output', async () => {
  const { code, stderr } = await runCaptured(['unseal', 'x.sealed', '--out', 'm']);
  expect(code).toBe(2);
  expect(stderr).toMatch(/^sealed-inference: required option '--data-key-file <file>' not specified \(add --help for usage\)\n/);
});
