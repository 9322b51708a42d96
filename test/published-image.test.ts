import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { addComplianceChecks } from '../bin/compliance';
import { AttestableImage, SealedInference } from '../lib';
import { bundledHandlerDir } from '../lib/private/bundled-handler';
import { IMAGE_A, sealingKeys, testStack } from './fixtures';

const IMAGE_ID = 'ami-0aaaaaaaaaaaaaaaa';

function inference(stack: Stack, secureBoot = false, pcr7Only = false) {
  return new SealedInference(stack, 'Inference', {
    image: AttestableImage.fromPublishedMeasurements(stack, 'Image', { imageId: IMAGE_ID, secureBoot, pcr7Only }),
    additionalAllowedImages: [IMAGE_A],
    modelName: 'llama',
  });
}

function unsealStatements(stack: Stack) {
  const key = Object.values(sealingKeys(Template.fromStack(stack)))[0];
  return (key.Properties.KeyPolicy.Statement as Array<{ Sid: string; Condition: Record<string, Record<string, unknown>> }>)
    .filter((s) => s.Sid.startsWith('UnsealOnlyOnAttestedImage'));
}

const attr = (name: string) => ({ 'Fn::GetAtt': [Match.stringLikeRegexp('^Image'), name] });

test('seals the key to the attributes the reader returns, one statement per image', () => {
  const stack = testStack();
  inference(stack);
  const [published, pinned] = unsealStatements(stack);
  expect(unsealStatements(stack)).toHaveLength(2);
  expect(published.Condition.StringEqualsIgnoreCase).toEqual({
    'kms:RecipientAttestation:NitroTPMPCR4': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr4'] },
    'kms:RecipientAttestation:NitroTPMPCR12': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr12'] },
  });
  expect(pinned.Condition.StringEqualsIgnoreCase['kms:RecipientAttestation:NitroTPMPCR4']).toBe(IMAGE_A.measurements.pcr4);
});

test('a Secure Boot image is sealed to PCR4, PCR7 and PCR12', () => {
  const stack = testStack();
  inference(stack, true);
  expect(unsealStatements(stack)[0].Condition.StringEqualsIgnoreCase).toEqual({
    'kms:RecipientAttestation:NitroTPMPCR4': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr4'] },
    'kms:RecipientAttestation:NitroTPMPCR7': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr7'] },
    'kms:RecipientAttestation:NitroTPMPCR12': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr12'] },
  });
  Template.fromStack(stack).hasResourceProperties('Custom::PublishedImageMeasurements', { SecureBoot: 'true', Pcr7Only: 'false' });
});

test('a Secure Boot image is sealed to PCR7 alone only when asked, with a synth warning', () => {
  const stack = testStack();
  inference(stack, true, true);
  expect(unsealStatements(stack)[0].Condition.StringEqualsIgnoreCase).toEqual({
    'kms:RecipientAttestation:NitroTPMPCR7': { 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr7'] },
  });
  Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp('sealed to PCR7 alone.*sealed-inference:pcr7-only'));
});

test('pcr7Only without secureBoot throws', () => {
  const stack = testStack();
  expect(() => AttestableImage.fromPublishedMeasurements(stack, 'Image', { imageId: IMAGE_ID, pcr7Only: true }))
    .toThrow(/pcr7Only applies to a Secure Boot image/);
});

test('the key policy depends on the read, so a failing read stops the deployment before the policy changes', () => {
  const stack = testStack();
  inference(stack);
  const template = Template.fromStack(stack);
  template.hasResourceProperties('AWS::KMS::Key', {
    KeyPolicy: { Statement: Match.arrayWith([Match.objectLike({ Condition: Match.objectLike({ StringEqualsIgnoreCase: Match.objectLike({ 'kms:RecipientAttestation:NitroTPMPCR4': attr('Pcr4') }) }) })]) },
  });
  template.hasResourceProperties('Custom::PublishedImageMeasurements', {
    ImageId: IMAGE_ID,
    SecureBoot: 'false',
    ServiceToken: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SealedInferencePublishedMeasurementsProviderframeworkonEvent'), 'Arn'] },
  });
  // the read runs only once the reader may describe images
  const [reader] = Object.values(template.findResources('Custom::PublishedImageMeasurements'));
  expect(reader.DependsOn).toEqual([expect.stringMatching(/^SealedInferencePublishedMeasurementsProviderDescribeImages/)]);
});

test('outputs the measurements actually applied and what the reader noticed', () => {
  const stack = testStack();
  inference(stack);
  const outputs = Template.fromStack(stack).toJSON().Outputs as Record<string, { Value: unknown }>;
  const value = (prefix: string) => Object.entries(outputs).find(([id]) => id.startsWith(prefix))?.[1].Value;
  expect(value('InferenceAllowedImage1Pcr4')).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr4'] });
  expect(value('InferenceAllowedImage1Pcr12')).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Pcr12'] });
  expect(value('InferenceAllowedImage1Warnings')).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^Image/), 'Warnings'] });
  expect(value('InferenceAllowedImage2Warnings')).toBeUndefined(); // pinned: nothing was read
});

test('one provider per stack, allowed only ec2:DescribeImages, on a current Node.js runtime', () => {
  const stack = testStack();
  AttestableImage.fromPublishedMeasurements(stack, 'A', { imageId: 'ami-0123456789abcdef0' });
  AttestableImage.fromPublishedMeasurements(stack, 'B', { imageId: IMAGE_ID, secureBoot: true });
  const template = Template.fromStack(stack);
  template.resourceCountIs('Custom::PublishedImageMeasurements', 2);
  template.resourceCountIs('AWS::Lambda::Function', 2); // the reader and the Provider framework's function
  template.hasResourceProperties('AWS::Lambda::Function', { Runtime: 'nodejs24.x', Handler: 'index.handler' });
  template.hasResourceProperties('AWS::IAM::Policy', {
    PolicyName: Match.stringLikeRegexp('DescribeImages'),
    PolicyDocument: { Statement: [{ Action: 'ec2:DescribeImages', Effect: 'Allow', Resource: '*' }] },
  });
});

test('passes the expected digest and other owners to the reader', () => {
  const stack = testStack();
  AttestableImage.fromPublishedMeasurements(stack, 'Image', {
    imageId: IMAGE_ID,
    expectedMeasurementsSha256: 'AB'.repeat(32),
    allowedOwnerAccounts: ['222222222222'],
  });
  Template.fromStack(stack).hasResourceProperties('Custom::PublishedImageMeasurements', {
    ExpectedMeasurementsSha256: 'ab'.repeat(32),
    AllowedOwnerAccounts: ['222222222222'],
  });
});

test.each([
  [{ imageId: 'ami-XYZ' }, /Image id must look like ami-0123456789abcdef0, got "ami-XYZ"/],
  [{ imageId: IMAGE_ID, expectedMeasurementsSha256: 'abc' }, /expectedMeasurementsSha256 must be the SHA-256.*got "abc"/],
  [{ imageId: IMAGE_ID, allowedOwnerAccounts: ['me'] }, /allowedOwnerAccounts must hold 12-digit account ids, got "me"/],
])('rejects bad input at synth time: %j', (props, message) => {
  expect(() => AttestableImage.fromPublishedMeasurements(testStack(), 'Image', props)).toThrow(message);
});

test('synthesizes with the cdk-nag packs and no unacknowledged finding', () => {
  const app = new App();
  inference(new Stack(app, 'Reader', { env: { account: '111111111111', region: 'eu-west-1' } }));
  addComplianceChecks(app);
  expect(() => app.synth()).not.toThrow();
});

describe('the bundled handler', () => {
  const root = path.join(__dirname, '..');

  test('is found from the sources and from the compiled library', () => {
    const expected = path.join(root, 'assets', 'published-measurements-handler');
    expect(bundledHandlerDir('published-measurements-handler', path.join(root, 'lib'))).toBe(expected);
    expect(bundledHandlerDir('published-measurements-handler', path.join(root, 'dist', 'lib'))).toBe(expected);
  });

  test('says how to build it when it is missing', () => {
    expect(() => bundledHandlerDir('no-such-handler', path.join(root, 'lib'))).toThrow(
      /The bundled handler .*no-such-handler.index\.js is missing: run `npm run build`/,
    );
  });

  test('outside the package, says where it looked', () => {
    expect(() => bundledHandlerDir('published-measurements-handler', fs.mkdtempSync(path.join(os.tmpdir(), 'x-')))).toThrow(
      /Cannot find the cdk-sealed-inference package root above/,
    );
  });
});
