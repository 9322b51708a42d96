import { DescribeImagesCommand, EC2Client, Image } from '@aws-sdk/client-ec2';

/**
 * Looking an image up with EC2 `DescribeImages`, with the errors worded for whoever has to fix them. Runtime code
 * (no aws-cdk-lib): the deploy-time custom resource handler and the CLI share it.
 *
 * @internal
 */

/** Attempts per DescribeImages call, including the first. */
export const MAX_ATTEMPTS = 6;

/**
 * An EC2 client that retries throttling and transient errors (standard mode, {@link MAX_ATTEMPTS} attempts).
 *
 * @param region the Region to call; by default the SDK's chain (`AWS_REGION`, the profile's region, ...)
 */
export function newEc2Client(region?: string): EC2Client {
  return new EC2Client({ region, maxAttempts: MAX_ATTEMPTS, retryMode: 'standard' });
}

/**
 * The image `imageId` as `DescribeImages` returns it. Throws with a message naming the image when EC2 does not know
 * it (or does not share it with the caller), and with the image id and EC2's error for any other failure.
 */
export async function describeImage(client: EC2Client, imageId: string): Promise<Image> {
  let images: Image[];
  try {
    images = (await client.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images ?? [];
  } catch (error) {
    const name = (error as { name?: string }).name ?? '';
    if (name.startsWith('InvalidAMIID')) throw notFound(imageId, ` (${name})`, error);
    throw new Error(`Could not describe image ${imageId}: ${(error as Error).message} (${name || 'unknown error'})`, {
      cause: error,
    });
  }
  const image = images.find((i) => i.ImageId === imageId);
  if (image === undefined) throw notFound(imageId, '');
  return image;
}

function notFound(imageId: string, detail: string, cause?: unknown): Error {
  return new Error(
    `Image ${imageId} was not found in this account and Region${detail}: check the image id, the Region, and that ` +
      'the image is shared with this account',
    { cause },
  );
}
