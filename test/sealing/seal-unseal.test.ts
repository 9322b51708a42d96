import { randomBytes } from 'crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { Readable } from 'stream';
import { MAGIC, TAG_LENGTH, TRAILER_PLAINTEXT_LENGTH } from '../../lib/sealing/format';
import { buildManifest, SealedModelManifest } from '../../lib/sealing/manifest';
import { seal, SealResult } from '../../lib/sealing/seal';
import { SealedModelError } from '../../lib/sealing/sealed-model-error';
import { PlaintextSink, unseal, unsealInto } from '../../lib/sealing/unseal';

const CHUNK = 1024;
const KEY = randomBytes(32);

interface Sealed {
  dir: string;
  plaintext: Buffer;
  sealed: Buffer;
  result: SealResult;
  manifest: SealedModelManifest;
  headerLength: number;
}

async function sealBytes(plaintext: Buffer, chunkSize = CHUNK): Promise<Sealed> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealing-'));
  writeFileSync(path.join(dir, 'model.gguf'), plaintext);
  const pieces: Buffer[] = [];
  const result = await seal(path.join(dir, 'model.gguf'), async (p) => void pieces.push(...p), {
    dataKey: KEY,
    modelName: 'llama',
    chunkSize,
  });
  const sealed = Buffer.concat(pieces);
  const headerLength = sealed.length - (result.sealedSize - sealed.length) - bodyLength(result);
  return { dir, plaintext, sealed, result, manifest: buildManifest(result), headerLength };
}

function bodyLength(result: SealResult): number {
  const chunks = Math.ceil(result.header.plaintextSize / result.header.chunkSize);
  return result.header.plaintextSize + chunks * TAG_LENGTH + TRAILER_PLAINTEXT_LENGTH + TAG_LENGTH;
}

/** Unseals `bytes` into the sealed model's folder, fed in uneven pieces as a network stream would be. */
async function unsealBytes(s: Sealed, bytes: Buffer, options: { key?: Buffer; manifest?: SealedModelManifest } = {}) {
  const pieces = [];
  for (let offset = 0; offset < bytes.length; offset += 777) pieces.push(bytes.subarray(offset, offset + 777));
  const destination = path.join(s.dir, 'unsealed.gguf');
  const result = await unseal(Readable.from(pieces), destination, {
    dataKey: options.key ?? KEY,
    manifest: 'manifest' in options ? options.manifest : s.manifest,
  });
  return { result, plaintext: readFileSync(destination) };
}

/** Expects unsealing to fail with `kind` and a message matching `message`, leaving no file behind. */
async function expectRefused(s: Sealed, bytes: Buffer, kind: string, message: RegExp, options = {}) {
  const error = await unsealBytes(s, bytes, options).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(SealedModelError);
  expect(error).toMatchObject({ kind, message: expect.stringMatching(message) });
  expect(readdirSync(s.dir)).toEqual(['model.gguf']);
}

const record = (s: Sealed, index: number) => {
  const start = s.headerLength + index * (CHUNK + TAG_LENGTH);
  return s.sealed.subarray(start, start + CHUNK + TAG_LENGTH);
};

describe('round trip', () => {
  test.each([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 17])('%d bytes', async (size) => {
    const s = await sealBytes(randomBytes(size));
    expect(s.sealed.subarray(0, 8)).toEqual(MAGIC);
    expect(s.sealed.length).toBe(s.result.sealedSize);
    const { plaintext, result } = await unsealBytes(s, s.sealed);
    expect(plaintext.equals(s.plaintext)).toBe(true);
    expect(result.trailer.plaintextSize).toBe(size);
    expect(readdirSync(s.dir).sort()).toEqual(['model.gguf', 'unsealed.gguf']);
  });

  test("records the model's SHA-256, its one digest", async () => {
    const s = await sealBytes(Buffer.from('hello'));
    expect(s.manifest).toMatchObject({
      formatVersion: 2,
      modelName: 'llama',
      plaintextSize: 5,
      chunkSize: CHUNK,
      sha256: '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824',
      encryptionContext: { 'sealed-inference:model': 'llama', 'sealed-inference:format': '2' },
    });
    expect(s.manifest).not.toHaveProperty('sha384');
    expect(s.result.trailer).toEqual({ plaintextSize: 5, sha256: s.manifest.sha256 });
  });

  test('never repeats a nonce under a reused data key: each file derives its own keys', async () => {
    const plaintext = randomBytes(CHUNK);
    const [a, b] = await Promise.all([sealBytes(plaintext), sealBytes(plaintext)]);
    expect(record(a, 0).equals(record(b, 0))).toBe(false);
  });
});

describe('tampering is detected and leaves no plaintext', () => {
  let s: Sealed;
  beforeAll(async () => {
    s = await sealBytes(randomBytes(4 * CHUNK + 100));
  });
  const edit = (change: (copy: Buffer) => Buffer) => change(Buffer.from(s.sealed));
  /** The sealed file with its first four (full) chunks replaced by `records`. */
  const withChunks = (...indices: number[]) =>
    Buffer.concat([
      s.sealed.subarray(0, s.headerLength),
      ...indices.map((i) => record(s, i)),
      s.sealed.subarray(s.headerLength + 4 * (CHUNK + TAG_LENGTH)),
    ]);

  test('a flipped bit in chunk 2', async () => {
    const bytes = edit((b) => ((b[s.headerLength + 2 * (CHUNK + TAG_LENGTH) + 10] ^= 1), b));
    await expectRefused(s, bytes, 'tampered', /^chunk 2 of 5 fails authentication/);
  });

  test('a flipped bit in a tag', async () => {
    const bytes = edit((b) => ((b[s.headerLength + CHUNK + 3] ^= 0x80), b));
    await expectRefused(s, bytes, 'tampered', /^chunk 0 of 5 fails authentication/);
  });

  test.each([
    ['two chunks swapped', [1, 0, 2, 3], /^chunk 0 of 5/],
    ['a chunk duplicated in place of another', [0, 0, 2, 3], /^chunk 1 of 5/],
    ['a chunk dropped', [0, 2, 3], /^chunk 1 of 5/],
    ['a chunk duplicated in addition', [0, 1, 1, 2, 3], /^chunk 2 of 5/],
  ])('%s', async (_, indices, message) => {
    await expectRefused(s, withChunks(...indices), 'tampered', message);
  });

  test('bytes appended after the final record', async () => {
    await expectRefused(s, Buffer.concat([s.sealed, Buffer.from('x')]), 'trailing-data', /bytes after its final record/);
  });

  test.each([
    ['inside a chunk', (n: number) => n - 500],
    ['at a chunk boundary, before the trailer', (n: number) => n - TRAILER_PLAINTEXT_LENGTH - TAG_LENGTH],
    ['inside the header', () => 20],
    ['to nothing', () => 0],
  ])('truncated %s', async (_, cut) => {
    await expectRefused(s, s.sealed.subarray(0, cut(s.sealed.length)), 'truncated', /ends inside/);
  });

  test('a modified header', async () => {
    const bytes = Buffer.from(s.sealed.toString('latin1').replace('"modelName":"llama"', '"modelName":"llamb"'), 'latin1');
    await expectRefused(s, bytes, 'wrong-key', /does not open this sealed model/, { manifest: undefined });
  });

  test('a wrong key', async () => {
    await expectRefused(s, s.sealed, 'wrong-key', /wrong key or wrong encryption context/, { key: randomBytes(32) });
  });

  test('an unsupported version', async () => {
    const bytes = Buffer.from(s.sealed.toString('latin1').replace('"version":2', '"version":9'), 'latin1');
    await expectRefused(s, bytes, 'unsupported-version', /version 9 is not supported/);
  });

  test('not a sealed model at all', async () => {
    await expectRefused(s, s.plaintext, 'not-sealed', /not a sealed model/);
  });

  test.each([
    ['sha256', { sha256: 'ab'.repeat(32) }],
    ['chunkSize', { chunkSize: 2 * CHUNK }],
    ['modelName', { modelName: 'other' }],
    ['plaintextSize', { plaintextSize: 1 }],
    ['headerSha256', { headerSha256: 'cd'.repeat(32) }],
  ])("a manifest whose %s was edited", async (field, change) => {
    await expectRefused(s, s.sealed, 'manifest-mismatch', new RegExp(`manifest's ${field}`), {
      manifest: { ...s.manifest, ...change },
    });
  });
});

test('refuses a model that changes while it is sealed', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealing-'));
  const file = path.join(dir, 'model.gguf');
  writeFileSync(file, randomBytes(3 * CHUNK));
  let grown = false;
  const error = await seal(
    file,
    async () => {
      if (!grown) writeFileSync(file, randomBytes(5 * CHUNK));
      grown = true;
    },
    { dataKey: KEY, modelName: 'llama', chunkSize: CHUNK },
  ).catch((e: unknown) => e);
  expect(error).toMatchObject({ kind: 'source-changed', message: expect.stringContaining('changed while it was being sealed') });
});

test('refuses a bad model name and chunk size before reading anything', async () => {
  await expect(seal('/nonexistent', async () => undefined, { dataKey: KEY, modelName: 'a b' })).rejects.toThrow(/Model name/);
  await expect(seal('/nonexistent', async () => undefined, { dataKey: KEY, modelName: 'a', chunkSize: 0 })).rejects.toThrow(
    /chunk size must be 1 to/,
  );
});

describe('a sink that checks the SHA-256 itself', () => {
  const sink = (verifiesSha256: string, events: string[], failWrite = false): PlaintextSink => ({
    verifiesSha256,
    write: async () => {
      events.push('write');
      if (failWrite) throw new Error('the destination broke');
    },
    commit: async () => void events.push('commit'),
    abort: async () => void events.push('abort'),
  });

  test('is committed when its digest is the trailer’s', async () => {
    const s = await sealBytes(randomBytes(3 * CHUNK));
    const events: string[] = [];
    await unsealInto(Readable.from([s.sealed]), sink(s.manifest.sha256, events), { dataKey: KEY, manifest: s.manifest });
    expect(events).toEqual(['write', 'write', 'write', 'commit']);
  });

  test('is aborted, never committed, when it would check another digest', async () => {
    const s = await sealBytes(randomBytes(3 * CHUNK));
    const events: string[] = [];
    const error = await unsealInto(Readable.from([s.sealed]), sink('ab'.repeat(32), events), { dataKey: KEY }).catch((e) => e);
    expect(error).toMatchObject({ kind: 'tampered', message: expect.stringMatching(/is not the abab.* its destination checks/) });
    expect(events.at(-1)).toBe('abort');
    expect(events).not.toContain('commit');
  });

  test('a failing write stops unsealing with its error, and the sink is aborted', async () => {
    const s = await sealBytes(randomBytes(6 * CHUNK));
    const events: string[] = [];
    await expect(unsealInto(Readable.from([s.sealed]), sink(s.manifest.sha256, events, true), { dataKey: KEY }))
      .rejects.toThrow('the destination broke');
    expect(events).toEqual(['write', 'abort']);
  });
});
