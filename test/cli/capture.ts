import { CliDependencies, runCli } from '../../lib/cli/program';

/** What a run of the CLI in this process wrote, and its exit code. */
export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI in this process on `args`, capturing its output (no progress bars). */
export async function runCaptured(args: string[], dependencies?: CliDependencies): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const output = { stdout: (text: string) => (stdout += text), stderr: (text: string) => (stderr += text) };
  const code = await runCli(args, output, dependencies);
  return { code, stdout, stderr };
}

/** The one line a failure leaves on stderr, `sealed-inference: <message>…`. */
export const failure = (message: RegExp) => new RegExp(`^sealed-inference: ${message.source}[^\\n]*\\n$`);

/** Output on stderr that ends with the one line of a failure, after any notes. */
export const endsWithFailure = (message: RegExp) => new RegExp(`(^|\\n)sealed-inference: ${message.source}[^\\n]*\\n$`);
