import { checkModelName, FORMAT_CONTEXT_KEY, isModelName, MODEL_CONTEXT_KEY } from '../shared/model-identity';
import { FORMAT_VERSION, SealedHeader, SealedTrailer, shown } from './format';
import { SealedModelError } from './sealed-model-error';

/**
 * `<name>.manifest.json`: what a sealed model is, readable without a key. The unsealer relies on none of it
 * unchecked: the name, sizes and chunk size are compared with the authenticated header, the digest with the
 * authenticated trailer, so an edited manifest is detected.
 */
export interface SealedModelManifest {
  readonly formatVersion: number;
  readonly modelName: string;
  readonly plaintextSize: number;
  readonly chunkSize: number;
  /**
   * SHA-256 of the plaintext model, hex: the model's identity, the name Ollama gives its blob, and part of the
   * measurement PCR15 is extended with (`modelMeasurement`).
   */
  readonly sha256: string;
  /** Size of `<name>.sealed`. */
  readonly sealedSize: number;
  /** SHA-256 of the sealed header (without its MAC), hex. */
  readonly headerSha256: string;
  /** The KMS key the data key was generated under, when sealed with KMS. */
  readonly keyArn?: string;
  /** The encryption context the data key is bound to. */
  readonly encryptionContext: Record<string, string>;
  /** When the model was sealed (ISO 8601). */
  readonly createdAt: string;
}

/** The encryption context of a sealed model's data key. */
export function modelEncryptionContext(modelName: string): Record<string, string> {
  return { [MODEL_CONTEXT_KEY]: checkModelName(modelName), [FORMAT_CONTEXT_KEY]: String(FORMAT_VERSION) };
}

/** Parses a manifest, refusing anything that is not one this version writes. */
export function parseManifest(json: string): SealedModelManifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new SealedModelError('malformed', 'the manifest is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new SealedModelError('malformed', `the manifest is not a JSON object: ${shown(parsed)}`);
  }
  const value = parsed as Record<keyof SealedModelManifest, unknown>;
  if (value.formatVersion !== FORMAT_VERSION) {
    throw new SealedModelError(
      'unsupported-version',
      `manifest format version ${shown(value.formatVersion)} is not supported (this build reads ${FORMAT_VERSION})`,
    );
  }
  const hex = (s: unknown, length: number) => typeof s === 'string' && new RegExp(`^[0-9a-f]{${length}}$`).test(s);
  const size = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
  const context = value.encryptionContext;
  const bad = [
    !isModelName(value.modelName) && 'modelName',
    !size(value.plaintextSize) && 'plaintextSize',
    !size(value.chunkSize) && 'chunkSize',
    !size(value.sealedSize) && 'sealedSize',
    !hex(value.sha256, 64) && 'sha256',
    !hex(value.headerSha256, 64) && 'headerSha256',
    value.keyArn !== undefined && typeof value.keyArn !== 'string' && 'keyArn',
    (typeof context !== 'object' || context === null || Array.isArray(context) ||
      !Object.values(context).every((v) => typeof v === 'string')) && 'encryptionContext',
    typeof value.createdAt !== 'string' && 'createdAt',
  ].filter((field): field is string => typeof field === 'string');
  if (bad.length > 0) {
    const fields = bad.map((field) => `${field} ${shown(value[field as keyof SealedModelManifest])}`);
    throw new SealedModelError('malformed', `the manifest has a bad or missing ${fields.join(', ')}`);
  }
  return value as unknown as SealedModelManifest;
}

/** The manifest of a model just sealed. */
export function buildManifest(
  sealed: { header: SealedHeader; trailer: SealedTrailer; headerSha256: string; sealedSize: number },
  origin: { keyArn?: string; createdAt?: Date } = {},
): SealedModelManifest {
  return {
    formatVersion: sealed.header.version,
    modelName: sealed.header.modelName,
    plaintextSize: sealed.header.plaintextSize,
    chunkSize: sealed.header.chunkSize,
    sha256: sealed.trailer.sha256,
    sealedSize: sealed.sealedSize,
    headerSha256: sealed.headerSha256,
    ...(origin.keyArn ? { keyArn: origin.keyArn } : {}),
    encryptionContext: modelEncryptionContext(sealed.header.modelName),
    createdAt: (origin.createdAt ?? new Date()).toISOString(),
  };
}

/** Compares what the manifest says with the authenticated header (whose SHA-256 is `headerSha256`). */
export function checkManifestHeader(manifest: SealedModelManifest, header: SealedHeader, headerSha256: string): void {
  mismatch('modelName', manifest.modelName, header.modelName);
  mismatch('plaintextSize', manifest.plaintextSize, header.plaintextSize);
  mismatch('chunkSize', manifest.chunkSize, header.chunkSize);
  mismatch('headerSha256', manifest.headerSha256, headerSha256);
  mismatch('encryptionContext', canonical(manifest.encryptionContext), canonical(modelEncryptionContext(header.modelName)));
}

function canonical(context: Record<string, string>): string {
  return JSON.stringify(Object.entries(context).sort(([a], [b]) => a.localeCompare(b)));
}

/** Compares what the manifest says with the authenticated trailer. */
export function checkManifestTrailer(manifest: SealedModelManifest, trailer: SealedTrailer): void {
  mismatch('sha256', manifest.sha256, trailer.sha256);
}

function mismatch(field: string, manifest: unknown, sealed: unknown): void {
  if (manifest !== sealed) {
    throw new SealedModelError(
      'manifest-mismatch',
      `the manifest's ${field} ${JSON.stringify(manifest)} differs from the sealed model's ${JSON.stringify(sealed)}`,
    );
  }
}
