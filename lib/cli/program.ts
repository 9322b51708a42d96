import type { X509Certificate } from 'node:crypto';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { KMSClient } from '@aws-sdk/client-kms';
import { Command, CommanderError } from 'commander';
import { addGatewayCommand } from './gateway-command';
import { addInspectCommand } from './inspect-command';
import { addKeygenCommand } from './keygen-command';
import { addMeasurementsCommand } from './measurements-command';
import { addSealCommand } from './seal-command';
import { addUnsealCommand } from './unseal-command';
import { InterruptedError } from './interruption';
import { NotTrustworthyError } from './not-trustworthy-error';
import { packageVersion } from './package-version';
import { addVerifyCommand } from './verify-command';

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
  /** `verify` checked the service (or its key) and it is not what was expected. */
  notTrustworthy: 3,
} as const;

/**
 * What the program reaches outside the process through, other than the network it is pointed at. The defaults are
 * the production ones; tests replace them. There is deliberately no command-line option for any of them.
 */
export interface CliDependencies {
  /**
   * The roots an attestation document's certificate chain may start from.
   *
   * @default - the AWS Nitro root, pinned by its fingerprint
   */
  readonly trustedRoots?: X509Certificate[];
  /**
   * Makes the KMS client for a Region.
   *
   * @default - a KMS client with the SDK's credential chain
   */
  readonly kmsClient?: (region: string) => KMSClient;
  /**
   * Makes the EC2 client for a Region (`undefined`: the SDK's chain).
   *
   * @default - an EC2 client with the SDK's credential chain and retries
   */
  readonly ec2Client?: (region?: string) => EC2Client;
}

/** The program's name, as the package's `bin` installs it. */
export const PROGRAM_NAME = 'sealed-inference';

/** The process's own streams, with progress bars on stderr when it is a terminal. */
export const PROCESS_OUTPUT: CliOutput = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  progressStream: process.stderr.isTTY ? process.stderr : undefined,
};

/** Builds the program with all its subcommands, writing to `output`. Parse it with `parseAsync` once. */
export function createProgram(output: CliOutput = PROCESS_OUTPUT, dependencies: CliDependencies = {}): Command {
  const program = new Command(PROGRAM_NAME)
    .description('Confidential LLM inference on EC2 NitroTPM: work with attestable images and sealed models')
    .configureOutput({
      writeOut: output.stdout,
      writeErr: output.stderr,
      outputError: (text, write) => write(`${oneErrorLine(text)} (add --help for usage)\n`),
    })
    .version(packageVersion(), '--version', "print the package's version")
    .exitOverride();
  addSealCommand(program, output);
  addUnsealCommand(program, output);
  addKeygenCommand(program, output);
  addInspectCommand(program, output);
  addMeasurementsCommand(program, output, dependencies);
  addVerifyCommand(program, output, dependencies);
  addGatewayCommand(program, output, dependencies);
  return program;
}

/** Commander's message as the one line every failure is, `sealed-inference: <reason>`: it may span several. */
function oneErrorLine(text: string): string {
  return `${PROGRAM_NAME}: ${text.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ')}`;
}

/**
 * Runs the program on `args` (the arguments after the program name) and returns its exit code
 * ({@link EXIT_CODE}). A failure is reported as one line on stderr, `sealed-inference: <reason>`, without a stack.
 */
export async function runCli(
  args: readonly string[],
  output: CliOutput = PROCESS_OUTPUT,
  dependencies: CliDependencies = {},
): Promise<number> {
  try {
    await createProgram(output, dependencies).parseAsync([...args], { from: 'user' });
    return EXIT_CODE.success;
  } catch (error) {
    // Commander has already written its message (or the help it was asked for).
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT_CODE.success : EXIT_CODE.usage;
    const message = error instanceof Error ? error.message : String(error);
    output.stderr(`${PROGRAM_NAME}: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
    if (error instanceof InterruptedError) return error.exitCode;
    return error instanceof NotTrustworthyError ? EXIT_CODE.notTrustworthy : EXIT_CODE.failure;
  }
}
