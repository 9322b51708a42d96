import { randomBytes } from 'crypto';
import { readdir, stat, unlink } from 'fs/promises';
import * as path from 'path';

/**
 * Temporary files beside a destination: a file is written under a hidden name of its own and renamed to its
 * destination only once complete, so no reader ever takes a partial file for a whole one.
 */

/** A partial file not written to for this long belongs to a run that was killed: no live run pauses that long. */
export const ABANDONED_AFTER_MS = 60_000;

/** A fresh temporary name beside `destination`: `.<name>.<random>.partial`. */
export function partialFileFor(destination: string): string {
  return path.join(path.dirname(destination), `.${path.basename(destination)}.${randomBytes(6).toString('hex')}.partial`);
}

/**
 * Removes the partial files of `destination` that a killed run left (SIGKILL and power loss leave no chance to clean
 * up): those not modified for {@link ABANDONED_AFTER_MS}, so that a run still writing beside it keeps its own.
 *
 * @returns the files removed
 */
export async function removeAbandonedPartialFiles(destination: string, now = Date.now()): Promise<string[]> {
  const directory = path.dirname(destination);
  const prefix = `.${path.basename(destination)}.`;
  const names = await readdir(directory).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names.filter((n) => n.startsWith(prefix) && /^[0-9a-f]{12}\.partial$/.test(n.slice(prefix.length)))) {
    const file = path.join(directory, name);
    const modified = await stat(file).then((s) => s.mtimeMs, () => undefined);
    if (modified !== undefined && now - modified >= ABANDONED_AFTER_MS) {
      await unlink(file).then(() => removed.push(file), () => undefined);
    }
  }
  return removed;
}
