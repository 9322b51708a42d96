import { createCipheriv, randomBytes } from 'crypto';
import { open } from 'fs/promises';
import { checkModelName } from '../shared/model-identity';
import {
  additionalData,
  chunkCount,
  chunkLength,
  DEFAULT_CHUNK_SIZE,
  deriveSubKeys,
  encodeHeader,
  encodeTrailer,
  headerDigest,
  HEADER_MAC_LENGTH,
  MAX_CHUNK_SIZE,
  newHeader,
  nonce,
  SALT_LENGTH,
  SealedHeader,
  SealedTrailer,
  wipe,
} from './format';
import { ChunkSlots } from './chunk-slots';
import { PlaintextSha256 } from './plaintext-sha256';
import { SealedModelError } from './sealed-model-error';
import { byteLength, cryptInSlices } from './slices';

/** How to seal. */
export interface SealOptions {
  /** The 32-byte data key. The caller wipes it; sealing wipes the keys it derives. */
  readonly dataKey: Buffer;
  /** The model's name, as in the data key's encryption context. */
  readonly modelName: string;
  /** Plaintext bytes per chunk. */
  readonly chunkSize?: number;
  /** Called after each chunk with the plaintext bytes sealed so far. */
  readonly onProgress?: (bytes: number) => void;
  /** Stops sealing before the next chunk: it then fails with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** What was sealed. */
export interface SealResult {
  readonly header: SealedHeader;
  readonly trailer: SealedTrailer;
  /** SHA-256 of the header's bytes (without MAC), which every chunk is bound to. */
  readonly headerSha256: string;
  readonly sealedSize: number;
}

/** Receives the sealed file's bytes in order; resolves when they may be released. */
export type SealedSink = (pieces: Buffer[]) => Promise<void>;

/** Chunk slots: one being read, one being encrypted and hashed, one the hash may still be reading. */
const SLOTS = 3;

/**
 * Seals the model file at `sourcePath`, streaming the sealed bytes to `sink` with memory bounded by a few chunks.
 * Each chunk is read into shared memory that the SHA-256 worker hashes while this thread encrypts it; reading the
 * next chunk and delivering the previous one overlap with both. Fails if the file changes size while sealed.
 */
export async function seal(sourcePath: string, sink: SealedSink, options: SealOptions): Promise<SealResult> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) {
    throw new RangeError(`chunk size must be 1 to ${MAX_CHUNK_SIZE} bytes, got ${chunkSize}`);
  }
  checkModelName(options.modelName);
  const file = await open(sourcePath, 'r');
  const sha256 = new PlaintextSha256();
  let keys;
  // Delivering chunk i - 1 overlaps with sealing chunk i; on a failure, the delivery in flight is waited for.
  let delivering: Promise<void> = Promise.resolve();
  let reading: Promise<unknown> = Promise.resolve();
  try {
    const plaintextSize = (await file.stat()).size;
    const header = newHeader(options.modelName, plaintextSize, chunkSize, randomBytes(SALT_LENGTH));
    keys = deriveSubKeys(options.dataKey, header);
    const encodedHeader = encodeHeader(header, keys.header);
    const digestOfHeader = headerDigest(encodedHeader.subarray(0, encodedHeader.length - HEADER_MAC_LENGTH));
    await sink([encodedHeader]);
    let sealedSize = encodedHeader.length;

    const count = chunkCount(header);
    const slots = new ChunkSlots(Math.min(chunkSize, plaintextSize), SLOTS);
    const readChunk = (index: number) => {
      const read = (async () => {
        const slot = await slots.take();
        const length = chunkLength(header, index);
        const { bytesRead } = await file.read(slot.buffer, 0, length, index * chunkSize);
        if (bytesRead !== length) throw changed(sourcePath);
        return { slot, plaintext: slot.buffer.subarray(0, length) };
      })();
      // A read that fails while an earlier step already failed is reported by that step.
      read.catch(() => undefined);
      reading = read;
      return read;
    };
    let next = count > 0 ? readChunk(0) : undefined;
    for (let index = 0; index < count; index++) {
      options.signal?.throwIfAborted();
      const { slot, plaintext } = await next!;
      const hashed = sha256.update(slot, plaintext.length);
      slots.releaseAfter(slot, [hashed]);
      next = index + 1 < count ? readChunk(index + 1) : undefined;
      const sealed = sealRecord(keys.chunks, digestOfHeader, index, false, plaintext);
      await delivering;
      delivering = sink(sealed);
      sealedSize += byteLength(sealed);
      options.onProgress?.(Math.min(plaintextSize, (index + 1) * chunkSize));
    }
    await delivering;
    const { bytesRead } = await file.read(Buffer.alloc(1), 0, 1, plaintextSize);
    if (bytesRead !== 0) throw changed(sourcePath);

    await slots.settled();
    const trailer: SealedTrailer = { plaintextSize, sha256: await sha256.digest() };
    const sealedTrailer = sealRecord(keys.chunks, digestOfHeader, count, true, encodeTrailer(trailer));
    await sink(sealedTrailer);
    sealedSize += byteLength(sealedTrailer);
    return { header, trailer, headerSha256: digestOfHeader.toString('hex'), sealedSize };
  } finally {
    await Promise.all([delivering.catch(() => undefined), reading.catch(() => undefined)]);
    wipe(keys?.header, keys?.chunks);
    await sha256.close();
    await file.close();
  }
}

/** One AES-256-GCM record: the ciphertext pieces followed by the tag. */
function sealRecord(key: Buffer, digestOfHeader: Buffer, index: number, final: boolean, plaintext: Buffer): Buffer[] {
  const cipher = createCipheriv('aes-256-gcm', key, nonce(index));
  cipher.setAAD(additionalData(digestOfHeader, index, final));
  const pieces = cryptInSlices(cipher, plaintext);
  cipher.final();
  pieces.push(cipher.getAuthTag());
  return pieces;
}

function changed(path: string): SealedModelError {
  return new SealedModelError('source-changed', `${path} changed while it was being sealed`);
}
