import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { KMS_KEY_ARN_PATTERN } from '../appliance-config';
import type { AttestationDocument } from '../attestation/attestation-document';
import { AttestationError } from '../attestation/attestation-error';
import { printableText } from '../attestation/attestation-response';
import { checkChannelBinding } from '../attestation/channel-binding';
import { compareAttestation, ExpectedImage, expectedImageName } from '../attestation/attestation-expectations';
import { auditKeyPolicy, KeyPolicyFinding } from '../attestation/key-policy-audit';
import { AWS_NITRO_ROOT_SHA256_FINGERPRINT } from '../attestation/nitro-root';
import type { PinnedConnection } from '../attestation/pinned-connection';
import { DEFAULT_ATTESTATION_MAX_AGE_MS, verifyAttestationDocument } from '../attestation/verify-attestation';
import { parseManifest } from '../sealing/manifest';
import { connectToService, fetchAttestation } from './fetch-attestation';
import { collectAccount, measurements, parseImageId } from './measurements-command';
import { NotTrustworthyError } from './not-trustworthy-error';
import { CliDependencies, CliOutput, EXIT_CODE } from './program';
import { readMeasurementsFile, readStackOutputs } from './verify-expectations';

/**
 * `sealed-inference verify <service-url>`: asks the service for a fresh attestation, verifies the document, compares
 * it with the expected images and model, and optionally audits the live key policy: proof, rather than trust, of
 * what serves you and of what the key still unseals for.
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
  readonly key?: KeyArn;
  /** Seconds. */
  readonly maxAge: number;
  /** Seconds. */
  readonly timeout: number;
  readonly json?: boolean;
}

/** A KMS key ARN, with the Region its policy is read in. */
export interface KeyArn {
  readonly arn: string;
  readonly region: string;
}

/** One line of the report: a check, what it expected and what it found. */
export interface VerifyCheck {
  /** `document`, `channel`, `image`, `event-log`, `model` or `key-policy`. */
  readonly name: string;
  readonly passed: boolean;
  readonly expected: string;
  readonly found: string;
}

/** What `verify --json` prints. */
export interface VerifyReport {
  readonly verified: boolean;
  readonly service: string;
  /** The nonce sent, hex. */
  readonly nonce: string;
  /** The SHA-256 (hex) of the SubjectPublicKeyInfo of the TLS key the service presented. */
  readonly tlsSpkiSha256: string;
  /** The verified document's facts; absent when it did not verify. */
  readonly document?: { moduleId: string; timestamp: string; pcrs: Record<string, string> };
  /** Expected image the document matched, by AMI id or position. */
  readonly image?: string;
  /** Model digests the event log reports on PCR15. */
  readonly servedModels: string[];
  readonly checks: VerifyCheck[];
  /** The key policy audit's findings, with `--key`. */
  readonly keyPolicyFindings?: KeyPolicyFinding[];
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
        '--key, also check that the live key policy unseals for exactly the expected images',
    );
  return addExpectationOptions(command)
    .option('--key <key-arn>', "also audit this key's live policy (GetKeyPolicy, with your credentials)", parseKeyArn)
    .option('--json', 'print the report as JSON')
    .addHelpText('after', [
      '',
      'Exit codes:',
      `  ${EXIT_CODE.success}  verified: every check passed`,
      `  ${EXIT_CODE.notTrustworthy}  not trustworthy: a check failed (the report and the last line say which)`,
      `  ${EXIT_CODE.failure}  could not check: service unreachable or not answering an attestation, unreadable`,
      '     expectations or manifest, an AWS error',
      `  ${EXIT_CODE.usage}  usage: unknown option, malformed argument, no or several expectation sources`,
    ].join('\n'))
    .action(async function (this: Command, serviceUrl: URL, options: VerifyOptions) {
      checkExpectationOptions(this, options);
      const report = await verify(serviceUrl, options, output, dependencies);
      output.stdout(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      const failed = report.checks.filter((check) => !check.passed);
      if (failed.length > 0) {
        throw new NotTrustworthyError(
          failed.map((check) => `${check.name}: expected ${printable(check.expected)}; found ${printable(check.found)}`).join('; '),
        );
      }
    });
}

/**
 * The service argument and the options that say what to expect of it, shared by `verify` and `gateway`: the
 * images (one source), the model, the document's age and the time to wait.
 */
export function addExpectationOptions(command: Command): Command {
  return command
    .argument('<service-url>', 'the service, e.g. https://10.0.1.23:3000', parseServiceUrl)
    .addOption(new Option('--measurements <file>', 'expect the image(s) in this file, as sealed-inference measurements prints it')
      .conflicts(['image', 'stackOutputs']))
    .addOption(new Option('--image <ami-id>', "expect this image, reading its published measurements from EC2")
      .argParser(parseImageId).conflicts(['stackOutputs']))
    .addOption(new Option('--stack-outputs <file>', 'expect the allowed images of a cdk deploy --outputs-file file'))
    .option('--stack <name>', 'the stack to read from --stack-outputs when it holds several')
    .option('--region <region>', "with --image: the image's Region (default: AWS_REGION, else your profile's region)")
    .option('--secure-boot', 'with --image: a Secure Boot image, pinned by PCR7')
    .option('--owner <account>', "with --image: require the image's owner; repeat to allow several", collectAccount)
    .option('--model <manifest.json>', "require the service to serve exactly this sealed model (the manifest's sha384)")
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
}

/** What a service must show, read once before any attestation is asked for. */
export interface VerifyExpectations {
  readonly images: ExpectedImage[];
  /** The SHA-384 of the one model the service may serve. */
  readonly modelSha384?: string;
  /** The key to audit, with its live policy as read. */
  readonly key?: { readonly arn: string; readonly policy: string };
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
  const images = await expectedImages(options, output, dependencies);
  const modelSha384 = options.model === undefined ? undefined : parseManifest(readFile(options.model, 'manifest')).sha384;
  const key = options.key === undefined
    ? undefined
    : { arn: options.key.arn, policy: await getKeyPolicy(options.key, dependencies) };
  return { images, modelSha384, key };
}

/**
 * Runs the checks against the service at `serviceUrl`, over one TLS connection. Throws (could not check) when the
 * expectations, the manifest, the service or KMS cannot be read; returns the report, passed or not, once everything
 * was read.
 */
export async function verify(
  serviceUrl: URL,
  options: VerifyOptions,
  output: CliOutput,
  dependencies: CliDependencies = {},
): Promise<VerifyReport> {
  // Read before the attestation is asked for, so that the document's age is judged as soon as it arrives.
  const expectations = await readVerifyExpectations(options, output, dependencies);
  const connection = await connectToService(serviceUrl, options.timeout * 1000);
  try {
    return await verifyConnection(connection, expectations, options, dependencies);
  } finally {
    connection.close();
  }
}

/**
 * Asks for a fresh attestation over `connection` and checks it: the document, that it binds this connection's TLS
 * key, the image, the event log, the model and (with a key in the expectations) the key policy.
 *
 * @throws AttestationUnavailableError when the service does not answer an attestation (could not check)
 */
export async function verifyConnection(
  connection: PinnedConnection,
  expectations: VerifyExpectations,
  options: Pick<VerifyOptions, 'maxAge' | 'timeout'>,
  dependencies: Pick<CliDependencies, 'trustedRoots'> = {},
): Promise<VerifyReport> {
  const { images, modelSha384, key } = expectations;
  const service = connection.serviceUrl.href;
  const nonce = randomBytes(32);
  const response = await fetchAttestation(connection, nonce, options.timeout * 1000);

  // The key is audited whatever the document shows: a key that unseals for more than expected is a finding of its own.
  const audit = key === undefined ? undefined : auditKeyPolicy(key.policy, images, { keyArn: key.arn });
  const keyPolicyCheck: VerifyCheck[] = key === undefined || audit === undefined ? [] : [{
    name: 'key-policy',
    passed: audit.sealed,
    expected: `${key.arn} decrypts only for ${images.map(expectedImageName).join(', ')}, each gated by its PCRs, without grants`,
    found: audit.sealed ? 'as expected' : audit.findings.map((finding) => finding.message).join('; '),
  }];

  const checks: VerifyCheck[] = [];
  const roots = dependencies.trustedRoots;
  const rootNames = roots === undefined
    ? `the AWS Nitro root (SHA-256 ${AWS_NITRO_ROOT_SHA256_FINGERPRINT})`
    : roots.map((root) => `root ${root.subject.replace(/\n/g, ', ')}`).join(' or ');
  const expectedDocument = `signed through ${rootNames}, at most ${options.maxAge} s old, nonce ${nonce.toString('hex')}`;
  const unverified = (failed: VerifyCheck): VerifyReport => ({
    verified: false, service, nonce: nonce.toString('hex'), tlsSpkiSha256: connection.peerSpkiSha256, servedModels: [],
    checks: [...checks, failed, ...keyPolicyCheck], keyPolicyFindings: audit?.findings,
  });
  const now = new Date();
  let document: AttestationDocument;
  try {
    document = verifyAttestationDocument(response.document, {
      expectedNonce: nonce, maxAge: options.maxAge * 1000, now, trustedRoots: roots,
    });
  } catch (error) {
    if (!(error instanceof AttestationError)) throw error;
    return unverified({ name: 'document', passed: false, expected: expectedDocument, found: error.message });
  }
  const age = Math.max(0, Math.round((now.getTime() - document.timestamp.getTime()) / 1000));
  checks.push({
    name: 'document',
    passed: true,
    expected: expectedDocument,
    found: `module ${document.moduleId}, ${document.timestamp.toISOString()} (${age} s old), the nonce sent`,
  });

  // Nothing the document says about this connection counts unless it names this connection's key.
  const expectedChannel = `the document binds this connection's TLS key (SPKI SHA-256 ${connection.peerSpkiSha256})`;
  try {
    checkChannelBinding(document, connection.peerSpkiSha256);
  } catch (error) {
    if (!(error instanceof AttestationError)) throw error;
    return unverified({ name: 'channel', passed: false, expected: expectedChannel, found: error.message });
  }
  checks.push({
    name: 'channel', passed: true, expected: expectedChannel,
    found: `TLS key SPKI SHA-256 ${connection.peerSpkiSha256}, bound by the document`,
  });

  const verdict = compareAttestation(document, response.eventLog, { images, modelSha384 });
  checks.push(...verdict.checks);
  checks.push(...keyPolicyCheck);
  return {
    verified: checks.every((check) => check.passed),
    service,
    nonce: nonce.toString('hex'),
    tlsSpkiSha256: connection.peerSpkiSha256,
    document: {
      moduleId: document.moduleId,
      timestamp: document.timestamp.toISOString(),
      pcrs: Object.fromEntries([...document.pcrs].sort(([a], [b]) => a - b).map(([index, value]) => [String(index), value])),
    },
    image: verdict.matchedImage === undefined ? undefined : expectedImageName(verdict.matchedImage, images.indexOf(verdict.matchedImage)),
    servedModels: verdict.servedModels,
    checks,
    keyPolicyFindings: audit?.findings,
  };
}

async function expectedImages(options: VerifyOptions, output: CliOutput, dependencies: CliDependencies): Promise<ExpectedImage[]> {
  if (options.measurements !== undefined) {
    return readMeasurementsFile(readFile(options.measurements, 'measurements file'), options.measurements);
  }
  if (options.stackOutputs !== undefined) {
    return readStackOutputs(readFile(options.stackOutputs, 'stack outputs file'), options.stackOutputs, options.stack);
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

function parsePositiveSeconds(value: string): number {
  const seconds = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || seconds <= 0) throw new InvalidArgumentError('Expected a positive number of seconds.');
  return seconds;
}
