import { Token } from 'aws-cdk-lib';
import { checkPinsImage, normalizePcrValue, PcrMeasurements } from './measurements';

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

const AMI_ID = /^ami-[0-9a-f]{8}([0-9a-f]{9})?$/;

/** Factories for {@link IAttestableImage}. */
export class AttestableImage {
  /**
   * An image whose measurements are known at synth time, e.g. from the `pcr_measurements.json` of its build.
   *
   * Values are checked and normalised to lower case; the image must be pinned by PCR4 and PCR12 (standard boot)
   * or by PCR7 (Secure Boot).
   */
  public static fromMeasurements(imageId: string, measurements: PcrMeasurements): IAttestableImage {
    if (!Token.isUnresolved(imageId) && !AMI_ID.test(imageId)) {
      throw new Error(`Image id must look like ami-0123456789abcdef0, got ${JSON.stringify(imageId)}`);
    }
    const normalize = (name: string, value: string | undefined) =>
      value === undefined || Token.isUnresolved(value) ? value : normalizePcrValue(`${name} of ${imageId}`, value);
    const normalized: PcrMeasurements = {
      pcr4: normalize('PCR4', measurements.pcr4),
      pcr7: normalize('PCR7', measurements.pcr7),
      pcr12: normalize('PCR12', measurements.pcr12),
    };
    checkPinsImage(`Image ${imageId}`, normalized);
    return { imageId, measurements: normalized };
  }

  private constructor() {}
}
