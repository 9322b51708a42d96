import { randomBytes } from 'crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { sealToDirectory } from '../../lib/sealing/seal-to-directory';

const KEY = randomBytes(32);
const dir = mkdtempSync(path.join(tmpdir(), 'seal-to-directory-'));
const model = path.join(dir, 'model.gguf');
const out = path.join(dir, 'out');
writeFileSync(model, randomBytes(5000));
const options = { modelName: 'llama', dataKey: KEY, chunkSize: 1024 };

test('a sealing that fails midway leaves the earlier sealing as it was, and no partial file', async () => {
  const first = await sealToDirectory(model, out, options);
  const before = readdirSync(out).map((f) => [f, readFileSync(path.join(out, f))]);
  expect(before.map(([f]) => f)).toEqual(['llama.manifest.json', 'llama.sealed']);

  const onProgress = (bytes: number) => {
    if (bytes > 2048) throw new Error('interrupted');
  };
  await expect(sealToDirectory(model, out, { ...options, onProgress })).rejects.toThrow('interrupted');
  expect(readdirSync(out).map((f) => [f, readFileSync(path.join(out, f))])).toEqual(before);

  const second = await sealToDirectory(model, out, options);
  expect(second.manifest.headerSha256).not.toBe(first.manifest.headerSha256);
  expect(JSON.parse(readFileSync(second.files.manifest, 'utf8'))).toEqual(second.manifest);
  expect(readdirSync(out)).toEqual(['llama.manifest.json', 'llama.sealed']);
});
