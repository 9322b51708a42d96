import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { extendSha384Pcr, readSha384Pcrs } from '../../lib/appliance/tpm2-tools';
import { verifyAttestationDocument } from '../../lib/attestation';
import { configurationDigest } from '../../lib/attestation/configuration-measurement';
import { PcrEvent, replayPcrEvents } from '../../lib/attestation/pcr-event-log';
import { EXIT_CODE } from '../../lib/cli/program';
import { modelEncryptionContext } from '../../lib/sealing/manifest';
import { createTestChain, TestChain } from '../attestation/test-attestation';
import { runCaptured } from '../cli/capture';
import { applianceEnvironment, freePort, startApplianceProcess } from './doubles/appliance-process';
import { FakeImds, startFakeImds } from './doubles/fake-imds';
import { FakeKms } from './doubles/fake-kms';
import { FakeS3, startFakeS3 } from './doubles/fake-s3';
import { installNitroTpmAttestDouble } from './doubles/nitro-tpm-attest';
import { SealedModelFixture, storeSealedModel, testApplianceConfig } from './doubles/sealed-model-fixture';
import OpenAI from 'openai';
import { PinnedConnection } from '../../lib/attestation/pinned-connection';
import { startGateway } from '../../lib/gateway/gateway';
import { parseLoopbackAddress } from '../../lib/gateway/loopback-address';
import { StubOllama } from './doubles/stub-ollama';
import { tlsFetch } from './doubles/tls-fetch';
import { startSwtpm, Swtpm } from './doubles/swtpm';

/**
 * The appliance bundle end to end, as the image runs it, against real and stand-in neighbours: a real TPM 2.0
 * (swtpm) measured like a booted image, a `nitro-tpm-attest` that signs its real PCRs, a KMS that checks the
 * document against a key policy and answers with a real CMS envelope, S3, IMDSv2 and Ollama.
 */

const sha384 = (text: string) => createHash('sha384').update(text).digest('hex');
/** A PCR's value after extending its reset value (48 zero bytes) with `digests` in order. */
const extendedFromZero = (...digests: string[]) => digests
  .reduce((pcr, digest) => createHash('sha384').update(pcr).update(Buffer.from(digest, 'hex')).digest(), Buffer.alloc(48))
  .toString('hex');

describe('the appliance bundle', () => {
  let chain: TestChain;
  let swtpm: Swtpm;
  let tools: string;
  let image: { pcr4: string; pcr12: string };
  let s3: FakeS3;
  let ollama: StubOllama;
  const tpm = () => ({ env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti } });
  const running: Array<{ stop(): Promise<void> }> = [];

  beforeAll(async () => {
    chain = await createTestChain();
    tools = await mkdtemp(path.join(tmpdir(), 'nitro-tools-'));
    await installNitroTpmAttestDouble(chain, tools);
  });
  afterAll(() => rm(tools, { recursive: true, force: true }));
  beforeEach(async () => {
    // A fresh TPM each time: a booted instance.
    swtpm = await startSwtpm();
    // What a booted attestable image leaves in its PCRs: its UKI in PCR4, its command line in PCR12.
    await extendSha384Pcr(4, sha384('unified kernel image'), tpm());
    await extendSha384Pcr(12, sha384('kernel command line'), tpm());
    const pcrs = await readSha384Pcrs([4, 12], tpm());
    image = { pcr4: pcrs.get(4)!, pcr12: pcrs.get(12)! };
    s3 = await startFakeS3();
    ollama = await StubOllama.start();
  });
  afterEach(async () => {
    for (const service of running.splice(0)) await service.stop();
    await s3.close();
    await ollama.stop();
    await swtpm.stop();
  });

  /** A sealed model in S3, a KMS holding its key under `allowedImages`, and the appliance booting with both. */
  async function boot(
    allowedImages: Array<{ pcr4: string; pcr12: string }>,
    beforeStart: (model: SealedModelFixture) => void = () => undefined,
    bucket?: string,
  ) {
    const kms = await FakeKms.start({ trustedRoots: [chain.root.certificate], allowedImages });
    const port = await freePort();
    const config = { ...testApplianceConfig('llama', bucket), keyArn: kms.keyArn, servicePort: port };
    const model = await storeSealedModel(s3, {
      config,
      wrap: (dataKey) => kms.wrap(dataKey, modelEncryptionContext(config.modelName)),
    });
    beforeStart(model);
    const imds: FakeImds = await startFakeImds(JSON.stringify(config));
    const env = applianceEnvironment({
      tpmTools: tools, tpmTcti: swtpm.tcti, ollamaUrl: ollama.url, imdsEndpoint: imds.endpoint, s3Endpoint: s3.endpoint,
      kmsEndpoint: kms.endpoint,
    });
    const appliance = await startApplianceProcess(port, env);
    running.push(appliance, { stop: () => imds.close() }, { stop: () => kms.stop() });
    /** The service crashes and systemd starts it again: same TPM, same memory-backed state, same port. */
    const restart = async () => {
      await appliance.crash();
      const again = await startApplianceProcess(port, env, (stateDirectory) =>
        cp(appliance.stateDirectory, stateDirectory, { recursive: true }));
      running.push(again);
      return again;
    };
    return { kms, model, appliance, restart };
  }

  test('attests, unseals, measures the model into PCR15, serves chat, and proves all of it to a verifier', async () => {
    const { kms, model, appliance } = await boot([image]);
    const ready = await appliance.waitFor((status) => status.phase === 'ready' || status.phase === 'failed');
    expect(ready).toMatchObject({ phase: 'ready', model: { name: 'llama', sha256: model.sha256, measurement: model.measurement } });

    // KMS was asked once, with an attestation document; Ollama holds the verified plaintext.
    expect(kms.requests.map((request) => [request.operation, request.withRecipient])).toEqual([['Decrypt', true]]);
    expect(ollama.blobs.get(`sha256:${model.sha256}`)).toBe(model.plaintext.length);
    expect(ollama.models.get('llama')).toEqual({ 'llama.gguf': `sha256:${model.sha256}` });

    // PCR15 on the TPM is the extend of the configuration's SHA-384, then the model's.
    const pcr15 = (await readSha384Pcrs([15], tpm())).get(15);
    expect(pcr15).toBe(extendedFromZero(configurationDigest(model.config), model.measurement));

    // A chat round trip; the prompt goes to Ollama and never into the appliance's log.
    const prompt = `What is sealed inference? ${randomBytes(8).toString('hex')}`;
    const chat = await tlsFetch(`${appliance.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: prompt }], stream: true }),
    });
    expect(chat.status).toBe(200);
    const events = (await chat.text()).split('\n\n').filter(Boolean).map((event) => event.replace(/^data: /, ''));
    expect(events.pop()).toBe('[DONE]');
    const answer = events.map((data) => JSON.parse(data).choices[0].delta.content).join('');
    expect(answer).toBe(StubOllama.answerTo(prompt));
    expect(appliance.output()).not.toContain(prompt);
    expect(appliance.output()).not.toContain(StubOllama.answerTo(prompt));

    // The attestation endpoint: a fresh document over the verifier's nonce, with the image's PCRs and the model's.
    const nonce = randomBytes(32);
    const evidence = (await (await tlsFetch(`${appliance.url}/api/attestation?nonce=${nonce.toString('hex')}`)).json()) as {
      document: string;
      eventLog: PcrEvent[];
    };
    const document = verifyAttestationDocument(Buffer.from(evidence.document, 'base64'), {
      trustedRoots: [chain.root.certificate],
      expectedNonce: nonce,
    });
    expect(document.pcrs.get(4)).toBe(image.pcr4);
    expect(document.pcrs.get(12)).toBe(image.pcr12);
    expect(document.pcrs.get(15)).toBe(pcr15);
    expect(replayPcrEvents(evidence.eventLog, 15)).toBe(pcr15);
    expect(evidence.eventLog).toEqual([
      expect.objectContaining({ pcr: 15, digest: configurationDigest(model.config), description: expect.stringMatching(/^configuration /) }),
      expect.objectContaining({ pcr: 15, digest: model.measurement }),
    ]);

    // The verifier's view: the command model consumers run, against this appliance.
    const work = await mkdtemp(path.join(tmpdir(), 'verify-'));
    try {
      const measurements = path.join(work, 'measurements.json');
      await writeFile(measurements, JSON.stringify({ imageId: 'ami-0123456789abcdef0', ...image }));
      const manifest = path.join(work, 'llama.manifest.json');
      await writeFile(manifest, s3.get(model.config.bucket, model.config.objects.manifest));
      const verify = (manifestPath: string) => runCaptured(
        ['verify', appliance.url, '--measurements', measurements, '--model', manifestPath],
        { trustedRoots: [chain.root.certificate] },
      );
      const verified = await verify(manifest);
      expect(verified).toMatchObject({ code: EXIT_CODE.success });
      // The v2 manifest names the model by its SHA-256; PCR15 holds the measurement of its record.
      expect(verified.stdout).toContain(`ok    model: ${model.measurement} (model llama sha256:${model.sha256}`);
      // A consumer expecting another model (another SHA-256, or another size) is told it is not trustworthy.
      const stored = JSON.parse(await readFile(manifest, 'utf8'));
      for (const change of [{ sha256: createHash('sha256').update('other').digest('hex') }, { plaintextSize: 1 }]) {
        const other = path.join(work, 'other.manifest.json');
        await writeFile(other, JSON.stringify({ ...stored, ...change }));
        const mismatch = await verify(other);
        expect(mismatch.code).toBe(EXIT_CODE.notTrustworthy);
        expect(mismatch.stderr).toMatch(/not trustworthy: .*model/);
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }

    // The model went straight to Ollama: the appliance keeps only PCR15's event log, and no key material.
    expect(await readdir(appliance.stateDirectory)).toEqual(['pcr15-event-log.json']);
    expect(await readdir(appliance.runtimeDirectory)).toEqual([]);
  }, 60_000);

  test('the gateway verifies the running bundle and carries any OpenAI client to it, and the documents KMS saw bind its key', async () => {
    const { kms, model, appliance } = await boot([image]);
    await appliance.waitFor((status) => status.phase === 'ready' || status.phase === 'failed');
    const connection = await PinnedConnection.open(new URL(appliance.url), 5000);
    const servedKey = connection.peerSpkiSha256;
    connection.close();
    // KMS's own document, made before the service had served anything, already named the key it serves with.
    expect(kms.requests.map((request) => request.attestationUserData?.toString())).toEqual([
      `sealed-inference-channel/1 tls-spki-sha256=${servedKey}`,
    ]);

    const stdout: string[] = [];
    const gateway = await startGateway({
      serviceUrl: new URL(appliance.url),
      expectations: { images: [image], model: { modelName: 'llama', plaintextSize: model.plaintext.length, sha256: model.sha256 } },
      listen: parseLoopbackAddress('127.0.0.1:0'),
      maxAgeSeconds: 60,
      timeoutSeconds: 10,
      reverifySeconds: 300,
      maxConnections: 2,
      trustedRoots: [chain.root.certificate],
      stdout: (text) => stdout.push(text),
      stderr: (text) => stdout.push(`stderr: ${text}`),
    });
    running.push({ stop: () => gateway.close() });
    expect(stdout).toEqual([expect.stringContaining(servedKey)]);
    expect(gateway.health()).toMatchObject({ verified: true, tlsSpkiSha256: servedKey, servedModels: [model.measurement] });

    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const prompt = `Through the gateway ${randomBytes(8).toString('hex')}`;
    const whole = await client.chat.completions.create({ model: 'any', messages: [{ role: 'user', content: prompt }] });
    expect(whole.choices[0].message.content).toBe(StubOllama.answerTo(prompt));
    const stream = await client.chat.completions.create({ model: 'any', messages: [{ role: 'user', content: prompt }], stream: true });
    const tokens: string[] = [];
    for await (const chunk of stream) tokens.push(chunk.choices[0]?.delta?.content ?? '');
    expect(tokens.join('')).toBe(StubOllama.answerTo(prompt));
    expect(tokens.filter(Boolean).length).toBeGreaterThan(1);
    expect((await client.models.list()).data.map((m) => m.id)).toEqual(['llama']);
    expect(appliance.output()).not.toContain(prompt);
  }, 60_000);

  test('an image whose PCRs are not in the key policy is refused by KMS, and the status says so', async () => {
    const otherImage = { pcr4: sha384('another kernel'), pcr12: image.pcr12 };
    const { appliance } = await boot([otherImage]);
    const failed = await appliance.waitFor((status) => status.phase === 'failed' || status.phase === 'ready');
    expect(failed).toMatchObject({
      phase: 'failed',
      failedPhase: 'attesting',
      reason: expect.stringMatching(/attestation rejected by KMS: this image's PCRs are not in the key policy/),
    });
    expect(ollama.blobs.size).toBe(0);
    expect(s3.gets.filter((get) => get.includes('.sealed'))).toEqual([]);
    const chat = await tlsFetch(`${appliance.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hello' }] }),
    });
    expect(chat.status).toBe(503);
  }, 60_000);

  test('rides out S3 dropping connections midway and answering slowly', async () => {
    s3.cutGets(2);
    s3.delayGets(50);
    const { model, appliance } = await boot([image]);
    const ready = await appliance.waitFor((status) => status.phase === 'ready' || status.phase === 'failed');
    expect(ready).toMatchObject({ phase: 'ready', model: { measurement: model.measurement } });
    expect(appliance.output()).toMatch(/retrying after attempt 1/);
  }, 60_000);

  test('a sealed model tampered with in S3 fails in unsealing, is not measured, and Ollama keeps nothing', async () => {
    const { appliance, model } = await boot([image], ({ config: { bucket, objects } }) => {
      // One flipped bit in the last chunk.
      const sealed = s3.get(bucket, objects.sealed);
      sealed[sealed.length - 200] ^= 0x01;
      s3.put(bucket, objects.sealed, sealed);
    });
    const failed = await appliance.waitFor((status) => status.phase === 'failed' || status.phase === 'ready');
    expect(failed).toMatchObject({
      phase: 'failed',
      failedPhase: 'unsealing',
      reason: expect.stringMatching(/chunk 3 of 4 fails authentication/),
    });
    // Only the configuration it acted on is measured, no model.
    expect(await readSha384Pcrs([15], tpm())).toEqual(new Map([[15, extendedFromZero(configurationDigest(model.config))]]));
    expect(ollama.blobs.size).toBe(0);
  }, 60_000);

  test('after a crash the service serves the same model again, measured twice, and verify still accepts it', async () => {
    const { model, appliance, restart } = await boot([image]);
    await appliance.waitFor((status) => status.phase === 'ready' || status.phase === 'failed');
    const again = await restart();
    expect(await again.waitFor((status) => status.phase === 'ready' || status.phase === 'failed')).toMatchObject({ phase: 'ready' });

    const configuration = configurationDigest(model.config);
    expect((await readSha384Pcrs([15], tpm())).get(15)).toBe(extendedFromZero(configuration, model.measurement, configuration, model.measurement));

    const work = await mkdtemp(path.join(tmpdir(), 'verify-'));
    try {
      const measurements = path.join(work, 'measurements.json');
      await writeFile(measurements, JSON.stringify(image));
      const manifest = path.join(work, 'llama.manifest.json');
      await writeFile(manifest, s3.get(model.config.bucket, model.config.objects.manifest));
      const verify = await runCaptured(['verify', again.url, '--measurements', measurements, '--model', manifest, '--json'],
        { trustedRoots: [chain.root.certificate] });
      expect(verify.code).toBe(EXIT_CODE.success);
      expect(JSON.parse(verify.stdout)).toMatchObject({ servedModels: [model.measurement] });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 60_000);

  test("user data pointed at another bucket shows in PCR15, and verify refuses it against the deployment's outputs", async () => {
    // The deployment's instances read the model from sealed-models; someone who edited the user data of a stopped
    // instance pointed it at their own bucket, holding their own model under a key that admits the instance role.
    const { model, appliance } = await boot([image], () => undefined, 'attacker-models');
    await appliance.waitFor((status) => status.phase === 'ready' || status.phase === 'failed');
    const work = await mkdtemp(path.join(tmpdir(), 'verify-'));
    try {
      const outputs = path.join(work, 'outputs.json');
      const deployed = { ...model.config, bucket: 'sealed-models' };
      await writeFile(outputs, JSON.stringify({
        Inference: {
          InferenceAllowedImage1Id: 'ami-0123456789abcdef0',
          InferenceAllowedImage1Pcr4: image.pcr4,
          InferenceAllowedImage1Pcr12: image.pcr12,
          InferenceKeyArn: deployed.keyArn,
          InferenceModelBucketName: deployed.bucket,
          InferenceModelPrefix: 'models/',
          InferenceModelName: deployed.modelName,
        },
      }));
      const verify = (file: string) => runCaptured(['verify', appliance.url, '--stack-outputs', file, '--any-model'],
        { trustedRoots: [chain.root.certificate] });
      const refused = await verify(outputs);
      expect(refused.code).toBe(EXIT_CODE.notTrustworthy);
      expect(refused.stderr).toMatch(new RegExp(`not trustworthy: configuration: expected configuration ${configurationDigest(deployed)}`));
      // The same instance checked against outputs naming the bucket it really uses passes: the check is the bucket.
      await writeFile(outputs, JSON.stringify({ Inference: { ...JSON.parse(await readFile(outputs, 'utf8')).Inference, InferenceModelBucketName: 'attacker-models' } }));
      expect(await verify(outputs)).toMatchObject({ code: EXIT_CODE.success });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 60_000);
});
