/**
 * Retrying what is transient: throttling, 5xx answers, dropped connections and timeouts. Everything else (access
 * denied, not found, a tampered model) fails at once, because trying again cannot change the answer.
 */

/** How often and how patiently to retry. */
export interface RetryPolicy {
  /** Attempts in all, including the first. */
  readonly attempts: number;
  /** Delay before the second attempt; it doubles each time, with jitter, up to {@link maxDelayMs}. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

/** The policy of the boot pipeline's network calls: up to about a minute of patience in all. */
export const BOOT_RETRY_POLICY: RetryPolicy = { attempts: 8, baseDelayMs: 1000, maxDelayMs: 20_000 };

/** Told before each retry: which attempt failed, why, and how long until the next. */
export type RetryListener = (attempt: number, error: unknown, delayMs: number) => void;

// KMS failures are classified where they are explained (attested-decrypt.ts) and arrive here with `transient` set.
const TRANSIENT_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'SlowDown',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'InternalFailure',
  'ServiceUnavailable',
  'TimeoutError',
]);

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Whether `error` may go away if the call is repeated. Errors may say so themselves with `transient: true`. */
export function isTransient(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as {
    transient?: boolean;
    name?: string;
    code?: string;
    cause?: unknown;
    $retryable?: unknown;
    $metadata?: { httpStatusCode?: number };
  };
  if (typeof e.transient === 'boolean') return e.transient;
  if (e.$retryable) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  if ((e.name && TRANSIENT_NAMES.has(e.name)) || (e.code && TRANSIENT_CODES.has(e.code))) return true;
  return e.cause !== undefined && e.cause !== error && isTransient(e.cause);
}

/** Runs `call` until it succeeds, fails for good, or runs out of attempts; the last error is thrown. */
export async function withRetries<T>(
  call: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  onRetry?: RetryListener,
  signal?: AbortSignal,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call(attempt);
    } catch (error) {
      if (attempt >= policy.attempts || !isTransient(error) || signal?.aborted) throw error;
      const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      // Jitter, so that many instances booting at once do not retry in lockstep.
      const delayMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      onRetry?.(attempt, error, delayMs);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}
