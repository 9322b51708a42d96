import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { extendSha384Pcr, readSha384Pcrs } from '../lib/appliance/tpm2-tools';
import { ApplianceConfig } from '../lib/shared/appliance-config';
import { createTestChain, TestChain } from './attestation/test-attestation';
import { ApplianceProcess, applianceEnvironment, freePort, startApplianceProcess } from './appliance/doubles/appliance-process';
import { FakeImds, startFakeImds } from './appliance/doubles/fake-imds';
import { FakeKms } from './appliance/doubles/fake-kms';
import { FakeS3, startFakeS3 } from './appliance/doubles/fake-s3';
import { installNitroTpmAttestDouble } from './appliance/doubles/nitro-tpm-attest';
import { StubOllama } from './appliance/doubles/stub-ollama';
import { startSwtpm, Swtpm } from './appliance/doubles/swtpm';
import { onlyResource, PhysicalValue, resolveIntrinsics, Template } from './getting-started/deployed-template';
import { CommandBlock, shellBlocks } from './getting-started/walkthrough-commands';
import {
  BackgroundScript, cloneOf, prepareWalkthroughShell, ROOT, runScript, ShellRun, standInsOf, startScript,
} from './getting-started/walkthrough-shell';
import { NEW_IMAGE_ID } from './image-recipes/doubles/image-build-tools';

/**
 * docs/getting-started.md, walked command by command in the page's order, in bash, against the project's doubles:
 * the image build with stand-in tools, `cdk deploy` as the real CDK CLI's synth of the sample resolved as
 * CloudFormation would, the appliance bundle booting on a software TPM with S3, KMS, IMDS and Ollama doubles, and the
 * built CLI sealing, verifying and serving the gateway. The page's example values (the instance's address, the build
 * directory, the reviewed checksum) are replaced with the doubles' before each block runs.
 */

const PAGE = path.join(ROOT, 'docs', 'getting-started.md');
const OWNER_STACK = 'SealedInferenceModelOwner';
const CONSUMER_STACK = 'SealedInferenceConsumer';
const OLLAMA_ARCHIVE = 'a stand-in for the Ollama release archive\n';
const OLLAMA_SHA256 = createHash('sha256').update(OLLAMA_ARCHIVE).digest('hex');
const KEY_ARN = 'arn:aws:kms:eu-west-1:222222222222:key/0b3e6a1c-5d2f-4e8a-9c7b-1a2b3c4d5e6f';
const INSTANCE_ADDRESS = 'https://10.0.1.23:3000';
const GATEWAY_ADDRESS = '127.0.0.1:8080';
const BUILD_DIRECTORY = '/var/tmp/sealed-inference-image';
const REVIEWED_CHECKSUM = '<the SHA-256 of ollama-linux-amd64.tgz you reviewed>';
const MODEL_FILE = 'llama-3.2-1b-instruct.gguf';
const MANIFEST_FILE = 'llama-3.2-1b-instruct.manifest.json';
const QUESTION = 'Why is the sky blue?';

const sha384 = (text: string) => createHash('sha384').update(text).digest('hex');
const sha256Of = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** The PCRs an allowed image must report, as the owner's key policy says. */
type AllowedImage = { pcr4: string; pcr12: string };

/** What `cdk deploy` of the consumer's stack made, once the walkthrough deployed it: the doubles it runs against. */
interface Deployment {
  readonly config: ApplianceConfig;
  readonly kms: FakeKms;
  readonly imds: FakeImds;
  readonly appliance: ApplianceProcess;
}

describe('docs/getting-started.md', () => {
  let work: string;
  let clone: string;
  let shellPath: string;
  let chain: TestChain;
  let swtpm: Swtpm;
  let tpmTools: string;
  let s3: FakeS3;
  let ollama: StubOllama;
  let measurements: string;
  let gatewayPort: number;
  let allowedImages: AllowedImage[] | undefined;
  let deployment: Deployment | undefined;
  let gateway: BackgroundScript | undefined;
  const deploys = () => path.join(work, 'deploys.jsonl');
  const stubLog = () => path.join(work, 'stand-ins.jsonl');

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'getting-started-'));
    shellPath = prepareWalkthroughShell(work);
    clone = cloneOf(work);
    fs.writeFileSync(deploys(), '');
    fs.writeFileSync(stubLog(), '');
    chain = await createTestChain();
    fs.writeFileSync(path.join(work, 'trusted-root.pem'), chain.root.certificate.toString());
    tpmTools = fs.mkdtempSync(path.join(work, 'nitro-tools-'));
    await installNitroTpmAttestDouble(chain, tpmTools);
    // The instance as the image boots it: its UKI measured into PCR4; PCR12 left at zero (the command line is in the
    // UKI). The image build's pcr_measurements.json carries what this TPM holds.
    swtpm = await startSwtpm();
    await extendSha384Pcr(4, sha384('unified kernel image'), { env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti } });
    const pcrs = await readSha384Pcrs([4, 12], { env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti } });
    measurements = path.join(work, 'pcr_measurements.json');
    fs.writeFileSync(measurements, JSON.stringify({
      Measurements: { HashAlgorithm: 'SHA384 { ... }', PCR4: pcrs.get(4), PCR12: pcrs.get(12) },
    }, null, 2));
    s3 = await startFakeS3();
    ollama = await StubOllama.start();
    gatewayPort = await freePort();
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop('SIGTERM');
    if (deployment) {
      await deployment.appliance.stop();
      await deployment.imds.close();
      await deployment.kms.stop();
    }
    await s3?.close();
    await ollama?.stop();
    await swtpm?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  /** The environment of the reader's shell: AWS credentials that only the doubles accept, and where the doubles are. */
  const shellEnv = (): NodeJS.ProcessEnv => ({
    PATH: shellPath,
    HOME: work,
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'AKIDPLATFORMTEAM',
    AWS_SECRET_ACCESS_KEY: 'platform-team-secret',
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    ...(deployment ? { AWS_ENDPOINT_URL_KMS: deployment.kms.endpoint } : {}),
    WALK_REPO: ROOT,
    WALK_S3_ENDPOINT: s3.endpoint,
    WALK_STAND_INS: standInsOf(work),
    WALK_TRUSTED_ROOT: path.join(work, 'trusted-root.pem'),
    WALK_DEPLOY_LOG: deploys(),
    STUB_LOG: stubLog(),
    STUB_MEASUREMENTS: measurements,
    STUB_OLLAMA_ARCHIVE: OLLAMA_ARCHIVE,
    STUB_EXISTING_IMAGE: '',
  });

  /** The block's script with the page's example values replaced by the doubles'. */
  function withDoubles(block: CommandBlock): string {
    const values: Record<string, string> = {
      [REVIEWED_CHECKSUM]: OLLAMA_SHA256,
      [BUILD_DIRECTORY]: path.join(work, 'image-build'),
      [GATEWAY_ADDRESS]: `127.0.0.1:${gatewayPort}`,
      ...(deployment ? { [INSTANCE_ADDRESS]: deployment.appliance.url } : {}),
    };
    return Object.entries(values).reduce((script, [example, value]) => script.split(example).join(value), block.script);
  }

  async function run(block: CommandBlock): Promise<ShellRun> {
    const result = await runScript(withDoubles(block), clone, shellEnv());
    if (result.code !== 0) throw new Error(`${block.script}\nexited ${String(result.code)}:\n${result.stdout}${result.stderr}`);
    return result;
  }

  const lastDeploy = () => {
    const lines = fs.readFileSync(deploys(), 'utf8').trim().split('\n');
    return JSON.parse(lines[lines.length - 1]) as { command: string; args: string[]; cwd: string };
  };

  /**
   * Deploys the stack `cdk deploy` named, as the sample app synthesized it: checks its parameters exist, resolves it
   * as CloudFormation would and writes the outputs file. The owner's stack gives the images its key policy allows;
   * the consumer's first deployment starts the instance: the appliance with the template's user data, and a KMS
   * holding the key with those images.
   */
  async function deploy(): Promise<{ stack: string; template: Template; outputs: Record<string, string> }> {
    const { args } = lastDeploy();
    const stack = args.find((arg) => arg === OWNER_STACK || arg === CONSUMER_STACK)!;
    const parameters = Object.fromEntries(args.flatMap((arg, i) => args[i - 1] === '--parameters' ? [arg.split('=')] : []));
    const template = JSON.parse(fs.readFileSync(path.join(clone, 'cdk.out', `${stack}.template.json`), 'utf8')) as Template;
    expect(Object.keys(template.Parameters)).toEqual(expect.arrayContaining(Object.keys(parameters)));
    // CloudFormation refuses a value its parameter's pattern does not match, before anything deploys.
    for (const [name, value] of Object.entries(parameters)) {
      const pattern = template.Parameters[name].AllowedPattern;
      if (pattern !== undefined) expect(value).toMatch(new RegExp(`^(?:${pattern})$`));
    }
    const physical: PhysicalValue = (id, type, attribute) => {
      const value = {
        'AWS::S3::Bucket': id.toLowerCase(),
        'AWS::KMS::Key.Arn': KEY_ARN,
        'AWS::IAM::Role.Arn': `arn:aws:iam::111111111111:role/${id}`,
        'AWS::EC2::Instance': 'i-0123456789abcdef0',
        'AWS::EC2::VPC': 'vpc-0123456789abcdef0',
        'AWS::EC2::Instance.PrivateIp': new URL(INSTANCE_ADDRESS).hostname,
      }[attribute ? `${type}.${attribute}` : type];
      if (value === undefined) throw new Error(`the walkthrough's deployment does not make ${type} ${attribute ?? 'Ref'}`);
      return value;
    };
    const resolve = (value: unknown) => resolveIntrinsics(template, parameters, physical, value);

    const outputs = Object.fromEntries(Object.entries(template.Outputs).map(([id, { Value }]) => [id, String(resolve(Value))]));
    const outputsFile = args[args.indexOf('--outputs-file') + 1];
    fs.writeFileSync(path.join(clone, outputsFile), JSON.stringify({ [stack]: outputs }, null, 2));

    if (stack === OWNER_STACK) {
      const policy = resolve(sealingKey(template).Properties!.KeyPolicy) as {
        Statement: Array<{ Effect: string; Condition?: Record<string, Record<string, string>> }>;
      };
      allowedImages = policy.Statement
        .filter((statement) => statement.Effect === 'Allow' && statement.Condition?.StringEqualsIgnoreCase)
        .map(({ Condition }) => ({
          pcr4: Condition!.StringEqualsIgnoreCase['kms:RecipientAttestation:NitroTPMPCR4'],
          pcr12: Condition!.StringEqualsIgnoreCase['kms:RecipientAttestation:NitroTPMPCR12'],
        }));
      return { stack, template, outputs };
    }
    const [, instance] = onlyResource(template, 'AWS::EC2::Instance');
    const userData = resolve((instance.Properties!.UserData as { 'Fn::Base64': unknown })['Fn::Base64']);
    const config = JSON.parse(String(userData)) as ApplianceConfig;
    const kms = await FakeKms.start({ trustedRoots: [chain.root.certificate], allowedImages: allowedImages!, keyArn: KEY_ARN });
    const port = await freePort();
    const imds = await startFakeImds(JSON.stringify({ ...config, servicePort: port }));
    const appliance = await startApplianceProcess(port, applianceEnvironment({
      tpmTools, tpmTcti: swtpm.tcti, ollamaUrl: ollama.url, imdsEndpoint: imds.endpoint, s3Endpoint: s3.endpoint,
      kmsEndpoint: kms.endpoint,
    }));
    deployment = { config, kms, imds, appliance };
    return { stack, template, outputs };
  }

  /** The key the model is sealed with (the owner's stack has another, for the alarm topic). */
  const sealingKey = (template: Template) => template.Resources[Object.keys(template.Resources)
    .find((id) => id.startsWith('Key') && template.Resources[id].Type === 'AWS::KMS::Key')!];
  const output = (outputs: Record<string, string>, name: string) =>
    Object.entries(outputs).find(([id]) => id.startsWith(`Inference${name}`))![1];
  /** The outputs file the last deployment wrote, with the instance's address. */
  const deployedOutputs = () =>
    JSON.parse(fs.readFileSync(path.join(clone, 'outputs.json'), 'utf8'))[CONSUMER_STACK] as Record<string, string>;

  /** Each block of the page, by its first command, and what the walkthrough promises once it ran. */
  const steps: Array<[RegExp, (block: CommandBlock) => Promise<void>]> = [
    [/^npm ci$/, async (block) => {
      await run(block);
      const bootstraps = fs.readFileSync(deploys(), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
      expect(bootstraps).toEqual([
        { command: 'bootstrap', args: ['aws://111111111111/eu-west-1'], cwd: clone },
        { command: 'bootstrap', args: ['aws://222222222222/eu-west-1'], cwd: clone },
      ]);
    }],
    [/^OLLAMA_SHA256=/, async (block) => {
      const { stdout } = await run(block);
      const image = JSON.parse(fs.readFileSync(path.join(clone, 'image.json'), 'utf8'));
      const built = JSON.parse(fs.readFileSync(measurements, 'utf8')).Measurements;
      expect(image).toEqual({ imageId: NEW_IMAGE_ID, pcr4: built.PCR4, pcr12: built.PCR12 });
      expect(stdout).toBe('');
      expect(sha256Of(path.join(work, 'image-build', 'image', 'pcr_measurements.json'))).toBe(sha256Of(measurements));
    }],
    [/^npx cdk deploy SealedInferenceModelOwner /, async (block) => {
      await run(block);
      const { template, outputs } = await deploy();
      // The key admits the image the build measured, the consumer's instance role and the owner's sealing role.
      const built = JSON.parse(fs.readFileSync(measurements, 'utf8')).Measurements;
      expect(allowedImages).toEqual([{ pcr4: built.PCR4, pcr12: built.PCR12 }]);
      const policy = JSON.stringify(sealingKey(template).Properties!.KeyPolicy);
      expect(policy).toContain(':iam::111111111111:role/SealedInferenceInstance-');
      expect(policy).toContain('arn:aws:iam::222222222222:role/model-owner');
      expect(outputs).toMatchObject({ KeyArn: KEY_ARN, ModelPrefix: 'models/' });
    }],
    [/^npx cdk deploy SealedInferenceConsumer /, async (block) => {
      await run(block);
      const { outputs } = await deploy();
      expect(output(outputs, 'ServiceUrl')).toBe(INSTANCE_ADDRESS);
      expect(deployment!.config).toMatchObject({ keyArn: KEY_ARN, bucket: expect.stringMatching(/^models/) });
      // With no model uploaded yet, the instance waits for it and says for what.
      const manifestUri = output(outputs, 'ModelManifestUri');
      await deployment!.appliance.waitFor((status) => status.phase !== 'starting');
      expect(await deployment!.appliance.status()).toMatchObject({ phase: 'waiting', waitingFor: expect.stringContaining(manifestUri) });
    }],
    [/^npx sealed-inference seal /, async (block) => {
      fs.writeFileSync(path.join(clone, MODEL_FILE), Buffer.from('a model of a few bytes, the GGUF file the owner holds'));
      await run(block);
      const ready = await deployment!.appliance.waitFor((status) => status.phase === 'ready' || status.phase === 'failed', 90_000);
      expect(ready).toMatchObject({ phase: 'ready', model: { name: 'llama-3.2-1b-instruct' } });
      expect(deployment!.kms.requests.map(({ operation, withRecipient }) => [operation, withRecipient]))
        .toEqual([['GenerateDataKey', false], ['Decrypt', true]]);
      // The manifest the owner keeps for the clients is the one the instance was given.
      const kept = JSON.parse(fs.readFileSync(path.join(clone, MANIFEST_FILE), 'utf8'));
      const uploaded = await (await fetch(`${s3.endpoint}/${deployment!.config.bucket}/${deployment!.config.objects.manifest}`)).json();
      expect(kept).toEqual(uploaded);
    }],
    [/^npx sealed-inference verify /, async (block) => {
      const { stdout, stderr } = await run(block);
      expect(`${stdout}${stderr}`).toMatch(/verified|trustworthy/i);
      // The outputs say which configuration the instance must have measured before acting; it did.
      expect(stdout).toMatch(/ {2}ok {4}configuration: /);
      expect(block.commands[0]).toBe(output(deployedOutputs(), 'VerifyCommand'));
    }],
    [/^npx sealed-inference gateway /, async (block) => {
      gateway = startScript(withDoubles(block), clone, shellEnv());
      await gateway.waitForOutput(/serving it at http:\/\/127\.0\.0\.1:\d+\/v1/);
      expect(block.commands[0]).toBe(`${output(deployedOutputs(), 'GatewayCommand')} --listen ${GATEWAY_ADDRESS}`);
    }],
    [/^curl .*\/v1\/chat\/completions/, async (block) => {
      const { stdout } = await run(block);
      expect(JSON.parse(stdout).choices[0].message.content).toBe(StubOllama.answerTo(QUESTION));
      // Ctrl-C stops the gateway, which exits 0 when stopped so.
      expect(await gateway!.stop('SIGINT')).toBe(0);
      gateway = undefined;
    }],
    [/^npx cdk destroy SealedInferenceConsumer /, async (block) => {
      await run(block);
      const destroys = fs.readFileSync(deploys(), 'utf8').trim().split('\n').map((line) => JSON.parse(line)).slice(-2);
      expect(destroys).toMatchObject([
        { command: 'destroy', args: [CONSUMER_STACK, '--force'] },
        { command: 'destroy', args: [OWNER_STACK, '--force'] },
      ]);
    }],
  ];

  test('walks the steps this test knows, in order', () => {
    const blocks = shellBlocks(PAGE);
    expect(blocks.map((block) => block.commands[0])).toEqual(steps.map(([first]) => expect.stringMatching(first)));
    const page = fs.readFileSync(PAGE, 'utf8');
    for (const example of [INSTANCE_ADDRESS, GATEWAY_ADDRESS, BUILD_DIRECTORY, REVIEWED_CHECKSUM, MODEL_FILE, MANIFEST_FILE, QUESTION]) {
      expect(page).toContain(example);
    }
  });

  test('every command works against the doubles, from an empty account to a chat answer', async () => {
    const blocks = shellBlocks(PAGE);
    for (const [i, block] of blocks.entries()) {
      const [first, step] = steps[i];
      expect(block.commands[0]).toMatch(first);
      await step(block);
    }
  }, 300_000);
});
