/**
 * A few chunk-sized buffers in shared memory that a chunk's consumers read at the same time: the SHA-256 worker
 * and the writer (unsealing), or the SHA-256 worker and the cipher (sealing), instead of one after the other. A
 * slot is taken for a chunk and comes back once every consumer released it, so memory stays at
 * `count × size` however large the model, and a fresh multi-MiB buffer (a page fault per 4 KiB) is never needed.
 */

/** One shared buffer, filled with one chunk at a time. */
export interface ChunkSlot {
  /** The whole slot; a chunk uses its first bytes. */
  readonly memory: SharedArrayBuffer;
  /** A Buffer over {@link memory}. */
  readonly buffer: Buffer;
}

export class ChunkSlots {
  private readonly free: ChunkSlot[] = [];
  private created = 0;
  private waiting: Array<() => void> = [];
  private failure?: unknown;

  /**
   * @param size bytes per slot: the largest chunk
   * @param count slots at most
   */
  constructor(
    private readonly size: number,
    private readonly count: number,
  ) {}

  /** A free slot, waiting while every slot is in use; throws the first failure {@link fail} was told of. */
  public async take(): Promise<ChunkSlot> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const slot = this.free.pop() ?? this.create();
      if (slot) return slot;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  /** Gives `slot` back once every consumer in `uses` is done with it; a consumer's failure is kept for {@link take}. */
  public releaseAfter(slot: ChunkSlot, uses: Array<Promise<unknown>>): void {
    Promise.all(uses).then(
      () => {
        this.free.push(slot);
        this.wake();
      },
      (error: unknown) => this.fail(error),
    );
  }

  /** Stops handing out slots: the next (or a waiting) {@link take} throws `error`. */
  public fail(error: unknown): void {
    this.failure ??= error;
    this.wake();
  }

  /** Resolves once every slot is back, or a consumer failed: nothing reads a slot any more. */
  public async settled(): Promise<void> {
    while (this.free.length < this.created && this.failure === undefined) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    if (this.failure !== undefined) throw this.failure;
  }

  private create(): ChunkSlot | undefined {
    if (this.created === this.count) return undefined;
    this.created++;
    const memory = new SharedArrayBuffer(this.size);
    return { memory, buffer: Buffer.from(memory) };
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve();
  }
}
