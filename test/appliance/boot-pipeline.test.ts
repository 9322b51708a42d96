import { KMSClient } from '@aws-sdk/client-kms';
import { createHash } from 'node:crypto';
import { ApplianceConfig } from '../../lib/shared/appliance-config';
import { AppliancePhase } from '../../lib/appliance/appliance-status';
import { BootPipelineDependencies, runBootPipeline } from '../../lib/appliance/boot-pipeline';
import { OllamaModels } from '../../lib/appliance/ollama-client';
import { StatusBoard } from '../../lib/appliance/status-board';
import { configurationDigest } from '../../lib/attestation/configuration-measurement';
import { PlaintextSink } from '../../lib/sealing/unseal';
import { FakeS3, startFakeS3 } from './doubles/fake-s3';
import { storeSealedModel } from './doubles/sealed-model-fixture';

/** An Ollama stand-in that keeps a blob only once its upload is committed, and checks the digest as Ollama does. */
class RecordingLoader implements OllamaModels {
  readonly blobs = new Map<string, Buffer>();
  readonly models = new Map<string, string>();
  /** Uploads broken off, with the bytes they had received. */
  readonly aborted: number[] = [];
  uploadBlob(sha256: string, size: number): PlaintextSink {
    const received: Buffer[] = [];
    return {
      // As Ollama: it hashes the upload itself and refuses a mismatch at the commit.
      verifiesSha256: sha256,
      write: async (plaintext) => void received.push(Buffer.from(plaintext)),
      commit: async () => {
        const bytes = Buffer.concat(received);
        if (bytes.length !== size || createHash('sha256').update(bytes).digest('hex') !== sha256) {
          throw new Error('digest mismatch');
        }
        this.blobs.set(sha256, bytes);
      },
      abort: async () => void this.aborted.push(Buffer.concat(received).length),
    };
  }
  async createModel(name: string, sha256: string) {
    this.models.set(name, sha256);
  }
}

describe('runBootPipeline', () => {
  let s3: FakeS3;
  let phases: AppliancePhase[];
  let logs: string[];
  let extended: string[];
  let loader: RecordingLoader;

  beforeEach(async () => {
    s3 = await startFakeS3();
    phases = [];
    logs = [];
    extended = [];
    loader = new RecordingLoader();
  });
  afterEach(async () => {
    await s3.close();
  });

  function dependencies(config: ApplianceConfig, overrides: Partial<BootPipelineDependencies> = {}) {
    const status = new StatusBoard();
    const enter = status.enter.bind(status);
    status.enter = (phase) => {
      phases.push(phase);
      enter(phase);
    };
    return {
      config,
      clients: () => ({ s3: s3.client(), kms: new KMSClient({ region: 'eu-west-1' }) }),
      attester: { attest: async () => Buffer.alloc(0) },
      // The wrapped key stored by the fixture is the raw key: this test is about the pipeline, not KMS.
      unwrapDataKey: async ({ ciphertextBlob }: { ciphertextBlob: Uint8Array }) => Buffer.from(ciphertextBlob),
      measurement: { extend: async (sha384: string) => void extended.push(sha384) },
      ollama: loader,
      status,
      log: (line: string) => logs.push(line),
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
      ...overrides,
    };
  }

  test('serves the model: verified, measured into PCR15, loaded', async () => {
    const model = await storeSealedModel(s3);
    const deps = dependencies(model.config);
    await expect(runBootPipeline(deps)).resolves.toEqual({ name: 'llama', sha256: model.sha256, measurement: model.measurement });
    expect(phases).toEqual(['starting', 'fetching', 'attesting', 'unsealing', 'loading', 'ready']);
    expect(deps.status.current()).toMatchObject({ phase: 'ready', model: { measurement: model.measurement } });
    // The configuration first, before anything was fetched; then the verified model.
    expect(extended).toEqual([configurationDigest(model.config), model.measurement]);
    expect(loader.blobs.get(model.sha256)?.equals(model.plaintext)).toBe(true);
    expect(loader.models.get('llama')).toBe(model.sha256);
    expect(loader.aborted).toEqual([]);
  });

  test('a tampered sealed model fails in unsealing, says which chunk, and Ollama keeps nothing', async () => {
    const model = await storeSealedModel(s3);
    const sealed = Buffer.from(await readObject(s3, model.config.bucket, model.config.objects.sealed));
    sealed[sealed.length >> 1] ^= 1;
    s3.put(model.config.bucket, model.config.objects.sealed, sealed);
    const deps = dependencies(model.config);
    await expect(runBootPipeline(deps)).rejects.toMatchObject({ phase: 'unsealing' });
    expect(deps.status.current()).toMatchObject({ phase: 'failed', failedPhase: 'unsealing', reason: expect.stringMatching(/chunk 1 of 4 fails authentication/) });
    expect(extended).toEqual([configurationDigest(model.config)]);
    expect(loader.blobs.size).toBe(0);
    // Chunk 0 had verified and gone to Ollama; the upload was broken off before anything was stored.
    expect(loader.aborted).toEqual([64 * 1024]);
  });

  test("Ollama refusing the blob fails in unsealing, and PCR15 is not extended", async () => {
    const model = await storeSealedModel(s3);
    loader.uploadBlob = (sha256: string) => ({
      verifiesSha256: sha256,
      write: async () => undefined,
      commit: async () => {
        throw new Error(`Ollama refused POST /api/blobs/sha256:${sha256} (400): digest mismatch`);
      },
      abort: async () => undefined,
    });
    const deps = dependencies(model.config);
    await expect(runBootPipeline(deps)).rejects.toMatchObject({ phase: 'unsealing', message: expect.stringMatching(/digest mismatch/) });
    // Only the configuration it acted on; no model.
    expect(extended).toEqual([configurationDigest(model.config)]);
  });

  test('a manifest naming another SHA-256 fails in unsealing before anything is committed', async () => {
    const model = await storeSealedModel(s3);
    const manifest = JSON.parse(Buffer.from(await readObject(s3, model.config.bucket, model.config.objects.manifest)).toString('utf8'));
    s3.put(model.config.bucket, model.config.objects.manifest, Buffer.from(JSON.stringify({ ...manifest, sha256: 'ab'.repeat(32) })));
    const deps = dependencies(model.config);
    await expect(runBootPipeline(deps)).rejects.toMatchObject({ phase: 'unsealing', message: expect.stringMatching(/manifest's sha256/) });
    expect(extended).toEqual([configurationDigest(model.config)]);
    expect(loader.blobs.size).toBe(0);
  });

  test('a refused attestation fails in attesting with the unwrapper\'s reason', async () => {
    const model = await storeSealedModel(s3);
    const deps = dependencies(model.config, {
      unwrapDataKey: async () => {
        throw new Error('attestation rejected by KMS: this image\'s PCRs are not in the key policy');
      },
    });
    await expect(runBootPipeline(deps)).rejects.toThrow(/PCRs are not in the key policy/);
    expect(deps.status.current()).toMatchObject({ phase: 'failed', failedPhase: 'attesting' });
    expect(s3.gets.filter((get) => get.includes('.sealed'))).toEqual([]);
  });

  test('retries a transient unwrap failure', async () => {
    const model = await storeSealedModel(s3);
    let calls = 0;
    const deps = dependencies(model.config, {
      unwrapDataKey: async ({ ciphertextBlob }) => {
        if (++calls === 1) throw Object.assign(new Error('KMS throttled'), { transient: true });
        return Buffer.from(ciphertextBlob);
      },
    });
    await expect(runBootPipeline(deps)).resolves.toMatchObject({ name: 'llama' });
    expect(calls).toBe(2);
    expect(logs.some((line) => line.includes('retrying after attempt 1'))).toBe(true);
  });

  test('a manifest of another model fails in fetching', async () => {
    const model = await storeSealedModel(s3);
    const deps = dependencies({ ...model.config, modelName: 'mistral' });
    await expect(runBootPipeline(deps)).rejects.toThrow(/the manifest is of model llama, the configuration names mistral/);
    expect(deps.status.current()).toMatchObject({ failedPhase: 'fetching' });
  });

  test('waits for a model not uploaded yet, says for what, and serves it once its manifest is there', async () => {
    // S3 answers a missing object with 403 to a role that may not list the bucket, as this double does by default.
    const model = await storeSealedModel(s3);
    const manifest = s3.get(model.config.bucket, model.config.objects.manifest);
    const config = { ...model.config, objects: { ...model.config.objects, manifest: 'models/later.manifest.json' } };
    const deps = dependencies(config, { modelWait: { firstDelayMs: 20, maxDelayMs: 40 } });
    const served = runBootPipeline(deps);
    await waitUntil(() => deps.status.current().phase === 'waiting');
    const waiting = deps.status.current();
    expect(waiting).toEqual({
      phase: 'waiting',
      waitingFor: 's3://sealed-models/models/later.manifest.json: the model is not uploaded yet, or the instance role ' +
        'may not read it (S3 answers 403 for both)',
      since: expect.any(String),
    });
    // It keeps looking, once a while, without a new line in the log each time.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(deps.status.current().since).toBe(waiting.since);
    expect(logs.filter((line) => line.startsWith('waiting for'))).toHaveLength(1);

    s3.put(config.bucket, config.objects.manifest, manifest);
    await expect(served).resolves.toMatchObject({ name: 'llama', measurement: model.measurement });
    expect(phases).toEqual(['starting', 'fetching', 'fetching', 'attesting', 'unsealing', 'loading', 'ready']);
  });

  test('a role allowed to list the prefix sees a missing manifest as not uploaded yet', async () => {
    await s3.close();
    s3 = await startFakeS3({ missingObjectStatus: 404 });
    const model = await storeSealedModel(s3);
    const config = { ...model.config, objects: { ...model.config.objects, manifest: 'models/later.manifest.json' } };
    const deps = dependencies(config, { modelWait: { firstDelayMs: 20, maxDelayMs: 40 } });
    void runBootPipeline(deps).catch(() => undefined);
    await waitUntil(() => deps.status.current().phase === 'waiting');
    expect(deps.status.current().waitingFor).toBe('s3://sealed-models/models/later.manifest.json: the model is not uploaded yet');
    await s3.close(); // the pipeline, still waiting, fails on the closed endpoint and ends
  });

  test('a sealed model of the wrong size is named', async () => {
    const model = await storeSealedModel(s3);
    s3.put(model.config.bucket, model.config.objects.sealed, Buffer.alloc(0));
    await expect(runBootPipeline(dependencies(model.config))).rejects.toThrow(/the sealed model is 0 bytes, its manifest says/);
  });

  test('the data key is overwritten once the model is unsealed', async () => {
    const model = await storeSealedModel(s3);
    let handedOut: Buffer | undefined;
    await runBootPipeline(dependencies(model.config, {
      unwrapDataKey: async ({ ciphertextBlob }) => (handedOut = Buffer.from(ciphertextBlob)),
    }));
    expect(handedOut!.equals(model.dataKey)).toBe(false);
    expect(handedOut!.equals(Buffer.alloc(32))).toBe(true);
  });

  test('the log carries phases and reasons, never key material', async () => {
    const model = await storeSealedModel(s3);
    await runBootPipeline(dependencies(model.config));
    const all = logs.join('\n');
    expect(all).toContain('phase ready');
    expect(all).not.toContain(model.dataKey.toString('hex'));
    expect(all).not.toContain(model.dataKey.toString('base64'));
  });
});

async function readObject(s3: FakeS3, bucket: string, key: string): Promise<Uint8Array> {
  const { GetObjectCommand } = await import('@aws-sdk/client-s3');
  const answer = await s3.client().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return answer.Body!.transformToByteArray();
}

/** Polls `condition` every 5 ms for up to 5 s. */
async function waitUntil(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('the condition did not hold within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
