import { Command } from 'commander';
import { createReadStream, existsSync } from 'fs';
import { readFile } from 'fs/promises';
import * as path from 'path';
import { parseManifest, SealedModelManifest } from '../sealing/manifest';
import { modelMeasurement } from '../sealing/model-measurement';
import { removeAbandonedPartialFiles } from '../sealing/partial-file';
import { unseal } from '../sealing/unseal';
import { readDataKeyFile } from './data-key-file';
import { requireInputFile } from './input-file';
import { InterruptedError, runInterruptibly } from './interruption';
import type { CliOutput } from './program';
import { ByteProgress, formatBytes, startProgress } from './progress';

/**
 * `sealed-inference unseal <sealed-file>`: unseals a model offline with a raw 32-byte data key, verifying every
 * chunk, the trailer's digests and, when there is one, the manifest. The plaintext appears at `--out` only once all
 * of it is verified. (On an instance the appliance unseals, with a key only KMS unwraps for an attested image.)
 */

/** The command's options, as parsed. */
export interface UnsealCommandOptions {
  readonly dataKeyFile: string;
  readonly out: string;
  /** @default - `<name>.manifest.json` beside `<name>.sealed`, if it exists */
  readonly manifest?: string;
}

/** What the command prints once the model is unsealed and verified. */
export interface UnsealOutput {
  readonly model: string;
  readonly modelName: string;
  readonly plaintextSize: number;
  /** SHA-256 of the plaintext model: its identity. */
  readonly sha256: string;
  /** What PCR15 is extended with for this model: `modelMeasurement`. */
  readonly measurement: string;
  /** The manifest the model was checked against, if any. */
  readonly manifest?: string;
}

export function addUnsealCommand(program: Command, output: CliOutput): Command {
  return program
    .command('unseal')
    .summary('unseal a sealed model offline with a raw data key file')
    .description(
      'Unseal a sealed model offline with its raw 32-byte data key, verifying every chunk, its digests and its ' +
        'manifest. The model file appears only once all of it is verified. The manifest is --manifest, else ' +
        '<name>.manifest.json beside <name>.sealed if it exists.',
    )
    .argument('<sealed-file>', 'the sealed model, e.g. llama3.sealed')
    .requiredOption('--data-key-file <file>', 'the raw 32-byte data key it was sealed with (made with ' +
      'sealed-inference keygen <file>)')
    .requiredOption('--out <model-file>', 'where to write the model; must not exist')
    .option('--manifest <file>', 'the manifest to check against (default: <name>.manifest.json beside it, if any)')
    .action(async (sealedFile: string, options: UnsealCommandOptions) => {
      const unsealed = await runInterruptibly(`${options.out} was not written, and its partial file was removed`,
        (signal) => unsealCommand(sealedFile, options, output, signal));
      output.stdout(`${JSON.stringify(unsealed, null, 2)}\n`);
    });
}

/** Unseals `sealedFile` to `options.out`, writing notes and progress to `output`. */
export async function unsealCommand(
  sealedFile: string,
  options: UnsealCommandOptions,
  output: CliOutput,
  signal?: AbortSignal,
): Promise<UnsealOutput> {
  await requireInputFile(sealedFile, 'sealed model');
  if (existsSync(options.out)) {
    throw new Error(`${options.out} already exists: remove it or choose another --out`);
  }
  if (!existsSync(path.dirname(path.resolve(options.out)))) {
    throw new Error(`${path.dirname(options.out)} does not exist: create it or choose another --out`);
  }
  for (const abandoned of await removeAbandonedPartialFiles(options.out)) {
    output.stderr(`Removed ${abandoned}, the partial plaintext of an unsealing that was killed\n`);
  }
  const manifestFile = options.manifest ?? defaultManifest(sealedFile);
  let manifest: SealedModelManifest | undefined;
  if (manifestFile !== undefined) {
    await requireInputFile(manifestFile, 'manifest');
    manifest = parseManifest(await readFile(manifestFile, 'utf8'));
    output.stderr(`Checking against the manifest ${manifestFile}\n`);
  } else {
    output.stderr(`No manifest beside ${sealedFile}: checking the sealed model's own authentication only\n`);
  }
  const dataKey = await readDataKeyFile(options.dataKeyFile, output);
  let progress: ByteProgress | undefined;
  try {
    const source = createReadStream(sealedFile, { highWaterMark: 1024 * 1024 });
    // A read that waits (a slow disk, a pipe) is broken off too, not only the next chunk.
    signal?.addEventListener('abort', () => source.destroy(signal.reason as Error), { once: true });
    const result = await unseal(source, options.out, {
      dataKey,
      manifest,
      signal,
      onProgress: (bytes, total) => {
        progress ??= startProgress(output, 'unsealing', total);
        progress.update(bytes);
      },
    });
    progress?.stop();
    output.stderr(`Unsealed and verified ${result.header.modelName} (${formatBytes(result.trailer.plaintextSize)})\n`);
    return {
      model: options.out,
      modelName: result.header.modelName,
      plaintextSize: result.trailer.plaintextSize,
      sha256: result.trailer.sha256,
      measurement: modelMeasurement({ modelName: result.header.modelName, ...result.trailer }),
      ...(manifestFile !== undefined ? { manifest: manifestFile } : {}),
    };
  } catch (error) {
    if (error instanceof InterruptedError) throw error;
    throw new Error(`Could not unseal ${sealedFile}: ${(error as Error).message}`, { cause: error });
  } finally {
    progress?.stop();
    dataKey.fill(0);
  }
}

/** `<name>.manifest.json` beside `<name>.sealed`, if the file is so named and the manifest exists. */
function defaultManifest(sealedFile: string): string | undefined {
  if (path.extname(sealedFile) !== '.sealed') return undefined;
  const candidate = path.join(path.dirname(sealedFile), `${path.basename(sealedFile, '.sealed')}.manifest.json`);
  return existsSync(candidate) ? candidate : undefined;
}
