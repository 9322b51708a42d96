/**
 * The production shape: the model owner's account holds the key and the bucket, the consumer's account runs the
 * network and the attested instance, and the consumer's stack reaches the owner's key and bucket only through their
 * imports. The policies both stacks synthesize (the key policy and bucket policy of the owner's stack, the identity
 * policies of the consumer's) are evaluated together by an independent IAM simulator, request by request.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { addComplianceChecks } from '../bin/compliance';
import {
  AttestableImage,
  AttestedInstance,
  IsolatedNetwork,
  ModelBucket,
  SealedModelKey,
  ZeroOperatorAccessSecurityGroup,
} from '../lib';
import { pseudoParameters, resolveIntrinsics } from './iam-simulation';
import {
  BUCKET_NAME, CONSUMER_ACCOUNT, describeOwnerConsumerRequests, KEY_ARN, MEASUREMENTS, MODEL_OWNER, OWNER_ACCOUNT, REGION,
} from './owner-consumer-requests';

const BUCKET_ARN = `arn:aws:s3:::${BUCKET_NAME}`;
const MODEL = 'llama';

const INSTANCE_ROLE_NAME = 'sealed-inference-instance';
const INSTANCE_ROLE = `arn:aws:iam::${CONSUMER_ACCOUNT}:role/${INSTANCE_ROLE_NAME}`;
/** The instance as KMS and S3 see it: a session of its role. */
const INSTANCE = `arn:aws:sts::${CONSUMER_ACCOUNT}:assumed-role/${INSTANCE_ROLE_NAME}/i-0123456789abcdef0`;


/** The two stacks, in `app`. */
function deployment(app: App) {
  // The owner's stack: the key and the bucket, naming the consumer's instance role by its ARN.
  const owner = new Stack(app, 'ModelOwner', { env: { account: OWNER_ACCOUNT, region: REGION } });
  const instanceRole = iam.Role.fromRoleArn(owner, 'ConsumerInstanceRole', INSTANCE_ROLE, { mutable: false });
  new SealedModelKey(owner, 'Key', {
    allowedImages: [AttestableImage.fromMeasurements('ami-0123456789abcdef0', MEASUREMENTS)],
    unsealers: [instanceRole],
    sealers: [new iam.ArnPrincipal(MODEL_OWNER)],
    modelNames: [MODEL],
  });
  const ownedBucket = new ModelBucket(owner, 'Models');
  ownedBucket.grantFetch(instanceRole);
  ownedBucket.grantUpload(new iam.ArnPrincipal(MODEL_OWNER));

  // The consumer's stack: network and instance, the key and the bucket imported.
  const consumer = new Stack(app, 'Consumer', { env: { account: CONSUMER_ACCOUNT, region: REGION } });
  const network = new IsolatedNetwork(consumer, 'Network');
  const securityGroup = new ZeroOperatorAccessSecurityGroup(consumer, 'SecurityGroup', {
    vpc: network.vpc,
    servicePeers: [ec2.Peer.ipv4('10.0.0.0/16')],
    endpointPeers: [],
  });
  network.allowEndpointsFrom(securityGroup);
  new AttestedInstance(consumer, 'Instance', {
    vpc: network.vpc,
    image: AttestableImage.fromMeasurements('ami-0123456789abcdef0', MEASUREMENTS),
    securityGroup,
    key: SealedModelKey.fromSealedModelKeyAttributes(consumer, 'OwnersKey', { keyArn: KEY_ARN, modelNames: [MODEL] }),
    modelBucket: ModelBucket.fromModelBucketAttributes(consumer, 'OwnersModels', {
      bucketName: BUCKET_NAME,
      account: OWNER_ACCOUNT,
    }),
    modelName: MODEL,
    roleName: INSTANCE_ROLE_NAME,
  });
  return { owner, ownedBucket, consumer };
}

const { owner, ownedBucket, consumer } = deployment(new App());

const ownerTemplate = Template.fromStack(owner);
const consumerTemplate = Template.fromStack(consumer);

/** The properties of the one resource of `type` in `template`. */
function only(template: Template, type: string): Record<string, unknown> {
  const found = Object.values(template.findResources(type));
  if (found.length !== 1) throw new Error(`Expected one ${type}, found ${found.length}`);
  return found[0].Properties;
}

const modelBucketId = owner.getLogicalId(ownedBucket.bucket.node.defaultChild as s3.CfnBucket);
const ownerReferences = { ...pseudoParameters(OWNER_ACCOUNT, REGION), [`${modelBucketId}.Arn`]: BUCKET_ARN, [modelBucketId]: BUCKET_NAME };
const KEY_POLICY = resolveIntrinsics(only(ownerTemplate, 'AWS::KMS::Key').KeyPolicy, ownerReferences) as object;
const BUCKET_POLICY = resolveIntrinsics(
  Object.values(ownerTemplate.findResources('AWS::S3::BucketPolicy', { Properties: { Bucket: { Ref: modelBucketId } } }))[0]
    .Properties.PolicyDocument,
  ownerReferences,
) as object;
/** The identity policies the consumer's stack attaches to the instance role. */
const INSTANCE_POLICIES = Object.values(consumerTemplate.findResources('AWS::IAM::Policy'))
  .filter((policy) => JSON.stringify(policy.Properties.Roles).includes('InstanceRole'))
  .map((policy) => resolveIntrinsics(policy.Properties.PolicyDocument, pseudoParameters(CONSUMER_ACCOUNT, REGION)) as object);
describeOwnerConsumerRequests({
  keyPolicy: KEY_POLICY,
  bucketPolicy: BUCKET_POLICY,
  model: MODEL,
  instance: INSTANCE,
  instancePolicies: INSTANCE_POLICIES,
});

test('names the instance role as the owner names it in the key policy', () => {
  consumerTemplate.hasResourceProperties('AWS::IAM::Role', { RoleName: INSTANCE_ROLE_NAME });
});

describe("the consumer's synth", () => {
  test("warns that the imported key's policy is the owner's to change, with the statement to add", () => {
    Annotations.fromStack(consumer).hasWarning(
      '/Consumer/OwnersKey',
      Match.stringLikeRegexp('is imported.*must add.*kms:RecipientAttestation:NitroTPMPCR4.*UnsealOnlyOnAttestedImage1.*sealed-inference:imported-key-policy'),
    );
  });

  /** The statements the consumer's output `description` asks the owner for, with the instance role's ARN resolved. */
  const requested = (description: RegExp) => {
    const [output] = Object.values(consumerTemplate.findOutputs('*')).filter((o) => description.test(o.Description));
    return JSON.parse(
      resolveIntrinsics(output.Value, {
        ...pseudoParameters(CONSUMER_ACCOUNT, REGION),
        [`${Object.keys(consumerTemplate.findResources('AWS::IAM::Role', { Properties: { RoleName: INSTANCE_ROLE_NAME } }))[0]}.Arn`]: INSTANCE_ROLE,
      }) as string,
    ) as object[];
  };

  test("outputs the key policy statement to add, equal to the owner's for the same role and image", () => {
    const ownerStatement = (KEY_POLICY as { Statement: Array<{ Sid: string }> }).Statement.find((s) => s.Sid === 'UnsealOnlyOnAttestedImage1');
    expect(requested(/^Key policy statements/)).toEqual([ownerStatement]);
  });

  test("outputs the bucket policy statements to add, equal to the owner's for the same role", () => {
    const ownerStatements = (BUCKET_POLICY as { Statement: Array<{ Principal?: { AWS?: string } }> }).Statement
      .filter((s) => s.Principal?.AWS === INSTANCE_ROLE);
    expect(ownerStatements).toHaveLength(2);
    expect(requested(/^Bucket policy statements/)).toEqual(ownerStatements);
  });
});

test('both stacks pass AwsSolutions, NIST 800-53 r5, HIPAA Security and PCI DSS 3.2.1', () => {
  const app = new App();
  deployment(app);
  addComplianceChecks(app);
  expect(() => app.synth()).not.toThrow();
});
