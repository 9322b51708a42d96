import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ApplianceConfig, sealedModelObjects } from '../../../lib/shared/appliance-config';
import { modelMeasurement } from '../../../lib/sealing/model-measurement';
import { sealToDirectory } from '../../../lib/sealing/seal-to-directory';
import { FakeS3 } from './fake-s3';

/** A model sealed with a known data key, its artifacts stored in a fake S3 as the sealing CLI would store them. */
export interface SealedModelFixture {
  readonly config: ApplianceConfig;
  readonly plaintext: Buffer;
  readonly dataKey: Buffer;
  readonly sha256: string;
  /** What PCR15 is extended with for this model. */
  readonly measurement: string;
}

export const TEST_KEY_ARN = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';

/** The appliance configuration the construct would write for model `modelName` in `bucket` under `prefix`. */
export function testApplianceConfig(modelName = 'llama', bucket = 'sealed-models', prefix = 'models/'): ApplianceConfig {
  return {
    configVersion: 1,
    region: 'eu-west-1',
    bucket,
    objects: sealedModelObjects(prefix, modelName),
    keyArn: TEST_KEY_ARN,
    modelName,
    servicePort: 3000,
  };
}

/**
 * Seals `size` random bytes (small chunks, so that there are several) and stores the sealed model, its manifest
 * (naming the key) and `wrappedKey` (what KMS would have returned; by default the raw key, for doubles that take it so).
 */
export async function storeSealedModel(
  s3: FakeS3,
  options: { size?: number; config?: ApplianceConfig; wrap?: (dataKey: Buffer) => Buffer } = {},
): Promise<SealedModelFixture> {
  const config = options.config ?? testApplianceConfig();
  const plaintext = randomBytes(options.size ?? 200_000);
  const dataKey = randomBytes(32);
  const work = await mkdtemp(path.join(tmpdir(), 'sealed-fixture-'));
  try {
    const source = path.join(work, 'model.gguf');
    await writeFile(source, plaintext);
    const { files, manifest } = await sealToDirectory(source, path.join(work, 'out'), {
      modelName: config.modelName,
      dataKey,
      chunkSize: 64 * 1024,
    });
    s3.put(config.bucket, config.objects.sealed, await readFile(files.sealed));
    s3.put(config.bucket, config.objects.manifest, Buffer.from(JSON.stringify({ ...manifest, keyArn: config.keyArn })));
    s3.put(config.bucket, config.objects.dataKey, options.wrap ? options.wrap(dataKey) : Buffer.from(dataKey));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const sha256 = createHash('sha256').update(plaintext).digest('hex');
  return {
    config,
    plaintext,
    dataKey,
    sha256,
    measurement: modelMeasurement({ modelName: config.modelName, plaintextSize: plaintext.length, sha256 }),
  };
}
