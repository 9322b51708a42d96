import { MessageChannel, Worker } from 'worker_threads';

/**
 * One digest on a worker thread. A piece arrives from `input` (the caller, or the previous worker), is hashed and
 * moves on to `output` (the next worker, or back to the caller), transferred, never copied. `null` ends the stream:
 * each worker posts its digest to the caller and passes the `null` on.
 * Kept as source text so that it runs the same from TypeScript, the compiled library and a bundle.
 */
const DIGEST_WORKER = `
const { parentPort, workerData } = require('worker_threads');
const hash = require('crypto').createHash(workerData.algorithm);
const { input, output } = workerData;
(input ?? parentPort).on('message', (piece) => {
  if (piece === null) {
    parentPort.postMessage({ algorithm: workerData.algorithm, digest: hash.digest('hex') });
    (output ?? parentPort).postMessage(null);
  } else {
    hash.update(piece);
    (output ?? parentPort).postMessage(piece, [piece.buffer]);
  }
});
`;

/** Plaintext bytes handed to the workers and not yet hashed, at most: bounds memory when they fall behind. */
const MAX_IN_FLIGHT = 32 * 1024 * 1024;

/**
 * The plaintext's SHA-256 (Ollama names blobs by it) and SHA-384 (the appliance extends PCR15 with it), computed
 * as the plaintext streams by, each on a worker thread of its own: the caller's thread keeps only the cipher and
 * the I/O. Pieces go through the SHA-256 worker, then the SHA-384 worker, then back to the caller, which may reuse
 * their memory ({@link buffer}). Pieces passed to `update` are handed over: the caller must not use them again.
 */
export class PlaintextDigests {
  private readonly workers: Worker[];
  /** Buffers hashed and handed back, for {@link buffer} to reuse, by the sizes it has been asked for. */
  private readonly spare = new Map<number, ArrayBuffer[]>();
  private readonly digests = new Map<string, string>();
  private inFlight = 0;
  private drained?: () => void;
  private finished?: () => void;
  private failure?: Error;

  constructor() {
    const link = new MessageChannel();
    this.workers = [
      new Worker(DIGEST_WORKER, {
        eval: true,
        workerData: { algorithm: 'sha256', output: link.port1 },
        transferList: [link.port1],
      }),
      new Worker(DIGEST_WORKER, {
        eval: true,
        workerData: { algorithm: 'sha384', input: link.port2 },
        transferList: [link.port2],
      }),
    ];
    this.workers[0].on('message', (message: { algorithm: string; digest: string }) => this.record(message));
    this.workers[1].on('message', (message: Uint8Array | null | { algorithm: string; digest: string }) => {
      if (message === null) return;
      if (message instanceof Uint8Array) this.recycle(message);
      else this.record(message);
    });
    for (const worker of this.workers) {
      worker.on('error', (error) => {
        this.failure = error;
        this.drained?.();
        this.finished?.();
      });
    }
  }

  /**
   * A buffer of `size` bytes to read plaintext into, reusing one the workers have finished with: a fresh multi-MiB
   * allocation costs a page fault per 4 KiB, which is a measurable share of sealing.
   */
  public buffer(size: number): Buffer {
    const spare = this.spare.get(size);
    if (spare === undefined) this.spare.set(size, []);
    const recycled = spare?.pop();
    return recycled ? Buffer.from(recycled) : Buffer.allocUnsafe(size);
  }

  /** Hashes `pieces`, waiting only when the workers are more than {@link MAX_IN_FLIGHT} bytes behind. */
  public async update(pieces: Buffer[]): Promise<void> {
    for (const piece of pieces) {
      this.inFlight += piece.byteLength;
      const owned = piece.byteOffset === 0 && piece.byteLength === piece.buffer.byteLength;
      this.workers[0].postMessage(piece, owned ? [piece.buffer as ArrayBuffer] : []);
    }
    while (this.inFlight > MAX_IN_FLIGHT && !this.failure) {
      await new Promise<void>((resolve) => (this.drained = resolve));
    }
    if (this.failure) throw this.failure;
  }

  public async digest(): Promise<{ sha256: string; sha384: string }> {
    const done = new Promise<void>((resolve) => (this.finished = resolve));
    this.workers[0].postMessage(null);
    await done;
    if (this.failure) throw this.failure;
    return { sha256: this.digests.get('sha256')!, sha384: this.digests.get('sha384')! };
  }

  /** Stops the workers; call it whatever happened. */
  public async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  private recycle(piece: Uint8Array): void {
    this.inFlight -= piece.byteLength;
    // Kept only in sizes that {@link buffer} is asked for: pieces of other sizes, passed in by a caller, would
    // otherwise pile up, a few of every size met, for the whole stream.
    const spare = this.spare.get(piece.buffer.byteLength);
    if (spare !== undefined && spare.length < 4) spare.push(piece.buffer as ArrayBuffer);
    if (this.inFlight <= MAX_IN_FLIGHT / 2) this.drained?.();
  }

  private record({ algorithm, digest }: { algorithm: string; digest: string }): void {
    this.digests.set(algorithm, digest);
    if (this.digests.size === 2) this.finished?.();
  }
}
