import { App } from 'aws-cdk-lib';
import { PcrMeasurements } from '../lib';

/** The sample deployment's settings, as `cdk.json` context provides them. */
export interface SampleSettings {
  /**
   * The image, pinned with its measurements in the templates.
   *
   * @default - the `ImageId` parameter, its measurements read from the image's tags at deploy time
   */
  readonly image?: PinnedImage;
  /**
   * The next image during an upgrade: an AMI id read at deploy time, or pinned with its measurements.
   *
   * @default - no next image
   */
  readonly nextImage?: string | PinnedImage;
  /** Whether the images boot with UEFI Secure Boot (sealed to PCR4, PCR7 and PCR12) rather than standard boot. */
  readonly secureBoot: boolean;
  /** The sealed model's name. */
  readonly modelName: string;
  /** CIDR blocks of the clients allowed to reach the service. */
  readonly clientCidrs: string[];
  /** ARN of the model owner's role, allowed to seal and upload. */
  readonly modelOwnerArn?: string;
  /**
   * The model owner's account and the consumer's: the key and the bucket are deployed to the first, the network and
   * the instance to the second. Both or neither.
   *
   * @default - both stacks deploy to the account of the credentials used
   */
  readonly accounts?: { readonly modelOwner: string; readonly consumer: string };
  /**
   * The consumer's VPC, once it exists (the consumer stack's `VpcId` output): the owner's key then unseals only for
   * requests that arrive through that VPC's KMS endpoint (`aws:SourceVpc`).
   *
   * @default - any network path; the attestation and the instance role still gate every unseal
   */
  readonly consumerVpcId?: string;
}

/** An image id with its measurements, as `sealed-inference measurements <ami-id>` prints them. */
export interface PinnedImage extends PcrMeasurements {
  readonly imageId: string;
}

/** Context keys the sample app reads. */
export const CONTEXT = {
  image: 'sealed-inference:image',
  nextImage: 'sealed-inference:nextImage',
  secureBoot: 'sealed-inference:secureBoot',
  modelName: 'sealed-inference:modelName',
  clientCidrs: 'sealed-inference:clientCidrs',
  modelOwnerArn: 'sealed-inference:modelOwnerArn',
  modelOwnerAccount: 'sealed-inference:modelOwnerAccount',
  consumerAccount: 'sealed-inference:consumerAccount',
  consumerVpcId: 'sealed-inference:consumerVpcId',
};

/** Reads the sample's settings from context, failing with the key to set when one is missing or malformed. */
export function sampleSettingsFromContext(app: App): SampleSettings {
  // Values given with -c on the command line arrive as strings; cdk.json gives them typed.
  const context = (key: string) => {
    const value = app.node.tryGetContext(key);
    return typeof value === 'string' && /^[[{]|^(true|false)$/.test(value.trim()) ? JSON.parse(value) : value;
  };
  const modelName = context(CONTEXT.modelName);
  if (modelName === undefined) {
    throw new Error(`Context ${CONTEXT.modelName} is not set: set it in cdk.json or with -c ${CONTEXT.modelName}=...`);
  }
  return {
    image: context(CONTEXT.image),
    nextImage: context(CONTEXT.nextImage),
    secureBoot: context(CONTEXT.secureBoot) ?? false,
    modelName,
    clientCidrs: context(CONTEXT.clientCidrs) ?? [],
    modelOwnerArn: context(CONTEXT.modelOwnerArn),
    accounts: accountsFrom(context(CONTEXT.modelOwnerAccount), context(CONTEXT.consumerAccount)),
    consumerVpcId: vpcIdFrom(context(CONTEXT.consumerVpcId)),
  };
}

function vpcIdFrom(vpcId: unknown): string | undefined {
  if (vpcId !== undefined && (typeof vpcId !== 'string' || !/^vpc-(?:[0-9a-f]{8}|[0-9a-f]{17})$/.test(vpcId))) {
    throw new Error(`Context ${CONTEXT.consumerVpcId} must be a VPC id (vpc-0123456789abcdef0); got ${JSON.stringify(vpcId)}`);
  }
  return vpcId;
}

function accountsFrom(modelOwner: unknown, consumer: unknown): SampleSettings['accounts'] {
  if (modelOwner === undefined && consumer === undefined) return undefined;
  for (const [key, account] of [[CONTEXT.modelOwnerAccount, modelOwner], [CONTEXT.consumerAccount, consumer]]) {
    if (account === undefined) {
      throw new Error(
        `Context ${key} is not set: set both ${CONTEXT.modelOwnerAccount} and ${CONTEXT.consumerAccount}, or neither`,
      );
    }
    if (typeof account !== 'string' || !/^\d{12}$/.test(account)) {
      throw new Error(`Context ${key} must be a 12-digit AWS account id, as a string; got ${JSON.stringify(account)}`);
    }
  }
  return { modelOwner: modelOwner as string, consumer: consumer as string };
}
