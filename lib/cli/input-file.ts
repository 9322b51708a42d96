import { stat } from 'fs/promises';

/**
 * Checks that `file` exists and is no directory, before a command opens it, so that a wrong path is reported as what
 * it is instead of as the system's ENOENT or EISDIR. A pipe is let through: a sealed model may be streamed.
 *
 * @param what what the file is meant to be, e.g. 'model file'
 */
export async function requireInputFile(file: string, what: string): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(file)).isDirectory();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new Error(`The ${what} ${file} does not exist: check its path`, { cause: error });
    }
    if (code === 'EACCES') {
      throw new Error(`The ${what} ${file} cannot be read: permission denied`, { cause: error });
    }
    throw error;
  }
  if (isDirectory) throw new Error(`The ${what} ${file} is a directory: name the file in it`);
}
