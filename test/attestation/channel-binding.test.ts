import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { verifyAttestationDocument } from '../../lib/attestation';
import {
  CHANNEL_BINDING_PREFIX,
  checkChannelBinding,
  encodeChannelBinding,
  spkiSha256,
} from '../../lib/attestation/channel-binding';
import { AttestationError, AttestationErrorKind } from '../../lib/attestation/attestation-error';
import { createTlsIdentity } from '../../lib/appliance/tls-identity';
import { openssl } from './openssl';
import { buildTestAttestationDocument, createTestChain, TestChain } from './test-attestation';

let chain: TestChain;
beforeAll(async () => {
  chain = await createTestChain();
});

/** A verified document carrying `userData`. */
function documentWith(userData: Buffer | undefined) {
  return verifyAttestationDocument(buildTestAttestationDocument({ chain, userData }), { trustedRoots: [chain.root.certificate] });
}

describe('the channel binding', () => {
  test('is the versioned ASCII text naming the SHA-256 of the SPKI, byte for byte', () => {
    const hash = '0123456789abcdef'.repeat(4);
    expect(encodeChannelBinding(hash)).toEqual(Buffer.from(`sealed-inference-channel/1 tls-spki-sha256=${hash}`, 'ascii'));
    expect(CHANNEL_BINDING_PREFIX).toBe('sealed-inference-channel/1 tls-spki-sha256=');
  });

  test.each(['AB'.repeat(32), 'ab'.repeat(31), 'zz'.repeat(32)])('refuses to bind %s, which is no lower-case SHA-256', (hash) => {
    expect(() => encodeChannelBinding(hash)).toThrow(/A channel binding names a SHA-256 in lower-case hex/);
  });

  test("names the key exactly as openssl computes a certificate's SPKI hash by hand", async () => {
    const identity = await createTlsIdentity();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'binding-'));
    try {
      const certFile = path.join(dir, 'cert.pem');
      fs.writeFileSync(certFile, identity.cert);
      // The documented check: openssl x509 -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256
      const pem = openssl(['x509', '-in', certFile, '-pubkey', '-noout']);
      const der = openssl(['pkey', '-pubin', '-outform', 'DER'], pem);
      const digest = openssl(['dgst', '-sha256', '-r'], der).toString().split(' ')[0];
      expect(identity.spkiSha256).toBe(digest);
      expect(spkiSha256(new X509Certificate(identity.cert))).toBe(digest);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('checkChannelBinding', () => {
  const key = 'cd'.repeat(32);

  test('accepts a document that binds the connection key', () => {
    expect(() => checkChannelBinding(documentWith(encodeChannelBinding(key)), key)).not.toThrow();
  });

  test.each([
    ['no user data', undefined, /the document carries no channel binding/],
    ['another key', encodeChannelBinding('ef'.repeat(32)), new RegExp(`the document binds the TLS key with SPKI SHA-256 ${'ef'.repeat(32)}`)],
    ['the binding with a line break', Buffer.concat([encodeChannelBinding(key), Buffer.from('\n')]), /user_data is not a channel binding \(108 bytes/],
    ['an upper-case hash', Buffer.from(`${CHANNEL_BINDING_PREFIX}${key.toUpperCase()}`), /user_data is not a channel binding/],
    ['a future version', Buffer.from(`sealed-inference-channel/2 tls-spki-sha256=${key}`), /user_data is not a channel binding/],
  ])('refuses a document with %s as channel-mismatch', (_name, userData, message) => {
    let error: unknown;
    try {
      checkChannelBinding(documentWith(userData), key);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AttestationError);
    expect((error as AttestationError).kind).toBe(AttestationErrorKind.CHANNEL_MISMATCH);
    expect((error as AttestationError).message).toMatch(message);
    expect((error as AttestationError).message).toMatch(`the connection's TLS key has SPKI SHA-256 ${key}`);
  });
});
