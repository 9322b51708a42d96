import { createHash } from 'crypto';
import { Worker } from 'worker_threads';

/**
 * SHA-384 runs on a worker thread: it is the costliest step per byte, and on the caller's thread it would stall
 * the cipher. Kept as source text so that it runs the same from TypeScript, the compiled library and a bundle.
 */
const SHA384_WORKER = `
const { parentPort } = require('worker_threads');
const hash = require('crypto').createHash('sha384');
parentPort.on('message', (piece) => {
  if (piece === null) parentPort.postMessage(hash.digest('hex'));
  else { hash.update(piece); parentPort.postMessage(piece, [piece.buffer]); }
});
`;

/** Plaintext bytes handed to the worker and not yet hashed, at most: bounds memory when the worker falls behind. */
const MAX_IN_FLIGHT = 32 * 1024 * 1024;

/**
 * The plaintext's SHA-256 (Ollama names blobs by it) and SHA-384 (the appliance extends PCR15 with it), computed
 * as the plaintext streams by: SHA-256 on the caller's thread, SHA-384 on a worker, in parallel with whatever the
 * caller does next. Pieces passed to `update` are handed over to the worker: the caller must not use them again.
 */
export class PlaintextDigests {
  private readonly sha256 = createHash('sha256');
  private readonly worker = new Worker(SHA384_WORKER, { eval: true });
  /** Buffers the worker has hashed and handed back, by size, for {@link buffer} to reuse. */
  private readonly spare = new Map<number, ArrayBuffer[]>();
  private inFlight = 0;
  private drained?: () => void;
  private finished?: (digest: string) => void;
  private failure?: Error;

  constructor() {
    this.worker.on('message', (message: Uint8Array | string) => {
      if (typeof message === 'string') {
        this.finished?.(message);
        return;
      }
      this.inFlight -= message.byteLength;
      const spare = this.spare.get(message.buffer.byteLength) ?? [];
      if (spare.length < 4) this.spare.set(message.buffer.byteLength, [...spare, message.buffer as ArrayBuffer]);
      if (this.inFlight <= MAX_IN_FLIGHT / 2) this.drained?.();
    });
    this.worker.on('error', (error) => {
      this.failure = error;
      this.drained?.();
    });
  }

  /**
   * A buffer of `size` bytes to read plaintext into, reusing one the worker has finished with: a fresh multi-MiB
   * allocation costs a page fault per 4 KiB, which is a measurable share of sealing.
   */
  public buffer(size: number): Buffer {
    const recycled = this.spare.get(size)?.pop();
    return recycled ? Buffer.from(recycled) : Buffer.allocUnsafe(size);
  }

  /** Hashes `pieces`, waiting only when the worker is more than {@link MAX_IN_FLIGHT} bytes behind. */
  public async update(pieces: Buffer[]): Promise<void> {
    for (const piece of pieces) {
      this.sha256.update(piece);
      this.inFlight += piece.byteLength;
      const owned = piece.byteOffset === 0 && piece.byteLength === piece.buffer.byteLength;
      this.worker.postMessage(piece, owned ? [piece.buffer as ArrayBuffer] : []);
    }
    while (this.inFlight > MAX_IN_FLIGHT && !this.failure) {
      await new Promise<void>((resolve) => (this.drained = resolve));
    }
    if (this.failure) throw this.failure;
  }

  public async digest(): Promise<{ sha256: string; sha384: string }> {
    const sha384 = new Promise<string>((resolve) => (this.finished = resolve));
    this.worker.postMessage(null);
    return { sha256: this.sha256.digest('hex'), sha384: await sha384 };
  }

  /** Stops the worker; call it whatever happened. */
  public async close(): Promise<void> {
    await this.worker.terminate();
  }
}
