import { DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { readPublishedMeasurements } from '../../published-measurements';
import type { OnEventRequest, OnEventResponse, PublishedMeasurementsAttributes } from './types';

/**
 * Custom resource handler (Provider framework onEvent): reads an attestable image's published measurements from
 * its tags with `ec2:DescribeImages` and returns them as attributes. Runtime code: no aws-cdk-lib import.
 *
 * The physical id is the image id, so pointing the resource at another image is a replacement. Delete changes
 * nothing. Throttling and transient errors are retried by the SDK (standard mode, {@link MAX_ATTEMPTS} attempts).
 */

/** Attempts per DescribeImages call, including the first. */
export const MAX_ATTEMPTS = 6;

export async function handler(event: OnEventRequest): Promise<OnEventResponse> {
  if (event.RequestType === 'Delete') return { PhysicalResourceId: event.PhysicalResourceId };

  const props = event.ResourceProperties;
  const imageId = props.ImageId;
  if (typeof imageId !== 'string' || !/^ami-[0-9a-f]{8,17}$/.test(imageId)) {
    throw new Error(`ImageId must be an AMI id like ami-0123456789abcdef0, got ${JSON.stringify(imageId)}`);
  }
  const stackAccount = event.StackId.split(':')[4];
  const ownerAccounts = [stackAccount, ...(props.AllowedOwnerAccounts ?? [])];

  const ec2 = new EC2Client({ maxAttempts: MAX_ATTEMPTS, retryMode: 'standard' });
  let images;
  try {
    images = (await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images ?? [];
  } catch (error) {
    const name = (error as { name?: string }).name ?? '';
    if (name.startsWith('InvalidAMIID')) {
      throw new Error(
        `Image ${imageId} was not found in this account and Region (${name}): check the image id, the Region, and ` +
          'that the image is shared with this account',
        { cause: error },
      );
    }
    throw new Error(`Could not describe image ${imageId}: ${(error as Error).message} (${name || 'unknown error'})`, {
      cause: error,
    });
  } finally {
    ec2.destroy();
  }
  const image = images.find((i) => i.ImageId === imageId);
  if (image === undefined) {
    throw new Error(
      `Image ${imageId} was not found in this account and Region: check the image id, the Region, and that the ` +
        'image is shared with this account',
    );
  }

  const published = readPublishedMeasurements(image, {
    secureBoot: props.SecureBoot === 'true',
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
