import { describeImage, newEc2Client } from '../../shared/describe-image';
import { AMI_ID_PATTERN } from '../../shared/measurements';
import { readPublishedMeasurements } from '../../shared/published-measurements';
import type { OnEventRequest, OnEventResponse, PublishedMeasurementsAttributes } from './types';

/**
 * Custom resource handler (Provider framework onEvent): reads an attestable image's published measurements from
 * its tags with `ec2:DescribeImages` and returns them as attributes. Runtime code: no aws-cdk-lib import.
 *
 * The physical id is the image id, so pointing the resource at another image is a replacement. Delete changes
 * nothing. Throttling and transient errors are retried by the SDK (standard mode, {@link MAX_ATTEMPTS} attempts).
 */

export { MAX_ATTEMPTS } from '../../shared/describe-image';

export async function handler(event: OnEventRequest): Promise<OnEventResponse> {
  if (event.RequestType === 'Delete') return { PhysicalResourceId: event.PhysicalResourceId };

  const props = event.ResourceProperties;
  const imageId = props.ImageId;
  if (typeof imageId !== 'string' || !AMI_ID_PATTERN.test(imageId)) {
    throw new Error(`ImageId must be an AMI id like ami-0123456789abcdef0, got ${JSON.stringify(imageId)}`);
  }
  const stackAccount = event.StackId.split(':')[4];
  const ownerAccounts = [stackAccount, ...(props.AllowedOwnerAccounts ?? [])];

  const ec2 = newEc2Client();
  let image;
  try {
    image = await describeImage(ec2, imageId);
  } finally {
    ec2.destroy();
  }

  const published = readPublishedMeasurements(image, {
    secureBoot: props.SecureBoot === 'true',
    pcr7Only: props.Pcr7Only === 'true',
    measurementsSha256: props.ExpectedMeasurementsSha256 || undefined,
    ownerAccounts,
  });
  const data: PublishedMeasurementsAttributes = {
    Pcr4: published.pcr4,
    Pcr7: published.pcr7,
    Pcr12: published.pcr12,
    RecipeVersion: published.recipeVersion,
    MeasurementsSha256: published.measurementsSha256,
    Warnings: published.warnings.join('; ') || 'none',
  };
  for (const warning of published.warnings) console.warn(warning);
  return {
    PhysicalResourceId: imageId,
    Data: Object.fromEntries(Object.entries(data).filter(([, v]) => v !== undefined)) as PublishedMeasurementsAttributes,
  };
}
