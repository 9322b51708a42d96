import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_FLEET_ATTEMPTS, Gateway, startGateway } from '../gateway/gateway';
import { DEFAULT_LISTEN, LoopbackAddress, parseLoopbackAddress } from '../gateway/loopback-address';
import { CliDependencies, CliOutput, EXIT_CODE } from './program';
import { addExpectationOptions, checkExpectationOptions, readVerifyExpectations, VerifyOptions } from './verify-command';
import type { VerifyExpectations } from './verify-connection';

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
  readonly fleet?: boolean;
  /** With `fleet`: fresh connections tried for one request. */
  readonly attempts?: number;
}

const DEFAULT_REVERIFY_SECONDS = 300;
const DEFAULT_CONNECTIONS = 4;
/** More connections than this would only load the appliance, which answers one chat at a time per model anyway. */
const MAX_CONNECTIONS = 64;
/** More attempts than this would only hide a fleet that mostly fails verification. */
const MAX_ATTEMPTS = 32;

export function addGatewayCommand(program: Command, output: CliOutput, dependencies: CliDependencies = {}): Command {
  const command = program
    .command('gateway')
    .summary('serve a local OpenAI-compatible endpoint that forwards only over verified connections to the service')
    .description(
      'Listen on a loopback address and forward POST /v1/chat/completions and GET /v1/models to the service, each ' +
        'request over a TLS connection that was verified as `verify` does (fresh nonce, channel binding of that ' +
        "connection's key, image, event log, model) before a byte of any request went over it. A failed verification " +
        'stops forwarding: requests are answered 502 (type attestation_failed) until a fresh connection verifies. ' +
        'Also serves a chat page at / and the verification state at /health. Runs until interrupted. With --fleet, ' +
        'the service is a load balancer in front of several attested instances: each new connection may end in another ' +
        'instance and is verified on its own; one that fails is refused (closed, nothing sent over it) while the ' +
        'connections to the instances that verified keep serving, a request tries up to --attempts fresh connections ' +
        'before it is answered 502, and /health reports each instance by the SPKI hash of its TLS key.',
    );
  return addExpectationOptions(command)
    .addOption(new Option('--listen <address:port>', 'where to listen, a loopback address only: the local leg is plain HTTP')
      .argParser(parseListen).default(parseLoopbackAddress(DEFAULT_LISTEN), DEFAULT_LISTEN))
    .option('--reverify <seconds>', 'retire connections older than this, and verify a fresh one this often', parseSeconds,
      DEFAULT_REVERIFY_SECONDS)
    .option('--connections <n>', 'the most upstream connections at once', parseConnections, DEFAULT_CONNECTIONS)
    .option('--fleet', 'the service is a load balancer in front of several instances: refuse only the instances that fail')
    .option('--attempts <n>', `with --fleet: fresh connections tried for one request before answering 502 (default ${DEFAULT_FLEET_ATTEMPTS})`,
      parseAttempts)
    .addHelpText('after', [
      '',
      'Use it with any OpenAI client: baseURL http://127.0.0.1:8080/v1 (any API key).',
      '',
      'A fleet (SealedInferenceFleet): sealed-inference gateway https://<load-balancer-dns>:3000 --fleet ...; GET /health',
      'is 200 while at least one instance verified within two --reverify intervals, and lists every instance reached.',
      '',
      'Exit codes:',
      `  ${EXIT_CODE.success}  stopped by SIGINT or SIGTERM`,
      `  ${EXIT_CODE.failure}  could not start: the address is in use, unreadable expectations or manifest, an AWS error`,
      `  ${EXIT_CODE.usage}  usage: unknown option, malformed argument, a --listen address that is not loopback`,
    ].join('\n'))
    .action(async function (this: Command, serviceUrl: URL, options: GatewayCommandOptions) {
      checkExpectationOptions(this, options);
      if (options.attempts !== undefined && options.fleet !== true) this.error('--attempts only applies with --fleet');
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
      fleet: options.fleet === true,
      fleetAttempts: options.attempts,
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

function parseAttempts(value: string): number {
  const count = Number(value);
  if (!/^\d+$/.test(value) || count < 1 || count > MAX_ATTEMPTS) {
    throw new InvalidArgumentError(`Expected a whole number of attempts from 1 to ${MAX_ATTEMPTS}.`);
  }
  return count;
}
