import { createHash } from 'node:crypto';
import { extendPcr, MODEL_PCR } from '../../../lib/attestation';
import { MeasuredModel, modelMeasurement } from '../../../lib/sealing/model-measurement';
import { buildTestAttestationDocument, TestChain, testPcrs } from '../../attestation/test-attestation';
import type { FakeAnswer } from './fake-appliance';

/** The model the fakes serve, as its manifest names it. */
export const MODEL: MeasuredModel = {
  modelName: 'llama3', plaintextSize: 14, sha256: createHash('sha256').update('llama3 weights').digest('hex'),
};

/** What the fakes extend PCR15 with. */
export const MODEL_MEASUREMENT = modelMeasurement(MODEL);

/** An image as a measurements file names it. */
export interface TestImage {
  readonly imageId: string;
  readonly pcr4: string;
  readonly pcr12: string;
}

export const IMAGE: TestImage = { imageId: 'ami-0123456789abcdef0', pcr4: 'a4'.repeat(48), pcr12: '00'.repeat(48) };
export const OTHER_IMAGE: TestImage = { imageId: 'ami-0fedcba9876543210', pcr4: 'b4'.repeat(48), pcr12: '00'.repeat(48) };

/**
 * An attestation answer as an appliance on `image` serving MODEL_MEASUREMENT gives it: a document signed by `chain` for
 * `nonce`, binding the TLS key named by `binding`, and PCR15's event log.
 */
export function attestedAnswer(chain: TestChain, image: TestImage, nonce: Buffer, binding: Buffer): FakeAnswer {
  const pcrs = testPcrs();
  pcrs.set(4, image.pcr4);
  pcrs.set(12, image.pcr12);
  pcrs.set(MODEL_PCR, extendPcr(Buffer.alloc(48), Buffer.from(MODEL_MEASUREMENT, 'hex')).toString('hex'));
  const document = buildTestAttestationDocument({ chain, pcrs, nonce, userData: binding });
  const eventLog = [{ pcr: MODEL_PCR, algorithm: 'sha384', digest: MODEL_MEASUREMENT, description: `model llama3 sha256:${MODEL.sha256} (measurement record)` }];
  return { body: { document: document.toString('base64'), eventLog } };
}
