import { CfnOutput, CfnParameter, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { ModelBucket, SealedInference, SealedModelKey } from '../lib';
import { KMS_KEY_ARN_PATTERN } from '../lib/shared/appliance-config';
import { CONSUMER_INSTANCE_ROLE_NAME } from './model-owner-stack';
import { sampleImages } from './sample-images';
import { SampleSettings } from './sample-settings';

/**
 * The consumer's half of the sample: an isolated network and the attested instance, in the consumer's account. The
 * key and the bucket are the model owner's, named by the `SealingKeyArn` and `ModelBucketName` parameters (the
 * owner stack's `KeyArn` and `ModelBucketName` outputs); the instance role has the name the owner's key admits.
 */
export class ConsumerStack extends Stack {
  public readonly inference: SealedInference;

  constructor(scope: Construct, id: string, settings: SampleSettings, props: StackProps = {}) {
    super(scope, id, {
      description: "Confidential LLM inference, the consumer's account: the owner's sealed model served by an attested " +
        'Zero Operator Access instance, in an isolated network',
      ...props,
    });
    const keyArn = new CfnParameter(this, 'SealingKeyArn', {
      type: 'String',
      allowedPattern: KMS_KEY_ARN_PATTERN.source,
      constraintDescription: 'a KMS key ARN, arn:aws:kms:<region>:<account>:key/<id>: the owner stack\'s KeyArn output',
      description: "The model owner's sealing key: the KeyArn output of the owner's stack, in this Region",
    });
    const bucketName = new CfnParameter(this, 'ModelBucketName', {
      type: 'String',
      allowedPattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$',
      constraintDescription: "an S3 bucket name: the owner stack's ModelBucketName output",
      description: "The model owner's bucket of sealed models: the ModelBucketName output of the owner's stack",
    });
    const [image, ...additionalAllowedImages] = sampleImages(this, settings);
    this.inference = new SealedInference(this, 'Inference', {
      image,
      additionalAllowedImages,
      modelName: settings.modelName,
      servicePeers: settings.clientCidrs.map((cidr) => ec2.Peer.ipv4(cidr)),
      key: SealedModelKey.fromSealedModelKeyAttributes(this, 'OwnersKey', {
        keyArn: keyArn.valueAsString,
        modelNames: [settings.modelName],
      }),
      modelBucket: ModelBucket.fromModelBucketAttributes(this, 'OwnersModels', {
        bucketName: bucketName.valueAsString,
        account: settings.accounts?.modelOwner,
      }),
      instanceRoleName: CONSUMER_INSTANCE_ROLE_NAME,
    });
    new CfnOutput(this, 'VpcId', {
      value: this.inference.vpc.vpcId,
      description: "The VPC the instance unseals from: the owner's key may require it (context sealed-inference:consumerVpcId)",
    });
    // The owner's stack in this app writes what the imported key and bucket ask their owner for.
    const writtenByTheOwnersStack = "ModelOwnerStack writes these statements, naming this stack's instance role with roleInAccount().";
    Validations.of(this.node.findChild('OwnersKey')).acknowledge({
      id: 'Annotation::sealed-inference:imported-key-policy',
      reason: writtenByTheOwnersStack,
    });
    Validations.of(this.node.findChild('OwnersModels')).acknowledge({
      id: 'Annotation::sealed-inference:imported-bucket-policy',
      reason: writtenByTheOwnersStack,
    });
  }
}
