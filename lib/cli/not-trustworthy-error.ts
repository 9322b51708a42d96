/**
 * A check that ran and failed: the service, its document or its key is not what the verifier expected. The CLI exits
 * with `EXIT_CODE.notTrustworthy`, unlike a check that could not run (`EXIT_CODE.failure`).
 */
export class NotTrustworthyError extends Error {
  constructor(reason: string) {
    super(`not trustworthy: ${reason}`);
    this.name = 'NotTrustworthyError';
  }
}
