import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { MODEL_FETCH_ACTIONS, MODEL_LIST_ACTIONS, UNSEAL_ACTIONS } from './permissions';

/** What the appliance reaches through a VPC's endpoints: one bucket prefix and one key. */
export interface WorkloadDestinations {
  /** The bucket holding the sealed model. */
  readonly bucket: s3.IBucket;
  /** The prefix the sealed model's artifacts are stored under: empty or ending in '/'. */
  readonly modelPrefix: string;
  /** The ARN of the sealing key. */
  readonly keyArn: string;
}

/**
 * Endpoint policies that let through only what the appliance calls: S3 `GetObject` (which `HeadObject` is authorized
 * as) under the model's prefix and `ListBucket` of that prefix, and KMS `Decrypt` with the sealing key. Whatever
 * credentials reach the VPC, its endpoints carry no upload to another bucket and no call to another key.
 */
export function restrictEndpoints(
  s3Gateway: ec2.GatewayVpcEndpoint,
  kmsEndpoint: ec2.InterfaceVpcEndpoint,
  destinations: WorkloadDestinations,
): void {
  // Principal "*", the form endpoint policies take: the endpoint restricts what is called, IAM who may call it.
  const anyone = [new iam.StarPrincipal()];
  s3Gateway.addToPolicy(new iam.PolicyStatement({
    sid: 'ReadTheSealedModel',
    principals: anyone,
    actions: MODEL_FETCH_ACTIONS,
    resources: [destinations.bucket.arnForObjects(`${destinations.modelPrefix}*`)],
  }));
  s3Gateway.addToPolicy(new iam.PolicyStatement({
    sid: 'ListTheSealedModelPrefix',
    principals: anyone,
    actions: MODEL_LIST_ACTIONS,
    resources: [destinations.bucket.bucketArn],
    conditions: { StringLike: { 's3:prefix': [`${destinations.modelPrefix}*`] } },
  }));
  kmsEndpoint.addToPolicy(new iam.PolicyStatement({
    sid: 'UnsealWithTheSealingKey',
    principals: anyone,
    actions: UNSEAL_ACTIONS,
    resources: [destinations.keyArn],
  }));
}
