/**
 * Builds `CiphertextForRecipient` envelopes the way KMS does, for the fake KMS and for tests: CMS EnvelopedData (DER)
 * with one KeyTransRecipientInfo, RSAES-OAEP SHA-256/MGF1-SHA-256 to the recipient key, AES-256-CBC content.
 */
import { constants, createCipheriv, createHash, createPublicKey, publicEncrypt, randomBytes } from 'node:crypto';
import {
  ContentInfo, EncryptedContent, EncryptedContentInfo, EnvelopedData, id_data, id_envelopedData, KeyTransRecipientInfo,
  RecipientIdentifier, RecipientInfo, RecipientInfos,
} from '@peculiar/asn1-cms';
import { id_mgf1, id_RSAES_OAEP, RsaEsOaepParams, sha256 } from '@peculiar/asn1-rsa';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, SubjectKeyIdentifier, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { ID_AES256_CBC } from '../../lib/attestation/recipient-envelope';

/** The RSAES-OAEP AlgorithmIdentifier KMS's RSAES_OAEP_SHA_256 stands for (label absent: empty). */
export function rsaOaepSha256(): AlgorithmIdentifier {
  return new AlgorithmIdentifier({
    algorithm: id_RSAES_OAEP,
    parameters: AsnConvert.serialize(new RsaEsOaepParams({
      hashAlgorithm: new AlgorithmIdentifier(sha256),
      maskGenAlgorithm: new AlgorithmIdentifier({ algorithm: id_mgf1, parameters: AsnConvert.serialize(sha256) }),
    })),
  });
}

/** Encrypts `content` to the RSA public key `recipientSpki` (DER SubjectPublicKeyInfo) as a DER ContentInfo. */
export function buildRecipientEnvelope(content: Buffer, recipientSpki: Buffer): Buffer {
  const contentKey = randomBytes(32);
  const iv = randomBytes(16);
  try {
    const cipher = createCipheriv('aes-256-cbc', contentKey, iv);
    const encrypted = Buffer.concat([cipher.update(content), cipher.final()]);
    const encryptedKey = publicEncrypt(
      { key: createPublicKey({ key: recipientSpki, format: 'der', type: 'spki' }),
        padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      contentKey,
    );
    // Identify the recipient by the SHA-1 of its public key bits (RFC 5280's key identifier method 1).
    const spki = AsnConvert.parse(recipientSpki, SubjectPublicKeyInfo);
    const keyIdentifier = createHash('sha1').update(Buffer.from(spki.subjectPublicKey)).digest();
    const recipient = new KeyTransRecipientInfo({
      version: 2,
      rid: new RecipientIdentifier({ subjectKeyIdentifier: new SubjectKeyIdentifier(keyIdentifier) }),
      keyEncryptionAlgorithm: rsaOaepSha256(),
      encryptedKey: new OctetString(encryptedKey),
    });
    const enveloped = new EnvelopedData({
      version: 2,
      recipientInfos: new RecipientInfos([new RecipientInfo({ ktri: recipient })]),
      encryptedContentInfo: new EncryptedContentInfo({
        contentType: id_data,
        contentEncryptionAlgorithm: new AlgorithmIdentifier({
          algorithm: ID_AES256_CBC, parameters: AsnConvert.serialize(new OctetString(iv)),
        }),
        encryptedContent: new EncryptedContent({ value: new OctetString(encrypted) }),
      }),
    });
    return Buffer.from(AsnConvert.serialize(new ContentInfo({
      contentType: id_envelopedData, content: AsnConvert.serialize(enveloped),
    })));
  } finally {
    contentKey.fill(0);
  }
}
