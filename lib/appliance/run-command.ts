import { execFile, ExecFileException } from 'node:child_process';

/** How to run a system tool. */
export interface RunCommandOptions {
  /** The package that installs the command, named when the command is missing. */
  readonly providedBy: string;
  /**
   * The child's environment.
   *
   * @default - this process's environment
   */
  readonly env?: NodeJS.ProcessEnv;
  /** Milliseconds before the child is killed. */
  readonly timeoutMs: number;
  /** The most bytes accepted on stdout (and on stderr); more kills the child. */
  readonly maxOutputBytes: number;
}

function lastLine(output: Buffer | string): string {
  const lines = output.toString('utf8').split('\n').map((line) => line.trim()).filter((line) => line.length > 0);
  return lines.at(-1) ?? '';
}

function commandFailure(command: string, error: ExecFileException, stderr: Buffer, options: RunCommandOptions): Error {
  if (error.code === 'ENOENT') {
    return new Error(`${command} is not installed or not on PATH: install the package ${options.providedBy}`);
  }
  if (error.code === 'EACCES') {
    return new Error(`${command} is not executable by this user`);
  }
  if (error.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') {
    return new Error(`${command} wrote more than ${options.maxOutputBytes} bytes; it was stopped`);
  }
  if (error.killed) {
    // A device busy for a while is worth another try, unlike a refusal.
    return Object.assign(new Error(`${command} did not finish within ${options.timeoutMs} ms; it was stopped`),
      { transient: true });
  }
  const why = lastLine(stderr) || 'no message on stderr';
  const status = error.signal ? `was killed by ${error.signal}` : `exited with status ${error.code}`;
  return new Error(`${command} ${status}: ${why}`);
}

/**
 * Runs `command` with `args` directly (no shell) and resolves with its stdout as bytes.
 *
 * Rejects with a one-line reason when the command is missing (naming its package), exits non-zero (with the last
 * line of its stderr), runs longer than `timeoutMs`, or writes more than `maxOutputBytes`.
 */
export function runCommand(command: string, args: readonly string[], options: RunCommandOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(command, args, {
      encoding: 'buffer',
      env: options.env ?? process.env,
      timeout: options.timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: options.maxOutputBytes,
    }, (error, stdout, stderr) => {
      if (error) {
        reject(commandFailure(command, error, stderr, options));
      } else {
        resolve(stdout);
      }
    });
  });
}
