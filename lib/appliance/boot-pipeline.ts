import { S3Client } from '@aws-sdk/client-s3';
import { KMSClient } from '@aws-sdk/client-kms';
import { ApplianceConfig } from '../shared/appliance-config';
import { configurationDigest, configurationEventDescription } from '../attestation/configuration-measurement';
import { wipe } from '../sealing/format';
import { modelEncryptionContext, parseManifest, SealedModelManifest } from '../sealing/manifest';
import { modelMeasurement } from '../sealing/model-measurement';
import { unsealInto } from '../sealing/unseal';
import { AppliancePhase, ServedModel } from './appliance-status';
import { Attester } from './attester';
import { DecryptDataKeyRequest, MAX_CIPHERTEXT_BLOB_BYTES } from './attested-decrypt';
import { OllamaModels } from './ollama-client';
import { BOOT_RETRY_POLICY, RetryPolicy, withRetries } from './retry';
import { readS3Object, readS3Range, S3ObjectReadError } from './s3-object-reader';
import { StatusBoard } from './status-board';

/**
 * The boot pipeline: from user data to a model served by Ollama, through the attested key.
 *
 * 1. starting   read the configuration (user data; where to fetch from, nothing more) and extend PCR15 with its
 *               measurement, before anything is fetched
 *    waiting    for a model not uploaded yet: the manifest is looked for again, soon at first, then once a minute
 * 2. fetching   the manifest and the wrapped data key from S3
 * 3. attesting  ephemeral key pair, attestation document, KMS Decrypt with a Recipient, CMS unwrap in memory
 * 4. unsealing  the sealed model streamed from S3 through the unsealer into an upload to Ollama (loopback), which
 *               keeps the blob only once everything is verified and its own SHA-256 matches; then PCR15 is
 *               extended with the model's measurement (SHA-384 of a record with its name, size and SHA-256)
 * 5. loading    Ollama creates the model from the blob
 * 6. ready
 * A failure stops the pipeline in phase `failed`, naming the phase and the reason; no plaintext is left behind.
 */

/** Unwraps the model's data key with the instance's attestation: `decryptDataKey` on an instance. */
export type DataKeyUnwrapper = (request: DecryptDataKeyRequest) => Promise<Buffer>;

/** Extends PCR15 with a measurement (the configuration's, then the model's) and records the event. */
export interface ModelMeasurement {
  extend(measurement: string, description: string): Promise<unknown>;
}

/** What the pipeline works with; all of it injected, so that it runs against test doubles as on an instance. */
export interface BootPipelineDependencies {
  /** Where to fetch from (user data). */
  readonly config: ApplianceConfig;
  readonly clients: (region: string) => { readonly s3: S3Client; readonly kms: KMSClient };
  readonly attester: Attester;
  readonly unwrapDataKey: DataKeyUnwrapper;
  readonly measurement: ModelMeasurement;
  readonly ollama: OllamaModels;
  readonly status: StatusBoard;
  /** Metadata-only log. */
  readonly log: (line: string) => void;
  /** @default BOOT_RETRY_POLICY */
  readonly retry?: RetryPolicy;
  /** @default MODEL_WAIT_POLICY */
  readonly modelWait?: ModelWaitPolicy;
}

/** How often the appliance looks again for a model not uploaded yet. */
export interface ModelWaitPolicy {
  /** The first pause; each next one is twice as long, up to `maxDelayMs`. */
  readonly firstDelayMs: number;
  readonly maxDelayMs: number;
}

/** Soon at first, for a model being uploaded as the instance boots; then once a minute, for as long as it takes. */
export const MODEL_WAIT_POLICY: ModelWaitPolicy = { firstDelayMs: 5000, maxDelayMs: 60_000 };

/**
 * Small objects are read whole; their bounds keep a hostile bucket from exhausting memory. A wrapped data key is
 * bounded by KMS's own limit.
 */
const MAX_MANIFEST_BYTES = 64 * 1024;

/** A failure in one phase, with the reason shown in the status. */
export class BootFailure extends Error {
  constructor(
    public readonly phase: AppliancePhase,
    reason: string,
  ) {
    super(reason);
    this.name = 'BootFailure';
  }
}

/** Runs the pipeline once. Resolves with the served model, or rejects with a {@link BootFailure} (also in the status). */
export async function runBootPipeline(deps: BootPipelineDependencies): Promise<ServedModel> {
  const retry = deps.retry ?? BOOT_RETRY_POLICY;
  const onRetry = (attempt: number, error: unknown, delayMs: number) =>
    deps.log(`retrying after attempt ${attempt} in ${delayMs} ms: ${(error as Error).message ?? error}`);
  let phase: AppliancePhase = 'starting';
  const enter = (next: AppliancePhase) => {
    phase = next;
    deps.status.enter(next);
    deps.log(`phase ${next}`);
  };
  let dataKey: Buffer | undefined;
  try {
    const { config } = deps;
    enter('starting');
    const { s3, kms } = deps.clients(config.region);
    // What the instance was told to act on, measured before it acts: an edited user data shows in PCR15.
    await deps.measurement.extend(configurationDigest(config), configurationEventDescription(config));

    enter('fetching');
    // One byte more than the limit is asked for, to tell an object at the limit from a larger one.
    const readSmall = (key: string, limit: number) =>
      readS3Range({ s3, bucket: config.bucket, key, start: 0, end: limit }, { retry, onRetry }, (bytes) => {
        if (bytes.length > limit) {
          throw new Error(`s3://${config.bucket}/${key} is larger than ${limit} bytes: it is not what the appliance expects`);
        }
      });
    const manifestBytes = await untilUploaded(() => readSmall(config.objects.manifest, MAX_MANIFEST_BYTES), {
      uri: `s3://${config.bucket}/${config.objects.manifest}`,
      policy: deps.modelWait ?? MODEL_WAIT_POLICY,
      status: deps.status,
      log: deps.log,
      resume: () => enter('fetching'),
    });
    const manifest = parseManifest(manifestBytes.toString('utf8'));
    checkManifestAgainstConfig(manifest, config);
    const wrappedKey = await readSmall(config.objects.dataKey, MAX_CIPHERTEXT_BLOB_BYTES);

    enter('attesting');
    dataKey = await withRetries(
      () => deps.unwrapDataKey({
        kms,
        attester: deps.attester,
        keyId: config.keyArn,
        ciphertextBlob: wrappedKey,
        encryptionContext: modelEncryptionContext(config.modelName),
      }),
      retry,
      onRetry,
    );

    enter('unsealing');
    const sealed = await readS3Object({ s3, bucket: config.bucket, key: config.objects.sealed, retry, onRetry });
    if (sealed.size !== manifest.sealedSize) {
      throw new Error(`the sealed model is ${sealed.size} bytes, its manifest says ${manifest.sealedSize}`);
    }
    // Straight into Ollama, which stores the blob only once the upload is committed, after every chunk and the
    // trailer are authenticated: no plaintext copy of the appliance's own, and no second copy in memory. Ollama
    // hashes the blob itself and refuses a digest mismatch, so the appliance does not hash it a second time; its
    // blob store is empty and memory-backed at boot, so no blob of that name can be there unchecked
    // (docs/security-model.md). PCR15 is extended only once Ollama confirmed the blob.
    const unsealed = await unsealInto(sealed.parts, deps.ollama.uploadBlob(manifest.sha256, manifest.plaintextSize), {
      dataKey,
      manifest,
      onProgress: (bytes, total) => deps.status.progress(bytes, total),
    });
    wipe(dataKey);
    const model: ServedModel = {
      name: config.modelName,
      sha256: unsealed.trailer.sha256,
      measurement: modelMeasurement({ modelName: config.modelName, ...unsealed.trailer }),
    };
    deps.status.model(model);
    await deps.measurement.extend(model.measurement, `model ${model.name} sha256:${model.sha256} (measurement record)`);

    enter('loading');
    await deps.ollama.createModel(model.name, model.sha256, `${model.name}.gguf`);

    enter('ready');
    return model;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    deps.status.fail(phase, reason);
    deps.log(`phase ${phase} failed: ${reason}`);
    throw new BootFailure(phase, reason);
  } finally {
    wipe(dataKey);
  }
}

/**
 * Reads the manifest, waiting while it is missing: the model owner may seal the model after the instance booted. The
 * manifest is written last, so once it is there the whole model is. Without `s3:ListBucket`, S3 answers a missing
 * object with 403, not 404, so a 403 is waited out too, the status naming both causes.
 */
async function untilUploaded(
  read: () => Promise<Buffer>,
  waiting: { uri: string; policy: ModelWaitPolicy; status: StatusBoard; log: (line: string) => void; resume: () => void },
): Promise<Buffer> {
  let delayMs = waiting.policy.firstDelayMs;
  let told: string | undefined;
  for (;;) {
    try {
      const bytes = await read();
      if (told !== undefined) waiting.resume();
      return bytes;
    } catch (error) {
      const status = error instanceof S3ObjectReadError ? error.httpStatus : undefined;
      if (status !== 404 && status !== 403) throw error;
      const what = status === 404
        ? `${waiting.uri}: the model is not uploaded yet`
        : `${waiting.uri}: the model is not uploaded yet, or the instance role may not read it (S3 answers 403 for both)`;
      waiting.status.wait(what);
      if (what !== told) waiting.log(`waiting for ${what}`);
      told = what;
    }
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    delayMs = Math.min(delayMs * 2, waiting.policy.maxDelayMs);
  }
}

/** The manifest must describe the model the configuration names, sealed under the configured key. */
function checkManifestAgainstConfig(manifest: SealedModelManifest, config: ApplianceConfig): void {
  if (manifest.modelName !== config.modelName) {
    throw new Error(`the manifest is of model ${manifest.modelName}, the configuration names ${config.modelName}`);
  }
  if (manifest.keyArn !== undefined && manifest.keyArn !== config.keyArn) {
    throw new Error(`the model was sealed with key ${manifest.keyArn}, the appliance is configured with ${config.keyArn}`);
  }
}
