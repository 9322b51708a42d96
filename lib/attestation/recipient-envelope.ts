import { constants, createDecipheriv, KeyObject, privateDecrypt } from 'node:crypto';
import { ContentInfo, EnvelopedData, id_envelopedData } from '@peculiar/asn1-cms';
import { id_mgf1, id_pSpecified, id_RSAES_OAEP, id_sha256, pSpecifiedEmpty, RsaEsOaepParams } from '@peculiar/asn1-rsa';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';

/**
 * Opens KMS's `CiphertextForRecipient`: a CMS ContentInfo (RFC 5652, DER) holding EnvelopedData with one
 * KeyTransRecipientInfo, the content key wrapped with RSAES-OAEP (SHA-256, MGF1-SHA-256, empty label) to the
 * recipient's public key, the content encrypted with AES-256-CBC. Anything else is refused: the appliance accepts
 * exactly the format KMS answers with, nothing weaker.
 */

/** OID of AES-256-CBC (NIST aes256-CBC); its parameters are the 16-byte IV. */
export const ID_AES256_CBC = '2.16.840.1.101.3.4.1.42';

const AES_BLOCK_BYTES = 16;
const AES_256_KEY_BYTES = 32;
const DER_NULL = Buffer.from([0x05, 0x00]);

/** A `CiphertextForRecipient` that is not the envelope KMS sends, or that does not open with the recipient's key. */
export class RecipientEnvelopeError extends Error {
  constructor(message: string) {
    super(`CiphertextForRecipient refused: ${message}`);
    this.name = 'RecipientEnvelopeError';
  }
}

function parse<T>(bytes: ArrayBuffer | Uint8Array, type: new () => T, what: string): T {
  try {
    return AsnConvert.parse(bytes, type);
  } catch (error) {
    throw new RecipientEnvelopeError(`${what} is not valid DER (${(error as Error).message})`);
  }
}

/** A digest AlgorithmIdentifier for SHA-256, with absent or NULL parameters (both encodings are in use). */
function isSha256(algorithm: AlgorithmIdentifier): boolean {
  const parameters = algorithm.parameters;
  return algorithm.algorithm === id_sha256 &&
    (parameters === undefined || parameters === null || Buffer.from(parameters).equals(DER_NULL));
}

function checkKeyEncryption(algorithm: AlgorithmIdentifier): void {
  if (algorithm.algorithm !== id_RSAES_OAEP) {
    throw new RecipientEnvelopeError(
      `the key encryption algorithm is ${algorithm.algorithm}, expected RSAES-OAEP (${id_RSAES_OAEP})`);
  }
  // Absent parameters mean SHA-1 throughout (RFC 8017's defaults), which KMS's RSAES_OAEP_SHA_256 is not.
  if (!algorithm.parameters) {
    throw new RecipientEnvelopeError('RSAES-OAEP without parameters means SHA-1; expected SHA-256');
  }
  const oaep = parse(algorithm.parameters, RsaEsOaepParams, 'the RSAES-OAEP parameters');
  if (!isSha256(oaep.hashAlgorithm)) {
    throw new RecipientEnvelopeError(`the OAEP hash is ${oaep.hashAlgorithm.algorithm}, expected SHA-256 (${id_sha256})`);
  }
  const mgfHash = oaep.maskGenAlgorithm.algorithm === id_mgf1 && oaep.maskGenAlgorithm.parameters
    ? parse(oaep.maskGenAlgorithm.parameters, AlgorithmIdentifier, 'the MGF1 parameters')
    : undefined;
  if (mgfHash === undefined || !isSha256(mgfHash)) {
    throw new RecipientEnvelopeError(
      `the OAEP mask generation is ${oaep.maskGenAlgorithm.algorithm} over ${mgfHash?.algorithm ?? 'nothing'}, expected MGF1 with SHA-256`);
  }
  // The parser fills an absent label field with its own default object, which stands for the empty label; an explicit
  // label must be pSpecified with no bytes (OAEP decoding with the empty label would refuse any other anyway).
  const label = oaep.pSourceAlgorithm.isEqual(pSpecifiedEmpty) ? new OctetString()
    : oaep.pSourceAlgorithm.algorithm === id_pSpecified && oaep.pSourceAlgorithm.parameters
      ? parse(oaep.pSourceAlgorithm.parameters, OctetString, 'the OAEP label')
      : undefined;
  if (label === undefined || label.byteLength !== 0) {
    throw new RecipientEnvelopeError('the OAEP label must be empty (pSpecified with no bytes)');
  }
}

function contentIv(algorithm: AlgorithmIdentifier): Buffer {
  if (algorithm.algorithm !== ID_AES256_CBC) {
    throw new RecipientEnvelopeError(
      `the content encryption algorithm is ${algorithm.algorithm}, expected AES-256-CBC (${ID_AES256_CBC})`);
  }
  const iv = algorithm.parameters ? Buffer.from(parse(algorithm.parameters, OctetString, 'the AES-256-CBC IV').buffer) : undefined;
  if (iv === undefined || iv.length !== AES_BLOCK_BYTES) {
    throw new RecipientEnvelopeError(`the AES-256-CBC IV must be ${AES_BLOCK_BYTES} bytes, got ${iv?.length ?? 'none'}`);
  }
  return iv;
}

function unwrapContentKey(encryptedKey: OctetString, privateKey: KeyObject): Buffer {
  let contentKey: Buffer;
  try {
    contentKey = privateDecrypt(
      { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      Buffer.from(encryptedKey.buffer),
    );
  } catch {
    throw new RecipientEnvelopeError(
      'the content key does not decrypt with the recipient private key (wrapped to another key, or corrupted)');
  }
  if (contentKey.length !== AES_256_KEY_BYTES) {
    contentKey.fill(0);
    throw new RecipientEnvelopeError(`the content key is ${contentKey.length} bytes, expected ${AES_256_KEY_BYTES} for AES-256`);
  }
  return contentKey;
}

function decryptContent(ciphertext: Buffer, contentKey: Buffer, iv: Buffer): Buffer {
  if (ciphertext.length === 0 || ciphertext.length % AES_BLOCK_BYTES !== 0) {
    throw new RecipientEnvelopeError(
      `the encrypted content is ${ciphertext.length} bytes, not a positive multiple of the ${AES_BLOCK_BYTES}-byte AES block`);
  }
  const decipher = createDecipheriv('aes-256-cbc', contentKey, iv);
  const head = decipher.update(ciphertext);
  let tail: Buffer;
  try {
    tail = decipher.final();
  } catch {
    head.fill(0);
    throw new RecipientEnvelopeError('the content does not decrypt: bad padding (wrong content key or corrupted content)');
  }
  const plaintext = Buffer.concat([head, tail]);
  head.fill(0);
  tail.fill(0);
  return plaintext;
}

/**
 * Opens a `CiphertextForRecipient` envelope with the recipient's private key and returns the content (for KMS
 * Decrypt, the plaintext data key). The content key is wiped before returning; the caller owns, and wipes, the result.
 *
 * Refused with {@link RecipientEnvelopeError}: anything but DER ContentInfo/EnvelopedData, other than exactly one
 * KeyTransRecipientInfo, key encryption other than RSAES-OAEP SHA-256/MGF1-SHA-256 with an empty label, content
 * encryption other than AES-256-CBC, a missing or detached content, a key that does not unwrap, bad padding.
 */
export function openRecipientEnvelope(envelope: Uint8Array, privateKey: KeyObject): Buffer {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'rsa') {
    throw new Error('openRecipientEnvelope needs an RSA private key');
  }
  const contentInfo = parse(envelope, ContentInfo, 'the envelope');
  if (contentInfo.contentType !== id_envelopedData) {
    throw new RecipientEnvelopeError(
      `the content type is ${contentInfo.contentType}, expected CMS EnvelopedData (${id_envelopedData})`);
  }
  const enveloped = parse(contentInfo.content, EnvelopedData, 'the EnvelopedData');
  if (enveloped.recipientInfos.length !== 1) {
    throw new RecipientEnvelopeError(`the envelope has ${enveloped.recipientInfos.length} recipients, expected exactly one`);
  }
  const recipient = enveloped.recipientInfos[0].ktri;
  if (recipient === undefined) {
    throw new RecipientEnvelopeError('the recipient is not a KeyTransRecipientInfo (RSA key transport)');
  }
  checkKeyEncryption(recipient.keyEncryptionAlgorithm);
  const { contentEncryptionAlgorithm, encryptedContent } = enveloped.encryptedContentInfo;
  const iv = contentIv(contentEncryptionAlgorithm);
  const chunks = encryptedContent?.value ? [encryptedContent.value] : encryptedContent?.constructedValue;
  if (chunks === undefined) {
    throw new RecipientEnvelopeError('the envelope carries no encrypted content (detached content is not accepted)');
  }
  const ciphertext = Buffer.concat(chunks.map((chunk) => Buffer.from(chunk.buffer)));

  const contentKey = unwrapContentKey(recipient.encryptedKey, privateKey);
  try {
    return decryptContent(ciphertext, contentKey, iv);
  } finally {
    contentKey.fill(0);
  }
}
