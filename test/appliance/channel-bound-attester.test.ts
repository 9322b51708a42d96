import { ChannelBoundAttester } from '../../lib/appliance/channel-bound-attester';
import { verifyAttestationDocument } from '../../lib/attestation';
import { encodeChannelBinding } from '../../lib/attestation/channel-binding';
import { createTestChain, TestChain } from '../attestation/test-attestation';
import { TestAttester } from './doubles/test-attester';

let chain: TestChain;
beforeAll(async () => {
  chain = await createTestChain();
});

test('every document carries the binding, those for a verifier and those for KMS alike', async () => {
  const inner = new TestAttester({ chain });
  const binding = encodeChannelBinding('ab'.repeat(32));
  const attester = new ChannelBoundAttester(inner, binding);
  const forVerifier = await attester.attest({ nonce: Buffer.alloc(32, 1) });
  const forKms = await attester.attest({ publicKey: Buffer.from('recipient key') });
  for (const document of [forVerifier, forKms]) {
    expect(verifyAttestationDocument(document, { trustedRoots: [chain.root.certificate] }).userData).toEqual(binding);
  }
  expect(inner.requests).toEqual([
    { nonce: Buffer.alloc(32, 1), userData: binding },
    { publicKey: Buffer.from('recipient key'), userData: binding },
  ]);
});

test('no request can replace the binding', () => {
  const inner = new TestAttester({ chain });
  const attester = new ChannelBoundAttester(inner, encodeChannelBinding('ab'.repeat(32)));
  expect(() => attester.attest({ userData: Buffer.from('other') })).toThrow(/user_data holds the channel binding/);
  expect(inner.requests).toEqual([]);
});
