import { AttestationErrorKind } from '../attestation/attestation-error';
import { printableText } from '../attestation/attestation-response';
import type { VerifyReport } from '../cli/verify-connection';

/**
 * Why the gateway forwards nothing: a verification of a fresh upstream connection failed, or could not be made.
 * Clients receive it as an OpenAI-style error (`type: "attestation_failed"`, `code`, `message`), /health as
 * `failedCheck` and `reason`.
 */
export class AttestationFailedError extends Error {
  constructor(
    /**
     * A stable code: the attestation error's kind when the document or channel check names one (`channel-mismatch`,
     * `nonce-mismatch`, …), `<check>-mismatch` for the image, event log and model, `attestation-unavailable` when
     * the service could not be asked.
     */
    public readonly code: string,
    /** What was expected and what was found, escaped for a terminal. */
    public readonly reason: string,
  ) {
    super(`${code}: ${reason}`);
    this.name = 'AttestationFailedError';
  }
}

/** The code for a service that could not be reached or did not answer an attestation. */
const ATTESTATION_UNAVAILABLE = 'attestation-unavailable';

/** The reasons quote the service's unauthenticated text: bounded and without control characters. */
const MAX_REASON_LENGTH = 2048;

const ATTESTATION_ERROR_KINDS: ReadonlySet<string> = new Set(Object.values(AttestationErrorKind));

/** The failure a report that did not verify describes, by its first failed check. */
export function failureOfReport(report: VerifyReport): AttestationFailedError {
  const failed = report.checks.find((check) => !check.passed);
  if (failed === undefined) throw new Error('failureOfReport needs a report with a failed check');
  const kind = /^([a-z-]+): /.exec(failed.found)?.[1];
  const code = kind !== undefined && ATTESTATION_ERROR_KINDS.has(kind) ? kind : `${failed.name}-mismatch`;
  return new AttestationFailedError(code,
    printableText(`${failed.name} check failed: expected ${failed.expected}; found ${failed.found}`, MAX_REASON_LENGTH));
}

/** The failure of a verification that could not be made: the service is unreachable or answered no attestation. */
export function failureOfError(error: unknown): AttestationFailedError {
  const message = error instanceof Error ? error.message : String(error);
  return new AttestationFailedError(ATTESTATION_UNAVAILABLE, printableText(`could not check: ${message}`, MAX_REASON_LENGTH));
}
