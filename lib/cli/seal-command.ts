import { Command, InvalidArgumentError } from 'commander';
import { existsSync } from 'fs';
import { readFile, stat } from 'fs/promises';
import * as path from 'path';
import { DEFAULT_MODEL_PREFIX, sealedModelObjects } from '../shared/appliance-config';
import { checkModelName } from '../shared/model-identity';
import { DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE } from '../sealing/format';
import type { SealedModelManifest } from '../sealing/manifest';
import { removeAbandonedPartialFiles } from '../sealing/partial-file';
import { sealedModelFiles, sealToDirectory } from '../sealing/seal-to-directory';
import { requireRegion } from './aws-region';
import { readDataKeyFile } from './data-key-file';
import { requireInputFile } from './input-file';
import { runInterruptibly } from './interruption';
import { readModelDeployment } from './model-deployment-outputs';
import type { CliOutput } from './program';
import { formatBytes, startProgress } from './progress';

/**
 * `sealed-inference seal <model-file>`: seals a model with a fresh KMS data key straight into S3 (`--key`,
 * `--bucket`, or a deployment's `--stack-outputs`), or offline with a raw key file into a directory (`--out`,
 * `--data-key-file`) for tests, benchmarks and air-gapped staging. Prints where the artifacts went and the manifest
 * as JSON.
 */

/** The command's options, as parsed. */
export interface SealCommandOptions {
  /** @default - the deployment's `KeyArn` with `stackOutputs` */
  readonly key?: string;
  /** @default - the deployment's `ModelBucketName` with `stackOutputs` */
  readonly bucket?: string;
  /** @default - the deployment's `ModelPrefix` with `stackOutputs`, else DEFAULT_MODEL_PREFIX */
  readonly prefix?: string;
  /** @default - the deployment's `ModelName` with `stackOutputs`, else the model file's name without its extension */
  readonly name?: string;
  readonly region?: string;
  /** A `cdk deploy --outputs-file` file to read the key, bucket, prefix and name from. */
  readonly stackOutputs?: string;
  /** @default - the only stack of `stackOutputs` with a sealed model */
  readonly stack?: string;
  /** Bytes; given in MiB on the command line. */
  readonly chunkSize?: number;
  readonly out?: string;
  readonly dataKeyFile?: string;
  /** Replace the files of an earlier offline sealing in `out`. */
  readonly force?: boolean;
}

/** What the command prints: where each artifact is (S3 URIs or paths), and the manifest. */
export interface SealOutput {
  readonly artifacts: { readonly sealed: string; readonly dataKey?: string; readonly manifest: string };
  readonly manifest: SealedModelManifest;
}

const MiB = 1024 * 1024;

/** The options that seal with KMS into S3, by their flag. */
const KMS_OPTIONS = {
  key: '--key',
  bucket: '--bucket',
  prefix: '--prefix',
  region: '--region',
  stackOutputs: '--stack-outputs',
  stack: '--stack',
} as const;

export function addSealCommand(program: Command, output: CliOutput): Command {
  return program
    .command('seal')
    .summary('seal a model with a KMS data key into S3 (or offline, into a directory)')
    .description(
      'Seal a model file: encrypt it in authenticated chunks under a fresh KMS data key bound to the model name, ' +
        'and upload <name>.sealed, <name>.datakey.enc and, last, <name>.manifest.json to S3. Take the key, bucket, ' +
        'prefix and name from a deployment with --stack-outputs (the file cdk deploy --outputs-file writes), or ' +
        'give them with --key and --bucket; options given override the file. With --out and --data-key-file ' +
        'instead, seal offline with a raw 32-byte key into a directory (tests, benchmarks, air-gapped staging); make ' +
        'the key file with sealed-inference keygen <file>.',
    )
    .argument('<model-file>', 'the model to seal, e.g. llama3.gguf')
    .option('--stack-outputs <file>', "read the deployment's KeyArn, ModelBucketName, ModelPrefix and ModelName from " +
      'this cdk deploy --outputs-file file')
    .option('--stack <name>', 'the stack to read from --stack-outputs when it holds several')
    .option('--key <key>', 'KMS key id, key ARN, alias name (alias/...) or alias ARN to generate the data key with')
    .option('--bucket <bucket>', 'S3 bucket to upload the sealed model to')
    .option('--prefix <prefix>', "S3 key prefix: empty (the bucket's root) or ending in '/' (default: " +
      `${DEFAULT_MODEL_PREFIX}, where SealedInference lets the model owner upload)`, parsePrefix)
    .option('--region <region>', 'Region of the key and the bucket (default: AWS_REGION, else your AWS profile)')
    .option('--name <name>', "the model's name (default: the deployment's with --stack-outputs, else the file's " +
      'name without its extension)', parseName)
    .option(
      '--chunk-size <MiB>',
      `plaintext MiB per authenticated chunk, up to ${MAX_CHUNK_SIZE / MiB} (default: ${DEFAULT_CHUNK_SIZE / MiB})`,
      parseChunkSize,
    )
    .option('--out <dir>', 'offline: write <name>.sealed and <name>.manifest.json into this directory')
    .option('--data-key-file <file>', 'offline: the raw 32-byte data key to seal with (make one with ' +
      'sealed-inference keygen <file>)')
    .option('--force', 'offline: replace <name>.sealed and <name>.manifest.json if --out has them')
    .action(async (modelFile: string, given: SealCommandOptions, command: Command) => {
      const usage = (message: string) =>
        command.error(`error: ${message}`, { exitCode: 2, code: 'sealed-inference.usage' });
      const offline = given.out !== undefined || given.dataKeyFile !== undefined;
      const kms = (Object.keys(KMS_OPTIONS) as Array<keyof typeof KMS_OPTIONS>).filter((o) => given[o] !== undefined);
      if (offline && kms.length > 0) {
        usage(
          `${KMS_OPTIONS[kms[0]]} (sealing with KMS into S3) and --out/--data-key-file (sealing offline) are ` +
            'mutually exclusive',
        );
      }
      if (offline && (given.out === undefined || given.dataKeyFile === undefined)) {
        usage('sealing offline needs both --out <dir> and --data-key-file <file>');
      }
      if (!offline && given.force) usage('--force replaces files in --out: it is only for sealing offline');
      if (given.stack !== undefined && given.stackOutputs === undefined) usage('--stack needs --stack-outputs <file>');
      const options = given.stackOutputs !== undefined ? await withStackOutputs(given, output) : given;
      if (!offline && (options.key === undefined || options.bucket === undefined)) {
        usage(
          'say where to seal to: --stack-outputs <file> or --key <kms-key> --bucket <bucket> (KMS and S3), or ' +
            '--out <dir> --data-key-file <file> (offline)',
        );
      }
      const name = options.name ?? path.parse(modelFile).name;
      try {
        checkModelName(name);
      } catch (error) {
        usage(`${(error as Error).message}, from the file name: pass --name <name>`);
      }
      const aftermath = offline
        ? `nothing was written to ${options.out}, and the partial file was removed`
        : `nothing was published to s3://${options.bucket}/${options.prefix ?? DEFAULT_MODEL_PREFIX}`;
      const result = await runInterruptibly(aftermath, (signal) => sealCommand(modelFile, { ...options, name }, output, signal));
      output.stdout(`${JSON.stringify(result, null, 2)}\n`);
    });
}

/** The options with what they leave out taken from the deployment in `options.stackOutputs`. */
async function withStackOutputs(options: SealCommandOptions, output: CliOutput): Promise<SealCommandOptions> {
  const file = options.stackOutputs!;
  await requireInputFile(file, 'stack outputs file');
  const deployment = readModelDeployment(await readFile(file, 'utf8'), file, options.stack, options.name);
  output.stderr(`Sealing for ${deployment.construct} in stack ${deployment.stack}, as ${file} says\n`);
  return {
    ...options,
    key: options.key ?? deployment.keyArn,
    bucket: options.bucket ?? deployment.bucket,
    prefix: options.prefix ?? deployment.prefix,
    name: options.name ?? deployment.modelName,
  };
}

/** Seals `modelFile` as the options say (KMS and S3, or offline), writing notes and progress to `output`. */
export async function sealCommand(
  modelFile: string,
  options: SealCommandOptions & { name: string },
  output: CliOutput,
  signal?: AbortSignal,
): Promise<SealOutput> {
  await requireInputFile(modelFile, 'model file');
  const total = (await stat(modelFile)).size;
  const progress = startProgress(output, 'sealing', total);
  const onProgress = (bytes: number) => progress.update(bytes);
  try {
    const result =
      options.out !== undefined
        ? await sealOffline(modelFile, options, output, onProgress, signal)
        : await sealIntoS3(modelFile, options, onProgress, signal);
    progress.stop();
    const where = options.out ?? `s3://${options.bucket}/${options.prefix ?? DEFAULT_MODEL_PREFIX}`;
    output.stderr(`Sealed ${options.name} (${formatBytes(total)}) into ${where}\n`);
    return result;
  } finally {
    progress.stop();
  }
}

async function sealOffline(
  modelFile: string,
  options: SealCommandOptions & { name: string },
  output: CliOutput,
  onProgress: (bytes: number) => void,
  signal: AbortSignal | undefined,
): Promise<SealOutput> {
  if (existsSync(options.out!) && !(await stat(options.out!)).isDirectory()) {
    throw new Error(`--out ${options.out} is a file, not a directory: choose a directory to seal into`);
  }
  const files = Object.values(sealedModelFiles(options.out!, options.name));
  for (const file of files) {
    for (const abandoned of await removeAbandonedPartialFiles(file)) {
      output.stderr(`Removed ${abandoned}, the partial output of a sealing that was killed\n`);
    }
  }
  const existing = files.find((file) => existsSync(file));
  if (existing !== undefined && !options.force) {
    throw new Error(`${existing} already exists: pass --force to replace it, or choose another --out or --name`);
  }
  const dataKey = await readDataKeyFile(options.dataKeyFile!, output);
  try {
    const { files, manifest } = await sealToDirectory(modelFile, options.out!, {
      modelName: options.name,
      dataKey,
      chunkSize: options.chunkSize,
      onProgress,
      signal,
    });
    return { artifacts: files, manifest };
  } finally {
    dataKey.fill(0);
  }
}

async function sealIntoS3(
  modelFile: string,
  options: SealCommandOptions & { name: string },
  onProgress: (bytes: number) => void,
  signal: AbortSignal | undefined,
): Promise<SealOutput> {
  // Loaded only here, so that offline commands start without the AWS SDK.
  const { generateDataKey, newKmsClient } = await import('../sealing/kms-data-key');
  const { newS3Client, sealToS3 } = await import('../sealing/s3-upload');
  const bucket = options.bucket!;
  const objects = sealedModelObjects(options.prefix ?? DEFAULT_MODEL_PREFIX, options.name);
  const kms = newKmsClient(options.region);
  const s3 = newS3Client(options.region);
  try {
    await requireRegion(kms, 'to seal the model in');
    const dataKey = await generateDataKey(kms, options.key!, options.name);
    try {
      const manifest = await sealToS3(modelFile, {
        client: s3,
        bucket,
        objects,
        modelName: options.name,
        dataKey: dataKey.plaintext,
        wrappedDataKey: dataKey.ciphertextBlob,
        keyArn: dataKey.keyArn,
        chunkSize: options.chunkSize,
        onProgress,
        signal,
      });
      const uri = (key: string) => `s3://${bucket}/${key}`;
      return {
        artifacts: { sealed: uri(objects.sealed), dataKey: uri(objects.dataKey), manifest: uri(objects.manifest) },
        manifest,
      };
    } finally {
      dataKey.plaintext.fill(0);
    }
  } finally {
    kms.destroy();
    s3.destroy();
  }
}

function parsePrefix(value: string): string {
  if (value !== '' && (!value.endsWith('/') || value.startsWith('/'))) {
    throw new InvalidArgumentError(
      "Expected an empty prefix or one ending in '/' and not starting with '/', e.g. models/.",
    );
  }
  return value;
}

function parseName(value: string): string {
  try {
    return checkModelName(value);
  } catch (error) {
    throw new InvalidArgumentError(`${(error as Error).message}.`);
  }
}

function parseChunkSize(value: string): number {
  const mib = Number(value);
  const bytes = Math.round(mib * MiB);
  if (value.trim() === '' || !Number.isFinite(mib) || bytes < 1 || bytes > MAX_CHUNK_SIZE) {
    throw new InvalidArgumentError(`Expected a chunk size in MiB, more than 0 and at most ${MAX_CHUNK_SIZE / MiB}.`);
  }
  return bytes;
}
