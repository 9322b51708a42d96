import { App, Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { CfnInstance } from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { addComplianceChecks } from '../bin/compliance';
import { ConsumerStack } from '../bin/consumer-stack';
import { ModelOwnerStack } from '../bin/model-owner-stack';
import { sampleSettingsFromContext } from '../bin/sample-settings';
import cdkJson from '../cdk.json';
import { readModelDeployment } from '../lib/cli/model-deployment-outputs';
import { hex384, sealingKeys } from './fixtures';

/** The sample app as `npx cdk synth` builds it (bin/app.ts), from the context in cdk.json. */
function sampleApp(context: Record<string, unknown> = {}) {
  const app = new App({ context: { ...cdkJson.context, ...context } });
  const settings = sampleSettingsFromContext(app);
  const owner = new ModelOwnerStack(app, 'SealedInferenceModelOwner', settings, { env: { account: settings.accounts?.modelOwner } });
  const consumer = new ConsumerStack(app, 'SealedInferenceConsumer', settings, { env: { account: settings.accounts?.consumer } });
  addComplianceChecks(app);
  return { app, owner, consumer, ownerTemplate: () => Template.fromStack(owner), consumerTemplate: () => Template.fromStack(consumer) };
}

const PINNED = { imageId: 'ami-0123456789abcdef0', pcr4: hex384('a4'), pcr12: hex384('00') };
const ACCOUNTS = { 'sealed-inference:modelOwnerAccount': '111111111111', 'sealed-inference:consumerAccount': '222222222222' };
type Statement = { Sid: string; Principal: unknown; Condition: Record<string, Record<string, unknown>> };
const keyStatements = (template: Template): Statement[] =>
  Object.values(sealingKeys(template))[0].Properties.KeyPolicy.Statement;
const unsealConditions = (template: Template) =>
  keyStatements(template).filter((s) => s.Sid.startsWith('UnsealOnlyOnAttestedImage')).map((s) => s.Condition.StringEqualsIgnoreCase);

test('synthesizes with no credentials, environment-agnostic, with no finding of AwsSolutions, NIST 800-53 r5, HIPAA ' +
  'Security or PCI DSS 3.2.1 left unacknowledged', () => {
  const { app, owner, consumer } = sampleApp();
  expect(owner.account).toMatch(/^\$\{Token/);
  expect(consumer.account).toMatch(/^\$\{Token/);
  expect(() => app.synth()).not.toThrow();
});

describe("CloudFormation's built-in template validation, which cdk synth skips for speed, its findings as errors", () => {
  const validated = (change: (consumer: Stack) => void = () => undefined) => {
    const { app, consumer } = sampleApp({ '@aws-cdk/core:validateAgainstDefaultRules': true });
    change(consumer);
    return () => app.synth();
  };

  test('passes on both templates', () => {
    expect(validated()).not.toThrow();
  });

  test('fails on a property CloudFormation does not know', () => {
    const careless = validated((consumer) => {
      const instance = consumer.node.findAll().find((c) => c instanceof CfnInstance) as CfnInstance;
      instance.addPropertyOverride('NoSuchProperty', 'x');
    });
    expect(careless).toThrow(/ERROR NoSuchProperty: Additional properties are not allowed[\s\S]*CloudFormation Validate/);
  });
});

describe("the model owner's stack", () => {
  test('holds the sealing key and the bucket, and nothing that runs the model', () => {
    const template = sampleApp().ownerTemplate();
    expect(Object.keys(sealingKeys(template))).toHaveLength(1);
    template.resourceCountIs('AWS::EC2::Instance', 0);
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['aws.kms'], detail: { resources: { ARN: [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^Key'), 'Arn'] }] } } },
    });
  });

  test("unseals only for the consumer's instance role, named before it exists, on an attested image", () => {
    const template = sampleApp(ACCOUNTS).ownerTemplate();
    const [unseal] = keyStatements(template).filter((s) => s.Sid.startsWith('UnsealOnlyOnAttestedImage'));
    expect(unseal.Principal).toEqual({ AWS: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::222222222222:root']] } });
    expect(unseal.Condition.ArnEquals).toEqual({
      'aws:PrincipalArn': {
        'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::222222222222:role/SealedInferenceInstance-', { Ref: 'AWS::Region' }]],
      },
    });
    expect(Object.keys(unseal.Condition.StringEqualsIgnoreCase)).toEqual([
      'kms:RecipientAttestation:NitroTPMPCR4',
      'kms:RecipientAttestation:NitroTPMPCR12',
    ]);
  });

  test("requires the consumer's VPC on every unseal once context names it, and any path before", () => {
    const sourceVpc = (template: Template) =>
      keyStatements(template).filter((s) => s.Sid.startsWith('UnsealOnlyOnAttestedImage')).map((s) => s.Condition.StringEquals['aws:SourceVpc']);
    expect(sourceVpc(sampleApp(ACCOUNTS).ownerTemplate())).toEqual([undefined]);
    const pinned = sampleApp({ ...ACCOUNTS, 'sealed-inference:consumerVpcId': 'vpc-0123456789abcdef0' }).ownerTemplate();
    expect(sourceVpc(pinned)).toEqual(['vpc-0123456789abcdef0']);
    expect(() => sampleApp({ 'sealed-inference:consumerVpcId': 'vpc-1' })).toThrow(
      'Context sealed-inference:consumerVpcId must be a VPC id (vpc-0123456789abcdef0); got "vpc-1"',
    );
  });

  test('outputs what `sealed-inference seal --stack-outputs` reads', () => {
    const template = sampleApp().ownerTemplate();
    const outputs = Object.fromEntries(Object.entries(template.toJSON().Outputs as Record<string, { Value: unknown }>)
      .map(([id, { Value }]) => [id, typeof Value === 'string' ? Value : `resolved-${id.toLowerCase()}`]));
    const deployment = readModelDeployment(JSON.stringify({ SealedInferenceModelOwner: outputs }), 'owner.json');
    expect(deployment).toMatchObject({ keyArn: 'resolved-keyarn', bucket: 'resolved-modelbucketname', prefix: 'models/', modelName: 'llama-3.2-1b-instruct' });
  });

  test("outputs the images and PCRs the key is sealed to, for the owner's reviewer", () => {
    const template = sampleApp({ 'sealed-inference:image': PINNED }).ownerTemplate();
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(Object.fromEntries(Object.entries(outputs).filter(([id]) => id.startsWith('AllowedImage')).map(([id, o]) => [id, o.Value])))
      .toEqual({ AllowedImage1Id: PINNED.imageId, AllowedImage1Pcr4: PINNED.pcr4, AllowedImage1Pcr12: PINNED.pcr12 });
  });

  test('reads the model owner from context', () => {
    const ownerArn = 'arn:aws:iam::111111111111:role/model-owner';
    const { owner, ownerTemplate } = sampleApp({ 'sealed-inference:modelOwnerArn': ownerArn });
    expect(JSON.stringify(sealingKeys(ownerTemplate()))).toContain(ownerArn);
    expect(Annotations.fromStack(owner).findWarning('*', Match.stringLikeRegexp('No model owner'))).toEqual([]);
  });

  test('without a model owner in context, synth warns once', () => {
    const { owner, ownerTemplate } = sampleApp();
    ownerTemplate();
    expect(Annotations.fromStack(owner).findWarning('*', Match.stringLikeRegexp('No model owner'))).toEqual([
      expect.objectContaining({ id: '/SealedInferenceModelOwner' }),
    ]);
  });
});

describe("the consumer's stack", () => {
  test("takes the owner's key and bucket as parameters, and creates neither", () => {
    const template = sampleApp().consumerTemplate();
    expect(sealingKeys(template)).toEqual({});
    template.resourceCountIs('AWS::S3::Bucket', 0);
    template.hasParameter('SealingKeyArn', { Type: 'String', AllowedPattern: Match.stringLikeRegexp('^\\^arn:aws') });
    template.hasParameter('ModelBucketName', { Type: 'String' });
    const userData = JSON.stringify(Object.values(template.findResources('AWS::EC2::Instance'))[0].Properties.UserData);
    expect(userData).toContain('{"Ref":"SealingKeyArn"}');
    expect(userData).toContain('{"Ref":"ModelBucketName"}');
  });

  test('outputs its VPC, which the owner may then require', () => {
    const outputs = sampleApp().consumerTemplate().toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(outputs.VpcId.Value).toEqual({ Ref: expect.stringMatching(/^InferenceNetworkVpc/) });
  });

  test('gives its instance role the name the owner admits', () => {
    const { owner, consumerTemplate } = sampleApp(ACCOUNTS);
    const [unseal] = keyStatements(Template.fromStack(owner)).filter((s) => s.Sid.startsWith('UnsealOnlyOnAttestedImage'));
    const admitted = JSON.stringify(unseal.Condition.ArnEquals['aws:PrincipalArn']);
    consumerTemplate().hasResourceProperties('AWS::IAM::Role', {
      RoleName: { 'Fn::Join': ['', ['SealedInferenceInstance-', { Ref: 'AWS::Region' }]] },
    });
    expect(admitted).toContain(':iam::222222222222:role/SealedInferenceInstance-",{"Ref":"AWS::Region"}');
  });

  test("deploys to the accounts context names, the bucket imported from the owner's", () => {
    const { owner, consumer } = sampleApp(ACCOUNTS);
    expect([owner.account, consumer.account]).toEqual(['111111111111', '222222222222']);
    const instance = consumer.inference.attestedInstance;
    expect(instance.applianceConfig.objects.manifest).toBe('models/llama-3.2-1b-instruct.manifest.json');
    expect(consumer.inference.modelBucket.env.account).toBe('111111111111');
  });
});

describe('images', () => {
  test('takes the image as a parameter by default and reads its measurements at deploy time, in both stacks', () => {
    const { ownerTemplate, consumerTemplate } = sampleApp();
    for (const template of [ownerTemplate(), consumerTemplate()]) {
      template.hasParameter('ImageId', { Type: 'AWS::EC2::Image::Id' });
      template.hasParameter('ExpectedMeasurementsSha256', { Default: '', AllowedPattern: '^([0-9a-fA-F]{64})?$' });
      template.hasResourceProperties('Custom::PublishedImageMeasurements', {
        ImageId: { Ref: 'ImageId' },
        SecureBoot: 'false',
        ExpectedMeasurementsSha256: { Ref: 'ExpectedMeasurementsSha256' },
      });
    }
    consumerTemplate().hasResourceProperties('AWS::EC2::Instance', { ImageId: { Ref: 'ImageId' } });
    expect(unsealConditions(ownerTemplate())).toEqual([
      {
        'kms:RecipientAttestation:NitroTPMPCR4': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr4'] },
        'kms:RecipientAttestation:NitroTPMPCR12': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr12'] },
      },
    ]);
  });

  test('reads a Secure Boot image as PCR4, PCR7 and PCR12 when context says so', () => {
    const template = sampleApp({ 'sealed-inference:secureBoot': 'true' }).ownerTemplate();
    expect(unsealConditions(template)).toEqual([
      {
        'kms:RecipientAttestation:NitroTPMPCR4': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr4'] },
        'kms:RecipientAttestation:NitroTPMPCR7': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr7'] },
        'kms:RecipientAttestation:NitroTPMPCR12': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr12'] },
      },
    ]);
  });

  test('pins the measurements in both templates when context gives them, with no parameter', () => {
    const { app, ownerTemplate, consumerTemplate } = sampleApp({ 'sealed-inference:image': JSON.stringify(PINNED) });
    for (const template of [ownerTemplate(), consumerTemplate()]) {
      expect(template.toJSON().Parameters.ImageId).toBeUndefined();
      template.resourceCountIs('Custom::PublishedImageMeasurements', 0);
    }
    expect(unsealConditions(ownerTemplate())).toEqual([
      { 'kms:RecipientAttestation:NitroTPMPCR4': hex384('a4'), 'kms:RecipientAttestation:NitroTPMPCR12': hex384('00') },
    ]);
    expect(() => app.synth()).not.toThrow();
  });

  test('allows a next image during an upgrade, read at deploy time or pinned', () => {
    const read = sampleApp({ 'sealed-inference:nextImage': 'ami-0fedcba9876543210' }).ownerTemplate();
    expect(unsealConditions(read)).toHaveLength(2);
    read.hasResourceProperties('Custom::PublishedImageMeasurements', { ImageId: 'ami-0fedcba9876543210' });
    const pinned = sampleApp({ 'sealed-inference:nextImage': PINNED }).ownerTemplate();
    expect(unsealConditions(pinned)[1]).toMatchObject({ 'kms:RecipientAttestation:NitroTPMPCR4': hex384('a4') });
  });

  test('rejects malformed pinned measurements from context at synth time', () => {
    expect(() => sampleApp({ 'sealed-inference:image': { ...PINNED, pcr4: 'abc' } })).toThrow(
      /PCR4 of ami-0123456789abcdef0 must be a SHA-384/,
    );
  });
});

describe('compliance', () => {
  test('writes every acknowledgment and its reason into the templates', () => {
    const { ownerTemplate, consumerTemplate } = sampleApp();
    const instance = Object.values(consumerTemplate().findResources('AWS::EC2::Instance'))[0];
    expect(instance.Metadata.cdk_nag.rules_to_suppress).toEqual(
      expect.arrayContaining([{ id: 'AwsSolutions-EC29', reason: expect.stringContaining('replaced on every image upgrade') }]),
    );
    type Acknowledged = { Metadata?: { cdk_nag?: { rules_to_suppress: Array<{ reason: string }> } } };
    for (const template of [ownerTemplate(), consumerTemplate()]) {
      const resources = Object.values(template.toJSON().Resources) as Acknowledged[];
      for (const rule of resources.flatMap((r) => r.Metadata?.cdk_nag?.rules_to_suppress ?? [])) {
        expect(rule.reason.length).toBeGreaterThan(30);
      }
    }
  });

  test('fails synthesis on a finding nobody acknowledged', () => {
    const { app, owner } = sampleApp();
    new s3.Bucket(owner, 'Careless');
    expect(() => app.synth()).toThrow(/ERROR The S3 Bucket has server access logs disabled[\s\S]*SealedInferenceModelOwner\/Careless/);
  });

  test('fails synthesis on a HIPAA Security or PCI DSS 3.2.1 finding, each pack on its own', () => {
    const { app, consumer } = sampleApp();
    const unencrypted = new logs.LogGroup(consumer, 'Unencrypted', { retention: logs.RetentionDays.ONE_YEAR });
    Validations.of(unencrypted).acknowledge({
      id: 'NIST.800.53.R5-CloudWatchLogGroupEncrypted',
      reason: 'Acknowledged for one pack only, to show that the others still report it.',
    });
    let report = '';
    try {
      app.synth();
    } catch (error) {
      report = (error as Error).message;
    }
    expect(report).toMatch(/Acknowledge with 'HIPAA\.Security::HIPAA\.Security-CloudWatchLogGroupEncrypted'/);
    expect(report).toMatch(/Acknowledge with 'PCI\.DSS\.321::PCI\.DSS\.321-CloudWatchLogGroupEncrypted'/);
    expect(report).toContain('SealedInferenceConsumer/Unencrypted/Resource');
    expect(report).not.toMatch(/NIST\.800\.53\.R5-CloudWatchLogGroupEncrypted/);
  });
});

describe('context', () => {
  test('names the context key to set when one is missing', () => {
    expect(() => sampleSettingsFromContext(new App())).toThrow(
      'Context sealed-inference:modelName is not set: set it in cdk.json or with -c sealed-inference:modelName=...',
    );
  });

  test('wants both accounts or neither, each a 12-digit id', () => {
    expect(() => sampleApp({ 'sealed-inference:modelOwnerAccount': '111111111111' })).toThrow(
      'Context sealed-inference:consumerAccount is not set: set both sealed-inference:modelOwnerAccount and ' +
        'sealed-inference:consumerAccount, or neither',
    );
    expect(() => sampleApp({ ...ACCOUNTS, 'sealed-inference:consumerAccount': '2222' })).toThrow(
      'Context sealed-inference:consumerAccount must be a 12-digit AWS account id, as a string; got "2222"',
    );
  });
});
