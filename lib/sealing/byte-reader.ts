/** Reads exact byte counts from a stream of buffers of any sizes (a file stream, an S3 object body). */
export class ByteReader {
  private readonly iterator: AsyncIterator<Buffer | Uint8Array>;
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private done = false;

  constructor(source: AsyncIterable<Buffer | Uint8Array>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** Exactly `n` bytes, or fewer only at the end of the stream. */
  public async read(n: number): Promise<Buffer> {
    const pieces = await this.readPieces(n);
    return pieces.length === 1 ? pieces[0] : Buffer.concat(pieces);
  }

  /** Like {@link read}, as the pieces the stream delivered them in: no copy, for large reads. */
  public async readPieces(n: number): Promise<Buffer[]> {
    await this.fill(n);
    const pieces: Buffer[] = [];
    let wanted = n;
    while (wanted > 0 && this.pending.length > 0) {
      const head = this.pending[0];
      if (head.length <= wanted) {
        pieces.push(head);
        this.pending.shift();
      } else {
        pieces.push(head.subarray(0, wanted));
        this.pending[0] = head.subarray(wanted);
      }
      wanted -= pieces[pieces.length - 1].length;
    }
    this.pendingLength -= n - wanted;
    return pieces;
  }

  /** Whether the stream has no byte left. */
  public async atEnd(): Promise<boolean> {
    await this.fill(1);
    return this.pendingLength === 0;
  }

  /** Stops reading the source (e.g. closes the file or the HTTP response). */
  public async close(): Promise<void> {
    await this.iterator.return?.();
  }

  private async fill(n: number): Promise<void> {
    while (this.pendingLength < n && !this.done) {
      const { value, done } = await this.iterator.next();
      if (done) {
        this.done = true;
      } else if (value.length > 0) {
        const chunk = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.length);
        this.pending.push(chunk);
        this.pendingLength += chunk.length;
      }
    }
  }
}
