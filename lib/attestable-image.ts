import { Token } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { AMI_ID_PATTERN, checkPinsImage, normalizePcrValue, PcrMeasurements } from './shared/measurements';
import { PublishedImageMeasurements, PublishedImageMeasurementsProps } from './published-image';

/**
 * An attestable AMI and the measurements its boot chain produces, which a key policy can be sealed to.
 *
 * The id and the values may be Tokens resolved at deploy time.
 */
export interface IAttestableImage {
  /** The AMI id, e.g. `ami-0123456789abcdef0`. */
  readonly imageId: string;

  /** The reference measurements of the image. */
  readonly measurements: PcrMeasurements;
}

/** How an image given with its measurements is sealed to. */
export interface AttestableImageOptions {
  /**
   * Seal a Secure Boot image to PCR7 alone. Every image signed under the same Secure Boot keys then unseals, whatever
   * its kernel and command line; synthesis warns (`sealed-inference:pcr7-only`).
   *
   * @default false - a Secure Boot image is pinned by PCR4, PCR7 and PCR12
   */
  readonly pcr7Only?: boolean;
}

/** Factories for {@link IAttestableImage}. */
export class AttestableImage {
  /**
   * An image whose measurements are known at synth time, e.g. from the `pcr_measurements.json` of its build.
   *
   * Values are checked and normalised to lower case; the image must be pinned by PCR4 and PCR12 (standard boot),
   * by PCR4, PCR7 and PCR12 (Secure Boot), or by PCR7 alone with `pcr7Only`.
   */
  public static fromMeasurements(
    imageId: string,
    measurements: PcrMeasurements,
    options: AttestableImageOptions = {},
  ): IAttestableImage {
    checkImageId(imageId);
    const normalize = (name: string, value: string | undefined) =>
      value === undefined || Token.isUnresolved(value) ? value : normalizePcrValue(`${name} of ${imageId}`, value);
    const pcr7Only = options.pcr7Only ?? false;
    const normalized: PcrMeasurements = {
      pcr4: pcr7Only ? undefined : normalize('PCR4', measurements.pcr4),
      pcr7: normalize('PCR7', measurements.pcr7),
      pcr12: pcr7Only ? undefined : normalize('PCR12', measurements.pcr12),
    };
    checkPinsImage(`Image ${imageId}`, normalized, pcr7Only);
    return { imageId, measurements: normalized };
  }

  /**
   * An image whose measurements are read at deploy time from the tags its build published on the AMI
   * (`MEASUREMENT_TAGS`), by a custom resource: PCR4 and PCR12 for a standard-boot image, PCR4, PCR7 and PCR12
   * with `secureBoot` (PCR7 alone with `pcr7Only`).
   *
   * The values are the custom resource's attributes, so a key policy sealed to the image depends on the read:
   * CloudFormation reads the image before it changes the policy, and a failing read (image unavailable, not UEFI
   * with TPM 2.0, owned by another account, missing or malformed tags, digest mismatch) fails the deployment
   * before the policy changes. One reader Lambda serves the whole stack.
   */
  public static fromPublishedMeasurements(
    scope: Construct,
    id: string,
    props: PublishedImageMeasurementsProps,
  ): IAttestableImage {
    checkImageId(props.imageId);
    return new PublishedImageMeasurements(scope, id, props);
  }

  private constructor() {}
}

function checkImageId(imageId: string): void {
  if (!Token.isUnresolved(imageId) && !AMI_ID_PATTERN.test(imageId)) {
    throw new Error(`Image id must look like ami-0123456789abcdef0, got ${JSON.stringify(imageId)}`);
  }
}
