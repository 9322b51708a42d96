import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AttestableImage, PcrMeasurements, SealedModelKey } from '../../lib';

/** The account and partition the synthesized policy is resolved in. */
export const POLICY_ACCOUNT = '111111111111';

/** Resolves the intrinsics a key policy uses (Ref to pseudo parameters, Fn::Join) as CloudFormation would. */
function resolve(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(resolve);
  if (typeof value !== 'object' || value === null) return value;
  const entries = Object.entries(value);
  if (entries.length === 1) {
    const [[name, argument]] = entries;
    if (name === 'Ref') {
      const pseudo: Record<string, string> = { 'AWS::Partition': 'aws', 'AWS::AccountId': POLICY_ACCOUNT, 'AWS::Region': 'eu-west-1' };
      if (!(String(argument) in pseudo)) throw new Error(`cannot resolve Ref ${String(argument)} in a key policy`);
      return pseudo[String(argument)];
    }
    if (name === 'Fn::Join') {
      const [separator, parts] = argument as [string, unknown[]];
      return parts.map(resolve).join(separator);
    }
    if (name.startsWith('Fn::')) throw new Error(`cannot resolve ${name} in a key policy`);
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, resolve(v)]));
}

/**
 * The key policy this project's `SealedModelKey` writes for `images`, synthesized and resolved to the JSON text
 * `GetKeyPolicy` would return after deployment.
 */
export function synthesizedKeyPolicy(images: Array<{ imageId: string } & PcrMeasurements>): string {
  const stack = new Stack(new App(), 'Sealed', { env: { account: POLICY_ACCOUNT, region: 'eu-west-1' } });
  new SealedModelKey(stack, 'Key', {
    allowedImages: images.map(({ imageId, ...measurements }) => AttestableImage.fromMeasurements(imageId, measurements)),
    unsealers: [iam.Role.fromRoleArn(stack, 'Workload', `arn:aws:iam::${POLICY_ACCOUNT}:role/inference`)],
    sealers: [new iam.ArnPrincipal(`arn:aws:iam::${POLICY_ACCOUNT}:role/model-owner`)],
    modelNames: ['llama3'],
  });
  const keys = Template.fromStack(stack).findResources('AWS::KMS::Key');
  const [key] = Object.values(keys) as Array<{ Properties: { KeyPolicy: unknown } }>;
  return JSON.stringify(resolve(key.Properties.KeyPolicy));
}
