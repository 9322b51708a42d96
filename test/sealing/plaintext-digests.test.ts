import { createHash, randomBytes } from 'crypto';
import { PlaintextDigests } from '../../lib/sealing/plaintext-digests';

/** The buffers handed back for reuse, counted by size: the one piece of internal state that could grow. */
const spares = (digests: PlaintextDigests) =>
  [...(digests as unknown as { spare: Map<number, ArrayBuffer[]> }).spare.values()].reduce((n, list) => n + list.length, 0);

test('computes SHA-256 and SHA-384 of the pieces in order', async () => {
  const digests = new PlaintextDigests();
  try {
    const pieces = [randomBytes(1000), randomBytes(70_000), randomBytes(1)];
    const expected = {
      sha256: createHash('sha256').update(Buffer.concat(pieces)).digest('hex'),
      sha384: createHash('sha384').update(Buffer.concat(pieces)).digest('hex'),
    };
    await digests.update(pieces.map((piece) => Buffer.from(piece)));
    expect(await digests.digest()).toEqual(expected);
  } finally {
    await digests.close();
  }
});

test('keeps pieces for reuse only in the sizes it is asked for, however many sizes stream by', async () => {
  const digests = new PlaintextDigests();
  try {
    const asked = digests.buffer(4096);
    asked.fill(1);
    // Pieces of sizes it was never asked for, every one different.
    await digests.update([asked, ...Array.from({ length: 200 }, (_, i) => Buffer.alloc(1000 + i))]);
    await digests.digest();
    expect(spares(digests)).toBe(1);
    expect(digests.buffer(4096).equals(Buffer.alloc(4096, 1))).toBe(true);
  } finally {
    await digests.close();
  }
});
