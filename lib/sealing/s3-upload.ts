import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { stat } from 'fs/promises';
import { PassThrough } from 'stream';
import { SealedModelObjects } from '../shared/appliance-config';
import { buildManifest, SealedModelManifest } from './manifest';
import { seal, SealedSink } from './seal';

/**
 * Sealing a model straight into S3: `<name>.sealed` streamed as a multipart upload while it is sealed, then
 * `<name>.datakey.enc`, and `<name>.manifest.json` last, so that a model whose manifest is present is complete.
 * Runtime code (no aws-cdk-lib): the sealing CLI uses it.
 */

const MiB = 1024 * 1024;

/** Parts uploaded in parallel. */
export const UPLOAD_QUEUE_SIZE = 4;

/** The smallest part size used; larger models get larger parts, as S3 allows at most 10,000 parts. */
export const MIN_PART_SIZE = 8 * MiB;

const MAX_PARTS = 10_000;

/** Attempts per S3 call, including the first. */
const MAX_ATTEMPTS = 6;

/** An S3 client that retries throttling and transient errors; the Region by default from the SDK's chain. */
export function newS3Client(region?: string): S3Client {
  return new S3Client({ region, maxAttempts: MAX_ATTEMPTS, retryMode: 'standard' });
}

/** Part size for a model of `plaintextSize` bytes: whole MiB, at least {@link MIN_PART_SIZE}, under 10,000 parts. */
export function partSizeFor(plaintextSize: number): number {
  // The sealed file is the plaintext plus 16 bytes a chunk (at most 1/65536 for 1 MiB chunks) and a small header.
  const needed = Math.ceil((plaintextSize * 1.01 + MiB) / (MAX_PARTS - 1));
  return Math.max(MIN_PART_SIZE, Math.ceil(needed / MiB) * MiB);
}

/** A streaming upload of one object, fed through {@link sink} as the sealer produces its bytes. */
export interface SealedObjectUpload {
  /** Takes the sealed bytes in order; resolves when the upload can take more (back-pressure bounds memory). */
  readonly sink: SealedSink;
  /** Ends the object and waits for S3 to complete the multipart upload. */
  finish(): Promise<void>;
  /** Stops the upload after a failure elsewhere, aborting the multipart upload; resolves once it is aborted. */
  fail(reason: Error): Promise<void>;
}

/** Where to stream one object. */
export interface ObjectUploadOptions {
  readonly client: S3Client;
  readonly bucket: string;
  readonly key: string;
  /** @default MIN_PART_SIZE */
  readonly partSize?: number;
  /** @default UPLOAD_QUEUE_SIZE */
  readonly queueSize?: number;
  /**
   * Stops sealing and uploading: the multipart upload is then aborted and no manifest is written, as on any failure.
   */
  readonly signal?: AbortSignal;
}

/**
 * Starts a multipart upload of `key` fed through the returned sink. Memory stays bounded by about
 * (queue size + 2) × part size: the sink waits while every uploader is busy. A part that fails (after the SDK's
 * retries) ends the stream, as `Upload` then closes its reader of it; the multipart upload is aborted, so no partial
 * object is left, and the sink, {@link SealedObjectUpload.finish} and {@link SealedObjectUpload.fail} reject or
 * resolve only after that.
 */
export function startObjectUpload(options: ObjectUploadOptions): SealedObjectUpload {
  const partSize = options.partSize ?? MIN_PART_SIZE;
  const body = new PassThrough({ highWaterMark: partSize });
  // Failures reach the upload through its reader of the stream, and the callers through `done`.
  body.on('error', () => undefined);
  const upload = new Upload({
    client: options.client,
    params: { Bucket: options.bucket, Key: options.key, Body: body, ContentType: 'application/octet-stream' },
    queueSize: options.queueSize ?? UPLOAD_QUEUE_SIZE,
    partSize,
    leavePartsOnError: false,
  });
  const done = upload.done().then(
    () => undefined,
    (error: Error) => {
      body.destroy();
      throw error;
    },
  );
  // Observed here so that an early failure is never unhandled; the callers await `done` themselves.
  done.catch(() => undefined);

  const sink: SealedSink = async (pieces) => {
    let room = true;
    for (const piece of pieces) room = body.write(piece);
    if (!room && !body.destroyed) {
      await new Promise<void>((resolve) => {
        const settle = () => {
          body.off('drain', settle).off('close', settle);
          resolve();
        };
        body.on('drain', settle).on('close', settle);
      });
    }
    if (body.destroyed) await done; // throws the upload's failure
  };
  return {
    sink,
    finish: async () => {
      body.end();
      await done;
    },
    fail: async (reason) => {
      body.destroy(reason);
      await done.catch(() => undefined);
    },
  };
}

/** What to seal into S3, and with which key. */
export interface SealToS3Options {
  readonly client: S3Client;
  readonly bucket: string;
  /** The object keys, from `sealedModelObjects(prefix, name)`. */
  readonly objects: SealedModelObjects;
  readonly modelName: string;
  /** The 32-byte data key; the caller wipes it. */
  readonly dataKey: Buffer;
  /** The data key wrapped by KMS, written as `objects.dataKey`. */
  readonly wrappedDataKey: Buffer;
  /** The KMS key that wrapped the data key, recorded in the manifest. */
  readonly keyArn: string;
  /** @default DEFAULT_CHUNK_SIZE */
  readonly chunkSize?: number;
  /** Called with the plaintext bytes sealed so far, and the total. */
  readonly onProgress?: (bytes: number, total: number) => void;
  /** @default - partSizeFor(the model's size) */
  readonly partSize?: number;
  /** @default UPLOAD_QUEUE_SIZE */
  readonly queueSize?: number;
  /**
   * Stops sealing and uploading: the multipart upload is then aborted and no manifest is written, as on any failure.
   */
  readonly signal?: AbortSignal;
}

/**
 * Seals the model at `sourcePath` into S3: the sealed model as a multipart upload, then the wrapped data key, then
 * the manifest, which is written last. On a failure the multipart upload is aborted and the manifest is not
 * written (and if the sealed model had already been replaced, a manifest left from an earlier sealing is deleted),
 * so nothing incomplete looks complete. The error says which step failed.
 */
export async function sealToS3(sourcePath: string, options: SealToS3Options): Promise<SealedModelManifest> {
  const { client, bucket, objects } = options;
  const total = (await stat(sourcePath)).size;
  const upload = startObjectUpload({
    client,
    bucket,
    key: objects.sealed,
    partSize: options.partSize ?? partSizeFor(total),
    queueSize: options.queueSize,
  });
  const uploading = `uploading s3://${bucket}/${objects.sealed}`;
  let step = `sealing into s3://${bucket}/${objects.sealed}`;
  const sink: SealedSink = (pieces) =>
    upload.sink(pieces).catch((error) => {
      step = uploading;
      throw error;
    });
  // Parts still uploading when the signal comes are stopped too, not only the sealing that feeds them.
  const stop = () => void upload.fail(options.signal!.reason as Error);
  options.signal?.addEventListener('abort', stop, { once: true });
  let result;
  try {
    result = await seal(sourcePath, sink, {
      dataKey: options.dataKey,
      modelName: options.modelName,
      chunkSize: options.chunkSize,
      onProgress: options.onProgress && ((bytes) => options.onProgress!(bytes, total)),
      signal: options.signal,
    });
  } catch (error) {
    options.signal?.removeEventListener('abort', stop);
    await upload.fail(error as Error);
    throw failed(step, error, 'the multipart upload was aborted');
  }
  try {
    await upload.finish();
  } catch (error) {
    throw failed(uploading, error, 'the multipart upload was aborted');
  } finally {
    options.signal?.removeEventListener('abort', stop);
  }

  const manifest = buildManifest(result, { keyArn: options.keyArn });
  step = `writing s3://${bucket}/${objects.dataKey}`;
  try {
    options.signal?.throwIfAborted();
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: objects.dataKey,
        Body: options.wrappedDataKey,
        ContentType: 'application/octet-stream',
      }),
    );
    step = `writing s3://${bucket}/${objects.manifest}`;
    options.signal?.throwIfAborted();
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: objects.manifest,
        Body: `${JSON.stringify(manifest, null, 2)}\n`,
        ContentType: 'application/json',
      }),
    );
  } catch (error) {
    const cleanup = await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: objects.manifest })).then(
      () => `no manifest is left at s3://${bucket}/${objects.manifest}`,
      (deleteError: Error) =>
        `deleting s3://${bucket}/${objects.manifest} failed too (${deleteError.message}): delete it by hand, as it ` +
        `may describe an earlier sealing`,
    );
    throw failed(step, error, cleanup);
  }
  return manifest;
}

function failed(step: string, error: unknown, aftermath: string): Error {
  const name = (error as { name?: string }).name;
  const reason = `${(error as Error).message ?? String(error)}${name && name !== 'Error' ? ` (${name})` : ''}`;
  return new Error(`Failed ${step}: ${reason}; ${aftermath}, so the model is not published`, { cause: error });
}
