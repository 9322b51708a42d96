import type { Cipher, Decipher } from 'crypto';

/**
 * Bytes handed to the cipher at a time. Node allocates a fresh output buffer for every `update`: 1 MiB stays under
 * the 32 MiB mmap threshold of glibc set to keep freed memory, so the allocation reuses heap memory instead of
 * page-faulting in fresh pages, and the per-call cost is spread over enough bytes (see docs/performance.md).
 */
export const SLICE_SIZE = 1024 * 1024;

/** Runs `data` through `cipher` in slices, returning the output pieces in order (no concatenation). */
export function cryptInSlices(cipher: Cipher | Decipher, data: Buffer): Buffer[] {
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += SLICE_SIZE) {
    pieces.push(cipher.update(data.subarray(offset, offset + SLICE_SIZE)));
  }
  return pieces;
}

/**
 * Runs `data` through `cipher` in slices, copying the output into `output` from `offset`: one buffer the caller can
 * reuse and hand on whole, rather than a piece per slice. Returns the offset after the last byte written.
 */
export function cryptInto(cipher: Cipher | Decipher, data: Buffer, output: Buffer, offset: number): number {
  let end = offset;
  for (const piece of cryptInSlices(cipher, data)) end += piece.copy(output, end);
  return end;
}

/** The total length of `pieces`. */
export function byteLength(pieces: Buffer[]): number {
  return pieces.reduce((sum, piece) => sum + piece.length, 0);
}
