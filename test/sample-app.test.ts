import { App } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { addComplianceChecks } from '../bin/compliance';
import { SampleStack, sampleStackPropsFromContext } from '../bin/sample-stack';
import cdkJson from '../cdk.json';

/** The sample app as `npx cdk synth` builds it, from the context in cdk.json. */
function sampleApp(context: Record<string, unknown> = {}) {
  const app = new App({ context: { ...cdkJson.context, ...context } });
  const stack = new SampleStack(app, 'SealedInference', sampleStackPropsFromContext(app));
  addComplianceChecks(app);
  return { app, stack };
}

test('synthesizes with no credentials, environment-agnostic, and no unacknowledged cdk-nag finding', () => {
  const { app, stack } = sampleApp();
  expect(stack.account).toMatch(/^\$\{Token/);
  expect(() => app.synth()).not.toThrow();
});

test('says clearly that the shipped image values are examples', () => {
  const { stack } = sampleApp();
  Annotations.fromStack(stack).hasWarning('/SealedInference', Match.stringLikeRegexp('EXAMPLE values from cdk.json'));
});

test('does not call real values examples', () => {
  const image = { ...cdkJson.context['sealed-inference:image'], example: undefined };
  const { stack } = sampleApp({ 'sealed-inference:image': image });
  expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('EXAMPLE'))).toEqual([]);
});

test('writes every acknowledgment and its reason into the template metadata', () => {
  const { stack } = sampleApp();
  const instance = Object.values(Template.fromStack(stack).findResources('AWS::EC2::Instance'))[0];
  expect(instance.Metadata.cdk_nag.rules_to_suppress).toEqual(
    expect.arrayContaining([{ id: 'AwsSolutions-EC29', reason: expect.stringContaining('replaced on every image upgrade') }]),
  );
  type Acknowledged = { Metadata?: { cdk_nag?: { rules_to_suppress: Array<{ reason: string }> } } };
  const resources = Object.values(Template.fromStack(stack).toJSON().Resources) as Acknowledged[];
  for (const rule of resources.flatMap((r) => r.Metadata?.cdk_nag?.rules_to_suppress ?? [])) {
    expect(rule.reason.length).toBeGreaterThan(30);
  }
});

test('fails synthesis on a finding nobody acknowledged', () => {
  const { app, stack } = sampleApp();
  new s3.Bucket(stack, 'Careless');
  expect(() => app.synth()).toThrow(/ERROR The S3 Bucket has server access logs disabled[\s\S]*SealedInference\/Careless/);
});

test('reads the model owner from context', () => {
  const ownerArn = 'arn:aws:iam::222222222222:role/owner';
  const { stack } = sampleApp({ 'sealed-inference:modelOwnerArn': ownerArn });
  expect(JSON.stringify(Template.fromStack(stack).findResources('AWS::KMS::Key'))).toContain(ownerArn);
  expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('No model owner'))).toEqual([]);
});

test('names the context key to set when one is missing', () => {
  const app = new App({ context: { 'sealed-inference:image': cdkJson.context['sealed-inference:image'] } });
  expect(() => sampleStackPropsFromContext(app)).toThrow(
    'Context sealed-inference:modelName is not set: set it in cdk.json or with -c sealed-inference:modelName=...',
  );
});

test('rejects malformed measurements from context at synth time', () => {
  const image = { ...cdkJson.context['sealed-inference:image'], pcr4: 'abc' };
  expect(() => sampleApp({ 'sealed-inference:image': image })).toThrow(/PCR4 of ami-0123456789abcdef0 must be a SHA-384/);
});
