import { createHash } from 'crypto';

/**
 * The plaintext's SHA-256 (Ollama names blobs by it) and SHA-384 (the appliance extends PCR15 with it), computed
 * as the plaintext streams by.
 */
export class PlaintextDigests {
  private readonly sha256 = createHash('sha256');
  private readonly sha384 = createHash('sha384');

  public async update(pieces: Buffer[]): Promise<void> {
    for (const piece of pieces) {
      this.sha256.update(piece);
      this.sha384.update(piece);
    }
  }

  public async digest(): Promise<{ sha256: string; sha384: string }> {
    return { sha256: this.sha256.digest('hex'), sha384: this.sha384.digest('hex') };
  }

  public async close(): Promise<void> {}
}
