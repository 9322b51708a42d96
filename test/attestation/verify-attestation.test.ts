import { X509Certificate } from 'node:crypto';
import {
  AWS_NITRO_ROOT_COMMON_NAME, AWS_NITRO_ROOT_SHA256_FINGERPRINT, AttestationError, AttestationErrorKind,
  parseAttestationDocument, verifyAttestationDocument, VerifyAttestationOptions,
} from '../../lib/attestation';
import { awsNitroRoot } from '../../lib/attestation/nitro-root';
import { TestChain, buildTestAttestationDocument, createTestChain, testPcrs } from './test-attestation';

const DAY_MS = 24 * 60 * 60 * 1000;

let chain: TestChain;
let otherChain: TestChain;

beforeAll(async () => {
  [chain, otherChain] = await Promise.all([createTestChain(), createTestChain()]);
});

function trusted(): VerifyAttestationOptions {
  return { trustedRoots: [chain.root.certificate] };
}

function kindOf(fn: () => unknown): { kind: AttestationErrorKind; message: string } {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AttestationError);
    return { kind: (e as AttestationError).kind, message: (e as AttestationError).message };
  }
  throw new Error('expected an AttestationError');
}

describe('the pinned AWS Nitro root', () => {
  test('the embedded certificate has the published fingerprint and name', () => {
    const root = awsNitroRoot();
    expect(root.fingerprint256).toBe(AWS_NITRO_ROOT_SHA256_FINGERPRINT);
    expect(root.subject.split('\n')).toContain(`CN=${AWS_NITRO_ROOT_COMMON_NAME}`);
    expect(root.ca).toBe(true);
    expect(root.verify(root.publicKey)).toBe(true);
  });

  test('documents from another root are rejected by default', () => {
    const bytes = buildTestAttestationDocument({ chain });
    expect(kindOf(() => verifyAttestationDocument(bytes)).kind).toBe(AttestationErrorKind.UNKNOWN_ROOT);
  });
});

describe('a valid document', () => {
  test('is parsed into typed values', () => {
    const publicKey = Buffer.from('30820122', 'hex');
    const userData = Buffer.from('{"model":"llama"}');
    const nonce = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    const timestamp = new Date(Date.now() - 1000);
    const pcrs = testPcrs();
    pcrs.set(15, 'ab'.repeat(48));
    const bytes = buildTestAttestationDocument({ chain, publicKey, userData, nonce, timestamp, pcrs });

    const document = verifyAttestationDocument(bytes, { ...trusted(), expectedNonce: nonce.toString('hex') });

    expect(document.moduleId).toBe('i-0123456789abcdef0-tpm0123456789abcdef');
    expect(document.timestamp).toEqual(timestamp);
    expect(document.digest).toBe('SHA384');
    expect(document.pcrs).toEqual(pcrs);
    expect(document.pcrs.get(4)).toBe('04'.repeat(48));
    expect(document.certificate).toEqual(chain.leaf.der);
    expect(document.cabundle).toEqual([chain.root.der, chain.intermediate.der]);
    expect(document.publicKey).toEqual(publicKey);
    expect(document.userData).toEqual(userData);
    expect(document.nonce).toEqual(nonce);
  });

  test('leaves optional fields undefined when the document carries null', () => {
    const document = verifyAttestationDocument(buildTestAttestationDocument({ chain }), trusted());
    expect(document.publicKey).toBeUndefined();
    expect(document.userData).toBeUndefined();
    expect(document.nonce).toBeUndefined();
  });

  test('accepts a nonce given as bytes', () => {
    const nonce = Buffer.from('cafe', 'hex');
    const bytes = buildTestAttestationDocument({ chain, nonce });
    expect(verifyAttestationDocument(bytes, { ...trusted(), expectedNonce: nonce }).nonce).toEqual(nonce);
  });

  test('can be parsed without verification', () => {
    const { document, message } = parseAttestationDocument(buildTestAttestationDocument({ chain }));
    expect(document.pcrs.size).toBe(16);
    expect(message.signature).toHaveLength(96);
  });
});

describe('rejected documents', () => {
  test('a tampered payload: bad-signature', () => {
    const tampered = buildTestAttestationDocument({
      chain,
      replacePayload: (payload) => {
        const copy = Buffer.from(payload);
        const at = copy.indexOf(Buffer.alloc(48, 4));
        copy[at] = 5;
        return copy;
      },
    });
    const error = kindOf(() => verifyAttestationDocument(tampered, trusted()));
    expect(error.kind).toBe(AttestationErrorKind.BAD_SIGNATURE);
    expect(error.message).toMatch(/signature does not match/);
  });

  test('a document signed by another key: bad-signature', () => {
    const bytes = buildTestAttestationDocument({ chain: { ...chain, leaf: { ...chain.leaf, privateKey: otherChain.leaf.privateKey } } });
    expect(kindOf(() => verifyAttestationDocument(bytes, trusted())).kind).toBe(AttestationErrorKind.BAD_SIGNATURE);
  });

  test('a chain from a different root: unknown-root', () => {
    const bytes = buildTestAttestationDocument({ chain: otherChain });
    const error = kindOf(() => verifyAttestationDocument(bytes, trusted()));
    expect(error.kind).toBe(AttestationErrorKind.UNKNOWN_ROOT);
    expect(error.message).toContain(otherChain.root.certificate.fingerprint256);
  });

  test('a missing intermediate: broken-chain', () => {
    const bytes = buildTestAttestationDocument({ chain, cabundle: [chain.root.der] });
    const error = kindOf(() => verifyAttestationDocument(bytes, trusted()));
    expect(error.kind).toBe(AttestationErrorKind.BROKEN_CHAIN);
    expect(error.message).toMatch(/leaf certificate .*test\.nitro-leaf.* was not issued/);
  });

  test('an intermediate of another chain: broken-chain', () => {
    const bytes = buildTestAttestationDocument({ chain, cabundle: [chain.root.der, otherChain.intermediate.der] });
    expect(kindOf(() => verifyAttestationDocument(bytes, trusted())).kind).toBe(AttestationErrorKind.BROKEN_CHAIN);
  });

  test('an expired leaf: certificate-expired, naming the leaf', async () => {
    const expired = await createTestChain({
      leafNotBefore: new Date(Date.now() - 2 * DAY_MS), leafNotAfter: new Date(Date.now() - DAY_MS),
    });
    const bytes = buildTestAttestationDocument({ chain: expired });
    const error = kindOf(() => verifyAttestationDocument(bytes, { trustedRoots: [expired.root.certificate] }));
    expect(error.kind).toBe(AttestationErrorKind.CERTIFICATE_EXPIRED);
    expect(error.message).toMatch(/the leaf certificate \(CN=test\.nitro-leaf\) expired/);
  });

  test('a chain checked before its validity: certificate-not-yet-valid, naming the root', () => {
    const now = new Date(Date.now() - 2 * DAY_MS);
    const bytes = buildTestAttestationDocument({ chain, timestamp: now });
    const error = kindOf(() => verifyAttestationDocument(bytes, { ...trusted(), now }));
    expect(error.kind).toBe(AttestationErrorKind.CERTIFICATE_NOT_YET_VALID);
    expect(error.message).toMatch(/the root certificate \(CN=test\.nitro-root\) is valid from/);
  });

  test('a document older than maxAge: stale-document', () => {
    const bytes = buildTestAttestationDocument({ chain, timestamp: new Date(Date.now() - 6 * 60 * 1000) });
    expect(kindOf(() => verifyAttestationDocument(bytes, trusted())).kind).toBe(AttestationErrorKind.STALE_DOCUMENT);
    expect(verifyAttestationDocument(bytes, { ...trusted(), maxAge: 10 * 60 * 1000 }).digest).toBe('SHA384');
  });

  test('a document from the future: stale-document', () => {
    const bytes = buildTestAttestationDocument({ chain, timestamp: new Date(Date.now() + 10 * 60 * 1000) });
    expect(kindOf(() => verifyAttestationDocument(bytes, trusted())).kind).toBe(AttestationErrorKind.STALE_DOCUMENT);
  });

  test('a wrong or missing nonce: nonce-mismatch', () => {
    const withNonce = buildTestAttestationDocument({ chain, nonce: Buffer.from('0102', 'hex') });
    const error = kindOf(() => verifyAttestationDocument(withNonce, { ...trusted(), expectedNonce: '0103' }));
    expect(error.kind).toBe(AttestationErrorKind.NONCE_MISMATCH);
    expect(error.message).toMatch(/0102 is not the expected 0103/);
    const without = buildTestAttestationDocument({ chain });
    expect(kindOf(() => verifyAttestationDocument(without, { ...trusted(), expectedNonce: '0103' })).kind)
      .toBe(AttestationErrorKind.NONCE_MISMATCH);
  });

  test.each([
    ['truncated', (b: Buffer) => b.subarray(0, b.length - 10)],
    ['garbage', () => Buffer.from('not cbor at all \xff\xff', 'latin1')],
    ['empty', () => Buffer.alloc(0)],
    ['a CBOR map instead of COSE_Sign1', () => Buffer.from('a0', 'hex')],
  ])('%s bytes: malformed-document', (_name, mangle) => {
    const bytes = mangle(buildTestAttestationDocument({ chain }));
    expect(kindOf(() => verifyAttestationDocument(bytes, trusted())).kind).toBe(AttestationErrorKind.MALFORMED_DOCUMENT);
  });

  test('a payload without PCRs: malformed-document', () => {
    const bytes = buildTestAttestationDocument({
      chain, replacePayload: (payload) => Buffer.from(payload.toString('latin1').replace('nitrotpm_pcrs', 'nitrotpm_xxxx'), 'latin1'),
    });
    const error = kindOf(() => parseAttestationDocument(bytes));
    expect(error.kind).toBe(AttestationErrorKind.MALFORMED_DOCUMENT);
    expect(error.message).toMatch(/nitrotpm_pcrs/);
  });

  test('only the given trustedRoots are trusted', () => {
    const bytes = buildTestAttestationDocument({ chain });
    const options = { trustedRoots: [new X509Certificate(otherChain.root.der), awsNitroRoot()] };
    expect(kindOf(() => verifyAttestationDocument(bytes, options)).kind).toBe(AttestationErrorKind.UNKNOWN_ROOT);
  });
});
