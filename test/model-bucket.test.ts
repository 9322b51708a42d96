import { App, Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { ModelBucket, SealedModelKey } from '../lib';
import { IMAGE_A, testStack } from './fixtures';

function bucket(props: ConstructorParameters<typeof ModelBucket>[2] = {}) {
  const stack = testStack();
  const models = new ModelBucket(stack, 'Models', props);
  return { stack, models };
}

const modelBucketOf = (template: Template) =>
  Object.values(template.findResources('AWS::S3::Bucket', { Properties: { LoggingConfiguration: Match.anyValue() } }))[0];

test('is private, versioned, logged, encrypted and retained', () => {
  Template.fromStack(bucket().stack).hasResource('AWS::S3::Bucket', {
    DeletionPolicy: 'Retain',
    UpdateReplacePolicy: 'Retain',
    Properties: {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      VersioningConfiguration: { Status: 'Enabled' },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      LoggingConfiguration: { DestinationBucketName: Match.anyValue(), LogFilePrefix: 'model-bucket/' },
      LifecycleConfiguration: {
        Rules: [
          Match.objectLike({
            NoncurrentVersionExpiration: { NoncurrentDays: 30 },
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
          }),
        ],
      },
    },
  });
});

test('refuses plain HTTP and TLS below 1.2', () => {
  const statements = Template.fromStack(bucket().stack).findResources('AWS::S3::BucketPolicy');
  const all = JSON.stringify(statements);
  expect(all).toContain('"aws:SecureTransport":"false"');
  expect(all).toContain('"s3:TlsVersion":1.2');
});

test('keeps noncurrent versions as long as asked', () => {
  const template = Template.fromStack(bucket({ noncurrentVersionExpiration: Duration.days(90) }).stack);
  expect(JSON.stringify(modelBucketOf(template).Properties.LifecycleConfiguration)).toContain('"NoncurrentDays":90');
});

test('encrypts with a separate KMS key when given', () => {
  const stack = testStack();
  const key = new kms.Key(stack, 'BucketKey');
  new ModelBucket(stack, 'Models', { encryptionKey: key });
  expect(modelBucketOf(Template.fromStack(stack)).Properties.BucketEncryption).toMatchObject({
    ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' }, BucketKeyEnabled: true }],
  });
});

test('refuses the sealing key for encryption at rest', () => {
  const app = new App();
  const stack = new Stack(app, 'S');
  const sealing = new SealedModelKey(stack, 'Sealing', {
    allowedImages: [IMAGE_A],
    unsealers: [iam.Role.fromRoleArn(stack, 'W', 'arn:aws:iam::111111111111:role/w')],
  });
  new ModelBucket(stack, 'Models', { encryptionKey: kms.Key.fromKeyArn(stack, 'Same', sealing.keyArn) });
  expect(() => app.synth()).toThrow(/encryptionKey is the sealing key S\/Sealing: S3 could not decrypt with it/);
});

test('grants upload, fetch and listing on the prefix only, across accounts through the bucket policy', () => {
  const { stack, models } = bucket();
  models.grantUpload(new iam.ArnPrincipal('arn:aws:iam::222222222222:role/owner'), 'models/');
  const workload = new iam.Role(stack, 'Workload', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
  models.grantFetch(workload, 'models/');
  const template = Template.fromStack(stack);
  template.hasResourceProperties('AWS::S3::BucketPolicy', {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({
          Effect: 'Allow',
          Principal: { AWS: 'arn:aws:iam::222222222222:role/owner' },
          Action: ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
          Resource: { 'Fn::Join': ['', [Match.anyValue(), '/models/*']] },
        }),
      ]),
    },
  });
  template.hasResourceProperties('AWS::IAM::Policy', {
    PolicyDocument: {
      Statement: [
        { Effect: 'Allow', Action: 's3:GetObject', Resource: { 'Fn::Join': ['', [Match.anyValue(), '/models/*']] } },
        // Listing only the prefix, so that a model not uploaded yet reads as missing (404), not as refused (403).
        { Effect: 'Allow', Action: 's3:ListBucket', Resource: Match.anyValue(), Condition: { StringLike: { 's3:prefix': ['models/*'] } } },
      ],
    },
  });
});

test.each(['/models/', 'models', 'models/*', '../x/', 'a//b/'])('rejects the prefix %j', (prefix) => {
  const { models, stack } = bucket();
  const role = new iam.Role(stack, 'R', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
  expect(() => models.grantFetch(role, prefix)).toThrow(/Prefix must be empty or a path ending in '\/'/);
});

describe('an imported bucket', () => {
  test('grants under its model prefix by default, in identity policies', () => {
    const stack = testStack();
    const models = ModelBucket.fromModelBucketAttributes(stack, 'Models', { bucketName: 'owner-models', modelPrefix: 'sealed/' });
    const role = new iam.Role(stack, 'Workload', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
    expect(models.modelPrefix).toBe('sealed/');
    expect(models.grantFetch(role).success).toBe(true);
    const template = Template.fromStack(stack);
    expect(template.findResources('AWS::S3::BucketPolicy')).toEqual({});
    expect(JSON.stringify(template.findResources('AWS::IAM::Policy'))).toContain(':s3:::owner-models/sealed/*');
  });

  test("in another account, says at synth which statements the owner's bucket policy needs, in a warning and an output", () => {
    const stack = testStack();
    const models = ModelBucket.fromModelBucketAttributes(stack, 'Models', { bucketName: 'owner-models', account: '222222222222' });
    const role = new iam.Role(stack, 'Workload', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
    models.grantFetch(role);
    const template = Template.fromStack(stack);
    const [warning] = Annotations.fromStack(stack).findWarning('/Test/Models', Match.anyValue());
    expect(warning.entry.data).toMatch(
      /^The bucket owner-models is imported: .*To fetch for Test\/Workload, its owner must add to the bucket policy .*"s3:GetObject".*"s3:ListBucket".*grantFetch\(\).*\[ack: sealed-inference:imported-bucket-policy\]$/,
    );
    const [request] = Object.values(template.findOutputs('*', { Description: Match.stringLikeRegexp('^Bucket policy statements the owner of owner-models must add to fetch') }));
    // The statements, with the role's ARN resolved when the stack deploys.
    expect(JSON.stringify(request.Value)).toContain('owner-models/models/*');
    expect(JSON.stringify(request.Value)).toMatch(/"Fn::GetAtt":\["Workload[0-9A-F]{8}","Arn"\]/);
  });

  test('in this account, asks its owner for nothing', () => {
    const stack = testStack();
    const models = ModelBucket.fromModelBucketAttributes(stack, 'Models', { bucketName: 'owner-models' });
    models.grantUpload(new iam.Role(stack, 'Owner', { assumedBy: new iam.AccountRootPrincipal() }));
    expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toEqual([]);
    expect(Template.fromStack(stack).findOutputs('*')).toEqual({});
  });

  test('fromBucketName stores models under models/', () => {
    expect(ModelBucket.fromBucketName(testStack(), 'Models', 'owner-models').modelPrefix).toBe('models/');
  });

  test('rejects a malformed prefix', () => {
    expect(() => ModelBucket.fromModelBucketAttributes(testStack(), 'Models', { bucketName: 'b', modelPrefix: '/models' }))
      .toThrow(/Prefix must be empty or a path ending in '\/'/);
  });
});
