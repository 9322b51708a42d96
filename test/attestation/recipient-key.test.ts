import { createPublicKey } from 'node:crypto';
import { createRecipientKeyPair } from '../../lib/attestation/recipient-key';
import { openssl } from './openssl';

describe('the recipient key pair', () => {
  test('is RSA-2048 with exponent 65537, its public key DER SubjectPublicKeyInfo', async () => {
    const pair = await createRecipientKeyPair();
    const publicKey = createPublicKey({ key: pair.publicKeyDer, format: 'der', type: 'spki' });
    expect(publicKey.asymmetricKeyType).toBe('rsa');
    expect(publicKey.asymmetricKeyDetails).toEqual({ modulusLength: 2048, publicExponent: 65537n });
    expect(createPublicKey(pair.privateKey).export({ type: 'spki', format: 'der' })).toEqual(pair.publicKeyDer);
    // openssl reads the same bytes as an RSA public key.
    expect(openssl(['pkey', '-pubin', '-inform', 'DER', '-noout', '-text'], pair.publicKeyDer).toString())
      .toMatch(/Public-Key: \(2048 bit\)/);
  });

  test('is fresh each time', async () => {
    const [a, b] = await Promise.all([createRecipientKeyPair(), createRecipientKeyPair()]);
    expect(a.publicKeyDer.equals(b.publicKeyDer)).toBe(false);
  });
});
