import { Annotations } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { IAttestableImage } from '../attestable-image';

/**
 * Warns at synth when a key is sealed to an image by PCR7 alone (`pcr7Only`): PCR7 measures the Secure Boot keys,
 * not the kernel or its command line, so every image signed under those keys unseals.
 */
export function warnIfSealedToPcr7Alone(scope: Construct, image: IAttestableImage): void {
  const { pcr4, pcr7, pcr12 } = image.measurements;
  if (pcr7 === undefined || (pcr4 !== undefined && pcr12 !== undefined)) return;
  Annotations.of(scope).addWarningV2(
    'sealed-inference:pcr7-only',
    `Image ${image.imageId} is sealed to PCR7 alone: any image signed under the same Secure Boot keys can unseal, ` +
      'whatever its kernel and command line. Pin PCR4 and PCR12 as well unless every signed image is trusted.',
  );
}
