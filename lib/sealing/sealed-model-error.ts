/** Why sealing or unsealing failed. */
export type SealedModelFailure =
  | 'not-sealed'
  | 'malformed'
  | 'unsupported-version'
  | 'wrong-key'
  | 'tampered'
  | 'truncated'
  | 'trailing-data'
  | 'manifest-mismatch'
  | 'source-changed';

/** A sealed model that cannot be sealed or opened, with the reason as a machine-readable kind. */
export class SealedModelError extends Error {
  constructor(
    public readonly kind: SealedModelFailure,
    message: string,
  ) {
    super(message);
    this.name = 'SealedModelError';
  }
}
