import { Command, InvalidArgumentError } from 'commander';
import { AMI_ID_PATTERN, PcrMeasurements, SHA256_HEX } from '../shared/measurements';
import { readPublishedMeasurements } from '../shared/published-measurements';
import { requireRegion } from './aws-region';
import type { CliDependencies, CliOutput } from './program';

/**
 * `sealed-inference measurements <ami-id>`: reads the measurements an attestable image publishes in its tags, checks
 * them as the deploy-time reader does, and prints the pinned values as JSON for cdk.json context
 * `sealed-inference:image` or `AttestableImage.fromMeasurements`.
 */

/** An image id with the PCR values a key policy is sealed to: the JSON the command prints. */
export interface ImageMeasurements extends PcrMeasurements {
  readonly imageId: string;
}

/** The command's options, as parsed. */
export interface MeasurementsOptions {
  /** @default - the SDK's chain: AWS_REGION, then the profile's region */
  readonly region?: string;
  readonly secureBoot?: boolean;
  readonly expectSha256?: string;
  /** @default - the owner is not checked, only named in a warning */
  readonly owner?: string[];
}

export function addMeasurementsCommand(program: Command, output: CliOutput, dependencies: CliDependencies = {}): Command {
  return program
    .command('measurements')
    .summary("print an image's published measurements as JSON for cdk.json")
    .description(
      "Read an attestable image's published measurements (its sealed-inference:* tags), check them, and print " +
        'them as JSON for cdk.json context sealed-inference:image or AttestableImage.fromMeasurements',
    )
    .argument('<ami-id>', 'the image, e.g. ami-0123456789abcdef0', parseImageId)
    .option('--region <region>', "the image's Region (default: AWS_REGION, else your AWS profile's region)")
    .option('--secure-boot', 'a UEFI Secure Boot image, pinned by PCR4, PCR7 and PCR12 (default: standard boot, PCR4 and PCR12)')
    .option(
      '--expect-sha256 <hex>',
      "require the image's sealed-inference:measurements-sha256 tag to be this SHA-256 of its pcr_measurements.json",
      parseSha256,
    )
    .option(
      '--owner <account>',
      'require the image to be owned by this account; repeat to allow several (default: not checked)',
      collectAccount,
    )
    .action(async (imageId: string, options: MeasurementsOptions) => {
      output.stdout(`${JSON.stringify(await measurements(imageId, options, output, dependencies), null, 2)}\n`);
    });
}

/**
 * Reads and checks the measurements of `imageId`, writing notes and warnings to `output.stderr`. Throws with the
 * reason when the image is refused or cannot be read.
 */
export async function measurements(
  imageId: string,
  options: MeasurementsOptions,
  output: Pick<CliOutput, 'stderr'>,
  dependencies: Pick<CliDependencies, 'ec2Client'> = {},
): Promise<ImageMeasurements> {
  const secureBoot = options.secureBoot ?? false;
  // Loaded here, not at start-up: the EC2 client takes about half a second to load, which no other command needs.
  const { describeImage, newEc2Client } = await import('../shared/describe-image');
  const ec2 = (dependencies.ec2Client ?? newEc2Client)(options.region);
  let image;
  try {
    await requireRegion(ec2, 'to read the image in');
    image = await describeImage(ec2, imageId);
  } finally {
    ec2.destroy();
  }
  const published = readPublishedMeasurements(image, {
    secureBoot,
    measurementsSha256: options.expectSha256,
    ownerAccounts: options.owner,
  });

  const note = (text: string) => output.stderr(`${text}\n`);
  note(`Image ${imageId}, owned by account ${image.OwnerId ?? '(unknown)'}`);
  note(`Recipe version: ${published.recipeVersion ?? '(not published)'}`);
  note(
    `pcr_measurements.json SHA-256: ${published.measurementsSha256 ?? '(not published)'}` +
      (options.expectSha256 !== undefined ? ' (as expected)' : published.measurementsSha256 ? ' (not checked)' : ''),
  );
  if (options.owner === undefined) {
    note(
      `warning: the image's owner was not checked. Account ${image.OwnerId ?? '(unknown)'} controls its tags, and so ` +
        `these measurements: if you trust it, pass --owner ${image.OwnerId ?? '<account>'}`,
    );
  }
  for (const warning of published.warnings) note(`warning: ${warning}`);

  return secureBoot
    ? { imageId, pcr4: published.pcr4, pcr7: published.pcr7, pcr12: published.pcr12 }
    : { imageId, pcr4: published.pcr4, pcr12: published.pcr12 };
}

/** Parses an AMI id argument. */
export function parseImageId(value: string): string {
  if (!AMI_ID_PATTERN.test(value)) throw new InvalidArgumentError('Expected an AMI id like ami-0123456789abcdef0.');
  return value;
}

function parseSha256(value: string): string {
  if (!SHA256_HEX.test(value)) throw new InvalidArgumentError('Expected a SHA-256: 64 hex characters.');
  return value.toLowerCase();
}

/** Collects a repeated account id option. */
export function collectAccount(value: string, previous: string[] | undefined): string[] {
  if (!/^\d{12}$/.test(value)) throw new InvalidArgumentError('Expected an AWS account id: 12 digits.');
  return [...(previous ?? []), value];
}
