/**
 * Evaluates what the attested instance's role can do through the isolated network's endpoints, with an independent
 * IAM policy simulator (@cloud-copilot/iam-simulate), which evaluates VPC endpoint policies as AWS does: a request
 * through an endpoint must be allowed by the endpoint's policy as well as by the caller's identity policy.
 */
import { type EvaluationResult, runSimulation, type Simulation } from '@cloud-copilot/iam-simulate';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { SealedInference } from '../lib';
import { IMAGE_A } from './fixtures';

const ACCOUNT = '111111111111';
const REGION = 'eu-west-1';
/** The instance role as S3 and KMS see it: a session of the role. */
const INSTANCE = `arn:aws:sts::${ACCOUNT}:assumed-role/instance-role/i-0123456789abcdef0`;

const stack = new Stack(new App(), 'S', { env: { account: ACCOUNT, region: REGION } });
new SealedInference(stack, 'Inference', { image: IMAGE_A, modelName: 'llama', modelPrefix: 'models/' });
const template = Template.fromStack(stack).toJSON() as { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };

/** Names the template's buckets and keys as CloudFormation would once they exist. */
function physical(logicalId: string, attribute?: string): string {
  const type = template.Resources[logicalId]?.Type;
  if (type === 'AWS::S3::Bucket') return attribute === 'Arn' ? `arn:aws:s3:::${logicalId.toLowerCase()}` : logicalId.toLowerCase();
  if (type === 'AWS::KMS::Key') return `arn:aws:kms:${REGION}:${ACCOUNT}:key/${logicalId}`;
  throw new Error(`Cannot resolve ${logicalId}.${attribute ?? 'Ref'} (${type})`);
}

function resolve(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(resolve);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value);
  const [name, argument] = entries.length === 1 ? entries[0] : [];
  if (name === 'Ref' && argument === 'AWS::Partition') return 'aws';
  if (name === 'Ref') return physical(argument as string);
  if (name === 'Fn::GetAtt') return physical(...(argument as [string, string]));
  if (name === 'Fn::Join') {
    const [separator, parts] = argument as [string, unknown[]];
    return parts.map(resolve).join(separator);
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, resolve(v)]));
}

const ofType = (type: string) => Object.values(template.Resources).filter((r) => r.Type === type);
const endpoint = (service: string) => {
  const found = ofType('AWS::EC2::VPCEndpoint').find((r) => JSON.stringify(r.Properties.ServiceName).includes(`.${service}`));
  return { name: `${service}-endpoint`, policy: resolve(found!.Properties.PolicyDocument) };
};
const S3_ENDPOINT = endpoint('s3');
const KMS_ENDPOINT = endpoint('kms');
const ROLE_POLICIES = ofType('AWS::IAM::Policy')
  .filter((p) => JSON.stringify(p.Properties.Roles).includes('InstanceRole'))
  .map((p, i) => ({ name: `instance-role-${i}`, policy: resolve(p.Properties.PolicyDocument) }));

const MODEL_BUCKET = physical(Object.keys(template.Resources).find((id) => /^InferenceModels[0-9A-F]{8}$/.test(id))!);
const SEALING_KEY = physical(Object.keys(template.Resources).find((id) => /^InferenceKey[0-9A-F]{8}$/.test(id))!);
const OTHER_KEY = `arn:aws:kms:${REGION}:222222222222:key/5555abcd-12ab-34cd-56ef-1234567890ab`;

interface Call {
  readonly action: string;
  readonly resource: string;
  readonly context?: Record<string, string>;
  /** What someone attaches to the role later; nothing when omitted. */
  readonly addedToRole?: string[];
}

function keyDelegatingToItsAccount(keyArn: string) {
  const account = keyArn.split(':')[4];
  return {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: 'kms:*', Resource: '*' }],
  };
}

/** What the simulator decides for the instance calling through the VPC's endpoint for the call's service. */
async function throughEndpoint(call: Call): Promise<EvaluationResult> {
  const service = call.action.split(':')[0];
  const added = call.addedToRole
    ? [{ name: 'added-later', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: call.addedToRole, Resource: '*' }] } }]
    : [];
  const simulation: Simulation = {
    request: {
      principal: INSTANCE,
      action: call.action,
      resource: { resource: call.resource, accountId: call.resource.startsWith('arn:aws:s3') ? ACCOUNT : call.resource.split(':')[4] },
      contextVariables: call.context ?? {},
    },
    identityPolicies: [...ROLE_POLICIES, ...added],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    vpcEndpointPolicies: [service === 's3' ? S3_ENDPOINT : KMS_ENDPOINT],
    // A KMS call needs the key's policy to allow it too. The sealing key's own policy is simulated in
    // sealed-model-key.simulation.test.ts; here every key delegates to its account, so that only the role and the
    // endpoint decide.
    resourcePolicy: service === 'kms' ? keyDelegatingToItsAccount(call.resource) : undefined,
  };
  const result = await runSimulation(simulation, { simulationMode: 'Strict' });
  if (result.resultType !== 'single') throw new Error(JSON.stringify(result, null, 2));
  return result.overallResult;
}

const MODEL_OBJECT = `arn:aws:s3:::${MODEL_BUCKET}/models/llama.sealed`;

describe('through the S3 gateway endpoint, the instance', () => {
  test('reads the sealed model and lists its prefix', async () => {
    expect(await throughEndpoint({ action: 's3:GetObject', resource: MODEL_OBJECT })).toBe('Allowed');
    expect(await throughEndpoint({ action: 's3:ListBucket', resource: `arn:aws:s3:::${MODEL_BUCKET}`, context: { 's3:prefix': 'models/llama' } }))
      .toBe('Allowed');
  });

  test.each([
    ['another bucket', 'arn:aws:s3:::someone-elses-bucket/prompts.txt'],
    ['the model bucket outside the prefix', `arn:aws:s3:::${MODEL_BUCKET}/elsewhere/prompts.txt`],
    ['the model prefix itself', MODEL_OBJECT],
  ])('cannot put an object into %s, even with s3:* attached to its role later', async (_, resource) => {
    expect(await throughEndpoint({ action: 's3:PutObject', resource, addedToRole: ['s3:*'] })).not.toBe('Allowed');
  });

  test('cannot read another bucket, even with s3:* attached to its role later', async () => {
    const resource = 'arn:aws:s3:::someone-elses-bucket/anything';
    expect(await throughEndpoint({ action: 's3:GetObject', resource, addedToRole: ['s3:*'] })).toBe('ExplicitlyDenied');
  });
});

describe('through the KMS interface endpoint, the instance', () => {
  test('decrypts with the sealing key (the key policy then gates it on the attestation)', async () => {
    expect(await throughEndpoint({ action: 'kms:Decrypt', resource: SEALING_KEY })).toBe('Allowed');
  });

  test.each(['kms:Encrypt', 'kms:GenerateDataKey', 'kms:Decrypt'])(
    'cannot call %s with a key of another account, even with kms:* attached to its role later',
    async (action) => {
      expect(await throughEndpoint({ action, resource: OTHER_KEY, addedToRole: ['kms:*'] })).toBe('ExplicitlyDenied');
    },
  );

  test('cannot encrypt with the sealing key, which would make it a channel out', async () => {
    expect(await throughEndpoint({ action: 'kms:Encrypt', resource: SEALING_KEY, addedToRole: ['kms:*'] })).not.toBe('Allowed');
  });
});

describe('the endpoint policies alone, for any principal in the VPC', () => {
  test('let nobody put an object, whatever their identity policy', async () => {
    const simulation: Simulation = {
      request: {
        principal: `arn:aws:iam::${ACCOUNT}:role/admin`,
        action: 's3:PutObject',
        resource: { resource: 'arn:aws:s3:::someone-elses-bucket/x', accountId: ACCOUNT },
        contextVariables: {},
      },
      identityPolicies: [{ name: 'admin', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] } }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      vpcEndpointPolicies: [S3_ENDPOINT],
    };
    const result = await runSimulation(simulation, { simulationMode: 'Strict' });
    if (result.resultType !== 'single') throw new Error(JSON.stringify(result, null, 2));
    expect(result.overallResult).toBe('ImplicitlyDenied');
  });

  test('are not the default allow-all policy', () => {
    for (const { policy } of [S3_ENDPOINT, KMS_ENDPOINT]) {
      expect(JSON.stringify(policy)).not.toMatch(/"Action":"\*"|"Action":\["\*"\]/);
    }
  });
});
