import { Annotations, Aws, Stack, StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { ModelBucket, roleInAccount, SealedModelKey, TamperAlarms } from '../lib';
import { addAllowedImageOutputs, addSealedModelOutputs } from '../lib/private/reviewer-outputs';
import { sampleImages } from './sample-images';
import { SampleSettings } from './sample-settings';

/** The name of the consumer's instance role, which the model owner's key and bucket admit before it exists. */
export const CONSUMER_INSTANCE_ROLE_NAME = `SealedInferenceInstance-${Aws.REGION}`;

/**
 * The model owner's half of the sample: the sealing key and the model bucket, in the owner's account. The key
 * unseals only for the consumer's instance role, and only on an attested instance of an allowed image; nothing in
 * the consumer's account, its administrators included, can change that. Alarms watch the key here, where its
 * changes are logged.
 */
export class ModelOwnerStack extends Stack {
  public readonly key: SealedModelKey;
  public readonly modelBucket: ModelBucket;

  constructor(scope: Construct, id: string, settings: SampleSettings, props: StackProps = {}) {
    super(scope, id, {
      description: "Confidential LLM inference, the model owner's account: the sealing key and the sealed model's bucket",
      ...props,
    });
    const allowedImages = sampleImages(this, settings);
    this.key = new SealedModelKey(this, 'Key', {
      allowedImages,
      modelNames: [settings.modelName],
      unsealVpcId: settings.consumerVpcId,
    });
    this.modelBucket = new ModelBucket(this, 'Models');
    const consumerInstance = roleInAccount(settings.accounts?.consumer ?? Aws.ACCOUNT_ID, CONSUMER_INSTANCE_ROLE_NAME);
    this.key.grantUnseal(consumerInstance);
    this.modelBucket.grantFetch(consumerInstance);
    if (settings.modelOwnerArn) {
      const owner = new iam.ArnPrincipal(settings.modelOwnerArn);
      this.key.grantSeal(owner);
      this.modelBucket.grantUpload(owner);
    } else {
      Annotations.of(this).addWarningV2(
        'sealed-inference:no-model-owner',
        'No model owner: nobody may seal models with the key or upload them. Set context sealed-inference:modelOwnerArn.',
      );
    }
    new TamperAlarms(this, 'TamperAlarms', { keyArn: this.key.keyArn, imageIds: [] });

    // What `sealed-inference seal --stack-outputs` reads and the consumer's stack takes as parameters (KeyArn,
    // ModelBucketName), and what the key is sealed to, for the owner's reviewer.
    addSealedModelOutputs(this, {
      key: this.key,
      modelBucket: this.modelBucket,
      modelName: settings.modelName,
      modelPrefix: this.modelBucket.modelPrefix,
    }, 'The model the key seals');
    addAllowedImageOutputs(this, allowedImages);
  }
}
