import { mkdir, open, rename, rm, stat, unlink, writeFile } from 'fs/promises';
import * as path from 'path';
import { buildManifest, SealedModelManifest } from './manifest';
import { partialFileFor } from './partial-file';
import { seal } from './seal';

/**
 * Sealing a model into a local directory, without KMS or S3: for tests, benchmarks and staging on air-gapped
 * machines. Writes `<name>.sealed` and `<name>.manifest.json`, the manifest last; a KMS-wrapped data key is not
 * written, as there is none.
 */

/** Where the files of a model sealed into `directory` go. */
export interface SealedModelFiles {
  readonly sealed: string;
  readonly manifest: string;
}

/** The files of model `name` in `directory`. */
export function sealedModelFiles(directory: string, name: string): SealedModelFiles {
  return {
    sealed: path.join(directory, `${name}.sealed`),
    manifest: path.join(directory, `${name}.manifest.json`),
  };
}

/** What to seal into a directory, and with which key. */
export interface SealToDirectoryOptions {
  readonly modelName: string;
  /** The 32-byte data key; the caller wipes it. */
  readonly dataKey: Buffer;
  /** @default DEFAULT_CHUNK_SIZE */
  readonly chunkSize?: number;
  /** Called with the plaintext bytes sealed so far, and the total. */
  readonly onProgress?: (bytes: number, total: number) => void;
  /** Stops sealing before the next chunk; the temporary file is then removed and nothing is renamed. */
  readonly signal?: AbortSignal;
}

/**
 * Seals the model at `sourcePath` into `directory` (created if missing). Each file is written under a temporary
 * name and renamed when complete, the manifest after the sealed model, so a present manifest means a complete
 * model: a manifest of an earlier sealing is removed just before the sealed model is replaced. On a failure the
 * temporary file is removed and nothing is renamed.
 */
export async function sealToDirectory(
  sourcePath: string,
  directory: string,
  options: SealToDirectoryOptions,
): Promise<{ files: SealedModelFiles; manifest: SealedModelManifest }> {
  const files = sealedModelFiles(directory, options.modelName);
  const total = (await stat(sourcePath)).size;
  await mkdir(directory, { recursive: true });
  const result = await writeAtomically(files.sealed, async (temporary) => {
    const output = await open(temporary, 'wx', 0o644);
    try {
      const sealed = await seal(sourcePath, async (pieces) => void (await output.writev(pieces)), {
        dataKey: options.dataKey,
        modelName: options.modelName,
        chunkSize: options.chunkSize,
        onProgress: options.onProgress && ((bytes) => options.onProgress!(bytes, total)),
        signal: options.signal,
      });
      await output.sync();
      return sealed;
    } finally {
      await output.close();
    }
  }, () => rm(files.manifest, { force: true }));
  const manifest = buildManifest(result);
  await writeAtomically(files.manifest, (temporary) =>
    writeFile(temporary, `${JSON.stringify(manifest, null, 2)}\n`, { flag: 'wx' }),
  );
  return { files, manifest };
}

/**
 * Runs `write` on a temporary file beside `destination`, then `beforeRename`, then renames it there; removes it on
 * failure.
 */
async function writeAtomically<T>(
  destination: string,
  write: (temporary: string) => Promise<T>,
  beforeRename?: () => Promise<void>,
): Promise<T> {
  const temporary = partialFileFor(destination);
  try {
    const result = await write(temporary);
    await beforeRename?.();
    await rename(temporary, destination);
    return result;
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}
