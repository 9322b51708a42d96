/** What an attestation document should carry besides the PCRs. */
export interface AttestationRequest {
  /** DER SubjectPublicKeyInfo of the key KMS wraps the data key to (RSA). */
  readonly publicKey?: Buffer;
  /** A verifier's nonce, bound into the document. */
  readonly nonce?: Buffer;
  /** Application data bound into the document. */
  readonly userData?: Buffer;
}

/** Produces signed NitroTPM attestation documents (COSE_Sign1, CBOR) over the instance's current PCRs. */
export interface Attester {
  attest(request: AttestationRequest): Promise<Buffer>;
}
