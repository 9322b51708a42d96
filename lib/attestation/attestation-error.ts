/** Why an attestation document was rejected. */
export enum AttestationErrorKind {
  /** The bytes are not a COSE_Sign1 NitroTPM attestation document, or a required field is missing or mistyped. */
  MALFORMED_DOCUMENT = 'malformed-document',
  /** The COSE_Sign1 signature does not verify with the public key of the document's certificate. */
  BAD_SIGNATURE = 'bad-signature',
  /** The first certificate of the bundle is not a trusted root (by default, the AWS Nitro root). */
  UNKNOWN_ROOT = 'unknown-root',
  /** A certificate was not issued and signed by the certificate before it in the chain. */
  BROKEN_CHAIN = 'broken-chain',
  /** A certificate of the chain expired before the verification time. */
  CERTIFICATE_EXPIRED = 'certificate-expired',
  /** A certificate of the chain is valid only after the verification time. */
  CERTIFICATE_NOT_YET_VALID = 'certificate-not-yet-valid',
  /** The document's timestamp is older than the allowed age, or lies in the future. */
  STALE_DOCUMENT = 'stale-document',
  /** The document does not carry the nonce the verifier asked for. */
  NONCE_MISMATCH = 'nonce-mismatch',
  /** The document does not bind the TLS key of the connection it came over: a relay or a mirror answered. */
  CHANNEL_MISMATCH = 'channel-mismatch',
}

/** An attestation document that cannot be trusted; `kind` says why, the message explains. */
export class AttestationError extends Error {
  constructor(
    /** Why the document was rejected. */
    public readonly kind: AttestationErrorKind,
    message: string,
  ) {
    super(`${kind}: ${message}`);
    this.name = 'AttestationError';
  }
}
