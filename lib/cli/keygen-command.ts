import { Command } from 'commander';
import { randomBytes } from 'crypto';
import { open, rm } from 'fs/promises';
import * as path from 'path';
import { DATA_KEY_BYTES } from './data-key-file';
import type { CliOutput } from './program';

/**
 * `sealed-inference keygen <file>`: makes the raw data key that `seal --data-key-file` and `unseal` use offline.
 * The key goes only into the file: never to stdout or stderr, where a terminal's scrollback or a log would keep it.
 */

/** Only the owner may read or write the key file. */
const KEY_FILE_MODE = 0o600;

/** Adds `keygen` to `program`, writing its note to `output`. */
export function addKeygenCommand(program: Command, output: CliOutput): Command {
  return program
    .command('keygen')
    .summary('write a fresh raw data key for sealing offline')
    .description(
      `Write a fresh random ${DATA_KEY_BYTES}-byte data key to <file> for seal --data-key-file and unseal, readable ` +
        'by its owner only (mode 0600). Never overwrites a file, and never prints the key.',
    )
    .argument('<file>', 'the key file to create, e.g. key.bin; its directory must exist')
    .action(async (file: string) => {
      await writeDataKeyFile(file);
      output.stderr(`Wrote a fresh ${DATA_KEY_BYTES}-byte data key to ${file} (mode 0600)\n`);
    });
}

/**
 * Creates `file` (mode 0600, failing if anything is there, even a dangling link) with a fresh random data key, and
 * syncs it and its directory to disk. A file left incomplete by a failed write is removed.
 */
export async function writeDataKeyFile(file: string): Promise<void> {
  const handle = await open(file, 'wx', KEY_FILE_MODE).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST') throw new Error(`${file} already exists: keygen never replaces a file; choose another`);
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') {
      throw new Error(`${path.dirname(file)} is not an existing directory: create it first, or choose another file`);
    }
    throw error;
  });
  const key = randomBytes(DATA_KEY_BYTES);
  try {
    await handle.writeFile(key);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(file, { force: true });
    throw error;
  } finally {
    key.fill(0);
  }
  await handle.close();
  await syncDirectory(path.dirname(file));
}

/** Syncs a directory, so that the new file's name survives a crash as well as its content. */
async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
