import { readFileSync, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { KMS_KEY_ARN_PATTERN } from '../shared/appliance-config';
import { AttestationResponse, printableText } from '../attestation/attestation-response';
import type { ExpectedImage } from '../attestation/attestation-expectations';
import { DEFAULT_ATTESTATION_MAX_AGE_MS } from '../attestation/verify-attestation';
import { parseManifest } from '../sealing/manifest';
import { connectToService } from './fetch-attestation';
import { collectAccount, measurements, parseImageId } from './measurements-command';
import { NotTrustworthyError } from './not-trustworthy-error';
import { DEFAULT_VERIFY_ATTEMPTS, formatFleetReport, verifyEachConnection } from './verify-all';
import { CliDependencies, CliOutput, EXIT_CODE } from './program';
import { VerifyCheck, VerifyExpectations, verifyConnection, VerifyReport } from './verify-connection';
import { deployedConfigurationSha384, readMeasurementsFile, readStackOutputs } from './verify-expectations';
import { readStoredAttestation, StoredAttestationReport, verifyStoredAttestation } from './verify-stored-attestation';

/**
 * `sealed-inference verify <service-url>`: asks the service for a fresh attestation, verifies the document, compares
 * it with the expected images and model, and optionally audits the live key policy: proof, rather than trust, of
 * what serves you and of what the key still unseals for. `verify --document <file>` audits a stored attestation as
 * of a given time instead, without asking any service.
 */

/** The command's options, as parsed. */
export interface VerifyOptions {
  readonly measurements?: string;
  readonly image?: string;
  readonly stackOutputs?: string;
  readonly stack?: string;
  readonly region?: string;
  readonly secureBoot?: boolean;
  readonly owner?: string[];
  readonly model?: string;
  /** Accept whichever model the service serves: said explicitly, since a missing --model is easy to overlook. */
  readonly anyModel?: boolean;
  readonly key?: KeyArn;
  /** Seconds. */
  readonly maxAge: number;
  /** Seconds. */
  readonly timeout: number;
  readonly json?: boolean;
}

/** The options of `verify` alone. */
interface VerifyCommandOptions extends VerifyOptions {
  /** Verify several connections, each perhaps to another instance, and report each instance. */
  readonly all?: boolean;
  /** With `all`: the connections opened. */
  readonly attempts?: number;
  /** A stored attestation to check instead of asking a service. */
  readonly document?: string;
  /** With `document`: the time to judge it at. */
  readonly at?: Date;
  /** A file to keep the attestation received in, for `--document` later. */
  readonly save?: string;
}

/** More connections than this would only load the service. */
const MAX_VERIFY_ATTEMPTS = 256;

/** A KMS key ARN, with the Region its policy is read in. */
export interface KeyArn {
  readonly arn: string;
  readonly region: string;
}

const DEFAULT_TIMEOUT_SECONDS = 10;
/**
 * The longest text a check prints for what it expected or found: findings and the event log's descriptions (at most
 * 1,024 characters each) can add up; `--json` reports them whole.
 */
const MAX_PRINTED_CHECK_TEXT = 4096;

/** A check's text, safe for the terminal: what it found can quote the service's unauthenticated text. */
const printable = (text: string) => printableText(text, MAX_PRINTED_CHECK_TEXT);

export function addVerifyCommand(program: Command, output: CliOutput, dependencies: CliDependencies = {}): Command {
  const command = program
    .command('verify')
    .summary('prove which image and model serve you, over a channel that ends in them, and that the key is still sealed to that image')
    .description(
      'Connect to the service over TLS 1.3, ask it for an attestation with a fresh random nonce over that ' +
        'connection, verify the NitroTPM document (certificate chain to the AWS Nitro root, signature, age, nonce), ' +
        "check that it binds the connection's TLS key, that its PCRs are those of an expected image, " +
        'that PCR15 replays from the event log and (with --model) that the log names only the expected model; with ' +
        '--key, also check that the live key policy unseals for exactly the expected images. With --all, for a fleet ' +
        'behind a load balancer: open --attempts connections, verify each on its own and report each instance reached ' +
        '(by the SPKI hash of its TLS key and the module id of its NitroTPM). With --document, for audits: check a ' +
        'stored attestation (as --save keeps it) as of --at, without asking any service; the channel and nonce checks ' +
        'do not apply to it and are reported as not applicable',
    );
  return addExpectationFlags(command.argument('[service-url]', SERVICE_URL_DESCRIPTION, parseServiceUrl))
    .usage('[options] <service-url>\n       sealed-inference verify [options] --document <attestation.json>')
    .option('--document <attestation.json>', 'check this stored answer of GET /api/attestation instead of asking a service ' +
      '(no channel or nonce check: no connection)')
    .option('--at <time>', "with --document: judge certificate validity and the document's age at this ISO 8601 time " +
      "(default: the document's timestamp)", parseTime)
    .option('--save <file>', 'keep the attestation received (the answer of GET /api/attestation) in this file, to check ' +
      'it again later with --document')
    .option('--key <key-arn>', "also audit this key's live policy (GetKeyPolicy, with your credentials)", parseKeyArn)
    .option('--json', 'print the report as JSON')
    .option('--all', 'verify several connections, each perhaps to another instance of a fleet, and report each instance')
    .option('--attempts <n>', `with --all: the connections to open (default ${DEFAULT_VERIFY_ATTEMPTS})`, parseAttempts)
    .addHelpText('after', [
      '',
      'Exit codes:',
      `  ${EXIT_CODE.success}  verified: every check passed`,
      `  ${EXIT_CODE.notTrustworthy}  not trustworthy: a check failed (the report and the last line say which)`,
      `  ${EXIT_CODE.failure}  could not check: service unreachable or not answering an attestation, unreadable`,
      '     expectations or manifest, an AWS error',
      `  ${EXIT_CODE.usage}  usage: unknown option, malformed argument, no or several expectation sources`,
      '',
      `With --all: ${EXIT_CODE.success} when every instance reached verified, ${EXIT_CODE.notTrustworthy} when one failed a check, ` +
        `${EXIT_CODE.failure} when no connection`,
      'reached an instance or one did not answer an attestation.',
    ].join('\n'))
    .action(async function (this: Command, serviceUrl: URL | undefined, options: VerifyCommandOptions) {
      checkExpectationOptions(this, options);
      checkTargetOptions(this, serviceUrl, options);
      if (options.attempts !== undefined && options.all !== true) this.error('--attempts only applies with --all');
      if (options.document !== undefined) {
        await verifyDocumentFile(options.document, options, output, dependencies);
        return;
      }
      if (options.all === true) {
        await verifyAll(serviceUrl!, options, output, dependencies);
        return;
      }
      const report = await verify(serviceUrl!, options, output, dependencies);
      output.stdout(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      throwIfAnyFailed(report.checks);
    });
}

/** Refuses, as a usage error, a command that names no target, or options that do not apply to the one it names. */
function checkTargetOptions(command: Command, serviceUrl: URL | undefined, options: VerifyCommandOptions): void {
  if (options.document === undefined) {
    if (serviceUrl === undefined) command.error('verify: give the service URL, or --document <file> to check a stored attestation');
    if (options.at !== undefined) command.error('--at only applies with --document: a service is judged at the current time');
    if (options.save !== undefined && options.all === true) command.error('--save keeps one attestation: not with --all');
    return;
  }
  if (serviceUrl !== undefined) {
    command.error('--document checks a stored attestation without asking a service: give it or the service URL, not both');
  }
  const explicit = (name: string) => command.getOptionValueSource(name) === 'cli';
  const serviceOnly = ['all', 'attempts', 'key', 'timeout', 'save'].filter(explicit).map((name) => `--${name}`);
  if (serviceOnly.length > 0) {
    command.error(`${serviceOnly.join(', ')} only apply to a service, not with --document` +
      (serviceOnly.includes('--key') ? ' (--key reads the policy as it is now, not as it was)' : ''));
  }
}

/** Throws the failed checks as one reason, so that the CLI exits as not trustworthy. */
function throwIfAnyFailed(checks: readonly VerifyCheck[]): void {
  const failed = checks.filter((check) => !check.passed);
  if (failed.length > 0) {
    throw new NotTrustworthyError(
      failed.map((check) => `${check.name}: expected ${printable(check.expected)}; found ${printable(check.found)}`).join('; '),
    );
  }
}

/** `verify --document`: checks the stored attestation in `path` as of `--at`, prints the report, throws unless it passed. */
async function verifyDocumentFile(path: string, options: VerifyCommandOptions, output: CliOutput, dependencies: CliDependencies): Promise<void> {
  const attestation = readStoredAttestation(path);
  const expectations = await readVerifyExpectations(options, output, dependencies);
  const report = verifyStoredAttestation(attestation, expectations, { source: path, at: options.at, maxAge: options.maxAge }, dependencies);
  output.stdout(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatStoredAttestationReport(report));
  throwIfAnyFailed(report.checks);
}

/** `verify --all`: prints each instance reached and throws unless every one verified. */
async function verifyAll(serviceUrl: URL, options: VerifyCommandOptions, output: CliOutput, dependencies: CliDependencies): Promise<void> {
  const expectations = await readVerifyExpectations(options, output, dependencies);
  const fleet = await verifyEachConnection(serviceUrl, expectations, options.attempts ?? DEFAULT_VERIFY_ATTEMPTS, options, dependencies);
  output.stdout(options.json ? `${JSON.stringify(fleet, null, 2)}\n` : formatFleetReport(fleet));
  const refused = fleet.instances.filter((instance) => instance.verdict === 'not-trustworthy');
  if (refused.length > 0) {
    throw new NotTrustworthyError(refused.map((instance) => {
      const failed = instance.report!.checks.find((check) => !check.passed)!;
      return `instance ${instance.tlsSpkiSha256}: ${failed.name}: expected ${printable(failed.expected)}; found ${printable(failed.found)}`;
    }).join('; '));
  }
  if (fleet.instances.length === 0) {
    throw new Error(`Could not check ${serviceUrl.href}: none of ${fleet.attempts} connections reached an instance: ${fleet.unreachable[0]}`);
  }
  const unchecked = fleet.instances.find((instance) => instance.verdict === 'could-not-check');
  if (unchecked !== undefined) {
    throw new Error(`Could not check instance ${unchecked.tlsSpkiSha256} of ${serviceUrl.href}: ${unchecked.reason}`);
  }
}

/**
 * The service argument and the options that say what to expect of it, shared by `verify` and `gateway`: the
 * images (one source), the model, the document's age and the time to wait.
 */
export function addExpectationOptions(command: Command): Command {
  return addExpectationFlags(command.argument('<service-url>', SERVICE_URL_DESCRIPTION, parseServiceUrl));
}

const SERVICE_URL_DESCRIPTION = 'the service, e.g. https://10.0.1.23:3000';

/** The options that say what to expect: the images (one source), the model, the document's age and the time to wait. */
function addExpectationFlags(command: Command): Command {
  return command
    .addOption(new Option('--measurements <file>', 'expect the image(s) in this file, as sealed-inference measurements prints it')
      .conflicts(['image', 'stackOutputs']))
    .addOption(new Option('--image <ami-id>', "expect this image, reading its published measurements from EC2")
      .argParser(parseImageId).conflicts(['stackOutputs']))
    .addOption(new Option('--stack-outputs <file>', 'expect the allowed images of a cdk deploy --outputs-file file'))
    .option('--stack <name>', 'the stack to read from --stack-outputs when it holds several')
    .option('--region <region>', "with --image: the image's Region (default: AWS_REGION, else your profile's region)")
    .option('--secure-boot', 'with --image: a Secure Boot image, pinned by PCR4, PCR7 and PCR12')
    .option('--owner <account>', "with --image: require the image's owner; repeat to allow several", collectAccount)
    .option('--model <manifest.json>', 'require the service to serve exactly this sealed model (its name, size and SHA-256)')
    .addOption(new Option('--any-model', 'accept whichever model the service serves (the report still names it)')
      .conflicts('model'))
    .option('--max-age <seconds>', 'the oldest document accepted', parsePositiveSeconds, DEFAULT_ATTESTATION_MAX_AGE_MS / 1000)
    .option('--timeout <seconds>', 'how long to wait for the service', parsePositiveSeconds, DEFAULT_TIMEOUT_SECONDS);
}

/** Refuses, as a usage error, expectation options that say nothing or contradict each other. */
export function checkExpectationOptions(command: Command, options: VerifyOptions): void {
  if ([options.measurements, options.image, options.stackOutputs].every((o) => o === undefined)) {
    command.error(`${command.name()}: say what to expect with --measurements <file>, --image <ami-id> or --stack-outputs <file>`);
  }
  if (options.stack !== undefined && options.stackOutputs === undefined) command.error('--stack needs --stack-outputs');
  const imageOnly = [options.region && '--region', options.secureBoot && '--secure-boot', options.owner && '--owner'].filter(Boolean);
  if (imageOnly.length > 0 && options.image === undefined) command.error(`${imageOnly.join(', ')} only apply with --image`);
  if (options.model === undefined && !options.anyModel) {
    command.error(`${command.name()}: say which model to expect with --model <manifest.json>, or --any-model to accept ` +
      'whichever model the service serves');
  }
}

/**
 * Reads the expected images, the model's manifest and (with `--key`) the key's live policy.
 *
 * @throws when an expectation, the manifest or the policy cannot be read (could not check)
 */
export async function readVerifyExpectations(
  options: VerifyOptions,
  output: CliOutput,
  dependencies: CliDependencies = {},
): Promise<VerifyExpectations> {
  const stackOutputs = options.stackOutputs === undefined
    ? undefined
    : { path: options.stackOutputs, text: readFile(options.stackOutputs, 'stack outputs file') };
  const images = await expectedImages(options, stackOutputs, output, dependencies);
  const model = options.model === undefined ? undefined : parseManifest(readFile(options.model, 'manifest'));
  const configurationSha384 = stackOutputs === undefined
    ? undefined
    : deployedConfigurationSha384(stackOutputs.text, stackOutputs.path, options.stack, model?.modelName);
  const key = options.key === undefined
    ? undefined
    : { arn: options.key.arn, policy: await getKeyPolicy(options.key, dependencies) };
  return { images, model, configurationSha384, key };
}

/**
 * Runs the checks against the service at `serviceUrl`, over one TLS connection, keeping the attestation received in
 * the file `save` names. Throws (could not check) when the expectations, the manifest, the service or KMS cannot be
 * read; returns the report, passed or not, once everything was read.
 */
export async function verify(
  serviceUrl: URL,
  options: VerifyOptions & { readonly save?: string },
  output: CliOutput,
  dependencies: CliDependencies = {},
): Promise<VerifyReport> {
  // Read before the attestation is asked for, so that the document's age is judged as soon as it arrives.
  const expectations = await readVerifyExpectations(options, output, dependencies);
  const connection = await connectToService(serviceUrl, options.timeout * 1000);
  const save = options.save;
  const onAttestation = save === undefined ? undefined : (response: AttestationResponse) => saveAttestation(save, response);
  try {
    return await verifyConnection(connection, expectations, { ...options, onAttestation }, dependencies);
  } finally {
    connection.close();
  }
}

async function expectedImages(
  options: VerifyOptions,
  stackOutputs: { readonly path: string; readonly text: string } | undefined,
  output: CliOutput,
  dependencies: CliDependencies,
): Promise<ExpectedImage[]> {
  if (options.measurements !== undefined) {
    return readMeasurementsFile(readFile(options.measurements, 'measurements file'), options.measurements);
  }
  if (stackOutputs !== undefined) {
    return readStackOutputs(stackOutputs.text, stackOutputs.path, options.stack);
  }
  const { region, secureBoot, owner } = options;
  return [await measurements(options.image!, { region, secureBoot, owner }, output, dependencies)];
}

async function getKeyPolicy(key: KeyArn, dependencies: CliDependencies): Promise<string> {
  // Loaded only with --key, as the EC2 client is only with --image: the SDK clients are slow to load.
  const [{ GetKeyPolicyCommand }, { newKmsClient }] = await Promise.all([
    import('@aws-sdk/client-kms'),
    import('../sealing/kms-data-key'),
  ]);
  const kms = dependencies.kmsClient?.(key.region) ?? newKmsClient(key.region);
  try {
    const { Policy: policy } = await kms.send(new GetKeyPolicyCommand({ KeyId: key.arn, PolicyName: 'default' }));
    if (policy === undefined) throw new Error('KMS returned no policy');
    return policy;
  } catch (error) {
    const name = (error as { name?: string }).name ?? 'unknown error';
    throw new Error(`Could not read the policy of key ${key.arn}: ${(error as Error).message} (${name})`, { cause: error });
  } finally {
    kms.destroy();
  }
}

/** The human report: one line a check, then the verdict. Text from the service is escaped, so it cannot forge lines. */
export function formatReport(report: VerifyReport): string {
  const lines = [`Service ${report.service} (nonce ${report.nonce})`];
  for (const check of report.checks) {
    lines.push(check.passed
      ? `  ok    ${check.name}: ${printable(check.found)}`
      : `  FAIL  ${check.name}: expected ${printable(check.expected)}\n          found ${printable(check.found)}`);
  }
  if (report.verified) {
    const models = report.servedModels.length === 0 ? 'no model yet' : `model ${printable(report.servedModels.join(', '))}`;
    lines.push(`Verified: ${report.service} runs ${report.image} and serves ${models}.`);
  } else {
    lines.push(`NOT TRUSTWORTHY: ${report.checks.filter((c) => !c.passed).map((c) => c.name).join(', ')} failed.`);
  }
  return `${lines.join('\n')}\n`;
}

/** The human report of a stored attestation: each check, then the checks that do not apply, then the verdict. */
export function formatStoredAttestationReport(report: StoredAttestationReport): string {
  const lines = [`Attestation ${printable(report.source)}, judged at ${report.at ?? 'no time: the document has no timestamp'}`];
  for (const check of report.checks) {
    lines.push(check.passed
      ? `  ok    ${check.name}: ${printable(check.found)}`
      : `  FAIL  ${check.name}: expected ${printable(check.expected)}\n          found ${printable(check.found)}`);
  }
  for (const check of report.notApplicable) lines.push(`  n/a   ${check.name}: ${check.reason}`);
  const notChecked = `Not checked: ${report.notApplicable.map((check) => check.name).join(', ')}.`;
  if (report.verified) {
    const models = report.servedModels.length === 0 ? 'no model yet' : `model ${printable(report.servedModels.join(', '))}`;
    lines.push(`Verified as of ${report.at}: the document shows ${report.image} serving ${models}. ${notChecked}`);
  } else {
    lines.push(`NOT TRUSTWORTHY: ${report.checks.filter((c) => !c.passed).map((c) => c.name).join(', ')} failed. ${notChecked}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Writes `response` as the service answered it, `{ "document": "<base64>", "eventLog": [...] }`, whatever its checks
 * will show: a failed verification is evidence too.
 */
function saveAttestation(path: string, response: AttestationResponse): void {
  const answer = { document: response.document.toString('base64'), eventLog: response.eventLog };
  try {
    writeFileSync(path, `${JSON.stringify(answer, null, 2)}\n`);
  } catch (error) {
    throw new Error(`Could not save the attestation to ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      cause: error,
    });
  }
}

function readFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`Could not read the ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      cause: error,
    });
  }
}

export function parseServiceUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('Expected a URL like https://10.0.1.23:3000.');
  }
  if (url.protocol === 'http:') {
    throw new InvalidArgumentError(
      'The service speaks TLS only: use https://. Over plain http a relay could answer in its place, since nothing would ' +
      'bind the conversation to the attested instance.');
  }
  if (url.protocol !== 'https:') throw new InvalidArgumentError('Expected an https URL.');
  if (url.search !== '' || url.hash !== '') throw new InvalidArgumentError('Expected the service URL without query or fragment.');
  return url;
}

function parseKeyArn(value: string): KeyArn {
  const region = KMS_KEY_ARN_PATTERN.exec(value)?.[1];
  if (region === undefined) {
    throw new InvalidArgumentError('Expected a key ARN like arn:aws:kms:eu-west-1:111111111111:key/<key-id> (not an alias).');
  }
  return { arn: value, region };
}

function parseAttempts(value: string): number {
  const count = Number(value);
  if (!/^\d+$/.test(value) || count < 1 || count > MAX_VERIFY_ATTEMPTS) {
    throw new InvalidArgumentError(`Expected a whole number of connections from 1 to ${MAX_VERIFY_ATTEMPTS}.`);
  }
  return count;
}

const ISO_8601_TIME = /^(\d{4})-(\d{2})-(\d{2})T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;

/** An ISO 8601 date and time with its zone: without one, the time would depend on the auditor's machine. */
function parseTime(value: string): Date {
  const match = ISO_8601_TIME.exec(value);
  const time = new Date(value);
  // Date rolls 2026-02-30 over into March instead of refusing it.
  const [year, month, day] = (match?.slice(1, 4) ?? []).map(Number);
  const calendarDate = new Date(Date.UTC(year, month - 1, day));
  if (match === null || Number.isNaN(time.getTime()) || calendarDate.getUTCMonth() !== month - 1 || calendarDate.getUTCDate() !== day) {
    throw new InvalidArgumentError('Expected an ISO 8601 date and time with its zone, like 2026-11-01T12:00:00Z.');
  }
  return time;
}

function parsePositiveSeconds(value: string): number {
  const seconds = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || seconds <= 0) throw new InvalidArgumentError('Expected a positive number of seconds.');
  return seconds;
}
