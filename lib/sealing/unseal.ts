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
import { partialFileFor } from './partial-file';
import { PlaintextDigests } from './plaintext-digests';
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
  /** Takes the next verified plaintext, in order; resolves once the sink no longer needs its memory. */
  write(plaintext: Buffer): Promise<void>;
  /** Every chunk, the trailer and the digests are verified: make the plaintext available. */
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

/**
 * Unseals a sealed model streamed from `source` into `sink`: only authenticated plaintext is written to it, and it
 * is committed only once every chunk, the trailer and the digests are verified, else aborted.
 */
export async function unsealInto(
  source: AsyncIterable<Buffer | Uint8Array>,
  sink: PlaintextSink,
  options: UnsealOptions,
): Promise<UnsealResult> {
  const reader = new ByteReader(source);
  const digests = new PlaintextDigests();
  let keys;
  let committed = false;
  // Writing chunk i (then hashing it) overlaps with reading and decrypting chunk i + 1.
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

    const count = chunkCount(header);
    for (let index = 0; index < count; index++) {
      options.signal?.throwIfAborted();
      const what = `chunk ${index} of ${count}`;
      const ciphertext = await exactPieces(chunkLength(header, index), what);
      const tag = await exact(TAG_LENGTH, what);
      const plaintext = digests.buffer(chunkLength(header, index));
      openRecord(keys.chunks, digestOfHeader, index, false, ciphertext, tag, what, plaintext);
      await writing;
      const done = Math.min(header.plaintextSize, (index + 1) * header.chunkSize);
      writing = sink.write(plaintext).then(async () => {
        await digests.update([plaintext]);
        options.onProgress?.(done, header.plaintextSize);
      });
    }
    await writing;
    const sealedTrailer = await exact(TRAILER_PLAINTEXT_LENGTH, 'the trailer');
    const trailerTag = await exact(TAG_LENGTH, 'the trailer');
    const trailerPlaintext = Buffer.alloc(TRAILER_PLAINTEXT_LENGTH);
    openRecord(keys.chunks, digestOfHeader, count, true, [sealedTrailer], trailerTag, 'the trailer', trailerPlaintext);
    const trailer = decodeTrailer(trailerPlaintext);
    if (!(await reader.atEnd())) {
      throw new SealedModelError('trailing-data', 'the sealed model has bytes after its final record');
    }
    const computed = await digests.digest();
    if (
      trailer.plaintextSize !== header.plaintextSize ||
      trailer.sha256 !== computed.sha256 ||
      trailer.sha384 !== computed.sha384
    ) {
      throw new SealedModelError('tampered', 'the unsealed model does not match the digests sealed with it');
    }
    if (options.manifest) checkManifestTrailer(options.manifest, trailer);

    await sink.commit();
    committed = true;
    return { header, trailer };
  } finally {
    wipe(keys?.header, keys?.chunks);
    await digests.close();
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
