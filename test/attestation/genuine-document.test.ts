import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  AttestationError, AttestationErrorKind, compareAttestation, InvalidVerifyOptionsError, verifyAttestationDocument,
  VerifyAttestationOptions,
} from '../../lib/attestation';
import { createTestChain } from './test-attestation';

/** A NitroTPM document produced by a real EC2 instance: the only evidence that the pinned root is the right one. */
const fixture = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'nitrotpm-attestation-document.json'), 'utf8'),
) as { sha256: string; timestamp: number; nonceUtf8: string; document: string };
const bytes = Buffer.from(fixture.document, 'base64');
const producedAt = new Date(fixture.timestamp);
const nonce = Buffer.from(fixture.nonceUtf8, 'utf8');

test('the fixture is the document it says it is', () => {
  expect(createHash('sha256').update(bytes).digest('hex')).toBe(fixture.sha256);
});

test('verifies against the pinned AWS Nitro root at its own timestamp, with its nonce', () => {
  const document = verifyAttestationDocument(bytes, { now: producedAt, expectedNonce: nonce });
  expect(document.moduleId).toBe('i-000fa553dad58a9f1-tpm0000000000000000');
  expect(document.timestamp).toEqual(producedAt);
  expect(document.cabundle).toHaveLength(4);
  expect([...document.pcrs.keys()].sort((a, b) => a - b)).toEqual([...Array(24).keys()]);
  expect(document.pcrs.get(12)).toBe('00'.repeat(48));
  expect(document.pcrs.get(15)).toBe('00'.repeat(48));
});

test('its PCRs compare as an image pinned by its PCR4 and PCR12, serving no model yet', () => {
  const document = verifyAttestationDocument(bytes, { now: producedAt });
  const image = { imageId: 'ami-0123456789abcdef0', pcr4: document.pcrs.get(4)!, pcr12: document.pcrs.get(12)! };
  const verdict = compareAttestation(document, [], { images: [image] });
  expect(verdict.trustworthy).toBe(true);
  expect(verdict.servedModels).toEqual([]);
  const otherCommandLine = compareAttestation(document, [], { images: [{ ...image, pcr12: 'ab'.repeat(48) }] });
  expect(otherCommandLine.trustworthy).toBe(false);
});

test.each([
  ['a day later: the three-hour leaf certificate has expired', { now: new Date(fixture.timestamp + 24 * 3600 * 1000), maxAge: 2 * 24 * 3600 * 1000 }, AttestationErrorKind.CERTIFICATE_EXPIRED],
  ['ten minutes later: the document is stale', { now: new Date(fixture.timestamp + 10 * 60 * 1000) }, AttestationErrorKind.STALE_DOCUMENT],
  ['with a nonce of another request', { now: producedAt, expectedNonce: Buffer.alloc(32, 1) }, AttestationErrorKind.NONCE_MISMATCH],
])('is rejected %s', (_name, options, kind) => {
  expect(() => verifyAttestationDocument(bytes, options)).toThrow(expect.objectContaining({ kind }));
});

test('is rejected when only a test root is trusted', async () => {
  const chain = await createTestChain({ notBefore: new Date(fixture.timestamp - 3600e3), notAfter: new Date(fixture.timestamp + 3600e3) });
  let error: unknown;
  try {
    verifyAttestationDocument(bytes, { now: producedAt, trustedRoots: [chain.root.certificate] });
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(AttestationError);
  expect((error as AttestationError).kind).toBe(AttestationErrorKind.UNKNOWN_ROOT);
});

describe('options that would switch the time checks off are refused, not ignored', () => {
  /** Months after it was produced: its certificates expired long ago and it is far too old. */
  const monthsLater = new Date(fixture.timestamp + 120 * 24 * 3600 * 1000);

  test('the months-old document is refused with valid options', () => {
    expect(() => verifyAttestationDocument(bytes, { now: monthsLater, maxAge: 1000 }))
      .toThrow(expect.objectContaining({ kind: AttestationErrorKind.CERTIFICATE_EXPIRED }));
    expect(() => verifyAttestationDocument(bytes)).toThrow(AttestationError);
  });

  test.each([
    ['an invalid Date', { now: new Date(NaN) }, /now must be a valid Date, got an invalid Date/],
    ['a timestamp number instead of a Date', { now: fixture.timestamp as unknown as Date }, new RegExp(`now must be a valid Date, got ${fixture.timestamp}`)],
    ['an ISO string instead of a Date', { now: '2026-01-01T00:00:00Z' as unknown as Date }, /now must be a valid Date, got the string '2026-01-01T00:00:00Z'/],
    ['null instead of a Date', { now: null as unknown as Date }, /now must be a valid Date, got null/],
    ['a NaN maxAge', { now: monthsLater, maxAge: NaN }, /maxAge must be a finite number of milliseconds, zero or more, got NaN/],
    ['a negative maxAge', { now: monthsLater, maxAge: -1 }, /maxAge must be .*, got -1$/],
    ['an infinite maxAge', { now: monthsLater, maxAge: Infinity }, /maxAge must be .*, got Infinity$/],
    ['a string maxAge', { now: monthsLater, maxAge: '300000' as unknown as number }, /maxAge must be .*, got the string '300000'$/],
  ] as Array<[string, VerifyAttestationOptions, RegExp]>)('%s', (_name, options, message) => {
    let error: unknown;
    try {
      verifyAttestationDocument(bytes, options);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidVerifyOptionsError);
    expect(error).not.toBeInstanceOf(AttestationError);
    expect((error as InvalidVerifyOptionsError).kind).toBe('invalid-options');
    expect((error as Error).message).toMatch(message);
  });

  test('a malformed nonce is the same kind of mistake', () => {
    expect(() => verifyAttestationDocument(bytes, { now: producedAt, expectedNonce: 'xyz' }))
      .toThrow(expect.objectContaining({ kind: 'invalid-options', message: expect.stringContaining("expectedNonce must be bytes") }));
  });

  test('a maxAge of zero is valid: only a document from the very instant passes', () => {
    expect(verifyAttestationDocument(bytes, { now: producedAt, maxAge: 0 }).timestamp).toEqual(producedAt);
    expect(() => verifyAttestationDocument(bytes, { now: new Date(fixture.timestamp + 1), maxAge: 0 }))
      .toThrow(expect.objectContaining({ kind: AttestationErrorKind.STALE_DOCUMENT }));
  });
});
