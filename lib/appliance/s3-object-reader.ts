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
    /** S3's HTTP status, when S3 refused the read. */
    public readonly httpStatus?: number,
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
    const range = { s3, bucket, key, start, end, ifMatch: etag };
    return readS3Range(range, { retry, onRetry: options.onRetry, signal }, (bytes) => {
      if (bytes.length !== end - start + 1) {
        const expected = `expected ${end - start + 1} bytes at ${start}, got ${bytes.length}`;
        throw new S3ObjectReadError(`s3://${bucket}/${key}: ${expected}`, true);
      }
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

/** Bytes `start` to `end` (inclusive) of `s3://bucket/key`; fewer where the object ends before `end`. */
export interface S3Range {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly key: string;
  readonly start: number;
  readonly end: number;
  /** Read only if the object still has this ETag. */
  readonly ifMatch?: string;
}

/**
 * One ranged GET, retried as a whole: its body is read inside the retry, since a connection dropped midway through
 * it is as transient as a refused one. `check` may refuse the bytes received (a transient error is retried).
 * Failures come out in words a platform team can act on ({@link explainS3Failure}).
 */
export function readS3Range(
  range: S3Range,
  retrying: { readonly retry: RetryPolicy; readonly onRetry?: RetryListener; readonly signal?: AbortSignal },
  check: (bytes: Buffer) => void,
): Promise<Buffer> {
  const { s3, bucket, key } = range;
  return withRetries(
    async () => {
      const get = { Bucket: bucket, Key: key, Range: `bytes=${range.start}-${range.end}`, IfMatch: range.ifMatch };
      const answer = await s3.send(new GetObjectCommand(get), { abortSignal: retrying.signal });
      if (!answer.Body) throw new S3ObjectReadError(`s3://${bucket}/${key} answered without a body`, true);
      const bytes = Buffer.from(await answer.Body.transformToByteArray());
      check(bytes);
      return bytes;
    },
    retrying.retry,
    retrying.onRetry,
    retrying.signal,
  ).catch((error: unknown) => {
    throw explainS3Failure(error, bucket, key);
  });
}

/** An S3 failure in words a platform team can act on; other errors as they are. */
function explainS3Failure(error: unknown, bucket: string, key: string): Error {
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (status === 412) {
    return new S3ObjectReadError(`s3://${bucket}/${key} was replaced while it was being read`, false);
  }
  if (status === 404) {
    return new S3ObjectReadError(`s3://${bucket}/${key} does not exist: was the model sealed under this name and prefix?`, false, 404);
  }
  if (status === 403) {
    return new S3ObjectReadError(
      `access to s3://${bucket}/${key} denied: check the instance role, the bucket policy and the S3 endpoint policy`,
      false,
      403,
    );
  }
  return error instanceof Error ? error : new Error(String(error));
}
