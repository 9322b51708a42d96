/**
 * The sample app with the model owner's and the consumer's accounts set, as `cdk.json` context names them: the
 * owner's key policy and bucket policy and the consumer's identity policies, resolved as CloudFormation would deploy
 * them, evaluated together by an independent IAM simulator, request by request.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { ConsumerStack } from '../bin/consumer-stack';
import { ModelOwnerStack } from '../bin/model-owner-stack';
import { sampleSettingsFromContext } from '../bin/sample-settings';
import cdkJson from '../cdk.json';
import { sealingKeys } from './fixtures';
import { attestationReporting, pseudoParameters, resolveIntrinsics, sealedModelContext, simulate } from './iam-simulation';
import {
  BUCKET_NAME, CONSUMER_ACCOUNT, describeOwnerConsumerRequests, KEY_ARN, MEASUREMENTS, MODEL_OWNER, OWNER_ACCOUNT, REGION,
} from './owner-consumer-requests';

const MODEL = cdkJson.context['sealed-inference:modelName'];

/** The sample's context with both accounts, the owner's sealing role and the image pinned. */
const CONTEXT = {
  ...cdkJson.context,
  'sealed-inference:modelOwnerAccount': OWNER_ACCOUNT,
  'sealed-inference:consumerAccount': CONSUMER_ACCOUNT,
  'sealed-inference:modelOwnerArn': MODEL_OWNER,
  'sealed-inference:image': { imageId: 'ami-0123456789abcdef0', ...MEASUREMENTS },
};
const app = new App({ context: CONTEXT });
const settings = sampleSettingsFromContext(app);
const owner = new ModelOwnerStack(app, 'SealedInferenceModelOwner', settings, { env: { account: OWNER_ACCOUNT, region: REGION } });
const consumer = new ConsumerStack(app, 'SealedInferenceConsumer', settings, { env: { account: CONSUMER_ACCOUNT, region: REGION } });

const INSTANCE_ROLE_NAME = `SealedInferenceInstance-${REGION}`;
/** The consumer's instance as KMS and S3 see it: a session of its role. */
const INSTANCE = `arn:aws:sts::${CONSUMER_ACCOUNT}:assumed-role/${INSTANCE_ROLE_NAME}/i-0123456789abcdef0`;

const ownerTemplate = Template.fromStack(owner);
const consumerTemplate = Template.fromStack(consumer);
const logicalId = (stack: Stack, construct: { node: { defaultChild?: unknown } }) =>
  stack.getLogicalId(construct.node.defaultChild as s3.CfnBucket);
const bucketId = logicalId(owner, owner.modelBucket.bucket);
const ownerReferences = {
  ...pseudoParameters(OWNER_ACCOUNT, REGION),
  [`${bucketId}.Arn`]: `arn:aws:s3:::${BUCKET_NAME}`,
  [bucketId]: BUCKET_NAME,
};
const KEY_POLICY = resolveIntrinsics(Object.values(sealingKeys(ownerTemplate))[0].Properties.KeyPolicy, ownerReferences) as object;
const BUCKET_POLICY = resolveIntrinsics(
  Object.values(ownerTemplate.findResources('AWS::S3::BucketPolicy', { Properties: { Bucket: { Ref: bucketId } } }))[0]
    .Properties.PolicyDocument,
  ownerReferences,
) as object;
/** The instance role's identity policies, with the owner stack's outputs given as the consumer's parameters. */
const INSTANCE_POLICIES = Object.values(consumerTemplate.findResources('AWS::IAM::Policy'))
  .filter((policy) => JSON.stringify(policy.Properties.Roles).includes('InferenceInstanceRole'))
  .map((policy) => resolveIntrinsics(policy.Properties.PolicyDocument, {
    ...pseudoParameters(CONSUMER_ACCOUNT, REGION),
    SealingKeyArn: KEY_ARN,
    ModelBucketName: BUCKET_NAME,
  }) as object);

describeOwnerConsumerRequests({
  keyPolicy: KEY_POLICY,
  bucketPolicy: BUCKET_POLICY,
  model: MODEL,
  instance: INSTANCE,
  instancePolicies: INSTANCE_POLICIES,
});

describe("with the consumer's VPC pinned in the owner's key", () => {
  const VPC = 'vpc-0123456789abcdef0';
  const pinnedApp = new App({ context: { ...CONTEXT, 'sealed-inference:consumerVpcId': VPC } });
  const pinnedOwner = new ModelOwnerStack(pinnedApp, 'SealedInferenceModelOwner', sampleSettingsFromContext(pinnedApp), {
    env: { account: OWNER_ACCOUNT, region: REGION },
  });
  const keyPolicy = resolveIntrinsics(Object.values(sealingKeys(Template.fromStack(pinnedOwner)))[0].Properties.KeyPolicy, ownerReferences) as object;
  const unseal = (sourceVpc: string) => simulate({
    principal: INSTANCE,
    action: 'kms:Decrypt',
    resource: KEY_ARN,
    resourceAccount: OWNER_ACCOUNT,
    context: { ...attestationReporting(MEASUREMENTS), ...sealedModelContext(MODEL), 'aws:SourceVpc': sourceVpc },
    identityPolicies: INSTANCE_POLICIES,
    resourcePolicy: keyPolicy,
  });

  test('the attested instance unseals through that VPC, and not through another', async () => {
    expect(await unseal(VPC)).toBe('Allowed');
    expect(await unseal('vpc-0fedcba9876543210')).not.toBe('Allowed');
  });
});
