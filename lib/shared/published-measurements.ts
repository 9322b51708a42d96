import type { Image } from '@aws-sdk/client-ec2';
import { InvalidMeasurementError, MEASUREMENT_TAGS, normalizePcrValue, SHA256_HEX } from './measurements';

/**
 * Reading an image's published measurements (the {@link MEASUREMENT_TAGS} on the AMI) from an EC2 `DescribeImages`
 * result. No AWS SDK or CDK dependency: the deploy-time custom resource and the CLI share it.
 */

/** What the reader expects of the image. */
export interface PublishedMeasurementsExpectation {
  /** True for a UEFI Secure Boot image (pinned by PCR4, PCR7 and PCR12); false for standard boot (PCR4 and PCR12). */
  readonly secureBoot: boolean;

  /**
   * A Secure Boot image sealed to PCR7 alone: PCR4 and PCR12 are then not required.
   *
   * @default false
   */
  readonly pcr7Only?: boolean;

  /**
   * The SHA-256 (hex) of the image build's `pcr_measurements.json`; the image's digest tag must match it.
   *
   * @default - not checked
   */
  readonly measurementsSha256?: string;

  /**
   * Accounts whose images may be read. Whoever can tag an image controls the measurements read from it.
   *
   * @default - any owner
   */
  readonly ownerAccounts?: string[];
}

/** The measurements an image publishes, checked. */
export interface PublishedMeasurements {
  readonly pcr4?: string;
  readonly pcr7?: string;
  readonly pcr12?: string;
  readonly recipeVersion?: string;
  readonly measurementsSha256?: string;
  /** Findings that do not stop the image from being sealed to, e.g. an image that does not default to IMDSv2. */
  readonly warnings: string[];
}

/**
 * Checks that `image` is an available NitroTPM attestable image (UEFI, TPM 2.0) whose tags publish the
 * measurements its boot mode needs, and returns them normalised to lower case.
 *
 * Throws an {@link InvalidMeasurementError} naming the image and what to fix. An image that does not make IMDSv2
 * the default is only a warning: the instance this library launches requires IMDSv2 whatever the image says.
 */
export function readPublishedMeasurements(
  image: Image,
  expect: PublishedMeasurementsExpectation,
): PublishedMeasurements {
  const subject = `Image ${image.ImageId ?? '(without id)'}`;
  const fail = (message: string): never => {
    throw new InvalidMeasurementError(`${subject} ${message}`);
  };

  if (image.State !== 'available') {
    fail(`is ${image.State ?? 'in no state'}, not available: wait until it is available, or use another image`);
  }
  if (expect.ownerAccounts !== undefined && !expect.ownerAccounts.includes(image.OwnerId ?? '')) {
    fail(
      `is owned by account ${image.OwnerId ?? '(unknown)'}, not by ${expect.ownerAccounts.join(' or ')}: its tags ` +
        'are controlled by that account; copy the image into your account or allow its owner explicitly',
    );
  }
  if (image.BootMode !== 'uefi') {
    fail(
      `has boot mode ${image.BootMode ?? '(unset)'}, not uefi: NitroTPM attestation needs an image registered ` +
        'with --boot-mode uefi',
    );
  }
  if (image.TpmSupport !== 'v2.0') {
    fail(
      `has TPM support ${image.TpmSupport ?? '(none)'}, not v2.0: register the image with --tpm-support v2.0`,
    );
  }

  const tags = new Map<string, string>();
  for (const { Key: key, Value: value } of image.Tags ?? []) {
    if (key === undefined || !(Object.values(MEASUREMENT_TAGS) as string[]).includes(key)) continue;
    if (tags.has(key)) fail(`has the tag ${key} more than once: keep exactly one value`);
    tags.set(key, value ?? '');
  }
  const pcr = (index: 4 | 7 | 12): string | undefined => {
    const key = MEASUREMENT_TAGS[`pcr${index}`];
    const value = tags.get(key);
    return value === undefined ? undefined : normalizePcrValue(`PCR${index} of ${subject} (tag ${key})`, value);
  };
  const pcr4 = pcr(4);
  const pcr7 = pcr(7);
  const pcr12 = pcr(12);
  if (expect.secureBoot && pcr7 === undefined) {
    fail(
      `publishes no PCR7 (tag ${MEASUREMENT_TAGS.pcr7}), which a Secure Boot image is sealed to: publish the ` +
        'PCR7 of its pcr_measurements.json, or read it as a standard-boot image',
    );
  }
  if (!expect.pcr7Only) {
    const missing = [
      pcr4 === undefined ? MEASUREMENT_TAGS.pcr4 : undefined,
      pcr12 === undefined ? MEASUREMENT_TAGS.pcr12 : undefined,
    ].filter((key) => key !== undefined);
    if (missing.length > 0) {
      fail(
        `publishes no ${missing.join(' and ')}: an image is sealed to PCR4 and PCR12 (PCR4 alone lets ` +
          'a command line supplied through UEFI variables go unmeasured); publish both from its ' +
          'pcr_measurements.json' + (expect.secureBoot ? ', or seal a Secure Boot image to PCR7 alone (pcr7Only)' : ''),
      );
    }
  }

  const recipeVersion = tags.get(MEASUREMENT_TAGS.recipeVersion);
  if (recipeVersion !== undefined && recipeVersion.trim() === '') {
    fail(`has an empty ${MEASUREMENT_TAGS.recipeVersion} tag: set it to the recipe's version or remove it`);
  }
  let measurementsSha256 = tags.get(MEASUREMENT_TAGS.measurementsSha256);
  if (measurementsSha256 !== undefined) {
    if (!SHA256_HEX.test(measurementsSha256)) {
      fail(
        `has a malformed ${MEASUREMENT_TAGS.measurementsSha256} tag ${JSON.stringify(measurementsSha256)}: it must ` +
          'be the SHA-256 of pcr_measurements.json, 64 hex characters',
      );
    }
    measurementsSha256 = measurementsSha256.toLowerCase();
  }
  if (expect.measurementsSha256 !== undefined) {
    const expected = expect.measurementsSha256.toLowerCase();
    if (measurementsSha256 === undefined) {
      fail(
        `publishes no ${MEASUREMENT_TAGS.measurementsSha256} tag, so it cannot be checked against the expected ` +
          `pcr_measurements.json (SHA-256 ${expected}): publish the digest, or drop the expectation`,
      );
    }
    if (measurementsSha256 !== expected) {
      fail(
        `publishes measurements from a pcr_measurements.json with SHA-256 ${measurementsSha256}, not the expected ` +
          `${expected}: the image was rebuilt or retagged; check its measurements before you update the expectation`,
      );
    }
  }

  const warnings: string[] = [];
  if (image.ImdsSupport !== 'v2.0') {
    warnings.push(
      `${subject} does not make IMDSv2 the default (ImdsSupport ${image.ImdsSupport ?? 'unset'}); the attested ` +
        'instance requires IMDSv2 anyway, but register images with --imds-support v2.0',
    );
  }
  return { pcr4, pcr7, pcr12, recipeVersion, measurementsSha256, warnings };
}
