import { createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContentInfo, EnvelopedData, id_signedData } from '@peculiar/asn1-cms';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { openRecipientEnvelope, RecipientEnvelopeError } from '../../lib/attestation/recipient-envelope';
import { RECIPIENT_KEY_BITS } from '../../lib/attestation/recipient-key';
import { openssl } from './openssl';
import { buildRecipientEnvelope } from './recipient-envelope-builder';

let dir: string;
let keyPem: string;
let certPem: string;
let otherCertPem: string;
let privateKey: KeyObject;
let spki: Buffer;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'recipient-envelope-'));
  keyPem = join(dir, 'key.pem');
  certPem = join(dir, 'cert.pem');
  otherCertPem = join(dir, 'other-cert.pem');
  const selfSigned = (key: string, cert: string) => openssl(['req', '-x509', '-newkey', `rsa:${RECIPIENT_KEY_BITS}`,
    '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=recipient', '-days', '1']);
  selfSigned(keyPem, certPem);
  selfSigned(join(dir, 'other-key.pem'), otherCertPem);
  privateKey = createPrivateKey(readFileSync(keyPem));
  spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const OAEP_SHA256 = ['-keyopt', 'rsa_padding_mode:oaep', '-keyopt', 'rsa_oaep_md:sha256'];

/** `openssl cms -encrypt` of `content` to the test certificate, DER; `options` choose cipher and key transport. */
function opensslEnvelope(content: Buffer, options: string[] = ['-aes256', '-recip', certPem, ...OAEP_SHA256]): Buffer {
  const input = join(dir, 'content.bin');
  writeFileSync(input, content);
  return openssl(['cms', '-encrypt', '-binary', '-outform', 'DER', '-in', input, ...options]);
}

/** Parses an envelope, lets `change` edit its EnvelopedData, and encodes it again. */
function rewrite(envelope: Buffer, change: (enveloped: EnvelopedData) => void): Buffer {
  const contentInfo = AsnConvert.parse(envelope, ContentInfo);
  const enveloped = AsnConvert.parse(contentInfo.content, EnvelopedData);
  change(enveloped);
  contentInfo.content = AsnConvert.serialize(enveloped);
  return Buffer.from(AsnConvert.serialize(contentInfo));
}

function refusal(envelope: Buffer, key: KeyObject = privateKey): string {
  try {
    openRecipientEnvelope(envelope, key);
  } catch (error) {
    expect(error).toBeInstanceOf(RecipientEnvelopeError);
    return (error as Error).message;
  }
  throw new Error('expected the envelope to be refused');
}

describe('interoperability with openssl cms', () => {
  test('an envelope openssl makes with RSA-OAEP SHA-256 and AES-256-CBC opens', () => {
    const dataKey = randomBytes(32);
    expect(openRecipientEnvelope(opensslEnvelope(dataKey), privateKey)).toEqual(dataKey);
  });

  test('content that is not a whole number of blocks opens too', () => {
    const content = randomBytes(45);
    expect(openRecipientEnvelope(opensslEnvelope(content), privateKey)).toEqual(content);
  });

  test("the fake KMS's envelope opens with openssl cms -decrypt and with our code", () => {
    const dataKey = randomBytes(32);
    const envelope = buildRecipientEnvelope(dataKey, spki);
    expect(openssl(['cms', '-decrypt', '-binary', '-inform', 'DER', '-inkey', keyPem], envelope)).toEqual(dataKey);
    expect(openRecipientEnvelope(envelope, privateKey)).toEqual(dataKey);
  });
});

describe('refused envelopes', () => {
  test('bytes that are not DER', () => {
    expect(refusal(randomBytes(64))).toMatch(/the envelope is not valid DER/);
  });

  test('another CMS content type: AuthEnvelopedData (AES-256-GCM)', () => {
    const envelope = opensslEnvelope(randomBytes(32), ['-aes-256-gcm', '-recip', certPem, ...OAEP_SHA256]);
    expect(refusal(envelope)).toMatch(/content type is 1\.2\.840\.113549\.1\.9\.16\.1\.23, expected CMS EnvelopedData/);
  });

  test('another CMS content type: SignedData', () => {
    const contentInfo = AsnConvert.parse(buildRecipientEnvelope(randomBytes(32), spki), ContentInfo);
    contentInfo.contentType = id_signedData;
    expect(refusal(Buffer.from(AsnConvert.serialize(contentInfo)))).toMatch(/content type is 1\.2\.840\.113549\.1\.7\.2/);
  });

  test('two recipients', () => {
    const envelope = opensslEnvelope(randomBytes(32), ['-aes256', certPem, otherCertPem]);
    expect(refusal(envelope)).toMatch(/2 recipients, expected exactly one/);
  });

  test('RSA PKCS#1 v1.5 key transport', () => {
    const envelope = opensslEnvelope(randomBytes(32), ['-aes256', '-recip', certPem]);
    expect(refusal(envelope)).toMatch(/key encryption algorithm is 1\.2\.840\.113549\.1\.1\.1, expected RSAES-OAEP/);
  });

  test('RSA-OAEP with SHA-1', () => {
    // openssl writes an empty parameter sequence: every field takes its default, SHA-1.
    const envelope = opensslEnvelope(randomBytes(32), ['-aes256', '-recip', certPem, '-keyopt', 'rsa_padding_mode:oaep']);
    expect(refusal(envelope)).toMatch(/OAEP hash is 1\.3\.14\.3\.2\.26, expected SHA-256/);
  });

  test('RSA-OAEP without parameters', () => {
    const envelope = rewrite(buildRecipientEnvelope(randomBytes(32), spki), (enveloped) => {
      enveloped.recipientInfos[0].ktri!.keyEncryptionAlgorithm.parameters = undefined;
    });
    expect(refusal(envelope)).toMatch(/RSAES-OAEP without parameters means SHA-1/);
  });

  test('RSA-OAEP SHA-256 with MGF1 over SHA-1', () => {
    const envelope = opensslEnvelope(randomBytes(32),
      ['-aes256', '-recip', certPem, ...OAEP_SHA256, '-keyopt', 'rsa_mgf1_md:sha1']);
    expect(refusal(envelope)).toMatch(/mask generation is 1\.2\.840\.113549\.1\.1\.8 over 1\.3\.14\.3\.2\.26/);
  });

  test('RSA-OAEP with a label', () => {
    const envelope = opensslEnvelope(randomBytes(32),
      ['-aes256', '-recip', certPem, ...OAEP_SHA256, '-keyopt', 'rsa_oaep_label:0102']);
    expect(refusal(envelope)).toMatch(/OAEP label must be empty/);
  });

  test('AES-128-CBC content encryption', () => {
    const envelope = opensslEnvelope(randomBytes(32), ['-aes128', '-recip', certPem, ...OAEP_SHA256]);
    expect(refusal(envelope)).toMatch(/content encryption algorithm is 2\.16\.840\.1\.101\.3\.4\.1\.2, expected AES-256-CBC/);
  });

  test('an IV that is not 16 bytes', () => {
    const envelope = rewrite(buildRecipientEnvelope(randomBytes(32), spki), (enveloped) => {
      const algorithm = enveloped.encryptedContentInfo.contentEncryptionAlgorithm;
      enveloped.encryptedContentInfo.contentEncryptionAlgorithm = new AlgorithmIdentifier({
        algorithm: algorithm.algorithm, parameters: AsnConvert.serialize(new OctetString(randomBytes(8))),
      });
    });
    expect(refusal(envelope)).toMatch(/IV must be 16 bytes, got 8/);
  });

  test('detached content', () => {
    const envelope = rewrite(buildRecipientEnvelope(randomBytes(32), spki), (enveloped) => {
      delete enveloped.encryptedContentInfo.encryptedContent;
    });
    expect(refusal(envelope)).toMatch(/no encrypted content/);
  });

  test('content cut short of a whole block', () => {
    const envelope = rewrite(buildRecipientEnvelope(randomBytes(32), spki), (enveloped) => {
      const content = enveloped.encryptedContentInfo.encryptedContent!;
      content.value = new OctetString(Buffer.from(content.value!.buffer).subarray(0, 40));
    });
    expect(refusal(envelope)).toMatch(/encrypted content is 40 bytes, not a positive multiple/);
  });

  test('bad padding', () => {
    // 32 bytes encrypt to three blocks, the last all padding (0x10 × 16). Flipping the low bit of the second block's
    // last byte turns the final padding byte into 0x11, which is never valid.
    const envelope = rewrite(buildRecipientEnvelope(randomBytes(32), spki), (enveloped) => {
      const content = enveloped.encryptedContentInfo.encryptedContent!;
      const bytes = Buffer.from(content.value!.buffer);
      bytes[31] ^= 0x01;
      content.value = new OctetString(bytes);
    });
    expect(refusal(envelope)).toMatch(/bad padding/);
  });

  test('an envelope for another key', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    expect(refusal(buildRecipientEnvelope(randomBytes(32), spki), other))
      .toMatch(/does not decrypt with the recipient private key/);
  });

  test('a key that is not an RSA private key is a programming error', () => {
    expect(() => openRecipientEnvelope(buildRecipientEnvelope(randomBytes(32), spki), createPublicKey(privateKey)))
      .toThrow(/needs an RSA private key/);
  });
});
