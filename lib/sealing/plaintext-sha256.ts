import { Worker } from 'worker_threads';
import { ChunkSlot } from './chunk-slots';

/**
 * The worker: hashes the first `length` bytes of each shared slot it is sent, in order, and answers each with its
 * id once done; `null` ends the stream and is answered with the digest. Kept as source text so that it runs the
 * same from TypeScript, the compiled library and a bundle.
 */
const SHA256_WORKER = `
const { parentPort } = require('worker_threads');
const hash = require('crypto').createHash('sha256');
parentPort.on('message', (message) => {
  if (message === null) {
    parentPort.postMessage({ digest: hash.digest('hex') });
  } else {
    hash.update(new Uint8Array(message.memory, 0, message.length));
    parentPort.postMessage(message.id);
  }
});
`;

/**
 * The plaintext's SHA-256 on a worker thread of its own, computed over chunk slots in shared memory while the
 * caller's thread goes on with the cipher and the I/O: the slot is read, never copied or transferred.
 */
export class PlaintextSha256 {
  private readonly worker = new Worker(SHA256_WORKER, { eval: true });
  private readonly pending = new Map<number, { resolve: () => void; reject: (error: unknown) => void }>();
  private nextId = 0;
  private finished?: { resolve: (digest: string) => void; reject: (error: unknown) => void };

  constructor() {
    this.worker.on('message', (message: number | { digest: string }) => {
      if (typeof message === 'number') {
        this.pending.get(message)?.resolve();
        this.pending.delete(message);
      } else {
        this.finished?.resolve(message.digest);
      }
    });
    this.worker.on('error', (error) => {
      for (const { reject } of this.pending.values()) reject(error);
      this.pending.clear();
      this.finished?.reject(error);
    });
  }

  /** Hashes the first `length` bytes of `slot` next; resolves once the worker no longer reads it. */
  public update(slot: ChunkSlot, length: number): Promise<void> {
    const id = this.nextId++;
    const hashed = new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.worker.postMessage({ id, memory: slot.memory, length });
    return hashed;
  }

  /** The SHA-256 (hex) of everything passed to {@link update}. */
  public digest(): Promise<string> {
    const digest = new Promise<string>((resolve, reject) => (this.finished = { resolve, reject }));
    this.worker.postMessage(null);
    return digest;
  }

  /** Stops the worker; call it whatever happened. */
  public async close(): Promise<void> {
    await this.worker.terminate();
  }
}
