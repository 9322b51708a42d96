import { createHash } from 'node:crypto';
import { extendPcr, MODEL_PCR } from '../../../lib/attestation';
import { buildTestAttestationDocument, TestChain, testPcrs } from '../../attestation/test-attestation';
import type { FakeAnswer } from './fake-appliance';

/** The SHA-384 (hex) of a model the fakes serve. */
export const MODEL_SHA384 = createHash('sha384').update('llama3 weights').digest('hex');

/** An image as a measurements file names it. */
export interface TestImage {
  readonly imageId: string;
  readonly pcr4: string;
  readonly pcr12: string;
}

export const IMAGE: TestImage = { imageId: 'ami-0123456789abcdef0', pcr4: 'a4'.repeat(48), pcr12: '00'.repeat(48) };
export const OTHER_IMAGE: TestImage = { imageId: 'ami-0fedcba9876543210', pcr4: 'b4'.repeat(48), pcr12: '00'.repeat(48) };

/**
 * An attestation answer as an appliance on `image` serving MODEL_SHA384 gives it: a document signed by `chain` for
 * `nonce`, binding the TLS key named by `binding`, and PCR15's event log.
 */
export function attestedAnswer(chain: TestChain, image: TestImage, nonce: Buffer, binding: Buffer): FakeAnswer {
  const pcrs = testPcrs();
  pcrs.set(4, image.pcr4);
  pcrs.set(12, image.pcr12);
  pcrs.set(MODEL_PCR, extendPcr(Buffer.alloc(48), Buffer.from(MODEL_SHA384, 'hex')).toString('hex'));
  const document = buildTestAttestationDocument({ chain, pcrs, nonce, userData: binding });
  const eventLog = [{ pcr: MODEL_PCR, algorithm: 'sha384', digest: MODEL_SHA384, description: 'model llama3 (SHA-384 of the plaintext GGUF)' }];
  return { body: { document: document.toString('base64'), eventLog } };
}
