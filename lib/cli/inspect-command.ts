import { Command } from 'commander';
import { open } from 'fs/promises';
import {
  chunkCount,
  headerDigest,
  MAGIC,
  readHeader,
  SealedHeader,
  sealedSize,
} from '../sealing/format';
import { parseManifest, SealedModelManifest } from '../sealing/manifest';
import { modelMeasurement } from '../sealing/model-measurement';
import { SealedModelError } from '../sealing/sealed-model-error';
import { requireInputFile } from './input-file';
import type { CliOutput } from './program';
import { formatBytes } from './progress';

/**
 * `sealed-inference inspect <file>`: says what a sealed model or a manifest is, without any key. For a sealed
 * model it reads only the header, which it cannot authenticate: unsealing verifies it.
 */

/** What `inspect` finds in a sealed model. */
export interface SealedModelInspection {
  readonly kind: 'sealed-model';
  readonly file: string;
  readonly header: SealedHeader;
  /** SHA-256 of the header without its MAC, as the manifest's headerSha256. */
  readonly headerSha256: string;
  readonly chunkCount: number;
  /** The size the header implies. */
  readonly expectedSealedSize: number;
  /** The file's actual size. */
  readonly fileSize: number;
}

/** What `inspect` finds in a manifest. */
export interface ManifestInspection {
  readonly kind: 'manifest';
  readonly file: string;
  readonly manifest: SealedModelManifest;
}

/** Manifests are small; a larger file that is not a sealed model is neither. */
const MAX_MANIFEST_BYTES = 1024 * 1024;

export function addInspectCommand(program: Command, output: CliOutput): Command {
  return program
    .command('inspect')
    .summary('describe a sealed model or a manifest, without a key')
    .description(
      "Describe a sealed model (its header, chunk count, and expected against actual size) or a sealed model's " +
        'manifest, without any key. The header is not authenticated until the model is unsealed.',
    )
    .argument('<file>', 'a <name>.sealed or <name>.manifest.json')
    .option('--json', 'print JSON instead of text')
    .action(async (file: string, options: { json?: boolean }) => {
      const inspection = await inspect(file);
      output.stdout(options.json ? `${JSON.stringify(inspection, null, 2)}\n` : describe(inspection));
    });
}

/** Reads what `file` is: a sealed model (by its magic) or a manifest. Throws when it is neither. */
export async function inspect(file: string): Promise<SealedModelInspection | ManifestInspection> {
  await requireInputFile(file, 'file to inspect');
  const handle = await open(file, 'r');
  try {
    const fileSize = (await handle.stat()).size;
    let position = 0;
    const read = async (n: number) => {
      const buffer = Buffer.alloc(n);
      const { bytesRead } = await handle.read(buffer, 0, n, position);
      position += bytesRead;
      return buffer.subarray(0, bytesRead);
    };
    const start = await read(MAGIC.length);
    position = 0;
    if (start.equals(MAGIC)) {
      const raw = await readHeader(async (n) => {
        const bytes = await read(n);
        if (bytes.length < n) throw new SealedModelError('truncated', `${file} ends inside its header`);
        return bytes;
      });
      return {
        kind: 'sealed-model',
        file,
        header: raw.header,
        headerSha256: headerDigest(raw.body).toString('hex'),
        chunkCount: chunkCount(raw.header),
        expectedSealedSize: sealedSize(raw.header, raw.body.length + raw.mac.length),
        fileSize,
      };
    }
    if (fileSize > MAX_MANIFEST_BYTES) {
      throw new Error(`${file} is neither a sealed model (no sealed-inference magic) nor a manifest (too large)`);
    }
    try {
      return { kind: 'manifest', file, manifest: parseManifest((await read(fileSize)).toString('utf8')) };
    } catch (error) {
      throw new Error(
        `${file} is neither a sealed model (no sealed-inference magic) nor a manifest: ${(error as Error).message}`,
        { cause: error },
      );
    }
  } finally {
    await handle.close();
  }
}

/** The inspection as text for a person. */
export function describe(inspection: SealedModelInspection | ManifestInspection): string {
  const size = (bytes: number) => `${bytes} bytes (${formatBytes(bytes)})`;
  const lines = (title: string, fields: Array<[string, string]>) =>
    [title, ...fields.map(([name, value]) => `  ${`${name}:`.padEnd(20)}${value}`)].join('\n') + '\n';
  if (inspection.kind === 'manifest') {
    const m = inspection.manifest;
    return lines(`${inspection.file}: manifest of sealed model ${m.modelName} (format version ${m.formatVersion})`, [
      ['model name', m.modelName],
      ['plaintext size', size(m.plaintextSize)],
      ['chunk size', size(m.chunkSize)],
      ['sealed size', size(m.sealedSize)],
      ['SHA-256', m.sha256],
      ['PCR15 measurement', modelMeasurement(m)],
      ['header SHA-256', m.headerSha256],
      ['KMS key', m.keyArn ?? '(none: sealed offline)'],
      ['encryption context', Object.entries(m.encryptionContext).map(([k, v]) => `${k}=${v}`).join(', ')],
      ['created', m.createdAt],
    ]);
  }
  const { header, expectedSealedSize, fileSize } = inspection;
  const difference = fileSize - expectedSealedSize;
  const completeness =
    difference === 0
      ? 'as expected'
      : difference < 0
        ? `${-difference} bytes short: truncated`
        : `${difference} bytes too many: data appended`;
  return lines(`${inspection.file}: sealed model (${header.format} version ${header.version})`, [
    ['model name', header.modelName],
    ['cipher', `${header.cipher}, subkeys by ${header.kdf}`],
    ['plaintext size', size(header.plaintextSize)],
    ['chunk size', size(header.chunkSize)],
    ['chunks', `${inspection.chunkCount}, then the trailer`],
    ['header SHA-256', inspection.headerSha256],
    ['sealed size', `${size(expectedSealedSize)} expected`],
    ['file size', `${size(fileSize)}, ${completeness}`],
    ['not verified', "the header's MAC and every chunk need the data key: unseal to verify"],
  ]);
}
