import { generateKeyPair, KeyObject } from 'node:crypto';
import { promisify } from 'node:util';

/**
 * The ephemeral key pair KMS wraps a data key to: its public half goes into the attestation document, its private half
 * never leaves this process's memory.
 */

/**
 * The modulus size of the recipient key. The Nitro Enclaves SDK's KMS API reference requires the attestation
 * document's public key to be "a RSA2048 key encoded as a DER SubjectPublicKeyInfo" for `RSAES_OAEP_SHA_256`.
 */
export const RECIPIENT_KEY_BITS = 2048;

/** An RSA key pair created for one KMS call with a Recipient. */
export interface RecipientKeyPair {
  /** The public key as DER SubjectPublicKeyInfo, as `nitro-tpm-attest --public-key` and KMS expect it. */
  readonly publicKeyDer: Buffer;
  /** The private key, in memory only; it opens the `CiphertextForRecipient` envelope. */
  readonly privateKey: KeyObject;
}

const generateRsaKeyPair = promisify(generateKeyPair);

/** Creates a fresh RSA-2048 key pair (public exponent 65537) in memory; nothing is written to disk. */
export async function createRecipientKeyPair(): Promise<RecipientKeyPair> {
  const { publicKey, privateKey } = await generateRsaKeyPair('rsa', {
    modulusLength: RECIPIENT_KEY_BITS,
    publicExponent: 0x10001,
  });
  return { publicKeyDer: publicKey.export({ type: 'spki', format: 'der' }), privateKey };
}
