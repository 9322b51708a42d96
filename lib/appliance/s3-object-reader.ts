import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { BOOT_RETRY_POLICY, RetryListener, RetryPolicy, withRetries } from './retry';

/**
 * Reading one S3 object as an ordered stream of parts fetched with parallel ranged GETs, each retried on its own
 * when it fails midway. Every GET is conditional on the ETag the object had when reading began, so an object
 * replaced during the read fails the read instead of mixing two versions.
 */

const MiB = 1024 * 1024;

/** What to read and how. */
export interface S3ObjectReadOptions {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly key: string;
  /** @default 8 MiB */
  readonly partSize?: number;
  /** Parts in flight; memory in use is about `partSize * concurrency`. @default 4 */
  readonly concurrency?: number;
  /** @default BOOT_RETRY_POLICY */
  readonly retry?: RetryPolicy;
  readonly onRetry?: RetryListener;
  readonly signal?: AbortSignal;
}

/** An object being read: its size, known before the first byte, and its bytes in order. */
export interface S3ObjectRead {
  readonly size: number;
  readonly parts: AsyncIterable<Buffer>;
}

/** Thrown when the object is not what the read expected; `transient` lets a short read be retried. */
export class S3ObjectReadError extends Error {
  constructor(
    message: string,
    public readonly transient: boolean,
  ) {
    super(message);
    this.name = 'S3ObjectReadError';
  }
}

/** Starts reading `s3://bucket/key`: one HEAD for its size and ETag, then the parts as they are consumed. */
export async function readS3Object(options: S3ObjectReadOptions): Promise<S3ObjectRead> {
  const { s3, bucket, key } = options;
  const partSize = options.partSize ?? 8 * MiB;
  const concurrency = options.concurrency ?? 4;
  const retry = options.retry ?? BOOT_RETRY_POLICY;
  const head = await withRetries(
    () => s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: options.signal }),
    retry,
    options.onRetry,
    options.signal,
  ).catch((error: unknown) => {
    throw explainS3Failure(error, bucket, key);
  });
  const size = head.ContentLength;
  const etag = head.ETag;
  if (size === undefined || etag === undefined) {
    throw new S3ObjectReadError(`s3://${bucket}/${key} has no size or ETag`, false);
  }

  const count = Math.ceil(size / partSize);
  // Aborted when the consumer stops early (a tampered chunk): parts in flight then stop instead of retrying on.
  const stopped = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stopped.signal]) : stopped.signal;
  const fetchPart = (index: number): Promise<Buffer> => {
    const start = index * partSize;
    const end = Math.min(size, start + partSize) - 1;
    return withRetries(
      async () => {
        const answer = await s3.send(
          new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${end}`, IfMatch: etag }),
          { abortSignal: signal },
        );
        if (!answer.Body) throw new S3ObjectReadError(`s3://${bucket}/${key} answered without a body`, true);
        const bytes = Buffer.from(await answer.Body.transformToByteArray());
        if (bytes.length !== end - start + 1) {
          throw new S3ObjectReadError(
            `s3://${bucket}/${key}: expected ${end - start + 1} bytes at ${start}, got ${bytes.length}`,
            true,
          );
        }
        return bytes;
      },
      retry,
      options.onRetry,
      signal,
    ).catch((error: unknown) => {
      throw explainS3Failure(error, bucket, key);
    });
  };

  async function* parts(): AsyncGenerator<Buffer> {
    const inFlight: Promise<Buffer>[] = [];
    let next = 0;
    try {
      while (next < count || inFlight.length > 0) {
        while (next < count && inFlight.length < concurrency) {
          const part = fetchPart(next++);
          part.catch(() => undefined); // awaited in order below; not an unhandled rejection meanwhile
          inFlight.push(part);
        }
        yield await inFlight.shift()!;
      }
    } finally {
      stopped.abort();
      await Promise.allSettled(inFlight);
    }
  }
  return { size, parts: parts() };
}

/** An S3 failure in words a platform team can act on; other errors as they are. */
export function explainS3Failure(error: unknown, bucket: string, key: string): Error {
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (status === 412) {
    return new S3ObjectReadError(`s3://${bucket}/${key} was replaced while it was being read`, false);
  }
  if (status === 404) {
    return new S3ObjectReadError(`s3://${bucket}/${key} does not exist: was the model sealed under this name and prefix?`, false);
  }
  if (status === 403) {
    return new S3ObjectReadError(
      `access to s3://${bucket}/${key} denied: check the instance role, the bucket policy and the S3 endpoint policy`,
      false,
    );
  }
  return error instanceof Error ? error : new Error(String(error));
}
