import { CfnParameter, Stack } from 'aws-cdk-lib';
import { AttestableImage, IAttestableImage } from '../lib';
import { PinnedImage, SampleSettings } from './sample-settings';

/**
 * The images a sample stack is sealed to: the current one first, then the next one during an upgrade. By default
 * the current image is the `ImageId` parameter, its measurements read from the image's tags when the stack deploys;
 * context `sealed-inference:image` pins them in the template instead.
 */
export function sampleImages(stack: Stack, settings: SampleSettings): IAttestableImage[] {
  const current = settings.image ? pinned(settings.image) : imageFromParameters(stack, settings.secureBoot);
  const next = settings.nextImage;
  if (next === undefined) return [current];
  return [
    current,
    typeof next === 'string'
      ? AttestableImage.fromPublishedMeasurements(stack, 'NextImage', { imageId: next, secureBoot: settings.secureBoot })
      : pinned(next),
  ];
}

function imageFromParameters(stack: Stack, secureBoot: boolean): IAttestableImage {
  const imageId = new CfnParameter(stack, 'ImageId', {
    type: 'AWS::EC2::Image::Id',
    description: 'The attestable image; its measurements are read from its tags and the key is sealed to them',
  });
  const expectedDigest = new CfnParameter(stack, 'ExpectedMeasurementsSha256', {
    type: 'String',
    default: '',
    allowedPattern: '^([0-9a-fA-F]{64})?$',
    description: "Optional: SHA-256 of the image build's pcr_measurements.json, checked against the image's tag",
  });
  return AttestableImage.fromPublishedMeasurements(stack, 'Image', {
    imageId: imageId.valueAsString,
    secureBoot,
    expectedMeasurementsSha256: expectedDigest.valueAsString,
  });
}

function pinned({ imageId, pcr4, pcr7, pcr12 }: PinnedImage): IAttestableImage {
  return AttestableImage.fromMeasurements(imageId, { pcr4, pcr7, pcr12 });
}
