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
import { PlaintextDigests } from './plaintext-digests';
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

/**
 * Seals the model file at `sourcePath`, streaming the sealed bytes to `sink` with memory bounded by a few chunks.
 * Reading the next chunk overlaps with encrypting the current one. Fails if the file changes size while sealed.
 */
export async function seal(sourcePath: string, sink: SealedSink, options: SealOptions): Promise<SealResult> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) {
    throw new RangeError(`chunk size must be 1 to ${MAX_CHUNK_SIZE} bytes, got ${chunkSize}`);
  }
  checkModelName(options.modelName);
  const file = await open(sourcePath, 'r');
  const digests = new PlaintextDigests();
  let keys;
  // Delivering chunk i - 1 overlaps with sealing chunk i; on a failure, the delivery in flight is waited for.
  let delivering: Promise<void> = Promise.resolve();
  try {
    const plaintextSize = (await file.stat()).size;
    const header = newHeader(options.modelName, plaintextSize, chunkSize, randomBytes(SALT_LENGTH));
    keys = deriveSubKeys(options.dataKey, header);
    const encodedHeader = encodeHeader(header, keys.header);
    const digestOfHeader = headerDigest(encodedHeader.subarray(0, encodedHeader.length - HEADER_MAC_LENGTH));
    await sink([encodedHeader]);
    let sealedSize = encodedHeader.length;

    const count = chunkCount(header);
    const readChunk = async (index: number) => {
      const length = chunkLength(header, index);
      const buffer = digests.buffer(length);
      const { bytesRead } = await file.read(buffer, 0, length, index * chunkSize);
      if (bytesRead !== length) throw changed(sourcePath);
      return buffer;
    };
    // Reading chunk i + 1 and delivering chunk i - 1 overlap with encrypting chunk i.
    let next = count > 0 ? readChunk(0) : undefined;
    for (let index = 0; index < count; index++) {
      options.signal?.throwIfAborted();
      const plaintext = await next!;
      next = index + 1 < count ? readChunk(index + 1) : undefined;
      const sealed = sealRecord(keys.chunks, digestOfHeader, index, false, plaintext);
      await digests.update([plaintext]);
      await delivering;
      delivering = sink(sealed);
      sealedSize += byteLength(sealed);
      options.onProgress?.(Math.min(plaintextSize, (index + 1) * chunkSize));
    }
    await delivering;
    const { bytesRead } = await file.read(Buffer.alloc(1), 0, 1, plaintextSize);
    if (bytesRead !== 0) throw changed(sourcePath);

    const trailer: SealedTrailer = { plaintextSize, ...(await digests.digest()) };
    const sealedTrailer = sealRecord(keys.chunks, digestOfHeader, count, true, encodeTrailer(trailer));
    await sink(sealedTrailer);
    sealedSize += byteLength(sealedTrailer);
    return { header, trailer, headerSha256: digestOfHeader.toString('hex'), sealedSize };
  } finally {
    await delivering.catch(() => undefined);
    wipe(keys?.header, keys?.chunks);
    await digests.close();
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
