import {
  checkPinsImage,
  InvalidMeasurementError,
  nitroTpmPcrConditionKey,
  normalizePcrValue,
  pinnedPcrs,
} from '../../lib/shared/measurements';

const A = 'ab'.repeat(48);

describe('normalizePcrValue', () => {
  test('lower-cases a SHA-384 hex value', () => {
    expect(normalizePcrValue('PCR4', A.toUpperCase())).toBe(A);
  });

  test.each([
    ['too short', 'ab'.repeat(47)],
    ['too long', 'ab'.repeat(49)],
    ['SHA-256 length', 'ab'.repeat(32)],
    ['not hex', 'zz'.repeat(48)],
    ['0x prefix', `0x${'ab'.repeat(47)}`],
    ['whitespace', ` ${'ab'.repeat(47)}a `],
    ['empty', ''],
  ])('rejects a value that is %s, naming it', (_, value) => {
    expect(() => normalizePcrValue('PCR12 of ami-1', value)).toThrow(InvalidMeasurementError);
    expect(() => normalizePcrValue('PCR12 of ami-1', value)).toThrow(
      `PCR12 of ami-1 must be a SHA-384 value of 96 hex characters, got ${JSON.stringify(value)}`,
    );
  });
});

describe('checkPinsImage', () => {
  test('accepts standard boot with PCR4 and PCR12', () => {
    expect(() => checkPinsImage('Image x', { pcr4: A, pcr12: A })).not.toThrow();
  });

  test('accepts Secure Boot with PCR4, PCR7 and PCR12', () => {
    expect(() => checkPinsImage('Image x', { pcr4: A, pcr7: A, pcr12: A })).not.toThrow();
  });

  test('refuses Secure Boot with PCR7 alone unless asked for', () => {
    expect(() => checkPinsImage('Image x', { pcr7: A })).toThrow(/PCR7 without PCR4 and PCR12.*pcr7Only/);
    expect(() => checkPinsImage('Image x', { pcr7: A, pcr4: A })).toThrow(/PCR7 without PCR4 and PCR12/);
    expect(() => checkPinsImage('Image x', { pcr7: A }, true)).not.toThrow();
    expect(() => checkPinsImage('Image x', { pcr4: A, pcr12: A }, true)).toThrow(/PCR7 alone \(pcr7Only\), but has no pcr7/);
  });

  test('refuses PCR4 without PCR12, citing the command-line bypass', () => {
    expect(() => checkPinsImage('Image x', { pcr4: A })).toThrow(/Image x is not pinned: missing pcr12.*command line/);
  });

  test('refuses an empty set', () => {
    expect(() => checkPinsImage('Image x', {})).toThrow(/missing pcr4 and pcr12/);
  });
});

test('pinnedPcrs lists the pinned values in index order', () => {
  expect(pinnedPcrs({ pcr12: '12', pcr4: '4', pcr7: '7' })).toEqual([
    { index: 4, value: '4' },
    { index: 7, value: '7' },
    { index: 12, value: '12' },
  ]);
});

test('condition keys are the NitroTPM ones, not the Nitro Enclaves ones', () => {
  expect(nitroTpmPcrConditionKey(4)).toBe('kms:RecipientAttestation:NitroTPMPCR4');
});
