import { Command, CommanderError } from 'commander';
import { addInspectCommand } from './inspect-command';
import { addMeasurementsCommand } from './measurements-command';
import { addSealCommand } from './seal-command';
import { addUnsealCommand } from './unseal-command';

/**
 * The `sealed-inference` command line: one subcommand a task, each in its own module under `lib/cli/`. Runtime code:
 * no aws-cdk-lib import.
 *
 * Results go to stdout, so that they can be piped; everything meant for a person (notes, warnings, errors) goes to
 * stderr. The program never exits the process itself: {@link runCli} returns the exit code.
 */

/** Where the program writes. */
export interface CliOutput {
  /** Results: machine-readable, pipeable. */
  readonly stdout: (text: string) => void;
  /** Notes, warnings and errors for a person. */
  readonly stderr: (text: string) => void;
  /**
   * Where to draw progress bars, if anywhere: a terminal, as they redraw their line.
   *
   * @default - no progress bars
   */
  readonly progressStream?: NodeJS.WritableStream;
}

/** Exit codes. */
export const EXIT_CODE = {
  /** The command did what was asked. */
  success: 0,
  /** The command was understood but failed: an image refused, a sealed model that fails to verify, an AWS error. */
  failure: 1,
  /** The command line was wrong: unknown option, missing or malformed argument. */
  usage: 2,
} as const;

/** The program's name, as the package's `bin` installs it. */
export const PROGRAM_NAME = 'sealed-inference';

/** The process's own streams, with progress bars on stderr when it is a terminal. */
export const PROCESS_OUTPUT: CliOutput = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  progressStream: process.stderr.isTTY ? process.stderr : undefined,
};

/** Builds the program with all its subcommands, writing to `output`. Parse it with `parseAsync` once. */
export function createProgram(output: CliOutput = PROCESS_OUTPUT): Command {
  const program = new Command(PROGRAM_NAME)
    .description('Confidential LLM inference on EC2 NitroTPM: work with attestable images and sealed models')
    .configureOutput({
      writeOut: output.stdout,
      writeErr: output.stderr,
      outputError: (text, write) => write(text.replace(/^error: /, `${PROGRAM_NAME}: `)),
    })
    .showHelpAfterError(`(add --help for usage)`)
    .exitOverride();
  addSealCommand(program, output);
  addUnsealCommand(program, output);
  addInspectCommand(program, output);
  addMeasurementsCommand(program, output);
  return program;
}

/**
 * Runs the program on `args` (the arguments after the program name) and returns its exit code
 * ({@link EXIT_CODE}). A failure is reported as one line on stderr, `sealed-inference: <reason>`, without a stack.
 */
export async function runCli(args: readonly string[], output: CliOutput = PROCESS_OUTPUT): Promise<number> {
  try {
    await createProgram(output).parseAsync([...args], { from: 'user' });
    return EXIT_CODE.success;
  } catch (error) {
    // Commander has already written its message (or the help it was asked for).
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT_CODE.success : EXIT_CODE.usage;
    const message = error instanceof Error ? error.message : String(error);
    output.stderr(`${PROGRAM_NAME}: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
    return EXIT_CODE.failure;
  }
}
