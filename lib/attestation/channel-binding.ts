import { createHash, X509Certificate } from 'node:crypto';
import type { AttestationDocument } from './attestation-document';
import { AttestationError, AttestationErrorKind } from './attestation-error';

/**
 * The channel binding: what the appliance puts in the `user_data` of every attestation document it produces, so that
 * a verifier learns which TLS key ends the connection inside the attested instance. KMS ignores `user_data`; the
 * document's signature covers it.
 *
 * The bytes are the ASCII text `sealed-inference-channel/1 tls-spki-sha256=<hex>`, without a line break, where `<hex>`
 * is the lower-case SHA-256 of the DER SubjectPublicKeyInfo of the service's TLS certificate. One text, one encoding:
 * a verifier compares bytes, and a reader can check it with openssl (docs/security-model.md).
 */

/** The binding's text before the key's hash; the `/1` is the binding's version. */
export const CHANNEL_BINDING_PREFIX = 'sealed-inference-channel/1 tls-spki-sha256=';

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** The SHA-256 (lower-case hex) of a certificate's DER SubjectPublicKeyInfo: the key a channel binding names. */
export function spkiSha256(certificate: X509Certificate): string {
  const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex');
}

/** The `user_data` that binds attestation documents to the TLS key whose SPKI hashes to `tlsSpkiSha256`. */
export function encodeChannelBinding(tlsSpkiSha256: string): Buffer {
  if (!SHA256_HEX.test(tlsSpkiSha256)) {
    throw new Error(`A channel binding names a SHA-256 in lower-case hex, got ${JSON.stringify(tlsSpkiSha256)}`);
  }
  return Buffer.from(`${CHANNEL_BINDING_PREFIX}${tlsSpkiSha256}`, 'ascii');
}

/**
 * Checks that a verified document binds the connection it was received over: its `user_data` is exactly the channel
 * binding of the TLS key the verifier saw on that connection.
 *
 * @param peerSpkiSha256 the SHA-256 of the connection's peer certificate's SPKI ({@link spkiSha256})
 * @throws AttestationError of kind `channel-mismatch` naming what the document binds, if anything
 */
export function checkChannelBinding(document: AttestationDocument, peerSpkiSha256: string): void {
  const expected = encodeChannelBinding(peerSpkiSha256);
  if (document.userData?.equals(expected)) return;
  const found = document.userData === undefined
    ? 'the document carries no channel binding (no user_data)'
    : bindingText(document.userData);
  throw new AttestationError(AttestationErrorKind.CHANNEL_MISMATCH,
    `the connection's TLS key has SPKI SHA-256 ${peerSpkiSha256}, but ${found}: ` +
    'the service answering is not the attested instance (a relay or a mirror)');
}

function bindingText(userData: Buffer): string {
  const text = userData.toString('latin1');
  const bound = text.startsWith(CHANNEL_BINDING_PREFIX) ? text.slice(CHANNEL_BINDING_PREFIX.length) : undefined;
  if (bound !== undefined && SHA256_HEX.test(bound)) return `the document binds the TLS key with SPKI SHA-256 ${bound}`;
  return `the document's user_data is not a channel binding (${userData.length} bytes, hex ${userData.subarray(0, 32).toString('hex')}${userData.length > 32 ? '…' : ''})`;
}
