import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { IAttestableImage } from '../attestable-image';
import { IsolatedNetwork } from '../isolated-network';
import { IModelBucket, ModelBucket } from '../model-bucket';
import type { SealedInferenceProps } from '../sealed-inference';
import { ISealedModelKey, SealedModelKey } from '../sealed-model-key';
import { DEFAULT_MODEL_PREFIX } from '../shared/appliance-config';
import { warnWithoutModelOwner } from './model-owner-check';

/** The sealing key and the model bucket of a sealed inference pattern, and where the model is stored in it. */
export class SealedModelStorage {
  public readonly key: ISealedModelKey;
  public readonly modelBucket: IModelBucket;
  public readonly modelPrefix: string;
  /** The key's ARN where this app holds the key, so that its changes are seen in this account's CloudTrail. */
  public readonly watchedKeyArn?: string;
  private readonly modelOwners: iam.IPrincipal[] = [];

  /**
   * Uses the key and the bucket `props` give (e.g. the model owner's, imported from their account), or creates them
   * under `scope` (`Key`, `Models`). Throws on a prop that applies only to a key or bucket created here.
   */
  constructor(
    private readonly scope: Construct,
    props: SealedInferenceProps,
    allowedImages: IAttestableImage[],
    isolatedNetwork?: IsolatedNetwork,
  ) {
    const path = scope.node.path;
    if (props.key && props.keyAdministration) {
      throw new Error(`${path}: keyAdministration applies to a key this construct creates, not to the key given (key)`);
    }
    if (props.modelBucket && props.bucketEncryptionKey) {
      throw new Error(
        `${path}: bucketEncryptionKey applies to a bucket this construct creates, not to the bucket given (modelBucket)`,
      );
    }
    this.key = props.key ?? new SealedModelKey(scope, 'Key', {
      allowedImages,
      modelNames: [props.modelName],
      keyAdministration: props.keyAdministration,
      unsealVpcId: isolatedNetwork?.vpc.vpcId,
    });
    this.modelBucket = props.modelBucket ?? new ModelBucket(scope, 'Models', { encryptionKey: props.bucketEncryptionKey });
    this.modelPrefix = props.modelPrefix ?? props.modelBucket?.modelPrefix ?? DEFAULT_MODEL_PREFIX;
    this.watchedKeyArn = this.key instanceof SealedModelKey ? this.key.keyArn : undefined;
    // A key and a bucket imported are administered elsewhere, with their model owner.
    if (this.policiesWrittenHere) warnWithoutModelOwner(scope, this.modelOwners);
  }

  /** Lets `principal` seal the model with the key and upload it to the bucket. It can never decrypt. */
  public allowModelOwner(principal: iam.IPrincipal): void {
    if (!this.policiesWrittenHere) {
      throw new Error(
        `${this.scope.node.path}: the key or the bucket is imported, its policy written elsewhere: admit the model ` +
          'owner where they are created (grantSeal on the SealedModelKey, grantUpload on the ModelBucket)',
      );
    }
    this.modelOwners.push(principal);
    this.key.grantSeal(principal);
    this.modelBucket.grantUpload(principal, this.modelPrefix);
  }

  /** Whether the key and the bucket are constructs of this app, whose policies it writes. */
  private get policiesWrittenHere(): boolean {
    return this.key instanceof SealedModelKey && this.modelBucket instanceof ModelBucket;
  }
}
