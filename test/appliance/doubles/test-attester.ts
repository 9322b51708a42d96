import { AttestationRequest, Attester } from '../../../lib/appliance/attester';
import { buildTestAttestationDocument, TestChain, testPcrs } from '../../attestation/test-attestation';

/** What the in-process attester's documents say. */
export interface TestAttesterOptions {
  /** The chain that signs the documents. */
  readonly chain: TestChain;
  /** @default testPcrs(): PCR4 = 48 × 0x04, every other PCR zero */
  readonly pcrs?: Map<number, string>;
  /** How old each document is when it is made, in milliseconds. @default 0 */
  readonly age?: number;
}

/**
 * An in-process `Attester` for tests: signed NitroTPM-style documents over fixed PCRs, carrying the requested public
 * key, nonce and user data.
 */
export class TestAttester implements Attester {
  /** Every request, in order. */
  public readonly requests: AttestationRequest[] = [];

  constructor(private readonly options: TestAttesterOptions) {}

  public async attest(request: AttestationRequest): Promise<Buffer> {
    this.requests.push(request);
    return buildTestAttestationDocument({
      chain: this.options.chain,
      pcrs: this.options.pcrs ?? testPcrs(),
      timestamp: new Date(Date.now() - (this.options.age ?? 0)),
      publicKey: request.publicKey,
      nonce: request.nonce,
      userData: request.userData,
    });
  }
}
