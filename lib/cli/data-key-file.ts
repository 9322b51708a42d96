import { open } from 'fs/promises';
import { requireInputFile } from './input-file';
import type { CliOutput } from './program';

/** The size of a raw AES-256 data key file. */
export const DATA_KEY_BYTES = 32;

/**
 * Reads a raw 32-byte data key from `file`, for sealing and unsealing offline. Refuses any other size (a hex or
 * base64 text file, a wrapped key) and warns on stderr when group or others may read the file. The caller wipes the
 * key with `fill(0)` after use.
 */
export async function readDataKeyFile(file: string, output: Pick<CliOutput, 'stderr'>): Promise<Buffer> {
  await requireInputFile(file, 'data key file');
  const handle = await open(file, 'r');
  try {
    const { size, mode } = await handle.stat();
    if (size !== DATA_KEY_BYTES) {
      throw new Error(
        `The data key file ${file} has ${size} bytes: it must hold exactly ${DATA_KEY_BYTES} raw bytes (an AES-256 ` +
          `key, not hex or base64 text): make one with sealed-inference keygen <file>`,
      );
    }
    if ((mode & 0o077) !== 0) {
      output.stderr(
        `warning: the data key file ${file} has mode ${(mode & 0o777).toString(8).padStart(4, '0')}: others than ` +
          `its owner may read it; chmod 600 ${file}\n`,
      );
    }
    const key = Buffer.alloc(DATA_KEY_BYTES);
    const { bytesRead } = await handle.read(key, 0, DATA_KEY_BYTES, 0);
    if (bytesRead !== DATA_KEY_BYTES) {
      key.fill(0);
      throw new Error(`The data key file ${file} changed while it was read`);
    }
    return key;
  } finally {
    await handle.close();
  }
}
