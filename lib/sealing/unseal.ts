import { createDecipheriv } from 'crypto';
import { open, rename, unlink } from 'fs/promises';
import { ByteReader } from './byte-reader';
import {
  additionalData,
  chunkCount,
  chunkLength,
  decodeTrailer,
  deriveSubKeys,
  headerDigest,
  readHeader,
  SealedHeader,
  SealedTrailer,
  TAG_LENGTH,
  TRAILER_PLAINTEXT_LENGTH,
  verifyHeader,
  nonce,
  wipe,
} from './format';
import { checkManifestHeader, checkManifestTrailer, SealedModelManifest } from './manifest';
import { ChunkSlots } from './chunk-slots';
import { partialFileFor } from './partial-file';
import { PlaintextSha256 } from './plaintext-sha256';
import { SealedModelError } from './sealed-model-error';
import { byteLength, cryptInto } from './slices';

/** How to unseal. */
export interface UnsealOptions {
  /** The 32-byte data key. The caller wipes it; unsealing wipes the keys it derives. */
  readonly dataKey: Buffer;
  /** The model's manifest: every field the unsealer relies on is checked against the authenticated file. */
  readonly manifest?: SealedModelManifest;
  /** Called after each chunk with the plaintext bytes verified so far. */
  readonly onProgress?: (bytes: number, total: number) => void;
  /** Stops unsealing before the next chunk: it then fails with the signal's reason, and nothing is committed. */
  readonly signal?: AbortSignal;
}

/** What was unsealed. */
export interface UnsealResult {
  readonly header: SealedHeader;
  readonly trailer: SealedTrailer;
}

/**
 * Where verified plaintext goes: written in order, then committed once everything is verified, or aborted, so that
 * nothing unverified is ever made available.
 */
export interface PlaintextSink {
  /**
   * The SHA-256 (hex) that the sink itself checks the plaintext against, refusing to commit on a mismatch (as Ollama
   * does with a blob it is sent). The unsealer then does not hash the plaintext itself; it checks that this digest is
   * the authenticated trailer's before it commits.
   *
   * @default - the sink checks nothing: the unsealer hashes the plaintext and compares it with the trailer
   */
  readonly verifiesSha256?: string;
  /** Takes the next verified plaintext, in order; resolves once the sink no longer needs its memory. */
  write(plaintext: Buffer): Promise<void>;
  /** Every chunk, the trailer and the digest are verified: make the plaintext available. */
  commit(): Promise<void>;
  /** Unsealing failed: drop whatever was written. */
  abort(): Promise<void>;
}

/**
 * Unseals a sealed model streamed from `source` into `destination`.
 *
 * The plaintext goes to a temporary file beside the destination (mode 0600) that is renamed only after every
 * chunk, the trailer and the digests are verified; on any failure it is removed, so no plaintext is left behind.
 * Errors are {@link SealedModelError}s saying what failed: wrong key, tampered chunk N, truncated, trailing data,
 * unsupported version, manifest mismatch.
 */
export async function unseal(
  source: AsyncIterable<Buffer | Uint8Array>,
  destination: string,
  options: UnsealOptions,
): Promise<UnsealResult> {
  return unsealInto(source, await openFileSink(destination), options);
}

/** A file written under a temporary name beside `destination` (mode 0600), renamed there on commit. */
async function openFileSink(destination: string): Promise<PlaintextSink> {
  const temporary = partialFileFor(destination);
  const output = await open(temporary, 'wx', 0o600);
  return {
    write: async (plaintext) => void (await output.write(plaintext)),
    commit: async () => {
      await output.sync();
      await output.close();
      await rename(temporary, destination);
    },
    abort: async () => {
      await output.close().catch(() => undefined);
      await unlink(temporary).catch(() => undefined);
    },
  };
}

/** Chunk slots: one being decrypted, up to three being written and hashed. */
const SLOTS = 4;

/**
 * Unseals a sealed model streamed from `source` into `sink`: only authenticated plaintext is written to it, and it
 * is committed only once every chunk, the trailer and the digest are verified, else aborted. Each chunk is
 * decrypted into shared memory that the sink writes and the SHA-256 worker hashes at the same time.
 */
export async function unsealInto(
  source: AsyncIterable<Buffer | Uint8Array>,
  sink: PlaintextSink,
  options: UnsealOptions,
): Promise<UnsealResult> {
  const reader = new ByteReader(source);
  let sha256: PlaintextSha256 | undefined;
  let keys;
  let committed = false;
  // Writes in order; writing chunk i, and hashing it, overlap with reading and decrypting chunk i + 1.
  let writing: Promise<void> = Promise.resolve();
  try {
    const exactPieces = async (n: number, what: string) => {
      const pieces = await reader.readPieces(n);
      if (byteLength(pieces) < n) throw new SealedModelError('truncated', `the sealed model ends inside ${what}`);
      return pieces;
    };
    const exact = async (n: number, what: string) => Buffer.concat(await exactPieces(n, what));
    const raw = await readHeader((n) => exact(n, 'the header'));
    const header = raw.header;
    const digestOfHeader = headerDigest(raw.body);
    if (options.manifest) checkManifestHeader(options.manifest, header, digestOfHeader.toString('hex'));
    keys = deriveSubKeys(options.dataKey, header);
    verifyHeader(raw, keys.header);
    // Started only for a file the key opens, and only when the sink does not check the digest itself.
    if (sink.verifiesSha256 === undefined) sha256 = new PlaintextSha256();

    const count = chunkCount(header);
    const slots = new ChunkSlots(Math.min(header.chunkSize, header.plaintextSize), SLOTS);
    for (let index = 0; index < count; index++) {
      options.signal?.throwIfAborted();
      const what = `chunk ${index} of ${count}`;
      const length = chunkLength(header, index);
      const ciphertext = await exactPieces(length, what);
      const tag = await exact(TAG_LENGTH, what);
      const slot = await slots.take();
      const plaintext = slot.buffer.subarray(0, length);
      openRecord(keys.chunks, digestOfHeader, index, false, ciphertext, tag, what, plaintext);
      const done = Math.min(header.plaintextSize, (index + 1) * header.chunkSize);
      writing = writing.then(async () => {
        await sink.write(plaintext);
        options.onProgress?.(done, header.plaintextSize);
      });
      slots.releaseAfter(slot, sha256 ? [writing, sha256.update(slot, length)] : [writing]);
    }
    await slots.settled();
    const sealedTrailer = await exact(TRAILER_PLAINTEXT_LENGTH, 'the trailer');
    const trailerTag = await exact(TAG_LENGTH, 'the trailer');
    const trailerPlaintext = Buffer.alloc(TRAILER_PLAINTEXT_LENGTH);
    openRecord(keys.chunks, digestOfHeader, count, true, [sealedTrailer], trailerTag, 'the trailer', trailerPlaintext);
    const trailer = decodeTrailer(trailerPlaintext);
    if (!(await reader.atEnd())) {
      throw new SealedModelError('trailing-data', 'the sealed model has bytes after its final record');
    }
    if (trailer.plaintextSize !== header.plaintextSize) {
      throw new SealedModelError('tampered', 'the sealed model\'s trailer and header disagree on its size');
    }
    if (options.manifest) checkManifestTrailer(options.manifest, trailer);
    if (sha256 === undefined) {
      if (trailer.sha256 !== sink.verifiesSha256) {
        throw new SealedModelError(
          'tampered',
          `the sealed model's SHA-256 ${trailer.sha256} is not the ${sink.verifiesSha256} its destination checks`,
        );
      }
    } else if (trailer.sha256 !== (await sha256.digest())) {
      throw new SealedModelError('tampered', 'the unsealed model does not match the SHA-256 sealed with it');
    }

    await sink.commit();
    committed = true;
    return { header, trailer };
  } finally {
    wipe(keys?.header, keys?.chunks);
    await sha256?.close();
    await reader.close();
    if (!committed) {
      await writing.catch(() => undefined);
      await sink.abort();
    }
  }
}

/**
 * Decrypts and authenticates one record into `plaintext`, one buffer that is handed on whole to the sink and the
 * digest workers. Throws if the record fails authentication: the caller uses `plaintext` only when this returns.
 */
function openRecord(
  key: Buffer,
  digestOfHeader: Buffer,
  index: number,
  final: boolean,
  ciphertext: Buffer[],
  tag: Buffer,
  what: string,
  plaintext: Buffer,
): void {
  const decipher = createDecipheriv('aes-256-gcm', key, nonce(index));
  decipher.setAAD(additionalData(digestOfHeader, index, final));
  ciphertext.reduce((offset, piece) => cryptInto(decipher, piece, plaintext, offset), 0);
  decipher.setAuthTag(tag);
  try {
    decipher.final();
  } catch {
    throw new SealedModelError(
      'tampered',
      `${what} fails authentication: it was modified, moved, duplicated or replaced`,
    );
  }
}
