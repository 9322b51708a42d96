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
import { hex384, sealingKeys } from './fixtures';
import { attestationReporting, type Context, pseudoParameters, resolveIntrinsics, sealedModelContext, simulate } from './iam-simulation';

const REGION = 'eu-west-1';
const OWNER_ACCOUNT = '111111111111';
const CONSUMER_ACCOUNT = '222222222222';
const KEY_ARN = `arn:aws:kms:${REGION}:${OWNER_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
const BUCKET_NAME = 'owner-sealed-models';
const MODEL = cdkJson.context['sealed-inference:modelName'];
const MODEL_OWNER = `arn:aws:iam::${OWNER_ACCOUNT}:role/model-owner`;
const MEASUREMENTS = { pcr4: hex384('a4'), pcr12: hex384('00') };
const OTHER_IMAGE = { pcr4: hex384('b4'), pcr12: hex384('00') };

const app = new App({
  context: {
    ...cdkJson.context,
    'sealed-inference:modelOwnerAccount': OWNER_ACCOUNT,
    'sealed-inference:consumerAccount': CONSUMER_ACCOUNT,
    'sealed-inference:modelOwnerArn': MODEL_OWNER,
    'sealed-inference:image': { imageId: 'ami-0123456789abcdef0', ...MEASUREMENTS },
  },
});
const settings = sampleSettingsFromContext(app);
const owner = new ModelOwnerStack(app, 'SealedInferenceModelOwner', settings, { env: { account: OWNER_ACCOUNT, region: REGION } });
const consumer = new ConsumerStack(app, 'SealedInferenceConsumer', settings, { env: { account: CONSUMER_ACCOUNT, region: REGION } });

const INSTANCE_ROLE_NAME = `SealedInferenceInstance-${REGION}`;
/** The consumer's instance as KMS and S3 see it: a session of its role. */
const INSTANCE = `arn:aws:sts::${CONSUMER_ACCOUNT}:assumed-role/${INSTANCE_ROLE_NAME}/i-0123456789abcdef0`;
/** Another role of the consumer's account, which its administrators could create or assume. */
const CONSUMER_ADMIN = `arn:aws:sts::${CONSUMER_ACCOUNT}:assumed-role/admin/someone`;
const ADMIN_POLICIES = [{ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] }];

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

const attested = (measurements = MEASUREMENTS): Context => ({ ...attestationReporting(measurements), ...sealedModelContext(MODEL) });
const onKey = (principal: string, action: string, identityPolicies: object[], context?: Context) =>
  simulate({ principal, action, resource: KEY_ARN, resourceAccount: OWNER_ACCOUNT, context, identityPolicies, resourcePolicy: KEY_POLICY });
const onModel = (principal: string, action: string, identityPolicies: object[], objectKey = `models/${MODEL}.sealed`) =>
  simulate({
    principal,
    action,
    resource: `arn:aws:s3:::${BUCKET_NAME}/${objectKey}`,
    resourceAccount: OWNER_ACCOUNT,
    identityPolicies,
    resourcePolicy: BUCKET_POLICY,
  });

describe("the consumer's instance", () => {
  test('unseals with an attestation of the allowed image', async () => {
    expect(INSTANCE_POLICIES.length).toBeGreaterThan(0);
    expect(await onKey(INSTANCE, 'kms:Decrypt', INSTANCE_POLICIES, attested())).toBe('Allowed');
  });

  test('cannot unseal without an attestation, or with one of another image', async () => {
    expect(await onKey(INSTANCE, 'kms:Decrypt', INSTANCE_POLICIES, sealedModelContext(MODEL))).not.toBe('Allowed');
    expect(await onKey(INSTANCE, 'kms:Decrypt', INSTANCE_POLICIES, attested(OTHER_IMAGE))).not.toBe('Allowed');
  });

  test("fetches the sealed model from the owner's bucket, and writes nothing there", async () => {
    expect(await onModel(INSTANCE, 's3:GetObject', INSTANCE_POLICIES)).toBe('Allowed');
    expect(await onModel(INSTANCE, 's3:PutObject', INSTANCE_POLICIES)).not.toBe('Allowed');
  });
});

describe("another role of the consumer's account, with *:* in its identity policy", () => {
  test('cannot unseal, even with an attestation of the allowed image', async () => {
    expect(await onKey(CONSUMER_ADMIN, 'kms:Decrypt', ADMIN_POLICIES, attested())).not.toBe('Allowed');
  });

  test.each(['kms:PutKeyPolicy', 'kms:CreateGrant', 'kms:ScheduleKeyDeletion', 'kms:DisableKey'])(
    "cannot change the owner's key: %s",
    async (action) => {
      expect(await onKey(CONSUMER_ADMIN, action, ADMIN_POLICIES)).not.toBe('Allowed');
    },
  );

  test("cannot read or replace the sealed model in the owner's bucket", async () => {
    expect(await onModel(CONSUMER_ADMIN, 's3:GetObject', ADMIN_POLICIES)).not.toBe('Allowed');
    expect(await onModel(CONSUMER_ADMIN, 's3:PutObject', ADMIN_POLICIES)).not.toBe('Allowed');
  });
});

describe('the model owner', () => {
  test('seals the named model and uploads it, and cannot unseal', async () => {
    expect(await onKey(MODEL_OWNER, 'kms:GenerateDataKey', [], sealedModelContext(MODEL))).toBe('Allowed');
    expect(await onModel(MODEL_OWNER, 's3:PutObject', [])).toBe('Allowed');
    expect(await onKey(MODEL_OWNER, 'kms:Decrypt', [], attested())).not.toBe('Allowed');
  });
});
