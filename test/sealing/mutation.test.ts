import { randomBytes } from 'crypto';
import { Readable } from 'stream';
import { HEADER_MAC_LENGTH, MAGIC } from '../../lib/sealing/format';
import { buildManifest, parseManifest, SealedModelManifest } from '../../lib/sealing/manifest';
import { seal, SealResult } from '../../lib/sealing/seal';
import { SealedModelError, SealedModelFailure } from '../../lib/sealing/sealed-model-error';
import { PlaintextSink, unsealInto } from '../../lib/sealing/unseal';
import { mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';

/**
 * Random mutations of a sealed model, its header and its manifest: every refusal must be a SealedModelError with a
 * kind, never a TypeError or a plain Error from a check that assumed a field's type. Seeded, so a failure repeats.
 */

const KINDS: SealedModelFailure[] = [
  'not-sealed', 'malformed', 'unsupported-version', 'wrong-key', 'tampered', 'truncated', 'trailing-data',
  'manifest-mismatch', 'source-changed',
];
const MUTATIONS = 2000;
const KEY = randomBytes(32);

/** mulberry32: a small seeded generator, so that the mutations are the same in every run. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Values a field can be replaced with: of every JSON type, and strings and objects that trip naive checks. */
const ODD_VALUES: unknown[] = [
  null, true, false, 0, -1, 1.5, 2 ** 53, 1e308, '', 'x', '../../etc', 'a b', 'llama\n', '٣', [], [1], {},
  { toString: 1 }, { valueOf: 'x' }, { __proto__: null }, 'AES-256-GCM', 'sealed-inference/model', 2, 'ab'.repeat(32),
];

interface Original {
  readonly sealed: Buffer;
  readonly result: SealResult;
  readonly manifest: SealedModelManifest;
  readonly headerJson: Record<string, unknown>;
  /** Magic, length, JSON and MAC. */
  readonly headerLength: number;
}

async function sealed(): Promise<Original> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mutation-'));
  const model = path.join(dir, 'model.gguf');
  writeFileSync(model, randomBytes(3000));
  const pieces: Buffer[] = [];
  const result = await seal(model, async (p) => void pieces.push(...p), { dataKey: KEY, modelName: 'llama', chunkSize: 1024 });
  const bytes = Buffer.concat(pieces);
  const jsonLength = bytes.readUInt32BE(MAGIC.length);
  const headerJson = JSON.parse(bytes.subarray(MAGIC.length + 4, MAGIC.length + 4 + jsonLength).toString('utf8'));
  return {
    sealed: bytes, result, manifest: buildManifest(result), headerJson,
    headerLength: MAGIC.length + 4 + jsonLength + HEADER_MAC_LENGTH,
  };
}

/** The sealed file with its header JSON replaced by `json` (the old MAC kept: the checks come first). */
function withHeader(original: Original, json: string): Buffer {
  const body = Buffer.from(json, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  const mac = original.sealed.subarray(original.headerLength - HEADER_MAC_LENGTH, original.headerLength);
  return Buffer.concat([MAGIC, length, body, mac, original.sealed.subarray(original.headerLength)]);
}

/** An object with one field replaced, removed or added; or a value that is no object at all. */
function mutateObject(random: () => number, object: Record<string, unknown>): unknown {
  const pick = <T>(values: readonly T[]) => values[Math.floor(random() * values.length)];
  const choice = random();
  if (choice < 0.05) return pick(ODD_VALUES);
  const key = pick(Object.keys(object));
  const copy: Record<string, unknown> = { ...object };
  if (choice < 0.15) delete copy[key];
  else if (choice < 0.2) copy[pick(['extra', 'constructor', 'toString'])] = pick(ODD_VALUES);
  else copy[key] = pick(ODD_VALUES);
  return copy;
}

/** A sealed file with bytes flipped, cut or appended at random. */
function mutateBytes(random: () => number, bytes: Buffer): Buffer {
  const copy = Buffer.from(bytes);
  const at = Math.floor(random() * copy.length);
  const choice = random();
  if (choice < 0.6) {
    copy[at] ^= 1 << Math.floor(random() * 8);
    return copy;
  }
  if (choice < 0.8) return copy.subarray(0, at);
  return Buffer.concat([copy, randomBytes(1 + Math.floor(random() * 40))]);
}

/**
 * A sink that keeps nothing: these tests look only at how unsealing ends. Given a digest, it stands for one that
 * checks it itself (as Ollama does), so that the unsealer starts no hashing thread: 4,000 of them take long.
 */
function discard(verifiesSha256?: string): PlaintextSink {
  return { verifiesSha256, write: async () => undefined, commit: async () => undefined, abort: async () => undefined };
}

async function outcome(bytes: Buffer, manifest?: SealedModelManifest, verifiesSha256?: string): Promise<unknown> {
  try {
    await unsealInto(Readable.from([bytes]), discard(verifiesSha256), { dataKey: KEY, manifest });
    return undefined;
  } catch (error) {
    return error;
  }
}

function expectKind(error: unknown, what: string): void {
  if (error === undefined) return;
  if (!(error instanceof SealedModelError) || !KINDS.includes(error.kind)) {
    throw new Error(`${what} was refused with ${String(error)} instead of a SealedModelError with a kind`);
  }
}

let original: Original;
beforeAll(async () => {
  original = await sealed();
});

test(`${MUTATIONS} mutations of a sealed model and its header: every refusal is a SealedModelError with a kind`, async () => {
  const random = generator(20261205);
  const kinds = new Map<string, number>();
  for (let i = 0; i < MUTATIONS; i++) {
    const headerMutation = random() < 0.5;
    const json = headerMutation ? JSON.stringify(mutateObject(random, original.headerJson)) : undefined;
    const bytes = json === undefined ? mutateBytes(random, original.sealed) : withHeader(original, json);
    const manifest = random() < 0.5 ? original.manifest : undefined;
    const error = await outcome(bytes, manifest, random() < 0.9 ? original.manifest.sha256 : undefined);
    expectKind(error, `mutation ${i} (${json ?? 'bytes'})`);
    const kind = error instanceof SealedModelError ? error.kind : 'accepted';
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  // The mutations reach the checks they are meant for, not only the first one.
  expect([...kinds.keys()]).toEqual(expect.arrayContaining(['malformed', 'unsupported-version', 'wrong-key', 'tampered', 'truncated']));
}, 120_000);

test(`${MUTATIONS} mutations of a manifest: every refusal is a SealedModelError with a kind`, async () => {
  const random = generator(4242);
  const base = original.manifest as unknown as Record<string, unknown>;
  for (let i = 0; i < MUTATIONS; i++) {
    const json = JSON.stringify(mutateObject(random, base));
    let error: unknown;
    try {
      await outcome(original.sealed, parseManifest(json), original.manifest.sha256);
    } catch (e) {
      error = e;
    }
    expectKind(error, `manifest mutation ${i} (${json})`);
  }
}, 120_000);

test.each([
  ['a header that is JSON null', 'null', 'malformed', /the header is not a JSON object: null/],
  ['a header that is an array', '[1]', 'malformed', /not a JSON object: \[1\]/],
  ['a cipher that is an object', { cipher: { toString: 1 } }, 'malformed', /bad cipher {"toString":1}/],
  ['an invalid model name', { modelName: '../x' }, 'malformed', /bad modelName "..\/x"/],
  ['a model name that is a number', { modelName: 7 }, 'malformed', /bad modelName 7/],
  ['a version that is a string', { version: '2' }, 'unsupported-version', /version "2" is not supported/],
])('%s is refused with a kind and the value quoted', async (_, change, kind, message) => {
  const json = typeof change === 'string' ? change : JSON.stringify({ ...original.headerJson, ...change });
  await expect(outcome(withHeader(original, json))).resolves.toMatchObject({ kind, message: expect.stringMatching(message) });
});

test.each([
  ['null', /the manifest is not a JSON object: null/],
  ['"text"', /not a JSON object: "text"/],
  ['{"formatVersion": 2, "modelName": {"toString": 1}}', /bad or missing modelName {"toString":1}/],
])('a manifest %s is refused as malformed, its value quoted', (json, message) => {
  expect(() => parseManifest(json)).toThrow(expect.objectContaining({ kind: 'malformed', message: expect.stringMatching(message) }));
});
