import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'crypto';
import { isModelName } from '../shared/model-identity';
import { SealedModelError } from './sealed-model-error';

/**
 * The sealed model format, version 2 (specified in docs/sealed-model-format.md):
 *
 *   magic (8) | header length (u32 BE) | header (JSON) | header MAC (32)
 *   chunk 0 … chunk n-1: AES-256-GCM ciphertext of up to `chunkSize` bytes | tag (16)
 *   trailer: AES-256-GCM ciphertext of plaintext size (u64 BE) | SHA-256 (32) | tag (16)
 *
 * Subkeys come from the data key with HKDF-SHA256 and the header's random salt, so a data key reused across files
 * never reuses a (key, nonce) pair. Chunk i has nonce i; its additional data binds the header, i, and whether it is
 * the final record, so flipped, reordered, dropped, duplicated, appended and truncated records are all detected.
 */

export const MAGIC = Buffer.from('SIMODEL\0', 'latin1');
export const FORMAT_VERSION = 2;
export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;
export const TAG_LENGTH = 16;
export const HEADER_MAC_LENGTH = 32;
const MAX_HEADER_LENGTH = 64 * 1024;
export const SALT_LENGTH = 32;
export const TRAILER_PLAINTEXT_LENGTH = 8 + 32;

/** What the header of a sealed model says; authenticated by the header MAC and bound into every chunk. */
export interface SealedHeader {
  readonly format: 'sealed-inference/model';
  readonly version: number;
  readonly cipher: 'AES-256-GCM';
  readonly kdf: 'HKDF-SHA256';
  readonly modelName: string;
  readonly plaintextSize: number;
  readonly chunkSize: number;
  /** Random HKDF salt, base64. */
  readonly salt: string;
}

/** The authenticated facts at the end of a sealed model. */
export interface SealedTrailer {
  readonly plaintextSize: number;
  /** SHA-256 of the plaintext model, hex: the model's identity (Ollama's blob name, Hugging Face's LFS digest). */
  readonly sha256: string;
}

/** Keys derived from a data key for one sealed file. */
export interface SubKeys {
  readonly header: Buffer;
  readonly chunks: Buffer;
}

export function newHeader(modelName: string, plaintextSize: number, chunkSize: number, salt: Buffer): SealedHeader {
  return {
    format: 'sealed-inference/model',
    version: FORMAT_VERSION,
    cipher: 'AES-256-GCM',
    kdf: 'HKDF-SHA256',
    modelName,
    plaintextSize,
    chunkSize,
    salt: salt.toString('base64'),
  };
}

export function deriveSubKeys(dataKey: Buffer, header: SealedHeader): SubKeys {
  if (dataKey.length !== 32) {
    throw new SealedModelError('wrong-key', `the data key must be 32 bytes (AES-256), got ${dataKey.length}`);
  }
  const salt = Buffer.from(header.salt, 'base64');
  const derive = (purpose: string) =>
    Buffer.from(hkdfSync('sha256', dataKey, salt, `sealed-inference/model v${header.version} ${purpose}`, 32));
  return { header: derive('header'), chunks: derive('chunks') };
}

/** Overwrites key material held in this process (OpenSSL's own copies are freed by Node). */
export function wipe(...keys: Array<Buffer | undefined>): void {
  for (const key of keys) key?.fill(0);
}

/** The header as written: magic, length, JSON and its MAC under the header key. */
export function encodeHeader(header: SealedHeader, headerKey: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length);
  const body = Buffer.concat([MAGIC, length, json]);
  return Buffer.concat([body, createHmac('sha256', headerKey).update(body).digest()]);
}

/** The header's bytes without its MAC, as a reader finds them; checks only their shape. */
export interface RawHeader {
  readonly header: SealedHeader;
  /** Magic, length and JSON: what the MAC covers and the chunks' additional data binds. */
  readonly body: Buffer;
  readonly mac: Buffer;
}

/** Reads the header, given a function that returns exactly `n` further bytes of the sealed file. */
export async function readHeader(read: (n: number) => Promise<Buffer>): Promise<RawHeader> {
  const prefix = await read(MAGIC.length + 4);
  if (!prefix.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new SealedModelError('not-sealed', 'this is not a sealed model (no sealed-inference magic at the start)');
  }
  const length = prefix.readUInt32BE(MAGIC.length);
  if (length === 0 || length > MAX_HEADER_LENGTH) {
    throw new SealedModelError('malformed', `the header length ${length} is out of range`);
  }
  const json = await read(length);
  const mac = await read(HEADER_MAC_LENGTH);
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.toString('utf8'));
  } catch {
    throw new SealedModelError('malformed', 'the header is not valid JSON');
  }
  const header = checkHeader(parsed);
  return { header, body: Buffer.concat([prefix, json]), mac };
}

/** The header's fields, each of the type and range this version writes; anything else is a SealedModelError. */
function checkHeader(parsed: unknown): SealedHeader {
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new SealedModelError('malformed', `the header is not a JSON object: ${shown(parsed)}`);
  }
  const header = parsed as Record<keyof SealedHeader, unknown>;
  if (header.format !== 'sealed-inference/model' || header.version !== FORMAT_VERSION) {
    throw new SealedModelError(
      'unsupported-version',
      `format ${shown(header.format)} version ${shown(header.version)} is not supported ` +
        `(this build reads sealed-inference/model version ${FORMAT_VERSION})`,
    );
  }
  const size = (n: unknown, min: number, max: number) => Number.isSafeInteger(n) && (n as number) >= min && (n as number) <= max;
  const problems = [
    header.cipher !== 'AES-256-GCM' && `cipher ${shown(header.cipher)}`,
    header.kdf !== 'HKDF-SHA256' && `kdf ${shown(header.kdf)}`,
    !isModelName(header.modelName) && `modelName ${shown(header.modelName)}`,
    !size(header.plaintextSize, 0, Number.MAX_SAFE_INTEGER) && `plaintextSize ${shown(header.plaintextSize)}`,
    !size(header.chunkSize, 1, MAX_CHUNK_SIZE) && `chunkSize ${shown(header.chunkSize)}`,
    (typeof header.salt !== 'string' || Buffer.from(header.salt, 'base64').length !== SALT_LENGTH) &&
      `salt ${shown(header.salt)}`,
  ].filter(Boolean);
  if (problems.length > 0) throw new SealedModelError('malformed', `the header has a bad ${problems.join(', ')}`);
  return header as unknown as SealedHeader;
}

/** A value from an untrusted file as it appears in a message: JSON, cut short. */
export function shown(value: unknown): string {
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 80 ? `${json.slice(0, 80)}…` : json;
}

/** Checks the header's MAC: the first proof that the key is the one the model was sealed with. */
export function verifyHeader(raw: RawHeader, headerKey: Buffer): void {
  const expected = createHmac('sha256', headerKey).update(raw.body).digest();
  if (!timingSafeEqual(expected, raw.mac)) {
    throw new SealedModelError(
      'wrong-key',
      'the data key does not open this sealed model (wrong key or wrong encryption context), or its header was modified',
    );
  }
}

/** How many data chunks a model of `plaintextSize` bytes has. */
export function chunkCount(header: SealedHeader): number {
  return Math.ceil(header.plaintextSize / header.chunkSize);
}

/** The plaintext length of data chunk `index`. */
export function chunkLength(header: SealedHeader, index: number): number {
  return Math.min(header.chunkSize, header.plaintextSize - index * header.chunkSize);
}

/** The size of the whole sealed file. */
export function sealedSize(header: SealedHeader, headerBytes: number): number {
  return headerBytes + chunkCount(header) * TAG_LENGTH + header.plaintextSize + TRAILER_PLAINTEXT_LENGTH + TAG_LENGTH;
}

/** Nonce of record `index`: 32 zero bits and the index as a 64-bit big-endian integer. */
export function nonce(index: number): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeBigUInt64BE(BigInt(index), 4);
  return iv;
}

/** Additional data of record `index`: the header's SHA-256, the index and the final-record flag. */
export function additionalData(headerDigest: Buffer, index: number, final: boolean): Buffer {
  const aad = Buffer.alloc(32 + 8 + 1);
  headerDigest.copy(aad, 0);
  aad.writeBigUInt64BE(BigInt(index), 32);
  aad.writeUInt8(final ? 1 : 0, 40);
  return aad;
}

export function headerDigest(body: Buffer): Buffer {
  return createHash('sha256').update(body).digest();
}

export function encodeTrailer(trailer: SealedTrailer): Buffer {
  const bytes = Buffer.alloc(TRAILER_PLAINTEXT_LENGTH);
  bytes.writeBigUInt64BE(BigInt(trailer.plaintextSize), 0);
  Buffer.from(trailer.sha256, 'hex').copy(bytes, 8);
  return bytes;
}

export function decodeTrailer(bytes: Buffer): SealedTrailer {
  return {
    plaintextSize: Number(bytes.readBigUInt64BE(0)),
    sha256: bytes.subarray(8, 40).toString('hex'),
  };
}
