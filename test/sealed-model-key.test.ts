import { App, CliCredentialsStackSynthesizer, DefaultStackSynthesizer, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { KeyAdministration, SealedModelKey, SealedModelKeyProps } from '../lib';
import { hex384, IMAGE_A, IMAGE_B, PCR7_ONLY_IMAGE, SECURE_BOOT_IMAGE, testStack } from './fixtures';

interface Statement {
  Sid: string;
  Effect: 'Allow' | 'Deny';
  Principal: { AWS: unknown };
  Action?: string | string[];
  NotAction?: string | string[];
  Condition?: Record<string, Record<string, unknown>>;
}

const WORKLOAD_ARN = 'arn:aws:iam::111111111111:role/workload';
/** The CDK bootstrap's CloudFormation execution role in the test stack's environment, the partition left to deploy time. */
const executionRole = (qualifier: string) => ({
  'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:iam::111111111111:role/cdk-${qualifier}-cfn-exec-role-111111111111-eu-west-1`]],
});
const OWNER_ARN = 'arn:aws:iam::222222222222:role/model-owner';

function keyWith(props: Partial<SealedModelKeyProps> = {}, stack: Stack = testStack()) {
  const workload = iam.Role.fromRoleArn(stack, 'Workload', WORKLOAD_ARN, { mutable: false });
  const key = new SealedModelKey(stack, 'Key', {
    allowedImages: [IMAGE_A],
    unsealers: [workload],
    sealers: [new iam.ArnPrincipal(OWNER_ARN)],
    ...props,
  });
  return { stack, key, template: Template.fromStack(stack) };
}

function statements(template: Template): Statement[] {
  const keys = Object.values(template.findResources('AWS::KMS::Key'));
  expect(keys).toHaveLength(1);
  return keys[0].Properties.KeyPolicy.Statement;
}

const actions = (s: Statement) => [s.Action ?? []].flat();
const sid = (template: Template, id: string) => statements(template).find((s) => s.Sid === id)!;

describe('key resource', () => {
  test('is symmetric, rotated and retained on delete', () => {
    keyWith().template.hasResource('AWS::KMS::Key', {
      Properties: { KeySpec: 'SYMMETRIC_DEFAULT', KeyUsage: 'ENCRYPT_DECRYPT', EnableKeyRotation: true },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  test('creates the alias when asked', () => {
    const { template, key } = keyWith({ aliasName: 'sealed/llama' });
    template.hasResourceProperties('AWS::KMS::Alias', { AliasName: 'alias/sealed/llama' });
    expect(key.aliasName).toBe('alias/sealed/llama');
  });
});

describe('key policy', () => {
  test('never delegates cryptographic use to the account (no root kms:* statement)', () => {
    for (const s of statements(keyWith().template).filter((st) => st.Effect === 'Allow')) {
      expect(actions(s)).not.toContain('kms:*');
      if (JSON.stringify(s.Principal).includes(':root')) {
        expect(actions(s).filter((a) => /Decrypt|Encrypt|GenerateDataKey|CreateGrant|Sign|Mac/.test(a))).toEqual([]);
      }
    }
  });

  test('allows decrypt only to the workload, only with the PCRs of an allowed image and the model context', () => {
    const { template } = keyWith({ modelNames: ['llama'] });
    const decrypting = statements(template).filter((s) => s.Effect === 'Allow' && actions(s).includes('kms:Decrypt'));
    expect(decrypting).toHaveLength(1);
    expect(decrypting[0]).toEqual({
      Sid: 'UnsealOnlyOnAttestedImage1',
      Effect: 'Allow',
      Principal: { AWS: WORKLOAD_ARN },
      Action: 'kms:Decrypt',
      Resource: '*',
      Condition: {
        StringEqualsIgnoreCase: {
          'kms:RecipientAttestation:NitroTPMPCR4': hex384('a4'),
          'kms:RecipientAttestation:NitroTPMPCR12': hex384('0c'),
        },
        StringEquals: { 'kms:EncryptionContext:sealed-inference:model': ['llama'] },
        'ForAllValues:StringEquals': {
          'kms:EncryptionContextKeys': ['sealed-inference:model', 'sealed-inference:format'],
        },
      },
    });
  });

  test('gives each allowed image a statement of its own, so measurements of two images never combine', () => {
    const { template } = keyWith({ allowedImages: [IMAGE_A, IMAGE_B] });
    const unseal = statements(template).filter((s) => s.Sid.startsWith('UnsealOnlyOnAttestedImage'));
    expect(unseal.map((s) => s.Condition!.StringEqualsIgnoreCase)).toEqual([
      { 'kms:RecipientAttestation:NitroTPMPCR4': hex384('a4'), 'kms:RecipientAttestation:NitroTPMPCR12': hex384('0c') },
      { 'kms:RecipientAttestation:NitroTPMPCR4': hex384('b4'), 'kms:RecipientAttestation:NitroTPMPCR12': hex384('00') },
    ]);
    for (const s of unseal) {
      for (const value of Object.values(s.Condition!.StringEqualsIgnoreCase)) expect(typeof value).toBe('string');
    }
  });

  test('pins PCR4, PCR7 and PCR12 for a Secure Boot image, without a warning', () => {
    const { template, stack } = keyWith({ allowedImages: [SECURE_BOOT_IMAGE] });
    expect(sid(template, 'UnsealOnlyOnAttestedImage1').Condition!.StringEqualsIgnoreCase).toEqual({
      'kms:RecipientAttestation:NitroTPMPCR4': hex384('a4'),
      'kms:RecipientAttestation:NitroTPMPCR7': hex384('57'),
      'kms:RecipientAttestation:NitroTPMPCR12': hex384('00'),
    });
    Annotations.fromStack(stack).hasNoWarning('*', Match.stringLikeRegexp('pcr7-only'));
  });

  test('pins PCR7 alone only for an image that asked for it, with a synth warning', () => {
    const { template, stack } = keyWith({ allowedImages: [PCR7_ONLY_IMAGE] });
    expect(sid(template, 'UnsealOnlyOnAttestedImage1').Condition!.StringEqualsIgnoreCase).toEqual({
      'kms:RecipientAttestation:NitroTPMPCR7': hex384('57'),
    });
    Annotations.fromStack(stack).hasWarning(
      '/Test/Key',
      Match.stringLikeRegexp('ami-0bbbbbbbbbbbbbbbb is sealed to PCR7 alone.*sealed-inference:pcr7-only'),
    );
    expect(statements(template).filter((s) => s.Sid.startsWith('DenyDecryptUnless')).map((s) => s.Condition)).toEqual([
      { StringNotEqualsIgnoreCase: { 'kms:RecipientAttestation:NitroTPMPCR7': [hex384('57')] } },
    ]);
  });

  test('lets the model owner generate data keys for named models only, and never decrypt', () => {
    const { template } = keyWith({ modelNames: ['llama'] });
    const ownerStatements = statements(template).filter((s) => JSON.stringify(s.Principal).includes(OWNER_ARN));
    expect(ownerStatements.flatMap(actions).sort()).toEqual(['kms:DescribeKey', 'kms:GenerateDataKey']);
    expect(sid(template, 'SealModelsWithNamedContext').Condition).toEqual({
      StringEquals: { 'kms:EncryptionContext:sealed-inference:model': ['llama'] },
      'ForAllValues:StringEquals': {
        'kms:EncryptionContextKeys': ['sealed-inference:model', 'sealed-inference:format'],
      },
    });
  });

  test('without model names, still requires every request to name its model', () => {
    expect(sid(keyWith().template, 'SealModelsWithNamedContext').Condition!.Null).toEqual({
      'kms:EncryptionContext:sealed-inference:model': 'false',
    });
  });

  test('denies every principal decrypt and re-encryption unless each pinned PCR has an allowed image\'s value', () => {
    const { template } = keyWith({ allowedImages: [IMAGE_A, IMAGE_B] });
    const denies = statements(template).filter((s) => s.Sid.startsWith('DenyDecryptUnless'));
    expect(denies.map((s) => s.Sid)).toEqual(['DenyDecryptUnlessPcr4OfAnAllowedImage', 'DenyDecryptUnlessPcr12OfAnAllowedImage']);
    for (const deny of denies) {
      expect(deny).toMatchObject({ Effect: 'Deny', Principal: { AWS: '*' }, Action: ['kms:Decrypt', 'kms:ReEncryptFrom'] });
    }
    expect(denies.map((s) => s.Condition)).toEqual([
      { StringNotEqualsIgnoreCase: { 'kms:RecipientAttestation:NitroTPMPCR4': [hex384('a4'), hex384('b4')] } },
      { StringNotEqualsIgnoreCase: { 'kms:RecipientAttestation:NitroTPMPCR12': [hex384('0c'), hex384('00')] } },
    ]);
  });

  test('allows unsealing only through an endpoint of the named VPC', () => {
    const { template } = keyWith({ unsealVpcId: 'vpc-0123456789abcdef0', modelNames: ['llama'] });
    expect(sid(template, 'UnsealOnlyOnAttestedImage1').Condition!.StringEquals).toEqual({
      'kms:EncryptionContext:sealed-inference:model': ['llama'],
      'aws:SourceVpc': 'vpc-0123456789abcdef0',
    });
  });

  test('denies grants to everyone', () => {
    expect(sid(keyWith().template, 'DenyGrants')).toMatchObject({
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 'kms:CreateGrant',
    });
    expect(sid(keyWith().template, 'DenyGrants').Condition).toBeUndefined();
  });

  test('denies the workload everything but decrypt, so it can never rewrite its own gate', () => {
    expect(sid(keyWith().template, 'DenyWorkloadAnythingButUnseal')).toMatchObject({
      Effect: 'Deny',
      Principal: { AWS: WORKLOAD_ARN },
      NotAction: 'kms:Decrypt',
    });
  });

  test("is administered by default only by the stack's CloudFormation execution role: changes come through deployments", () => {
    const { template, stack } = keyWith();
    const admin = sid(template, 'KeyAdministrationWithoutUse');
    expect(admin.Principal).toEqual({ AWS: executionRole('hnb659fds') });
    expect(actions(admin)).toEqual(expect.arrayContaining(['kms:PutKeyPolicy', 'kms:ScheduleKeyDeletion']));
    expect(actions(admin).filter((a) => /Decrypt|Encrypt|GenerateDataKey|CreateGrant/.test(a))).toEqual([]);
    expect(JSON.stringify(statements(template))).not.toContain(':root');
    expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toEqual([]);
  });

  test('adds break-glass principals beside the execution role, and follows a custom bootstrap qualifier', () => {
    const breakGlass = 'arn:aws:iam::111111111111:role/break-glass';
    const stack = new Stack(new App(), 'Custom', {
      env: { account: '111111111111', region: 'eu-west-1' },
      synthesizer: new DefaultStackSynthesizer({ qualifier: 'owner1' }),
    });
    const { template } = keyWith({ keyAdministration: KeyAdministration.throughDeployments({ breakGlass: [new iam.ArnPrincipal(breakGlass)] }) }, stack);
    expect(sid(template, 'KeyAdministrationWithoutUse').Principal).toEqual({ AWS: [executionRole('owner1'), breakGlass] });
  });

  test('refuses the default where the synthesizer names no execution role, saying what to choose', () => {
    const stack = new Stack(new App(), 'Cli', { synthesizer: new CliCredentialsStackSynthesizer() });
    expect(() => keyWith({}, stack)).toThrow(
      /uses CliCredentialsStackSynthesizer, which names no CloudFormation execution role\. Choose KeyAdministration\.restrictedTo/,
    );
  });

  test('an immutable policy: nobody may change it, KMS is told so, the other management stays with deployments', () => {
    const { template } = keyWith({ keyAdministration: KeyAdministration.immutablePolicy() });
    const [key] = Object.values(template.findResources('AWS::KMS::Key'));
    expect(key.Properties.BypassPolicyLockoutSafetyCheck).toBe(true);
    const admin = sid(template, 'KeyAdministrationWithoutUse');
    expect(actions(admin)).not.toContain('kms:PutKeyPolicy');
    expect(actions(admin)).toEqual(expect.arrayContaining(['kms:EnableKeyRotation', 'kms:CreateAlias', 'kms:DisableKey']));
    expect(statements(template).filter((s) =>
      s.Effect === 'Allow' && [s.Action].flat().some((a) => a === 'kms:PutKeyPolicy' || a === 'kms:*'))).toEqual([]);
  });

  test('a mutable policy leaves the lockout safety check on', () => {
    const [key] = Object.values(keyWith().template.findResources('AWS::KMS::Key'));
    expect(key.Properties.BypassPolicyLockoutSafetyCheck).toBeUndefined();
  });

  test('delegates administration to the account only when asked, with a warning that says what it allows', () => {
    const { template, stack } = keyWith({ keyAdministration: KeyAdministration.delegatedToAccount() });
    expect(JSON.stringify(sid(template, 'KeyAdministrationWithoutUse').Principal)).toMatch(/:iam::.*111111111111.*:root/);
    expect(Annotations.fromStack(stack).findWarning('/Test/Key', Match.stringLikeRegexp(
      'delegated to the account.*can rewrite the key policy, then unseal the model.*sealed-inference:key-administration-delegated',
    ))).toHaveLength(1);
  });

  test('restricts administration to named principals when asked, and reminds to include the deploy role', () => {
    const adminArn = 'arn:aws:iam::111111111111:role/key-admin';
    const { template, stack } = keyWith({
      keyAdministration: KeyAdministration.restrictedTo([new iam.ArnPrincipal(adminArn)]),
    });
    expect(sid(template, 'KeyAdministrationWithoutUse').Principal).toEqual({ AWS: adminArn });
    expect(JSON.stringify(statements(template))).not.toContain(':root');
    Annotations.fromStack(stack).hasInfo('/Test/Key', Match.stringLikeRegexp('include the role that deploys'));
  });

  test('names principals of other accounts', () => {
    const { template } = keyWith();
    expect(sid(template, 'SealModelsWithNamedContext').Principal).toEqual({ AWS: OWNER_ARN });
  });

  test('images and principals added after construction are in the policy', () => {
    const stack = testStack();
    const key = new SealedModelKey(stack, 'Key');
    key.allowImage(IMAGE_B);
    key.grantUnseal(iam.Role.fromRoleArn(stack, 'W', WORKLOAD_ARN));
    key.grantSeal(new iam.ArnPrincipal(OWNER_ARN));
    const template = Template.fromStack(stack);
    expect(sid(template, 'UnsealOnlyOnAttestedImage1').Condition!.StringEqualsIgnoreCase).toMatchObject({
      'kms:RecipientAttestation:NitroTPMPCR4': hex384('b4'),
    });
    expect(sid(template, 'SealModelsWithNamedContext')).toBeDefined();
  });
});

describe('bad input', () => {
  test.each([['UPPER CASE'], [''], ['-leading-dash'], ['a/b'], ['x'.repeat(129)]])(
    'rejects the model name %j',
    (name) => {
      expect(() => keyWith({ modelNames: [name] })).toThrow(`Model name must be 1-128 characters`);
    },
  );

  test('rejects an empty model name list', () => {
    expect(() => keyWith({ modelNames: [] })).toThrow(/modelNames is empty/);
  });

  test('rejects a malformed alias', () => {
    expect(() => keyWith({ aliasName: 'alias/x' })).toThrow(/without the 'alias\/' prefix/);
    expect(() => keyWith({ aliasName: 'aws/reserved' })).toThrow(/aliasName must be/);
    expect(() => keyWith({ aliasName: 'has space' })).toThrow(/aliasName must be .*"has space"/);
  });

  test('rejects restricted administration without principals', () => {
    expect(() => KeyAdministration.restrictedTo([])).toThrow(/at least one principal/);
  });

  test('fails synth for a key that could never unseal', () => {
    const app = new App();
    const stack = new Stack(app, 'S');
    new SealedModelKey(stack, 'Key');
    expect(() => app.synth()).toThrow(/no allowed image.*allowImage\(\)[\s\S]*no unsealer role/);
  });
});

describe('grants', () => {
  test('grantUnseal names the role in the key policy, allows its image once, and writes its identity policy', () => {
    const stack = testStack();
    const key = new SealedModelKey(stack, 'Key', { allowedImages: [IMAGE_A] });
    const role = new iam.Role(stack, 'Workload', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
    const grant = key.grantUnseal(role, IMAGE_A);
    key.grantUnseal(role, IMAGE_B);
    expect(grant.success).toBe(true);
    const template = Template.fromStack(stack);
    const unseal = statements(template).filter((s) => s.Sid.startsWith('UnsealOnlyOnAttestedImage'));
    expect(unseal.map((s) => s.Sid)).toEqual(['UnsealOnlyOnAttestedImage1', 'UnsealOnlyOnAttestedImage2']);
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: [{ Action: 'kms:Decrypt', Effect: 'Allow', Resource: { 'Fn::GetAtt': [Match.anyValue(), 'Arn'] } }] },
    });
  });

  test('grantSeal names the owner in the key policy and returns the grant', () => {
    const stack = testStack();
    const key = new SealedModelKey(stack, 'Key', { allowedImages: [IMAGE_A], unsealers: [iam.Role.fromRoleArn(stack, 'W', WORKLOAD_ARN)] });
    const owner = new iam.Role(stack, 'Owner', { assumedBy: new iam.AccountRootPrincipal() });
    expect(key.grantSeal(owner).principalStatements.flatMap((s) => s.actions)).toEqual(['kms:GenerateDataKey', 'kms:DescribeKey']);
    expect(JSON.stringify(sid(Template.fromStack(stack), 'SealModelsWithNamedContext').Principal)).toContain('Owner');
  });
});

describe('an imported key', () => {
  const KEY_ARN = 'arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab';

  test('keeps its ARN and id, and takes its environment from the ARN', () => {
    const key = SealedModelKey.fromKeyArn(testStack(), 'Key', KEY_ARN);
    expect(key.keyArn).toBe(KEY_ARN);
    expect(key.keyId).toBe('1234abcd-12ab-34cd-56ef-1234567890ab');
    expect(key.env.account).toBe('222222222222');
  });

  test.each(['arn:aws:kms:eu-west-1:222222222222:alias/sealed', 'key/1234', ''])('rejects %j, which is no key ARN', (arn) => {
    expect(() => SealedModelKey.fromKeyArn(testStack(), 'Key', arn)).toThrow(/keyArn must be a KMS key ARN/);
  });

  test('grants write identity policies only, and synth names the statements its owner must add', () => {
    const stack = testStack();
    const key = SealedModelKey.fromSealedModelKeyAttributes(stack, 'Key', { keyArn: KEY_ARN, modelNames: ['llama'] });
    const owner = new iam.Role(stack, 'Owner', { assumedBy: new iam.AccountRootPrincipal() });
    expect(key.grantSeal(owner).success).toBe(true);
    const template = Template.fromStack(stack);
    expect(template.findResources('AWS::KMS::Key')).toEqual({});
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: [{ Action: ['kms:GenerateDataKey', 'kms:DescribeKey'], Resource: KEY_ARN }] },
    });
    Annotations.fromStack(stack).hasWarning('/Test/Key', Match.stringLikeRegexp('must add.*llama.*SealModelsWithNamedContext'));
    expect(Object.values(template.findOutputs('*')).map((o) => o.Description)).toEqual([
      expect.stringContaining(`Key policy statements the owner of ${KEY_ARN} must add to seal`),
    ]);
  });
});
