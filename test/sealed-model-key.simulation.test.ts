/**
 * Evaluates the key policy a SealedModelKey synthesizes with an independent IAM policy simulator
 * (@cloud-copilot/iam-simulate), request by request: who can unseal, seal or manage the key, and which bypasses the
 * explicit Deny statements close. Assertions on the template's shape would only restate the construct; these ask
 * what an evaluator of AWS's documented rules decides.
 */
import { anonymousPrincipal, type EvaluationResult, type SimulationRequestPrincipal } from '@cloud-copilot/iam-simulate';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AttestableImage, KeyAdministration, SealedModelKey } from '../lib';
import { nitroTpmPcrConditionKey } from '../lib/shared/measurements';
import { FORMAT_CONTEXT_KEY } from '../lib/shared/model-identity';
import {
  attestationReporting,
  type Context,
  encryptionContext,
  pseudoParameters,
  resolveIntrinsics,
  sealedModelContext,
  simulate,
} from './iam-simulation';

const ACCOUNT = '111111111111';
const REGION = 'eu-west-1';
const KEY_ARN = `arn:aws:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;

const WORKLOAD_ROLE = `arn:aws:iam::${ACCOUNT}:role/workload`;
/** The workload as KMS sees it: a session of its instance role, not the role itself. */
const WORKLOAD = `arn:aws:sts::${ACCOUNT}:assumed-role/workload/i-0123456789abcdef0`;
const OWNER = 'arn:aws:iam::222222222222:role/owner';
const OWNER_COLLEAGUE = 'arn:aws:iam::222222222222:role/colleague';
const IAM_ADMIN = `arn:aws:iam::${ACCOUNT}:role/admin`;
const KEY_ADMIN = `arn:aws:iam::${ACCOUNT}:role/key-admin`;
/** CloudFormation deploying the stack, as KMS sees it: a session of the CDK bootstrap's execution role. */
const DEPLOYMENT = `arn:aws:sts::${ACCOUNT}:assumed-role/cdk-hnb659fds-cfn-exec-role-${ACCOUNT}-${REGION}/AWSCloudFormation`;
const STRANGER = 'arn:aws:iam::333333333333:role/stranger';

type Pcrs = { pcr4: string; pcr12: string };
const IMAGE_1: Pcrs = { pcr4: '4a'.repeat(48), pcr12: 'c1'.repeat(48) };
const IMAGE_2: Pcrs = { pcr4: '4b'.repeat(48), pcr12: 'c2'.repeat(48) };

/** What the break-glass runbook has key administrators do: stop all unsealing, undo it, or end the key. */
const EMERGENCY_ACTIONS = ['kms:DisableKey', 'kms:EnableKey', 'kms:ScheduleKeyDeletion', 'kms:CancelKeyDeletion'];

/** The workload's VPC, and another one. */
const WORKLOAD_VPC = 'vpc-0a1b2c3d4e5f60718';
const OTHER_VPC = 'vpc-0f0e0d0c0b0a09080';

/** Synthesizes the key of the scenario and returns its policy as plain JSON. */
function synthesizeKeyPolicy(administration?: KeyAdministration, unsealVpcId?: string): object {
  const stack = new Stack(new App(), 'S', { env: { account: ACCOUNT, region: REGION } });
  new SealedModelKey(stack, 'Key', {
    unsealers: [iam.Role.fromRoleArn(stack, 'W', WORKLOAD_ROLE, { mutable: false })],
    sealers: [new iam.ArnPrincipal(OWNER)],
    modelNames: ['llama'],
    allowedImages: [
      AttestableImage.fromMeasurements('ami-0123456789abcdef0', IMAGE_1),
      AttestableImage.fromMeasurements('ami-0fedcba9876543210', IMAGE_2),
    ],
    keyAdministration: administration,
    unsealVpcId,
  });
  const keys = Object.values(Template.fromStack(stack).findResources('AWS::KMS::Key'));
  if (keys.length !== 1) throw new Error(`Expected one AWS::KMS::Key, found ${keys.length}`);
  return resolveIntrinsics(keys[0].Properties.KeyPolicy, pseudoParameters(ACCOUNT, REGION)) as object;
}

/** The default: administered by the stack's CloudFormation execution role, so only deployments change the policy. */
const THROUGH_DEPLOYMENTS = synthesizeKeyPolicy();
const DELEGATED = synthesizeKeyPolicy(KeyAdministration.delegatedToAccount());
const RESTRICTED = synthesizeKeyPolicy(KeyAdministration.restrictedTo([new iam.ArnPrincipal(KEY_ADMIN)]));
const IMMUTABLE = synthesizeKeyPolicy(KeyAdministration.immutablePolicy({ breakGlass: [new iam.ArnPrincipal(KEY_ADMIN)] }));
const ONE_VPC = synthesizeKeyPolicy(undefined, WORKLOAD_VPC);

/** `policy` with a statement added later that allows every principal to decrypt, with no condition. */
function withBroadAllow(policy: object): object {
  const document = policy as { Statement: object[] };
  const broad = { Sid: 'AddedLater', Effect: 'Allow', Principal: { AWS: '*' }, Action: 'kms:*', Resource: '*' };
  return { ...document, Statement: [...document.Statement, broad] };
}

/** The principal's identity policy, allowing `actions` on `resource`. */
function identityPolicy(actions: string[], resource: string) {
  const statement = { Effect: 'Allow', Action: actions, Resource: resource };
  return { Version: '2012-10-17', Statement: [statement] };
}

interface Request {
  readonly principal: SimulationRequestPrincipal;
  readonly action: string;
  readonly context?: Context;
  /** Actions the principal's identity policy allows; none when omitted. */
  readonly identityAllows?: string[];
  /** The resource the identity policy allows them on; every resource when omitted. */
  readonly identityResource?: string;
  /** The key policy; the default administration mode (through deployments) when omitted. */
  readonly keyPolicy?: object;
}

/** What the simulator decides for `request` against the key policy. */
function decide(request: Request): Promise<EvaluationResult> {
  return simulate({
    principal: request.principal,
    action: request.action,
    resource: KEY_ARN,
    resourceAccount: ACCOUNT,
    context: request.context,
    identityPolicies: request.identityAllows
      ? [identityPolicy(request.identityAllows, request.identityResource ?? '*')]
      : [],
    resourcePolicy: request.keyPolicy ?? THROUGH_DEPLOYMENTS,
  });
}

const sealedContext = (model = 'llama', extraPairs: Record<string, string> = {}) => sealedModelContext(model, extraPairs);

/** A context that names the format but no model. */
const NO_MODEL = encryptionContext({ [FORMAT_CONTEXT_KEY]: '1' });

/** The condition keys of a NitroTPM attestation document reporting `pcrs`, plus a sealed model's context. */
function attested(pcrs: Pcrs, context: Context = sealedContext()): Context {
  return { ...attestationReporting(pcrs), ...context };
}

const upperCase = (pcrs: Pcrs): Pcrs => ({ pcr4: pcrs.pcr4.toUpperCase(), pcr12: pcrs.pcr12.toUpperCase() });
const unseal = (principal: string, context: Context, identityAllows?: string[]) =>
  decide({ principal, action: 'kms:Decrypt', context, identityAllows });

const EVERYTHING = ['kms:*'];

describe('the attested workload', () => {
  test.each([
    ['image 1', IMAGE_1],
    ['image 2', IMAGE_2],
    ['image 1, PCRs reported in upper case', upperCase(IMAGE_1)],
  ])('unseals its model from an attested instance of %s', async (_, pcrs) => {
    expect(await unseal(WORKLOAD, attested(pcrs))).toBe('Allowed');
  });

  test('the role itself, not only its sessions, is the named unsealer', async () => {
    expect(await unseal(WORKLOAD_ROLE, attested(IMAGE_1))).toBe('Allowed');
  });

  test('cannot unseal on a chimera booting the kernel of image 1 with the command line of image 2', async () => {
    expect(await unseal(WORKLOAD, attested({ pcr4: IMAGE_1.pcr4, pcr12: IMAGE_2.pcr12 }))).toBe('ImplicitlyDenied');
  });

  test('cannot unseal on an instance whose command line was tampered with (PCR12 unknown): explicitly denied', async () => {
    expect(await unseal(WORKLOAD, attested({ pcr4: IMAGE_1.pcr4, pcr12: '00'.repeat(48) }))).toBe('ExplicitlyDenied');
  });

  test('cannot unseal with an attestation document that reports PCR4 but not PCR12', async () => {
    const withoutPcr12 = attested(IMAGE_1);
    delete withoutPcr12[nitroTpmPcrConditionKey(12)];
    expect(await unseal(WORKLOAD, withoutPcr12)).toBe('ExplicitlyDenied');
  });

  test('cannot unseal without an attestation document, even with kms:* in its identity policy', async () => {
    expect(await unseal(WORKLOAD, sealedContext())).toBe('ExplicitlyDenied');
    expect(await unseal(WORKLOAD, sealedContext(), EVERYTHING)).toBe('ExplicitlyDenied');
  });

  test('cannot unseal the data key of another model', async () => {
    expect(await unseal(WORKLOAD, attested(IMAGE_1, sealedContext('other')))).toBe('ImplicitlyDenied');
  });

  test('cannot unseal a data key whose encryption context carries an extra key', async () => {
    const context = sealedContext('llama', { 'sealed-inference:purpose': 'x' });
    expect(await unseal(WORKLOAD, attested(IMAGE_1, context))).toBe('ImplicitlyDenied');
  });

  test('cannot unseal a data key whose encryption context names no model', async () => {
    expect(await unseal(WORKLOAD, attested(IMAGE_1, NO_MODEL))).toBe('ImplicitlyDenied');
  });

  test.each([
    'kms:PutKeyPolicy',
    'kms:CreateGrant',
    'kms:ScheduleKeyDeletion',
    'kms:DisableKey',
    'kms:GenerateDataKey',
    'kms:ReEncryptFrom',
  ])('cannot take %s on its own key, even with kms:* in its identity policy', async (action) => {
    expect(await decide({ principal: WORKLOAD, action, identityAllows: EVERYTHING })).toBe('ExplicitlyDenied');
  });
});

describe('the per-PCR Deny statements, once someone adds an Allow of kms:* to every principal', () => {
  const keyPolicy = withBroadAllow(DELEGATED);
  const asAnyone = (principal: SimulationRequestPrincipal, context: Context) =>
    decide({ principal, action: 'kms:Decrypt', context, keyPolicy });

  test('still refuse a decrypt without an attestation document', async () => {
    expect(await asAnyone(IAM_ADMIN, sealedContext())).toBe('ExplicitlyDenied');
    expect(await asAnyone(WORKLOAD, sealedContext())).toBe('ExplicitlyDenied');
  });

  test.each([
    ['a wrong PCR4', { pcr4: '99'.repeat(48), pcr12: IMAGE_1.pcr12 }],
    ['a wrong PCR12', { pcr4: IMAGE_1.pcr4, pcr12: '99'.repeat(48) }],
  ])('still refuse a decrypt attested with %s', async (_, pcrs) => {
    expect(await asAnyone(IAM_ADMIN, attested(pcrs))).toBe('ExplicitlyDenied');
  });

  test('still refuse re-encryption, which never carries an attestation', async () => {
    expect(await decide({ principal: IAM_ADMIN, action: 'kms:ReEncryptFrom', context: sealedContext(), keyPolicy }))
      .toBe('ExplicitlyDenied');
  });

  // The control: the broad Allow does take effect, so the refusals above are the Deny statements' doing.
  test('leave only what an allowed image attests, which the broad Allow then admits for anyone of the account', async () => {
    expect(await asAnyone(IAM_ADMIN, attested(IMAGE_1))).toBe('Allowed');
  });
});

describe('a key that serves one VPC (unsealVpcId)', () => {
  /** A request through a VPC endpoint carries the endpoint's id and its VPC's; one to the public endpoint neither. */
  const from = (vpc?: string) =>
    decide({
      principal: WORKLOAD,
      action: 'kms:Decrypt',
      context: { ...attested(IMAGE_1), ...(vpc ? { 'aws:SourceVpc': vpc, 'aws:SourceVpce': 'vpce-0a1b2c3d4e5f60718' } : {}) },
      keyPolicy: ONE_VPC,
    });

  test('unseals through a KMS endpoint of that VPC', async () => {
    expect(await from(WORKLOAD_VPC)).toBe('Allowed');
  });

  test('does not unseal through an endpoint of another VPC, or the public KMS endpoint', async () => {
    expect(await from(OTHER_VPC)).toBe('ImplicitlyDenied');
    expect(await from(undefined)).toBe('ImplicitlyDenied');
  });
});

describe.each([
  ['through deployments (the default)', THROUGH_DEPLOYMENTS, 'ImplicitlyDenied'],
  ['delegated to the account', DELEGATED, 'Allowed'],
  ['restricted to a key administrator', RESTRICTED, 'ImplicitlyDenied'],
  ['with an immutable policy', IMMUTABLE, 'ImplicitlyDenied'],
])('an IAM administrator of the key account (kms:* on *), administration %s,', (_, keyPolicy, putKeyPolicy) => {
  const asAdmin = (action: string, context?: Context) =>
    decide({ principal: IAM_ADMIN, action, context, identityAllows: EVERYTHING, keyPolicy });

  test('cannot unseal, with or without an attestation of an allowed image', async () => {
    expect(await asAdmin('kms:Decrypt', attested(IMAGE_1))).toBe('ImplicitlyDenied');
    expect(await asAdmin('kms:Decrypt', sealedContext())).toBe('ExplicitlyDenied');
  });

  test('cannot give itself or anyone a grant', async () => {
    expect(await asAdmin('kms:CreateGrant')).toBe('ExplicitlyDenied');
  });

  test('cannot re-encrypt sealed data keys under a key it controls', async () => {
    expect(await asAdmin('kms:ReEncryptFrom', sealedContext())).toBe('ExplicitlyDenied');
  });

  test.each(['kms:GenerateDataKey', 'kms:Encrypt', 'kms:GenerateDataKeyWithoutPlaintext'])(
    'cannot seal a substitute model with %s',
    async (action) => {
      expect(await asAdmin(action, sealedContext())).toBe('ImplicitlyDenied');
    },
  );

  // Delegated administration is documented to give this power to the account's administrators: with it, they can
  // write themselves a decrypt statement. Restricting administration to named principals takes it away.
  test.each(['kms:PutKeyPolicy', ...EMERGENCY_ACTIONS])(`administers the key with %s: ${putKeyPolicy}`, async (action) => {
    expect(await asAdmin(action)).toBe(putKeyPolicy);
  });
});

describe('the named key administrator (restricted administration)', () => {
  const asKeyAdmin = (action: string, context?: Context, identityAllows?: string[]) =>
    decide({ principal: KEY_ADMIN, action, context, identityAllows, keyPolicy: RESTRICTED });

  test.each(['kms:PutKeyPolicy', ...EMERGENCY_ACTIONS])(
    'manages the key on the strength of the key policy alone: %s',
    async (action) => {
      expect(await asKeyAdmin(action)).toBe('Allowed');
    },
  );

  test('cannot unseal or seal, even with kms:* in its identity policy', async () => {
    expect(await asKeyAdmin('kms:Decrypt', attested(IMAGE_1), EVERYTHING)).toBe('ImplicitlyDenied');
    expect(await asKeyAdmin('kms:GenerateDataKey', sealedContext(), EVERYTHING)).toBe('ImplicitlyDenied');
  });

  test('is not an administrator of a delegated key without an identity policy', async () => {
    expect(await decide({ principal: KEY_ADMIN, action: 'kms:PutKeyPolicy', keyPolicy: DELEGATED })).toBe('ImplicitlyDenied');
  });
});

describe('CloudFormation deploying the stack (the default administration)', () => {
  const asDeployment = (action: string, keyPolicy: object, context?: Context) =>
    decide({ principal: DEPLOYMENT, action, context, identityAllows: EVERYTHING, keyPolicy });

  test.each(['kms:PutKeyPolicy', 'kms:EnableKeyRotation', 'kms:CreateAlias', ...EMERGENCY_ACTIONS])(
    'manages the key: %s',
    async (action) => {
      expect(await asDeployment(action, THROUGH_DEPLOYMENTS)).toBe('Allowed');
    },
  );

  test('cannot unseal or seal, even with kms:* in its identity policy', async () => {
    expect(await asDeployment('kms:Decrypt', THROUGH_DEPLOYMENTS, attested(IMAGE_1))).toBe('ImplicitlyDenied');
    expect(await asDeployment('kms:GenerateDataKey', THROUGH_DEPLOYMENTS, sealedContext())).toBe('ImplicitlyDenied');
  });
});

describe('an immutable key policy', () => {
  test.each([
    ['CloudFormation deploying the stack', DEPLOYMENT],
    ['the break-glass administrator', KEY_ADMIN],
    ['an IAM administrator of the account', IAM_ADMIN],
  ])('cannot be changed by %s, even with kms:* in its identity policy', async (_, principal) => {
    expect(await decide({ principal, action: 'kms:PutKeyPolicy', identityAllows: EVERYTHING, keyPolicy: IMMUTABLE }))
      .toBe('ImplicitlyDenied');
  });

  test.each(['kms:EnableKeyRotation', 'kms:CreateAlias', 'kms:TagResource'])(
    'still lets CloudFormation create the key as declared: %s',
    async (action) => {
      expect(await decide({ principal: DEPLOYMENT, action, keyPolicy: IMMUTABLE })).toBe('Allowed');
    },
  );

  test.each(EMERGENCY_ACTIONS)('still lets the break-glass administrator stop the key: %s', async (action) => {
    expect(await decide({ principal: KEY_ADMIN, action, keyPolicy: IMMUTABLE })).toBe('Allowed');
  });
});

describe('the model owner in another account', () => {
  const OWNER_ALLOWS = ['kms:GenerateDataKey', 'kms:Decrypt', 'kms:DescribeKey'];
  const asOwner = (action: string, context?: Context, principal = OWNER) =>
    decide({ principal, action, context, identityAllows: OWNER_ALLOWS, identityResource: KEY_ARN });

  test('seals the named model', async () => {
    expect(await asOwner('kms:GenerateDataKey', sealedContext())).toBe('Allowed');
    expect(await asOwner('kms:DescribeKey')).toBe('Allowed');
  });

  test('cannot seal a model the key is not for, or a data key bound to no model', async () => {
    expect(await asOwner('kms:GenerateDataKey', sealedContext('other'))).toBe('ImplicitlyDenied');
    expect(await asOwner('kms:GenerateDataKey', NO_MODEL)).toBe('ImplicitlyDenied');
    expect(await asOwner('kms:GenerateDataKey', {})).toBe('ImplicitlyDenied');
  });

  test('cannot unseal, even presenting an attestation of an allowed image', async () => {
    expect(await asOwner('kms:Decrypt', attested(IMAGE_1))).toBe('ImplicitlyDenied');
    expect(await asOwner('kms:Decrypt', sealedContext())).toBe('ExplicitlyDenied');
  });

  test('shares nothing with the other principals of its account', async () => {
    expect(await asOwner('kms:GenerateDataKey', sealedContext(), OWNER_COLLEAGUE)).toBe('ImplicitlyDenied');
  });
});

describe.each([
  ['an unrelated principal of another account, with kms:* in its identity policy', STRANGER, EVERYTHING],
  ['an anonymous caller', anonymousPrincipal, undefined],
])('%s', (_, principal, identityAllows) => {
  test.each([
    ['kms:Decrypt', ' with an attestation of an allowed image', attested(IMAGE_1)],
    ['kms:Decrypt', ' without an attestation', sealedContext()],
    ['kms:GenerateDataKey', ' for the named model', sealedContext()],
    ['kms:CreateGrant', '', undefined],
    ['kms:DescribeKey', '', undefined],
    ['kms:PutKeyPolicy', '', undefined],
    ['kms:ScheduleKeyDeletion', '', undefined],
  ])('is refused %s%s', async (action, _detail, context) => {
    expect(await decide({ principal, action, context, identityAllows })).not.toBe('Allowed');
  });
});
