import { App, CfnParameter, Stack, StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { AttestableImage, IAttestableImage, PcrMeasurements, SealedInference } from '../lib';

/** The sample deployment's settings, as `cdk.json` context provides them. */
export interface SampleStackProps extends StackProps {
  /**
   * The image, pinned with its measurements in the template.
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
  /** Whether the images boot with UEFI Secure Boot (sealed to PCR7) rather than standard boot (PCR4, PCR12). */
  readonly secureBoot: boolean;
  /** The sealed model's name. */
  readonly modelName: string;
  /** CIDR blocks of the clients allowed to reach the service. */
  readonly clientCidrs: string[];
  /** ARN of the model owner's role, allowed to seal and upload. */
  readonly modelOwnerArn?: string;
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
};

/** Reads the sample's settings from context, failing with the key to set when one is missing. */
export function sampleStackPropsFromContext(app: App): SampleStackProps {
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
    description: 'Confidential LLM inference: a sealed model served by an attested Zero Operator Access instance',
    image: context(CONTEXT.image),
    nextImage: context(CONTEXT.nextImage),
    secureBoot: context(CONTEXT.secureBoot) ?? false,
    modelName,
    clientCidrs: context(CONTEXT.clientCidrs) ?? [],
    modelOwnerArn: context(CONTEXT.modelOwnerArn),
  };
}

/**
 * The sample deployment: one sealed model behind Zero Operator Access, in an isolated network.
 *
 * By default the image is a parameter of the template and its measurements are read from the image's tags when
 * the stack deploys; context `sealed-inference:image` pins them in the template instead.
 */
export class SampleStack extends Stack {
  public readonly inference: SealedInference;

  constructor(scope: Construct, id: string, props: SampleStackProps) {
    super(scope, id, props);
    this.inference = new SealedInference(this, 'Inference', {
      image: props.image ? pinned(props.image) : this.imageFromParameters(props.secureBoot),
      additionalAllowedImages: props.nextImage ? [this.nextImage(props.nextImage, props.secureBoot)] : [],
      modelName: props.modelName,
      servicePeers: props.clientCidrs.map((cidr) => ec2.Peer.ipv4(cidr)),
    });
    // Without an owner, SealedInference warns at synth (sealed-inference:no-model-owner).
    if (props.modelOwnerArn) this.inference.allowModelOwner(new iam.ArnPrincipal(props.modelOwnerArn));
  }

  private imageFromParameters(secureBoot: boolean): IAttestableImage {
    const imageId = new CfnParameter(this, 'ImageId', {
      type: 'AWS::EC2::Image::Id',
      description: 'The attestable image; its measurements are read from its tags and the key is sealed to them',
    });
    const expectedDigest = new CfnParameter(this, 'ExpectedMeasurementsSha256', {
      type: 'String',
      default: '',
      allowedPattern: '^([0-9a-fA-F]{64})?$',
      description: "Optional: SHA-256 of the image build's pcr_measurements.json, checked against the image's tag",
    });
    return AttestableImage.fromPublishedMeasurements(this, 'Image', {
      imageId: imageId.valueAsString,
      secureBoot,
      expectedMeasurementsSha256: expectedDigest.valueAsString,
    });
  }

  private nextImage(next: string | PinnedImage, secureBoot: boolean): IAttestableImage {
    return typeof next === 'string'
      ? AttestableImage.fromPublishedMeasurements(this, 'NextImage', { imageId: next, secureBoot })
      : pinned(next);
  }
}

function pinned({ imageId, pcr4, pcr7, pcr12 }: PinnedImage): IAttestableImage {
  return AttestableImage.fromMeasurements(imageId, { pcr4, pcr7, pcr12 });
}
