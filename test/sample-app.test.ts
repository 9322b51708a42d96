import { App, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { CfnInstance } from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { addComplianceChecks } from '../bin/compliance';
import { SampleStack, sampleStackPropsFromContext } from '../bin/sample-stack';
import cdkJson from '../cdk.json';
import { hex384, sealingKeys } from './fixtures';

/** The sample app as `npx cdk synth` builds it, from the context in cdk.json. */
function sampleApp(context: Record<string, unknown> = {}) {
  const app = new App({ context: { ...cdkJson.context, ...context } });
  const stack = new SampleStack(app, 'SealedInference', sampleStackPropsFromContext(app));
  addComplianceChecks(app);
  return { app, stack, template: () => Template.fromStack(stack) };
}

const PINNED = { imageId: 'ami-0123456789abcdef0', pcr4: hex384('a4'), pcr12: hex384('00') };
const unsealConditions = (template: Template) =>
  Object.values(sealingKeys(template))[0]
    .Properties.KeyPolicy.Statement.filter((s: { Sid: string }) => s.Sid.startsWith('UnsealOnlyOnAttestedImage'))
    .map((s: { Condition: { StringEqualsIgnoreCase: unknown } }) => s.Condition.StringEqualsIgnoreCase);

test('synthesizes with no credentials, environment-agnostic, with no finding of AwsSolutions, NIST 800-53 r5, HIPAA ' +
  'Security or PCI DSS 3.2.1 left unacknowledged', () => {
  const { app, stack } = sampleApp();
  expect(stack.account).toMatch(/^\$\{Token/);
  expect(() => app.synth()).not.toThrow();
});

describe("CloudFormation's built-in template validation, which cdk synth skips for speed, its findings as errors", () => {
  const validated = (change: (stack: SampleStack) => void = () => undefined) => {
    const { app, stack } = sampleApp({ '@aws-cdk/core:validateAgainstDefaultRules': true });
    change(stack);
    return () => app.synth();
  };

  test('passes on the sample template', () => {
    expect(validated()).not.toThrow();
  });

  test('fails on a property CloudFormation does not know', () => {
    const careless = validated((stack) => {
      const instance = stack.node.findAll().find((c) => c instanceof CfnInstance) as CfnInstance;
      instance.addPropertyOverride('NoSuchProperty', 'x');
    });
    expect(careless).toThrow(/ERROR NoSuchProperty: Additional properties are not allowed[\s\S]*CloudFormation Validate/);
  });
});

test('takes the image as a parameter by default and reads its measurements at deploy time', () => {
  const template = sampleApp().template();
  template.hasParameter('ImageId', { Type: 'AWS::EC2::Image::Id' });
  template.hasParameter('ExpectedMeasurementsSha256', { Default: '', AllowedPattern: '^([0-9a-fA-F]{64})?$' });
  template.hasResourceProperties('Custom::PublishedImageMeasurements', {
    ImageId: { Ref: 'ImageId' },
    SecureBoot: 'false',
    ExpectedMeasurementsSha256: { Ref: 'ExpectedMeasurementsSha256' },
  });
  template.hasResourceProperties('AWS::EC2::Instance', { ImageId: { Ref: 'ImageId' } });
  expect(unsealConditions(template)).toEqual([
    {
      'kms:RecipientAttestation:NitroTPMPCR4': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr4'] },
      'kms:RecipientAttestation:NitroTPMPCR12': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr12'] },
    },
  ]);
});

test('reads a Secure Boot image as PCR4, PCR7 and PCR12 when context says so', () => {
  const template = sampleApp({ 'sealed-inference:secureBoot': 'true' }).template();
  expect(unsealConditions(template)).toEqual([
    {
      'kms:RecipientAttestation:NitroTPMPCR4': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr4'] },
      'kms:RecipientAttestation:NitroTPMPCR7': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr7'] },
      'kms:RecipientAttestation:NitroTPMPCR12': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr12'] },
    },
  ]);
});

test('pins the measurements in the template when context gives them, with no parameter', () => {
  const { app, template } = sampleApp({ 'sealed-inference:image': JSON.stringify(PINNED) });
  expect(template().toJSON().Parameters.ImageId).toBeUndefined();
  template().resourceCountIs('Custom::PublishedImageMeasurements', 0);
  expect(unsealConditions(template())).toEqual([
    { 'kms:RecipientAttestation:NitroTPMPCR4': hex384('a4'), 'kms:RecipientAttestation:NitroTPMPCR12': hex384('00') },
  ]);
  expect(() => app.synth()).not.toThrow();
});

test('allows a next image during an upgrade, read at deploy time or pinned', () => {
  const read = sampleApp({ 'sealed-inference:nextImage': 'ami-0fedcba9876543210' }).template();
  expect(unsealConditions(read)).toHaveLength(2);
  read.hasResourceProperties('Custom::PublishedImageMeasurements', { ImageId: 'ami-0fedcba9876543210' });
  const pinned = sampleApp({ 'sealed-inference:nextImage': PINNED }).template();
  expect(unsealConditions(pinned)[1]).toMatchObject({ 'kms:RecipientAttestation:NitroTPMPCR4': hex384('a4') });
});

test('writes every acknowledgment and its reason into the template metadata', () => {
  const template = sampleApp().template();
  const instance = Object.values(template.findResources('AWS::EC2::Instance'))[0];
  expect(instance.Metadata.cdk_nag.rules_to_suppress).toEqual(
    expect.arrayContaining([{ id: 'AwsSolutions-EC29', reason: expect.stringContaining('replaced on every image upgrade') }]),
  );
  type Acknowledged = { Metadata?: { cdk_nag?: { rules_to_suppress: Array<{ reason: string }> } } };
  const resources = Object.values(template.toJSON().Resources) as Acknowledged[];
  for (const rule of resources.flatMap((r) => r.Metadata?.cdk_nag?.rules_to_suppress ?? [])) {
    expect(rule.reason.length).toBeGreaterThan(30);
  }
});

test('fails synthesis on a finding nobody acknowledged', () => {
  const { app, stack } = sampleApp();
  new s3.Bucket(stack, 'Careless');
  expect(() => app.synth()).toThrow(/ERROR The S3 Bucket has server access logs disabled[\s\S]*SealedInference\/Careless/);
});

test('fails synthesis on a HIPAA Security or PCI DSS 3.2.1 finding, each pack on its own', () => {
  const { app, stack } = sampleApp();
  const unencrypted = new logs.LogGroup(stack, 'Unencrypted', { retention: logs.RetentionDays.ONE_YEAR });
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
  expect(report).toContain('SealedInference/Unencrypted/Resource');
  expect(report).not.toMatch(/NIST\.800\.53\.R5-CloudWatchLogGroupEncrypted/);
});

test('reads the model owner from context', () => {
  const ownerArn = 'arn:aws:iam::222222222222:role/owner';
  const { stack, template } = sampleApp({ 'sealed-inference:modelOwnerArn': ownerArn });
  expect(JSON.stringify(sealingKeys(template()))).toContain(ownerArn);
  expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('No model owner'))).toEqual([]);
});

test('without a model owner in context, synth warns once, from the construct', () => {
  const { stack, template } = sampleApp();
  template();
  expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('No model owner'))).toEqual([
    expect.objectContaining({ id: '/SealedInference/Inference' }),
  ]);
});

test('names the context key to set when one is missing', () => {
  expect(() => sampleStackPropsFromContext(new App())).toThrow(
    'Context sealed-inference:modelName is not set: set it in cdk.json or with -c sealed-inference:modelName=...',
  );
});

test('rejects malformed pinned measurements from context at synth time', () => {
  expect(() => sampleApp({ 'sealed-inference:image': { ...PINNED, pcr4: 'abc' } })).toThrow(
    /PCR4 of ami-0123456789abcdef0 must be a SHA-384/,
  );
});
