import type { Image } from '@aws-sdk/client-ec2';
import { MEASUREMENT_TAGS } from '../../lib';
import { readPublishedMeasurements } from '../../lib/shared/published-measurements';
import { DIGEST, hex384, publishedImage } from '../fixtures';

const standard = { secureBoot: false };

test('the tag keys are the published contract', () => {
  expect(MEASUREMENT_TAGS).toEqual({
    pcr4: 'sealed-inference:pcr4',
    pcr7: 'sealed-inference:pcr7',
    pcr12: 'sealed-inference:pcr12',
    recipeVersion: 'sealed-inference:recipe-version',
    measurementsSha256: 'sealed-inference:measurements-sha256',
  });
});

test('returns every published value, normalised, with no warning', () => {
  expect(readPublishedMeasurements(publishedImage(), { secureBoot: false, measurementsSha256: DIGEST.toUpperCase() }))
    .toEqual({
      pcr4: hex384('a4'),
      pcr7: hex384('57'),
      pcr12: hex384('00'),
      recipeVersion: '1.2.0',
      measurementsSha256: DIGEST,
      warnings: [],
    });
});

test('a Secure Boot image needs PCR4, PCR7 and PCR12, or only PCR7 when sealed to PCR7 alone', () => {
  const image = publishedImage({}, { [MEASUREMENT_TAGS.pcr4]: 'omit', [MEASUREMENT_TAGS.pcr12]: 'omit' });
  expect(() => readPublishedMeasurements(image, { secureBoot: true }))
    .toThrow(/publishes no sealed-inference:pcr4 and sealed-inference:pcr12.*seal a Secure Boot image to PCR7 alone \(pcr7Only\)/);
  expect(readPublishedMeasurements(image, { secureBoot: true, pcr7Only: true })).toMatchObject({ pcr7: hex384('57'), pcr4: undefined });
  expect(readPublishedMeasurements(publishedImage(), { secureBoot: true })).toMatchObject({
    pcr4: hex384('a4'), pcr7: hex384('57'), pcr12: hex384('00'),
  });
});

test('recipe version and digest tags are optional when no digest is expected', () => {
  const image = publishedImage(
    {},
    { [MEASUREMENT_TAGS.recipeVersion]: 'omit', [MEASUREMENT_TAGS.measurementsSha256]: 'omit' },
  );
  expect(readPublishedMeasurements(image, standard)).toMatchObject({ recipeVersion: undefined, measurementsSha256: undefined });
});

test('an image that does not default to IMDSv2 is a warning, not an error', () => {
  expect(readPublishedMeasurements(publishedImage({ ImdsSupport: undefined }), standard).warnings).toEqual([
    expect.stringMatching(/Image ami-0123456789abcdef0 does not make IMDSv2 the default.*--imds-support v2.0/),
  ]);
});

test.each<[string, Partial<Image>, Record<string, string>, { secureBoot: boolean; measurementsSha256?: string; ownerAccounts?: string[] }, RegExp]>([
  ['pending', { State: 'pending' }, {}, standard, /Image ami-0123456789abcdef0 is pending, not available: wait/],
  ['deregistered', { State: 'deregistered' }, {}, standard, /is deregistered, not available/],
  ['legacy BIOS', { BootMode: 'legacy-bios' }, {}, standard, /has boot mode legacy-bios, not uefi.*--boot-mode uefi/],
  ['no boot mode', { BootMode: undefined }, {}, standard, /has boot mode \(unset\), not uefi/],
  ['uefi-preferred', { BootMode: 'uefi-preferred' }, {}, standard, /has boot mode uefi-preferred, not uefi/],
  ['no TPM', { TpmSupport: undefined }, {}, standard, /has TPM support \(none\), not v2.0: register the image with --tpm-support v2.0/],
  ['no PCR12', {}, { [MEASUREMENT_TAGS.pcr12]: 'omit' }, standard, /publishes no sealed-inference:pcr12: an image is sealed to PCR4 and PCR12/],
  ['no PCR4 nor PCR12', {}, { [MEASUREMENT_TAGS.pcr4]: 'omit', [MEASUREMENT_TAGS.pcr12]: 'omit' }, standard, /publishes no sealed-inference:pcr4 and sealed-inference:pcr12/],
  ['no PCR7 for Secure Boot', {}, { [MEASUREMENT_TAGS.pcr7]: 'omit' }, { secureBoot: true }, /publishes no PCR7 \(tag sealed-inference:pcr7\), which a Secure Boot image is sealed to/],
  ['malformed PCR4', {}, { [MEASUREMENT_TAGS.pcr4]: 'deadbeef' }, standard, /PCR4 of Image ami-0123456789abcdef0 \(tag sealed-inference:pcr4\) must be a SHA-384 value of 96 hex characters, got "deadbeef"/],
  ['malformed PCR7 even when unused', {}, { [MEASUREMENT_TAGS.pcr7]: 'zz' }, standard, /PCR7 of Image .* must be a SHA-384/],
  ['malformed digest', {}, { [MEASUREMENT_TAGS.measurementsSha256]: 'abc' }, standard, /malformed sealed-inference:measurements-sha256 tag "abc"/],
  ['empty recipe version', {}, { [MEASUREMENT_TAGS.recipeVersion]: ' ' }, standard, /empty sealed-inference:recipe-version tag/],
  ['digest mismatch', {}, {}, { secureBoot: false, measurementsSha256: 'cd'.repeat(32) }, /pcr_measurements.json with SHA-256 abab.*not the expected cdcd.*rebuilt or retagged/],
  ['digest expected but absent', {}, { [MEASUREMENT_TAGS.measurementsSha256]: 'omit' }, { secureBoot: false, measurementsSha256: DIGEST }, /publishes no sealed-inference:measurements-sha256 tag/],
  ['another owner', { OwnerId: '999999999999' }, {}, { secureBoot: false, ownerAccounts: ['111111111111'] }, /is owned by account 999999999999, not by 111111111111: .*allow its owner explicitly/],
])('refuses an image: %s', (_name, overrides, tags, expectation, message) => {
  expect(() => readPublishedMeasurements(publishedImage(overrides, tags), expectation)).toThrow(message);
});

test('refuses a measurement tag given twice', () => {
  const image = publishedImage();
  image.Tags!.push({ Key: MEASUREMENT_TAGS.pcr4, Value: hex384('b4') });
  expect(() => readPublishedMeasurements(image, standard)).toThrow(
    'Image ami-0123456789abcdef0 has the tag sealed-inference:pcr4 more than once: keep exactly one value',
  );
});

test('accepts an image of an allowed owner', () => {
  const image = publishedImage({ OwnerId: '222222222222' });
  expect(() => readPublishedMeasurements(image, { secureBoot: false, ownerAccounts: ['111111111111', '222222222222'] }))
    .not.toThrow();
});
