import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { GetKeyPolicyCommand, KMSClient } from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { extendPcr, MODEL_PCR, parseAttestationDocument, PcrEvent } from '../../lib/attestation';
import type { CliDependencies } from '../../lib/cli/program';
import { FORMAT_VERSION } from '../../lib/sealing/format';
import { MeasuredModel, modelMeasurement } from '../../lib/sealing/model-measurement';
import { buildTestAttestationDocument, createTestChain, TestChain, testPcrs } from '../attestation/test-attestation';
import { openssl } from '../attestation/openssl';
import { synthesizedKeyPolicy } from '../attestation/synthesized-key-policy';
import { publishedImage } from '../fixtures';
import { endsWithFailure, failure, runCaptured } from './capture';
import { FakeAnswer, FakeAppliance } from './doubles/fake-appliance';
import type { AddressInfo } from 'node:net';

const hex = (byte: string) => byte.repeat(48);
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
/** The model the appliance serves, as its v2 manifest names it, and what PCR15 is extended with for it. */
const SERVED: MeasuredModel = { modelName: 'llama3', plaintextSize: 14, sha256: sha256('llama3 weights') };
const MODEL = modelMeasurement(SERVED);
const OTHER: MeasuredModel = { ...SERVED, sha256: sha256('other weights') };
const OTHER_MODEL = modelMeasurement(OTHER);
/** How a verdict names the model it expects. */
const expectedModel = (model: MeasuredModel) =>
  `only model llama3 sha256:${model.sha256} \\(14 bytes; measurement ${modelMeasurement(model)}\\) on PCR15`;
const IMAGE = { imageId: 'ami-0123456789abcdef0', pcr4: hex('a4'), pcr12: hex('00') };
const OTHER_IMAGE = { imageId: 'ami-0fedcba9876543210', pcr4: hex('b4'), pcr12: hex('00') };
const KEY_ARN = 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab';

const modelEvent = (digest: string): PcrEvent =>
  ({ pcr: MODEL_PCR, algorithm: 'sha384', digest, description: `model llama3 sha256:${SERVED.sha256} (measurement record)` });
const extended = (...digests: string[]) =>
  digests.reduce((v, d) => extendPcr(Buffer.from(v, 'hex'), Buffer.from(d, 'hex')).toString('hex'), hex('00'));

let chain: TestChain;
let otherChain: TestChain;
let dir: string;
let appliance: FakeAppliance;
let deps: CliDependencies;
const kms = mockClient(KMSClient);
const ec2 = mockClient(EC2Client);
const kmsRegions: string[] = [];

/** A document as the appliance serves it: signed by `chain`, the given PCRs over image IMAGE serving MODEL. */
function attestation(nonce: Buffer | undefined, options: {
  pcrs?: Record<number, string>; eventLog?: PcrEvent[]; timestamp?: Date; signer?: TestChain; userData?: Buffer;
} = {}): FakeAnswer {
  const pcrs = testPcrs();
  for (const [index, value] of Object.entries({ 4: IMAGE.pcr4, 12: IMAGE.pcr12, 15: extended(MODEL), ...options.pcrs })) {
    pcrs.set(Number(index), value);
  }
  const document = buildTestAttestationDocument({
    chain: options.signer ?? chain, pcrs, nonce, timestamp: options.timestamp, userData: options.userData ?? appliance.binding,
  });
  return { body: { document: document.toString('base64'), eventLog: options.eventLog ?? [modelEvent(MODEL)] } };
}

function file(name: string, content: unknown): string {
  const filePath = path.join(dir, name);
  fs.writeFileSync(filePath, typeof content === 'string' ? content : JSON.stringify(content));
  return filePath;
}

function manifest(model: MeasuredModel): string {
  return file(`manifest-${model.sha256.slice(0, 8)}.json`, {
    formatVersion: FORMAT_VERSION, modelName: model.modelName, plaintextSize: model.plaintextSize, chunkSize: 4194304,
    sha256: model.sha256, sealedSize: 200, headerSha256: 'ef'.repeat(32),
    encryptionContext: { 'sealed-inference:model': 'llama3', 'sealed-inference:format': '2' }, createdAt: '2026-11-01T00:00:00.000Z',
  });
}

const run = (args: string[]) => runCaptured(['verify', appliance.url, ...args], deps);

beforeAll(async () => {
  [chain, otherChain] = await Promise.all([createTestChain(), createTestChain()]);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'verify-'));
  appliance = await FakeAppliance.start((nonce) => attestation(nonce));
  deps = {
    trustedRoots: [chain.root.certificate],
    kmsClient: (region) => {
      kmsRegions.push(region);
      return new KMSClient({ region, credentials: { accessKeyId: 'AKIAFAKE', secretAccessKey: 'fake' } });
    },
    ec2Client: (region) => new EC2Client({ region: region ?? 'eu-west-1', credentials: { accessKeyId: 'AKIAFAKE', secretAccessKey: 'fake' } }),
  };
});

afterAll(async () => {
  await appliance.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  appliance.answer = (nonce) => attestation(nonce);
  appliance.requests.length = 0;
  kms.reset();
  ec2.reset();
  kmsRegions.length = 0;
});

describe('verified: exit code 0', () => {
  test('the expected image serving the expected model, checked with a fresh nonce each time', async () => {
    const measurements = file('measurements.json', IMAGE);
    const { code, stdout, stderr } = await run(['--measurements', measurements, '--model', manifest(SERVED)]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const lines = stdout.split('\n');
    expect(lines[0]).toMatch(new RegExp(`^Service ${appliance.url}/ \\(nonce [0-9a-f]{64}\\)$`));
    expect(lines.slice(1, 6).map((l) => /^ {2}ok {4}[a-z-]+: \S+/.exec(l)?.[0])).toEqual([
      '  ok    document: module', '  ok    channel: TLS', '  ok    image: ami-0123456789abcdef0',
      `  ok    event-log: PCR15=${extended(MODEL)}`, `  ok    model: ${MODEL}`,
    ]);
    expect(lines[6]).toBe(`Verified: ${appliance.url}/ runs ami-0123456789abcdef0 and serves model ${MODEL}.`);

    await run(['--measurements', measurements, '--any-model']);
    const nonces = appliance.requests.map((url) => url.searchParams.get('nonce'));
    expect(nonces).toHaveLength(2);
    expect(nonces[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(nonces[1]).not.toBe(nonces[0]);
  });

  test('--json prints the report', async () => {
    const { code, stdout } = await run(['--measurements', file('m.json', [OTHER_IMAGE, IMAGE]), '--any-model', '--json']);
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report).toMatchObject({
      verified: true, service: `${appliance.url}/`, image: IMAGE.imageId, servedModels: [MODEL],
      document: { moduleId: 'i-0123456789abcdef0-tpm0123456789abcdef', pcrs: { 4: IMAGE.pcr4, 15: extended(MODEL) } },
    });
    expect(report.nonce).toBe(appliance.requests[0].searchParams.get('nonce'));
    expect(report.checks.map((c: { name: string; passed: boolean }) => [c.name, c.passed]))
      .toEqual([['document', true], ['channel', true], ['image', true], ['event-log', true]]);
  });

  test('a service URL with a path prefix keeps it', async () => {
    const { code, stderr } = await runCaptured(['verify', `${appliance.url}/inference/`, '--measurements', file('m.json', IMAGE), '--any-model'], deps);
    expect(code).toBe(1); // the fake serves only /api/attestation
    expect(appliance.requests[0].pathname).toBe('/inference/api/attestation');
    expect(stderr).toMatch(/answered HTTP 404/);
  });
});

describe('the channel: the document must bind the TLS key of the connection it came over', () => {
  let relay: https.Server;
  let relayedChats: string[];

  beforeAll(async () => {
    // A relay with a key of its own: it forwards /api/attestation to the genuine service and would answer chats itself.
    const keyFile = path.join(dir, 'relay-key.pem');
    const certFile = path.join(dir, 'relay-cert.pem');
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-keyout', keyFile, '-out', certFile]);
    relay = https.createServer({ key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile) }, (req, res) => {
      if (req.url?.startsWith('/api/attestation')) {
        https.get(`${appliance.url}${req.url}`, { rejectUnauthorized: false }, (genuine) => {
          res.writeHead(genuine.statusCode ?? 502, { 'content-type': 'application/json' });
          genuine.pipe(res);
        });
      } else {
        relayedChats.push(req.url ?? '');
        res.writeHead(200).end('{}');
      }
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise((resolve) => relay.close(resolve)));
  beforeEach(() => {
    relayedChats = [];
  });
  const relayUrl = () => `https://127.0.0.1:${(relay.address() as AddressInfo).port}`;

  test("a relay's answer is the genuine document, and it is refused: it binds the genuine service's key", async () => {
    const { code, stdout, stderr } = await runCaptured(['verify', relayUrl(), '--measurements', file('m.json', IMAGE), '--any-model'], deps);
    expect(code).toBe(3);
    expect(appliance.requests).toHaveLength(1);
    expect(stdout).toMatch(/ {2}ok {4}document: module/);
    expect(stdout).toMatch(/ {2}FAIL {2}channel: expected the document binds this connection's TLS key \(SPKI SHA-256 [0-9a-f]{64}\)/);
    expect(stdout).not.toMatch(/ok {4}image/);
    expect(stderr).toMatch(endsWithFailure(/not trustworthy: channel: .*found channel-mismatch: the connection's TLS key has SPKI SHA-256 [0-9a-f]{64}, but the document binds the TLS key with SPKI SHA-256 [0-9a-f]{64}: the service answering is not the attested instance/));
    expect(relayedChats).toEqual([]);
  });

  test('the report names the key it verified, the one the service presented', async () => {
    const { code, stdout } = await run(['--measurements', file('m.json', IMAGE), '--any-model', '--json']);
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(appliance.binding.toString()).toBe(`sealed-inference-channel/1 tls-spki-sha256=${report.tlsSpkiSha256}`);
    expect(report.checks.find((c: { name: string }) => c.name === 'channel')).toMatchObject({ passed: true });
  });

  test.each([
    ['no binding at all', Buffer.alloc(0), /the document carries no channel binding/],
    ['a binding of another key', Buffer.from(`sealed-inference-channel/1 tls-spki-sha256=${'ab'.repeat(32)}`),
      new RegExp(`the document binds the TLS key with SPKI SHA-256 ${'ab'.repeat(32)}`)],
    ['user data that is no binding', Buffer.from('hello'), /the document's user_data is not a channel binding \(5 bytes, hex 68656c6c6f\)/],
  ])('a document with %s is refused', async (_name, userData, message) => {
    appliance.answer = (n) => attestation(n, { userData: userData.length === 0 ? undefined : userData });
    if (userData.length === 0) {
      appliance.answer = (n) => ({ body: { document: buildTestAttestationDocument({ chain, pcrs: testPcrs(), nonce: n }).toString('base64'), eventLog: [] } });
    }
    const { code, stderr } = await run(['--measurements', file('m.json', IMAGE), '--any-model']);
    expect(code).toBe(3);
    expect(stderr).toMatch(endsWithFailure(new RegExp(`not trustworthy: channel: .*${message.source}`)));
  });

  test('a TLS 1.2 service is not reached: the channel is TLS 1.3 only', async () => {
    const keyFile = path.join(dir, 'relay-key.pem');
    const old = https.createServer({ key: fs.readFileSync(keyFile), cert: fs.readFileSync(path.join(dir, 'relay-cert.pem')),
      maxVersion: 'TLSv1.2' }, (_req, res) => res.end());
    await new Promise<void>((resolve) => old.listen(0, '127.0.0.1', resolve));
    try {
      const url = `https://127.0.0.1:${(old.address() as AddressInfo).port}`;
      const { code, stderr } = await runCaptured(['verify', url, '--measurements', file('m.json', IMAGE), '--any-model'], deps);
      expect(code).toBe(1);
      expect(stderr).toMatch(endsWithFailure(/Could not connect to 127.0.0.1:\d+ over TLS 1.3: .*(version|protocol)/i));
    } finally {
      await new Promise((resolve) => old.close(resolve));
    }
  });
});

describe('not trustworthy: exit code 3, the report on stdout, the reason on stderr', () => {
  const measurements = () => file('measurements.json', IMAGE);

  test.each([
    ['another image (PCR4)', (n: Buffer) => attestation(n, { pcrs: { 4: hex('c4') } }), [], 'image',
      /not trustworthy: image: expected ami-0123456789abcdef0 \(PCR4=a4a4.*; found PCR4=c4c4/],
    ['a command line injected (PCR12)', (n: Buffer) => attestation(n, { pcrs: { 12: hex('0c') } }), [], 'image',
      /not trustworthy: image: expected .*found PCR4=a4a4[0-9a-f]* PCR12=0c0c/],
    ['PCR15 of another model', (n: Buffer) => attestation(n, { pcrs: { 15: extended(OTHER_MODEL) }, eventLog: [modelEvent(OTHER_MODEL)] }),
      ['--model'], 'model', new RegExp(`not trustworthy: model: expected ${expectedModel(SERVED)}; found ${OTHER_MODEL}`)],
    ['an event log that does not replay to PCR15', (n: Buffer) => attestation(n, { pcrs: { 15: extended(OTHER_MODEL) } }),
      ['--model'], 'event-log', new RegExp(`not trustworthy: event-log: expected PCR15=${extended(MODEL)} \\(replay of 1 event\\); found PCR15=${extended(OTHER_MODEL)}`)],
    ['a stale document', (n: Buffer) => attestation(n, { timestamp: new Date(Date.now() - 10 * 60 * 1000) }), [], 'document',
      /not trustworthy: document: expected .* at most 300 s old.*; found stale-document: the document is from/],
    ['an old document replayed, with the nonce of another request', () => attestation(Buffer.alloc(32, 7)), [], 'document',
      /not trustworthy: document: .*found nonce-mismatch: the document's nonce 0707[0-9a-f]* is not the expected [0-9a-f]{64}/],
    ['a document without nonce', () => attestation(undefined), [], 'document', /not trustworthy: document: .*found nonce-mismatch: the document carries no nonce/],
    ['a document from another chain', (n: Buffer) => attestation(n, { signer: otherChain }), [], 'document',
      /not trustworthy: document: .*found unknown-root: the root certificate \(CN=test.nitro-root\)/],
  ] as Array<[string, (n: Buffer) => FakeAnswer, string[], string, RegExp]>)('%s', async (_name, answer, extra, failed, reason) => {
    appliance.answer = answer;
    const args = ['--measurements', measurements(), ...(extra.includes('--model') ? ['--model', manifest(SERVED)] : ['--any-model'])];
    const { code, stdout, stderr } = await run(args);
    expect(code).toBe(3);
    expect(stdout).toContain(`  FAIL  ${failed}: expected `);
    expect(stdout).toMatch(new RegExp(`\\nNOT TRUSTWORTHY: ${failed} failed.\\n$`));
    expect(stderr).toMatch(endsWithFailure(reason));
  });

  test('--max-age accepts an older document', async () => {
    appliance.answer = (n) => attestation(n, { timestamp: new Date(Date.now() - 10 * 60 * 1000) });
    expect((await run(['--measurements', measurements(), '--any-model', '--max-age', '900'])).code).toBe(0);
  });

  test('without injected roots, only the AWS Nitro root is trusted', async () => {
    const { code, stdout } = await runCaptured(['verify', appliance.url, '--measurements', measurements(), '--any-model', '--json']);
    expect(code).toBe(3);
    expect(JSON.parse(stdout).checks[0]).toMatchObject({
      name: 'document', passed: false, expected: expect.stringMatching(/^signed through the AWS Nitro root \(SHA-256 64:1A:03:21:/),
      found: expect.stringMatching(/^unknown-root: /),
    });
  });
});

describe("the service's unauthenticated text cannot forge lines of the report", () => {
  const CONTROL_BUT_LINE_FEED = /[^\P{Cc}\n]/u;
  const FORGED = '\u001b[2K\r  ok    image: forged\nVerified: forged';
  const forgedEvent = (digest: string): PcrEvent => ({ ...modelEvent(digest), description: `llama3${FORGED}` });

  test('an event description is shown escaped, on its own line', async () => {
    appliance.answer = (n) => attestation(n, { eventLog: [forgedEvent(MODEL)] });
    const { code, stdout } = await run(['--measurements', file('m.json', IMAGE), '--model', manifest(SERVED)]);
    expect(code).toBe(0);
    expect(stdout).not.toMatch(CONTROL_BUT_LINE_FEED);
    expect(stdout.split('\n').filter((line) => /forged/.test(line))).toEqual([
      `  ok    model: ${MODEL} (llama3\\x1b[2K\\x0d  ok    image: forged\\x0aVerified: forged)`,
    ]);
  });

  test('on stderr too, when the check fails', async () => {
    appliance.answer = (n) => attestation(n, { pcrs: { 15: extended(OTHER_MODEL) }, eventLog: [forgedEvent(OTHER_MODEL)] });
    const { code, stdout, stderr } = await run(['--measurements', file('m.json', IMAGE), '--model', manifest(SERVED)]);
    expect(code).toBe(3);
    expect(`${stdout}${stderr}`).not.toMatch(CONTROL_BUT_LINE_FEED);
    expect(stdout.split('\n').filter((line) => /forged/.test(line))).toEqual([expect.stringMatching(/^ {10}found [0-9a-f]{96} \(llama3\\x1b/)]);
    expect(stderr).toMatch(failure(/not trustworthy: model: .*\\x0aVerified: forged\)/));
  });

  test('an HTTP error body is shown escaped, and cut', async () => {
    appliance.answer = () => ({ status: 503, body: `model loading${FORGED}${'.'.repeat(300)}` });
    const { code, stderr } = await run(['--measurements', file('m.json', IMAGE), '--any-model']);
    expect(code).toBe(1);
    expect(stderr).toMatch(failure(
      /https:\/\/127.0.0.1:\d+\/api\/attestation answered HTTP 503: model loading\\x1b\[2K\\x0d {2}ok {4}image: forged\\x0aVerified: forged\.+… \(\d+ more characters\)/,
    ));
  });
});

describe('could not check: exit code 1, nothing on stdout', () => {
  test.each([
    ['an unreachable service', async () => {
      const closed = await FakeAppliance.start(() => 'hang');
      const url = closed.url;
      await closed.stop();
      return runCaptured(['verify', url, '--measurements', file('m.json', IMAGE), '--any-model'], deps);
    }, /Could not connect to 127.0.0.1:\d+ over TLS 1.3: .*ECONNREFUSED/],
    ['a service that does not answer in time', async () => {
      appliance.answer = () => 'hang';
      return run(['--measurements', file('m.json', IMAGE), '--any-model', '--timeout', '0.3']);
    }, /Could not reach https:\/\/127.0.0.1:\d+: no answer within 0.3 s/],
    ['an HTTP error', async () => {
      appliance.answer = () => ({ status: 503, body: 'model loading' });
      return run(['--measurements', file('m.json', IMAGE), '--any-model']);
    }, /https:\/\/127.0.0.1:\d+\/api\/attestation answered HTTP 503: model loading/],
    ['an answer that is not JSON', async () => {
      appliance.answer = () => ({ body: '<html>' });
      return run(['--measurements', file('m.json', IMAGE), '--any-model']);
    }, /https:\/\/127.0.0.1:\d+\/api\/attestation did not answer JSON: is this a sealed-inference service\?/],
    ['an answer too large for an attestation', async () => {
      appliance.answer = () => ({ body: 'x'.repeat(1024 * 1024 + 1) });
      return run(['--measurements', file('m.json', IMAGE), '--any-model']);
    }, /https:\/\/127.0.0.1:\d+ answered more than 1048576 bytes/],
    ['an answer without event log', async () => {
      appliance.answer = () => ({ body: { document: 'AAAA' } });
      return run(['--measurements', file('m.json', IMAGE), '--any-model']);
    }, /The attestation response is malformed: "eventLog" must be an array of PCR events/],
    ['a malformed measurements file', () => run(['--measurements', file('bad.json', { ...IMAGE, pcr12: undefined }), '--any-model']),
      /image 1 of .*bad.json is not pinned: missing pcr12/],
    ['a measurements file with a typo', () => run(['--measurements', file('typo.json', { ...IMAGE, pcr21: hex('00') }), '--any-model']),
      /image 1 of .*typo.json has unknown field pcr21; expected imageId, pcr4, pcr7, pcr12/],
    ['a missing file', () => run(['--measurements', path.join(dir, 'none.json'), '--any-model']), /Could not read the measurements file .*none.json: ENOENT/],
    ['a malformed manifest', () => run(['--measurements', file('m.json', IMAGE), '--model', file('manifest.json', '{}')]),
      /manifest format version undefined is not supported/],
  ] as Array<[string, () => ReturnType<typeof run>, RegExp]>)('%s', async (_name, runIt, message) => {
    const { code, stdout, stderr } = await runIt();
    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    expect(stderr).toMatch(endsWithFailure(message));
  });
});

describe('expectation sources', () => {
  const outputs = {
    Network: { VpcId: 'vpc-1' },
    Inference: {
      InferenceAllowedImage1Id: OTHER_IMAGE.imageId, InferenceAllowedImage1Pcr4: OTHER_IMAGE.pcr4, InferenceAllowedImage1Pcr12: OTHER_IMAGE.pcr12,
      InferenceAllowedImage2IdABCD1234: IMAGE.imageId, InferenceAllowedImage2Pcr4ABCD1234: IMAGE.pcr4.toUpperCase(),
      InferenceAllowedImage2Pcr12ABCD1234: IMAGE.pcr12, InferenceAllowedImage2Warnings: '', InferenceKeyArn: KEY_ARN,
    },
  };

  test('--stack-outputs: the allowed images of the one stack that has them', async () => {
    const { code, stdout } = await run(['--stack-outputs', file('outputs.json', outputs), '--any-model', '--json']);
    expect(code).toBe(0);
    expect(JSON.parse(stdout).image).toBe(IMAGE.imageId);
  });

  test('--stack-outputs with several stacks needs --stack', async () => {
    const two = file('two.json', { ...outputs, Old: { InferenceAllowedImage1Pcr7: hex('57') } });
    const ambiguous = await run(['--stack-outputs', two, '--any-model']);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toMatch(endsWithFailure(/Stack outputs file .*two.json has several stacks with allowed images \(Inference, Old\): pick one with --stack/));
    expect((await run(['--stack-outputs', two, '--any-model', '--stack', 'Inference'])).code).toBe(0);
    const old = await run(['--stack-outputs', two, '--any-model', '--stack', 'Old']);
    expect(old.code).toBe(3);
    expect(old.stdout).toContain('FAIL  image: expected image 1 (PCR7=5757');
  });

  test('--image: the published measurements, read with the EC2 client', async () => {
    ec2.on(DescribeImagesCommand, { ImageIds: [IMAGE.imageId] }).resolves({ Images: [publishedImage()] });
    const { code, stdout, stderr } = await run(['--image', IMAGE.imageId, '--any-model', '--owner', '111111111111', '--json']);
    expect({ code, stderr }).toEqual({
      code: 0, stderr: `Image ${IMAGE.imageId}, owned by account 111111111111\nRecipe version: 1.2.0\n` +
        `pcr_measurements.json SHA-256: ${'ab'.repeat(32)} (not checked)\n`,
    });
    expect(JSON.parse(stdout).image).toBe(IMAGE.imageId);
    expect(ec2.commandCalls(DescribeImagesCommand)).toHaveLength(1);
  });

  test('--image --secure-boot expects PCR4, PCR7 and PCR12, and the PCR7 of this document differs', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [publishedImage()] });
    const { code, stdout } = await run(['--image', IMAGE.imageId, '--any-model', '--secure-boot', '--owner', '111111111111']);
    expect(code).toBe(3);
    expect(stdout).toContain(`FAIL  image: expected ${IMAGE.imageId} (PCR4=${hex('a4')} PCR7=${hex('57')} PCR12=${hex('00')})`);
  });

  test('--image with an image EC2 refuses could not be checked', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [publishedImage({ BootMode: 'legacy-bios' })] });
    const { code, stderr } = await run(['--image', IMAGE.imageId, '--any-model']);
    expect(code).toBe(1);
    expect(stderr).toMatch(endsWithFailure(/Image ami-0123456789abcdef0 has boot mode legacy-bios, not uefi/));
  });
});

describe('--key: the live key policy', () => {
  let sealedToImage: string;
  let sealedToTwo: string;
  beforeAll(() => {
    sealedToImage = synthesizedKeyPolicy([IMAGE]);
    sealedToTwo = synthesizedKeyPolicy([IMAGE, OTHER_IMAGE]);
  });
  const args = () => ['--measurements', file('m.json', IMAGE), '--any-model', '--key', KEY_ARN];

  test('a policy that still matches: verified, read in the key\'s Region', async () => {
    kms.on(GetKeyPolicyCommand, { KeyId: KEY_ARN, PolicyName: 'default' }).resolves({ Policy: sealedToImage });
    const { code, stdout, stderr } = await run(args());
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toContain('  ok    key-policy: as expected\n');
    expect(kmsRegions).toEqual(['eu-west-1']);
    expect(kms.commandCalls(GetKeyPolicyCommand)).toHaveLength(1);
  });

  test('widened with an unconditioned decrypt statement: not trustworthy', async () => {
    const policy = JSON.parse(sealedToImage);
    policy.Statement.push({
      Sid: 'EnableIamUserPermissions', Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::111111111111:root' }, Action: 'kms:*', Resource: '*',
    });
    kms.on(GetKeyPolicyCommand).resolves({ Policy: JSON.stringify(policy) });
    const { code, stdout, stderr } = await run([...args(), '--json']);
    expect(code).toBe(3);
    expect(JSON.parse(stdout).keyPolicyFindings).toEqual([{
      kind: 'ungated-decrypt', statement: 'EnableIamUserPermissions',
      message: 'EnableIamUserPermissions allows kms:Decrypt to arn:aws:iam::111111111111:root without a StringEquals(IgnoreCase) condition on kms:RecipientAttestation:NitroTPMPCR<N>',
    }]);
    expect(stderr).toMatch(endsWithFailure(/not trustworthy: key-policy: expected .* decrypts only for ami-0123456789abcdef0, .*found EnableIamUserPermissions allows kms:Decrypt/));
  });

  test("a Deny of grants that names the key by its ARN closes them: the audit knows the key's ARN", async () => {
    const policy = JSON.parse(sealedToImage);
    for (const statement of policy.Statement) if (statement.Sid === 'DenyGrants') statement.Resource = KEY_ARN;
    policy.Statement.push({
      Sid: 'Grants', Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::111111111111:root' }, Action: 'kms:CreateGrant', Resource: '*',
    });
    kms.on(GetKeyPolicyCommand).resolves({ Policy: JSON.stringify(policy) });
    expect((await run(args())).code).toBe(0);
    for (const statement of policy.Statement) if (statement.Sid === 'DenyGrants') statement.Resource = KEY_ARN.replace('1234abcd', 'ffffffff');
    kms.on(GetKeyPolicyCommand).resolves({ Policy: JSON.stringify(policy) });
    const other = await run([...args(), '--json']);
    expect(other.code).toBe(3);
    expect(JSON.parse(other.stdout).keyPolicyFindings.map((f: { kind: string }) => f.kind)).toEqual(['grant-path']);
  });

  test('allowing an extra image: not trustworthy', async () => {
    kms.on(GetKeyPolicyCommand).resolves({ Policy: sealedToTwo });
    const { code, stdout } = await run(args());
    expect(code).toBe(3);
    expect(stdout).toContain(`FAIL  key-policy: expected ${KEY_ARN} decrypts only for ami-0123456789abcdef0`);
    expect(stdout).toContain(`found UnsealOnlyOnAttestedImage2 admits PCR4=${hex('b4')} PCR12=${hex('00')}, which is no expected image`);
  });

  test('the key is audited even when the document fails', async () => {
    kms.on(GetKeyPolicyCommand).resolves({ Policy: sealedToTwo });
    appliance.answer = () => attestation(Buffer.alloc(32, 7));
    const { code, stdout } = await run([...args(), '--json']);
    expect(code).toBe(3);
    const report = JSON.parse(stdout);
    expect(report.checks.map((c: { name: string; passed: boolean }) => [c.name, c.passed])).toEqual([['document', false], ['key-policy', false]]);
    expect(report.keyPolicyFindings.map((f: { kind: string }) => f.kind)).toEqual(['extra-image']);
  });

  test('a policy KMS will not show could not be checked', async () => {
    kms.on(GetKeyPolicyCommand).rejects(Object.assign(new Error('User is not authorized to perform kms:GetKeyPolicy'), { name: 'AccessDeniedException' }));
    const { code, stdout, stderr } = await run(args());
    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    expect(stderr).toMatch(endsWithFailure(/Could not read the policy of key arn:aws:kms:eu-west-1:111111111111:key\/1234abcd-[0-9a-f-]+: User is not authorized to perform kms:GetKeyPolicy \(AccessDeniedException\)/));
  });
});

describe('usage errors: exit code 2, without asking the service', () => {
  test.each([
    ['no expectation', [], /say what to expect with --measurements <file>, --image <ami-id> or --stack-outputs <file>/],
    ['two expectations', ['--measurements', 'm.json', '--stack-outputs', 'o.json'], /option '--measurements <file>' cannot be used with option '--stack-outputs <file>'/],
    ['--stack without --stack-outputs', ['--measurements', 'm.json', '--stack', 'S'], /--stack needs --stack-outputs/],
    ['--secure-boot without --image', ['--measurements', 'm.json', '--secure-boot'], /--secure-boot only apply with --image/],
    ['a key alias', ['--measurements', 'm.json', '--key', 'alias/sealed'], /Expected a key ARN like arn:aws:kms:eu-west-1:111111111111:key\/<key-id> \(not an alias\)/],
    ['a bad max age', ['--measurements', 'm.json', '--max-age', '-1'], /Expected a positive number of seconds/],
    ['a bad image id', ['--image', 'ami-XYZ'], /Expected an AMI id/],
  ])('%s', async (_name, args, message) => {
    const { code, stdout, stderr } = await run(args);
    expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
    expect(stderr).toMatch(message);
    expect(appliance.requests).toHaveLength(0);
  });

  test.each([
    ['ftp://host/', /Expected an https URL/],
    ['not a url', /Expected a URL like https:\/\/10.0.1.23:3000/],
    ['https://host/?nonce=1', /Expected the service URL without query or fragment/],
    ['http://10.0.1.23:3000', /The service speaks TLS only: use https:\/\/. Over plain http a relay could answer in its place/],
  ])('service URL %s', async (url, message) => {
    const { code, stderr } = await runCaptured(['verify', url, '--measurements', 'm.json', '--any-model'], deps);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
  });

  test('--help documents the exit codes', async () => {
    const { code, stdout } = await runCaptured(['verify', '--help']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Usage: sealed-inference verify \[options\] <service-url>\n/);
    expect(stdout).toContain('Exit codes:\n  0  verified: every check passed\n  3  not trustworthy');
    expect(stdout).toContain('  1  could not check');
    expect(stdout).toContain('  2  usage');
  });
});

describe('--document: a stored attestation, audited as of a time, without asking any service', () => {
  /** The genuine NitroTPM document of test/fixtures, as the appliance would have answered it. */
  const genuine = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'nitrotpm-attestation-document.json'), 'utf8')) as {
    timestamp: number; document: string;
  };
  const producedAt = new Date(genuine.timestamp).toISOString();
  const genuinePcrs = parseAttestationDocument(Buffer.from(genuine.document, 'base64')).document.pcrs;
  const genuineImage = { imageId: 'ami-0123456789abcdef0', pcr4: genuinePcrs.get(4)!, pcr12: genuinePcrs.get(12)! };
  const stored = () => file('attestation.json', { document: genuine.document, eventLog: [] });
  /** Without injected roots: only the pinned AWS Nitro root is trusted, as for an auditor. */
  const audit = (args: string[]) => runCaptured(['verify', '--document', stored(), '--measurements', file('genuine-image.json', genuineImage), '--any-model', ...args]);

  test('verifies the genuine document at its own timestamp, and lists channel and nonce as not applicable', async () => {
    const { code, stdout, stderr } = await audit([]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const lines = stdout.split('\n');
    expect(lines[0]).toBe(`Attestation ${path.join(dir, 'attestation.json')}, judged at ${producedAt}`);
    expect(lines.slice(1, 6).map((line) => /^ {2}(ok|n\/a) +[a-z-]+:/.exec(line)?.[0])).toEqual([
      '  ok    document:', '  ok    image:', '  ok    event-log:', '  n/a   channel:', '  n/a   nonce:',
    ]);
    expect(lines[1]).toContain(`module i-000fa553dad58a9f1-tpm0000000000000000, ${producedAt} (0 s old at ${producedAt})`);
    expect(lines[4]).toMatch(/^ {2}n\/a {3}channel: no connection: /);
    expect(lines[6]).toBe(`Verified as of ${producedAt}: the document shows ami-0123456789abcdef0 serving no model yet. Not checked: channel, nonce.`);
    expect(appliance.requests).toHaveLength(0);
  });

  test('--json: the checks that ran, and apart from them the checks that do not apply', async () => {
    const { code, stdout } = await audit(['--json']);
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report).toMatchObject({
      verified: true, source: path.join(dir, 'attestation.json'), at: producedAt, image: genuineImage.imageId, servedModels: [],
      document: { moduleId: 'i-000fa553dad58a9f1-tpm0000000000000000', timestamp: producedAt },
    });
    expect(report.checks.map((c: { name: string; passed: boolean }) => [c.name, c.passed]))
      .toEqual([['document', true], ['image', true], ['event-log', true]]);
    expect(report.notApplicable.map((c: { name: string }) => c.name)).toEqual(['channel', 'nonce']);
    expect(report.nonce).toBeUndefined();
  });

  test('--at a day later: its three-hour leaf certificate had expired, not trustworthy', async () => {
    const dayLater = new Date(genuine.timestamp + 24 * 3600 * 1000).toISOString();
    const { code, stdout, stderr } = await audit(['--at', dayLater, '--max-age', String(2 * 24 * 3600)]);
    expect(code).toBe(3);
    expect(stdout.split('\n')[0]).toMatch(new RegExp(`judged at ${dayLater}$`));
    expect(stdout).toContain('  n/a   channel: ');
    expect(stdout).toMatch(/\nNOT TRUSTWORTHY: document failed. Not checked: channel, nonce.\n$/);
    expect(stderr).toMatch(endsWithFailure(/not trustworthy: document: expected .*valid and the document at most 172800 s old at .*; found certificate-expired: /));
  });

  test('--at ten minutes later: stale unless --max-age allows its age', async () => {
    const tenMinutesLater = new Date(genuine.timestamp + 10 * 60 * 1000).toISOString();
    const stale = await audit(['--at', tenMinutesLater]);
    expect(stale.code).toBe(3);
    expect(stale.stderr).toMatch(endsWithFailure(/not trustworthy: document: .*found stale-document: /));
    const allowed = await audit(['--at', tenMinutesLater, '--max-age', '900']);
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toContain(`(600 s old at ${tenMinutesLater})`);
  });

  test('--at with another zone is the same instant', async () => {
    const { code, stdout } = await audit(['--at', '2025-01-01T00:00:00+02:00', '--json']);
    expect(code).toBe(3);
    expect(JSON.parse(stdout).at).toBe('2024-12-31T22:00:00.000Z');
  });

  test('the image, event-log and model checks apply as usual; the nonce the document carries does not matter', async () => {
    const { body: answered } = attestation(Buffer.alloc(32, 7)) as { body: object };
    const document = file('served.json', answered);
    const measurements = file('m.json', IMAGE);
    const served = await runCaptured(['verify', '--document', document, '--measurements', measurements, '--model', manifest(SERVED)], deps);
    expect(served.code).toBe(0);
    expect(served.stdout).toContain(`  ok    model: ${MODEL}`);
    const other = await runCaptured(['verify', '--document', document, '--measurements', measurements, '--model', manifest(OTHER)], deps);
    expect(other.code).toBe(3);
    expect(other.stderr).toMatch(endsWithFailure(new RegExp(`not trustworthy: model: expected ${expectedModel(OTHER)}`)));
    const otherImage = await runCaptured(['verify', '--document', document, '--measurements', file('o.json', OTHER_IMAGE), '--any-model'], deps);
    expect(otherImage.code).toBe(3);
    expect(otherImage.stdout).toMatch(/\nNOT TRUSTWORTHY: image failed. Not checked: channel, nonce.\n$/);
  });

  test.each([
    ['a missing file', () => path.join(dir, 'none.json'), /Could not read the attestation .*none.json: ENOENT/],
    ['the raw document bytes', () => {
      const raw = path.join(dir, 'raw.cbor');
      fs.writeFileSync(raw, Buffer.from(genuine.document, 'base64'));
      return raw;
    },
      /The attestation .*raw.cbor is not JSON: expected the answer of GET \/api\/attestation, \{ "document", "eventLog" \}/],
    ['an answer without event log', () => file('no-log.json', { document: genuine.document }),
      /The attestation response is malformed: "eventLog" must be an array of PCR events/],
    ['a file too large for an attestation', () => file('large.json', 'x'.repeat(1024 * 1024 + 1)), /Could not read the attestation .*large.json: larger than 1048576 bytes/],
  ] as Array<[string, () => string, RegExp]>)('could not check %s: exit code 1', async (_name, document, message) => {
    const { code, stdout, stderr } = await runCaptured(['verify', '--document', document(), '--measurements', file('m.json', IMAGE), '--any-model'], deps);
    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    expect(stderr).toMatch(endsWithFailure(message));
  });

  test.each([
    ['neither a service nor a document', ['verify', '--measurements', 'm.json', '--any-model'], /verify: give the service URL, or --document <file> to check a stored attestation/],
    ['both a service and a document', ['verify', 'https://10.0.1.23:3000', '--document', 'a.json', '--measurements', 'm.json', '--any-model'],
      /--document checks a stored attestation without asking a service: give it or the service URL, not both/],
    ['--at without --document', ['verify', 'https://10.0.1.23:3000', '--measurements', 'm.json', '--any-model', '--at', '2026-11-01T12:00:00Z'],
      /--at only applies with --document/],
    ['--key with --document', ['verify', '--document', 'a.json', '--measurements', 'm.json', '--any-model', '--key', KEY_ARN],
      /--key only apply to a service, not with --document \(--key reads the policy as it is now, not as it was\)/],
    ['--all and --timeout with --document', ['verify', '--document', 'a.json', '--measurements', 'm.json', '--any-model', '--all', '--timeout', '5'],
      /--all, --timeout only apply to a service, not with --document/],
    ['--save with --document', ['verify', '--document', 'a.json', '--measurements', 'm.json', '--any-model', '--save', 'b.json'],
      /--save only apply to a service, not with --document/],
    ['--save with --all', ['verify', 'https://10.0.1.23:3000', '--measurements', 'm.json', '--any-model', '--all', '--save', 'b.json'],
      /--save keeps one attestation: not with --all/],
    ['a time without zone', ['verify', '--document', 'a.json', '--measurements', 'm.json', '--any-model', '--at', '2026-11-01T12:00:00'],
      /Expected an ISO 8601 date and time with its zone, like 2026-11-01T12:00:00Z/],
    ['a day that does not exist', ['verify', '--document', 'a.json', '--measurements', 'm.json', '--any-model', '--at', '2026-02-30T12:00:00Z'],
      /Expected an ISO 8601 date and time with its zone/],
    ['words', ['verify', '--document', 'a.json', '--measurements', 'm.json', '--any-model', '--at', 'yesterday'], /Expected an ISO 8601 date and time/],
    ['no model expectation', ['verify', 'https://10.0.1.23:3000', '--measurements', 'm.json'],
      /verify: say which model to expect with --model <manifest.json>, or --any-model to accept whichever model the service serves/],
    ['a model and any model', ['verify', 'https://10.0.1.23:3000', '--measurements', 'm.json', '--model', 'a.json', '--any-model'],
      /option '--any-model' cannot be used with option '--model <manifest.json>'/],
    ['the gateway without a model expectation', ['gateway', 'https://10.0.1.23:3000', '--measurements', 'm.json'],
      /gateway: say which model to expect with --model <manifest.json>, or --any-model/],
  ])('usage error: %s', async (_name, args, message) => {
    const { code, stdout, stderr } = await runCaptured(args, deps);
    expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
    expect(stderr).toMatch(message);
  });

  test('verify --save keeps the attestation received, which --document checks again later', async () => {
    let served: unknown;
    appliance.answer = (nonce) => {
      const answer = attestation(nonce);
      served = (answer as { body: unknown }).body;
      return answer;
    };
    const saved = path.join(dir, 'saved.json');
    const measurements = file('m.json', IMAGE);
    const online = await run(['--measurements', measurements, '--any-model', '--save', saved, '--json']);
    expect(online.code).toBe(0);
    expect(JSON.parse(fs.readFileSync(saved, 'utf8'))).toEqual(served);
    const { document } = parseAttestationDocument(Buffer.from((served as { document: string }).document, 'base64'));
    expect(document.nonce?.toString('hex')).toBe(JSON.parse(online.stdout).nonce);

    const later = await runCaptured(['verify', '--document', saved, '--measurements', measurements, '--model', manifest(SERVED)], deps);
    expect(later.code).toBe(0);
    expect(later.stdout).toContain(`judged at ${document.timestamp.toISOString()}`);
  });

  test('verify --save keeps an attestation that fails its checks too: it is the evidence', async () => {
    appliance.answer = (nonce) => attestation(nonce, { pcrs: { 4: hex('c4') } });
    const saved = path.join(dir, 'refused.json');
    expect((await run(['--measurements', file('m.json', IMAGE), '--any-model', '--save', saved])).code).toBe(3);
    const stored = await runCaptured(['verify', '--document', saved, '--measurements', file('m.json', IMAGE), '--any-model'], deps);
    expect(stored.code).toBe(3);
    expect(stored.stdout).toMatch(/\nNOT TRUSTWORTHY: image failed. Not checked: channel, nonce.\n$/);
  });

  test('verify --save to a file that cannot be written could not check', async () => {
    const { code, stderr } = await run(['--measurements', file('m.json', IMAGE), '--any-model', '--save', path.join(dir, 'none', 'saved.json')]);
    expect(code).toBe(1);
    expect(stderr).toMatch(endsWithFailure(/Could not save the attestation to .*saved.json: ENOENT/));
  });

  test('--help shows both forms', async () => {
    const { stdout } = await runCaptured(['verify', '--help']);
    expect(stdout).toMatch(/^Usage: sealed-inference verify \[options\] <service-url>\n {7}sealed-inference verify \[options\] --document <attestation.json>\n/);
    expect(stdout).toMatch(/--at <time> +with --document: judge certificate validity/);
  });
});
