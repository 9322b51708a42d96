/**
 * Options for `verifyAttestationDocument` that would make a check meaningless: an invalid `now` or `maxAge` compares
 * as false against every timestamp and would switch the certificate-validity and age checks off. This is the
 * caller's mistake, not a finding about a document, so it is not an `AttestationError`.
 */
export class InvalidVerifyOptionsError extends Error {
  /** Always `invalid-options`, for callers that dispatch on `kind`. */
  public readonly kind = 'invalid-options';

  constructor(message: string) {
    super(`invalid-options: ${message}`);
    this.name = 'InvalidVerifyOptionsError';
  }
}
