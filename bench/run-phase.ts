/**
 * One measured phase of the sealing benchmark, in a process of its own so that its peak RSS is its own.
 * Usage: run-phase.ts <seal|unseal|gcm-8k> <input> <output> <key-file>
 * Prints one JSON line: { seconds, maxRssMiB }.
 */
import { createCipheriv, randomBytes } from 'crypto';
import { createReadStream, createWriteStream, readFileSync } from 'fs';
import { open } from 'fs/promises';
import { pipeline } from 'stream/promises';
import { Transform } from 'stream';
import { seal } from '../lib/sealing/seal';
import { unseal } from '../lib/sealing/unseal';

async function sealToFile(input: string, output: string, dataKey: Buffer): Promise<void> {
  const out = await open(output, 'w');
  try {
    await seal(input, async (pieces) => void (await out.writev(pieces)), { dataKey, modelName: 'bench' });
  } finally {
    await out.close();
  }
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
  const dataKey = readFileSync(keyFile);
  const start = process.hrtime.bigint();
  if (phase === 'seal') await sealToFile(input, output, dataKey);
  else if (phase === 'unseal') await unseal(createReadStream(input, { highWaterMark: 1 << 20 }), output, { dataKey });
  else if (phase === 'gcm-8k') await gcm8k(input, output, dataKey);
  else throw new Error(`unknown phase ${phase}`);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({ seconds, maxRssMiB: process.resourceUsage().maxRSS / 1024 }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
