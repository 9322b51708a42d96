import { execFileSync } from 'node:child_process';

/**
 * Runs openssl, the independent implementation recipient keys and CMS envelopes are checked against; fails with the
 * install command when it is missing.
 */
export function openssl(args: string[], input?: Buffer): Buffer {
  try {
    return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('openssl is missing; install it: apt-get update && apt-get install -y --no-install-recommends openssl',
        { cause: error });
    }
    throw new Error(`openssl ${args.join(' ')} failed: ${(error as { stderr?: Buffer }).stderr?.toString() ?? error}`,
      { cause: error });
  }
}
