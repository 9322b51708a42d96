import { Command, InvalidArgumentError, Option } from 'commander';
import { Gateway, startGateway } from '../gateway/gateway';
import { DEFAULT_LISTEN, LoopbackAddress, parseLoopbackAddress } from '../gateway/loopback-address';
import { CliDependencies, CliOutput, EXIT_CODE } from './program';
import { addExpectationOptions, checkExpectationOptions, readVerifyExpectations, VerifyExpectations, VerifyOptions } from './verify-command';

/**
 * `sealed-inference gateway <service-url>`: a local, plain-HTTP, OpenAI-compatible endpoint that forwards to the
 * service only over TLS connections it has verified, each with its own fresh attestation, so that any OpenAI client
 * talks to the attested instance without knowing about attestation.
 */

/** The command's options, as parsed. */
export interface GatewayCommandOptions extends VerifyOptions {
  readonly listen: LoopbackAddress;
  /** Seconds. */
  readonly reverify: number;
  readonly connections: number;
}

const DEFAULT_REVERIFY_SECONDS = 300;
const DEFAULT_CONNECTIONS = 4;
/** More connections than this would only load the appliance, which answers one chat at a time per model anyway. */
const MAX_CONNECTIONS = 64;

export function addGatewayCommand(program: Command, output: CliOutput, dependencies: CliDependencies = {}): Command {
  const command = program
    .command('gateway')
    .summary('serve a local OpenAI-compatible endpoint that forwards only over verified connections to the service')
    .description(
      'Listen on a loopback address and forward POST /v1/chat/completions and GET /v1/models to the service, each ' +
        'request over a TLS connection that was verified as `verify` does (fresh nonce, channel binding of that ' +
        "connection's key, image, event log, model) before a byte of any request went over it. A failed verification " +
        'stops forwarding: requests are answered 502 (type attestation_failed) until a fresh connection verifies. ' +
        'Also serves a chat page at / and the verification state at /health. Runs until interrupted.',
    );
  return addExpectationOptions(command)
    .addOption(new Option('--listen <address:port>', 'where to listen, a loopback address only: the local leg is plain HTTP')
      .argParser(parseListen).default(parseLoopbackAddress(DEFAULT_LISTEN), DEFAULT_LISTEN))
    .option('--reverify <seconds>', 'retire connections older than this, and verify a fresh one this often', parseSeconds,
      DEFAULT_REVERIFY_SECONDS)
    .option('--connections <n>', 'the most upstream connections at once', parseConnections, DEFAULT_CONNECTIONS)
    .addHelpText('after', [
      '',
      'Use it with any OpenAI client: baseURL http://127.0.0.1:8080/v1 (any API key).',
      '',
      'Exit codes:',
      `  ${EXIT_CODE.success}  stopped by SIGINT or SIGTERM`,
      `  ${EXIT_CODE.failure}  could not start: the address is in use, unreadable expectations or manifest, an AWS error`,
      `  ${EXIT_CODE.usage}  usage: unknown option, malformed argument, a --listen address that is not loopback`,
    ].join('\n'))
    .action(async function (this: Command, serviceUrl: URL, options: GatewayCommandOptions) {
      checkExpectationOptions(this, options);
      const expectations = await readVerifyExpectations(options, output, dependencies);
      const gateway = await startListening(serviceUrl, expectations, options, output, dependencies);
      await untilSignalled();
      await gateway.close();
    });
}

async function startListening(
  serviceUrl: URL,
  expectations: VerifyExpectations,
  options: GatewayCommandOptions,
  output: CliOutput,
  dependencies: CliDependencies,
): Promise<Gateway> {
  try {
    return await startGateway({
      serviceUrl,
      expectations,
      listen: options.listen,
      maxAgeSeconds: options.maxAge,
      timeoutSeconds: options.timeout,
      reverifySeconds: options.reverify,
      maxConnections: options.connections,
      trustedRoots: dependencies.trustedRoots,
      stdout: output.stdout,
      stderr: output.stderr,
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new Error(`Could not listen on ${options.listen.host}:${options.listen.port}: the port is in use; choose another with --listen`, { cause: error });
    }
    throw error;
  }
}

/** Resolves at the first SIGINT or SIGTERM, which then no longer end the process by themselves. */
function untilSignalled(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

function parseListen(value: string): LoopbackAddress {
  try {
    return parseLoopbackAddress(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

function parseSeconds(value: string): number {
  const seconds = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || seconds <= 0) throw new InvalidArgumentError('Expected a positive number of seconds, e.g. 300 or 0.5.');
  return seconds;
}

function parseConnections(value: string): number {
  const count = Number(value);
  if (!/^\d+$/.test(value) || count < 1 || count > MAX_CONNECTIONS) {
    throw new InvalidArgumentError(`Expected a whole number of connections from 1 to ${MAX_CONNECTIONS}.`);
  }
  return count;
}
