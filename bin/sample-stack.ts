import { Annotations, App, Stack, StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { AttestableImage, PcrMeasurements, SealedInference } from '../lib';

/** The sample deployment's settings, as `cdk.json` context provides them. */
export interface SampleStackProps extends StackProps {
  /** The attestable image and its measurements. */
  readonly image: SampleImage;
  /** The sealed model's name. */
  readonly modelName: string;
  /** CIDR blocks of the clients allowed to reach the service. */
  readonly clientCidrs: string[];
  /** ARN of the model owner's role, allowed to seal and upload. */
  readonly modelOwnerArn?: string;
}

/** An image id with its measurements; `example` marks the placeholder values shipped in `cdk.json`. */
export interface SampleImage extends PcrMeasurements {
  readonly imageId: string;
  readonly example?: boolean;
}

/** Context keys the sample app reads. */
export const CONTEXT = {
  image: 'sealed-inference:image',
  modelName: 'sealed-inference:modelName',
  clientCidrs: 'sealed-inference:clientCidrs',
  modelOwnerArn: 'sealed-inference:modelOwnerArn',
};

/** Reads the sample's settings from context, failing with the key to set when one is missing. */
export function sampleStackPropsFromContext(app: App): SampleStackProps {
  const required = (key: string) => {
    const value = app.node.tryGetContext(key);
    if (value === undefined) throw new Error(`Context ${key} is not set: set it in cdk.json or with -c ${key}=...`);
    return value;
  };
  const clientCidrs = app.node.tryGetContext(CONTEXT.clientCidrs) ?? [];
  return {
    description: 'Confidential LLM inference: a sealed model served by an attested Zero Operator Access instance',
    image: typeof required(CONTEXT.image) === 'string' ? JSON.parse(required(CONTEXT.image)) : required(CONTEXT.image),
    modelName: required(CONTEXT.modelName),
    clientCidrs: typeof clientCidrs === 'string' ? JSON.parse(clientCidrs) : clientCidrs,
    modelOwnerArn: app.node.tryGetContext(CONTEXT.modelOwnerArn),
  };
}

/** The sample deployment: one sealed model behind Zero Operator Access, in an isolated network. */
export class SampleStack extends Stack {
  public readonly inference: SealedInference;

  constructor(scope: Construct, id: string, props: SampleStackProps) {
    super(scope, id, props);
    const { imageId, example, ...measurements } = props.image;
    if (example) {
      Annotations.of(this).addWarningV2(
        'sealed-inference:example-image',
        `The image ${imageId} and its measurements are EXAMPLE values from cdk.json: a key sealed to them unseals ` +
          `nothing. Set context ${CONTEXT.image} to your image's id and its pcr_measurements.json values ` +
          '(and drop "example").',
      );
    }
    this.inference = new SealedInference(this, 'Inference', {
      image: AttestableImage.fromMeasurements(imageId, measurements),
      modelName: props.modelName,
      servicePeers: props.clientCidrs.map((cidr) => ec2.Peer.ipv4(cidr)),
    });
    if (props.modelOwnerArn) {
      this.inference.allowModelOwner(new iam.ArnPrincipal(props.modelOwnerArn));
    } else {
      Annotations.of(this).addWarningV2(
        'sealed-inference:no-model-owner',
        `No model owner: nobody may seal models with the key. Set context ${CONTEXT.modelOwnerArn} to the ARN of ` +
          "the owner's role.",
      );
    }
  }
}
