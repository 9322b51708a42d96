import { X509Certificate } from 'node:crypto';
import { AttestationDocument, parseAttestationDocument } from './attestation-document';
import { AttestationError, AttestationErrorKind } from './attestation-error';
import { verifyCertificateChain } from './certificate-chain';
import { verifyCoseSign1 } from './cose-sign1';
import { InvalidVerifyOptionsError } from './invalid-verify-options-error';
import { awsNitroRoot } from './nitro-root';

/** Default for `VerifyAttestationOptions.maxAge`: five minutes, the age KMS is reported to accept. */
export const DEFAULT_ATTESTATION_MAX_AGE_MS = 5 * 60 * 1000;

/** How far a document's timestamp may lie ahead of the verifier's clock. */
const CLOCK_SKEW_MS = 60 * 1000;

/** Options for `verifyAttestationDocument`. */
export interface VerifyAttestationOptions {
  /**
   * The nonce the document must carry, as bytes or hex.
   *
   * @default - the nonce is not checked
   */
  readonly expectedNonce?: Buffer | string;

  /**
   * The oldest document accepted, in milliseconds.
   *
   * @default DEFAULT_ATTESTATION_MAX_AGE_MS (five minutes)
   */
  readonly maxAge?: number;

  /**
   * The time to verify at: certificate validity and document age are checked against it.
   *
   * @default - the current time
   */
  readonly now?: Date;

  /**
   * The root certificates a chain may start from.
   *
   * @default - the AWS Nitro root, pinned by its SHA-256 fingerprint
   */
  readonly trustedRoots?: X509Certificate[];
}

function nonceBytes(nonce: Buffer | string): Buffer {
  if (Buffer.isBuffer(nonce)) {
    return nonce;
  }
  if (!/^([0-9a-fA-F]{2})+$/.test(nonce)) {
    throw new InvalidVerifyOptionsError(`expectedNonce must be bytes or an even-length hex string, got '${nonce}'`);
  }
  return Buffer.from(nonce, 'hex');
}

/** `now`, refused unless it is a valid Date: an invalid one would pass every validity and age comparison. */
function verificationTime(now: unknown): Date {
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
    throw new InvalidVerifyOptionsError(`now must be a valid Date, got ${describeValue(now)}`);
  }
  return now;
}

/** `maxAge`, refused unless it is a finite number of milliseconds, zero or more: anything else disables the age check. */
function maximumAge(maxAge: unknown): number {
  if (typeof maxAge !== 'number' || !Number.isFinite(maxAge) || maxAge < 0) {
    throw new InvalidVerifyOptionsError(`maxAge must be a finite number of milliseconds, zero or more, got ${describeValue(maxAge)}`);
  }
  return maxAge;
}

/** A rejected option value, named so that the caller can find it. */
function describeValue(value: unknown): string {
  if (value instanceof Date) return 'an invalid Date';
  if (typeof value === 'string') return `the string '${value}'`;
  if (typeof value === 'number') return String(value);
  return value === null ? 'null' : `a value of type ${typeof value}`;
}

/**
 * Verifies a NitroTPM attestation document and returns its content.
 *
 * Checks, in order: the document's structure, the certificate chain from a trusted root through the bundle to the
 * document's certificate (issuer, signature, CA flag, validity at `now`), the ES384 COSE_Sign1 signature with the
 * document certificate's key, the document's age, and the nonce.
 * @throws AttestationError whose `kind` says which check failed
 * @throws InvalidVerifyOptionsError when `now`, `maxAge` or `expectedNonce` is not a valid value, before any check
 */
export function verifyAttestationDocument(bytes: Uint8Array, options: VerifyAttestationOptions = {}): AttestationDocument {
  const now = options.now === undefined ? new Date() : verificationTime(options.now);
  const maxAge = options.maxAge === undefined ? DEFAULT_ATTESTATION_MAX_AGE_MS : maximumAge(options.maxAge);
  const expectedNonce = options.expectedNonce === undefined ? undefined : nonceBytes(options.expectedNonce);

  const { document, message } = parseAttestationDocument(bytes);
  if (document.digest !== 'SHA384') {
    throw new AttestationError(AttestationErrorKind.MALFORMED_DOCUMENT,
      `expected digest SHA384, got ${document.digest}`);
  }
  const leaf = verifyCertificateChain(document.certificate, document.cabundle,
    options.trustedRoots ?? [awsNitroRoot()], now);
  verifyCoseSign1(message, leaf.publicKey);

  const age = now.getTime() - document.timestamp.getTime();
  if (age > maxAge) {
    throw new AttestationError(AttestationErrorKind.STALE_DOCUMENT,
      `the document is from ${document.timestamp.toISOString()}, ${age} ms before ${now.toISOString()}; at most ${maxAge} ms are accepted`);
  }
  if (age < -CLOCK_SKEW_MS) {
    throw new AttestationError(AttestationErrorKind.STALE_DOCUMENT,
      `the document's timestamp ${document.timestamp.toISOString()} lies after ${now.toISOString()}`);
  }
  if (expectedNonce !== undefined && !(document.nonce?.equals(expectedNonce) ?? false)) {
    throw new AttestationError(AttestationErrorKind.NONCE_MISMATCH, document.nonce === undefined
      ? `the document carries no nonce; expected ${expectedNonce.toString('hex')}`
      : `the document's nonce ${document.nonce.toString('hex')} is not the expected ${expectedNonce.toString('hex')}`);
  }
  return document;
}
