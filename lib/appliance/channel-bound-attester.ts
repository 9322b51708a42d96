import { AttestationRequest, Attester } from './attester';

/**
 * An attester whose every document carries the channel binding in `user_data`, whatever it is asked for: the
 * documents served to verifiers and the ones sent to KMS alike name the service's TLS key.
 */
export class ChannelBoundAttester implements Attester {
  constructor(private readonly attester: Attester, private readonly binding: Buffer) {}

  attest(request: AttestationRequest): Promise<Buffer> {
    if (request.userData !== undefined) {
      throw new Error("user_data holds the channel binding; an attestation request cannot set it");
    }
    return this.attester.attest({ ...request, userData: this.binding });
  }
}
