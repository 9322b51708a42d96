/**
 * One measured phase of the sealing benchmark, in a process of its own so that its peak RSS is its own.
 * Usage: run-phase.ts <phase> <input> <output> <key-file>, where phase is
 *   seal          seals <input> into <output>, and writes its manifest to <output>.manifest.json
 *   unseal        unseals <input> (with <input>.manifest.json) into the file <output>
 *   unseal-ollama unseals <input> (with <input>.manifest.json) into an Ollama blob upload to the URL <output>
 *   upload        uploads the plaintext <input> as it is to the Ollama URL <output>, named by the manifest of the
 *                 sealed file given in place of the key file
 *   gcm-8k        encrypts <input> into <output> as AWS's sample does
 * Prints one JSON line: { seconds, maxRssMiB }.
 */
import { createCipheriv, randomBytes } from 'crypto';
import { createReadStream, createWriteStream, readFileSync, writeFileSync } from 'fs';
import { open } from 'fs/promises';
import { pipeline } from 'stream/promises';
import { Transform } from 'stream';
import { OllamaClient } from '../lib/appliance/ollama-client';
import { buildManifest, parseManifest } from '../lib/sealing/manifest';
import { seal } from '../lib/sealing/seal';
import { unseal, unsealInto } from '../lib/sealing/unseal';

/** 1 MiB reads, as the appliance's S3 reader delivers the sealed model in parts. */
const READ_SIZE = 1 << 20;

async function sealToFile(input: string, output: string, dataKey: Buffer): Promise<void> {
  const out = await open(output, 'w');
  try {
    const sealed = await seal(input, async (pieces) => void (await out.writev(pieces)), { dataKey, modelName: 'bench' });
    writeFileSync(`${output}.manifest.json`, JSON.stringify(buildManifest(sealed)));
  } finally {
    await out.close();
  }
}

const manifestOf = (sealed: string) => parseManifest(readFileSync(`${sealed}.manifest.json`, 'utf8'));

/** The appliance's boot path: unsealed straight into an Ollama blob upload, which checks the SHA-256 itself. */
async function unsealIntoOllama(input: string, url: string, dataKey: Buffer): Promise<void> {
  const manifest = manifestOf(input);
  const upload = new OllamaClient(url).uploadBlob(manifest.sha256, manifest.plaintextSize);
  await unsealInto(createReadStream(input, { highWaterMark: READ_SIZE }), upload, { dataKey, manifest });
}

/** The plaintext uploaded as it is, named by the manifest of its sealed copy: how fast the blob store takes a blob. */
async function upload(input: string, url: string, sealed: string): Promise<void> {
  const manifest = manifestOf(sealed);
  const sink = new OllamaClient(url).uploadBlob(manifest.sha256, manifest.plaintextSize);
  for await (const piece of createReadStream(input, { highWaterMark: READ_SIZE })) await sink.write(piece);
  await sink.commit();
}

/** What AWS's sample does: AES-256-GCM over 8 KiB chunks, a random IV and a tag per chunk. */
async function gcm8k(input: string, output: string, dataKey: Buffer): Promise<void> {
  const encrypt = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      for (let offset = 0; offset < chunk.length; offset += 8192) {
        const iv = randomBytes(12);
        const cipher = createCipheriv('aes-256-gcm', dataKey, iv);
        const ciphertext = cipher.update(chunk.subarray(offset, offset + 8192));
        cipher.final();
        this.push(Buffer.concat([iv, ciphertext, cipher.getAuthTag()]));
      }
      callback();
    },
  });
  await pipeline(createReadStream(input, { highWaterMark: 8192 }), encrypt, createWriteStream(output));
}

async function main(): Promise<void> {
  const [phase, input, output, keyFile] = process.argv.slice(2);
  const dataKey = phase === 'upload' ? Buffer.alloc(0) : readFileSync(keyFile);
  const start = process.hrtime.bigint();
  if (phase === 'seal') await sealToFile(input, output, dataKey);
  else if (phase === 'unseal') {
    await unseal(createReadStream(input, { highWaterMark: READ_SIZE }), output, { dataKey, manifest: manifestOf(input) });
  } else if (phase === 'unseal-ollama') await unsealIntoOllama(input, output, dataKey);
  else if (phase === 'upload') await upload(input, output, keyFile);
  else if (phase === 'gcm-8k') await gcm8k(input, output, dataKey);
  else throw new Error(`unknown phase ${phase}`);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({ seconds, maxRssMiB: process.resourceUsage().maxRSS / 1024 }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
