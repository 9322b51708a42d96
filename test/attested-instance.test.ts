import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { AttestedInstance, AttestedInstanceProps, ModelBucket, SealedModelKey, ZeroOperatorAccessSecurityGroup } from '../lib';
import { parseApplianceConfig } from '../lib/appliance/user-data';
import { NitroTpmSupport, nitroTpmSupport } from '../lib/shared/nitro-tpm-support';
import { IMAGE_A, testStack } from './fixtures';

function instance(props: Partial<AttestedInstanceProps> = {}, stack: Stack = testStack()) {
  const vpc = new ec2.Vpc(stack, 'Vpc', {
    natGateways: 0,
    subnetConfiguration: [
      { name: 'Public', subnetType: ec2.SubnetType.PUBLIC },
      { name: 'Isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
    ],
  });
  const key = new SealedModelKey(stack, 'Key', { allowedImages: [IMAGE_A] });
  const attested = new AttestedInstance(stack, 'Instance', {
    vpc,
    image: IMAGE_A,
    securityGroup: new ZeroOperatorAccessSecurityGroup(stack, 'Zoa', { vpc }),
    key,
    modelBucket: new ModelBucket(stack, 'Models'),
    modelName: 'llama',
    ...props,
  });
  return {
    stack,
    vpc,
    attested,
    get template() {
      return Template.fromStack(stack);
    },
  };
}

test('boots the attestable image with no key pair, no hibernation, IMDSv2 only, hop limit 1, monitored and encrypted', () => {
  const { template } = instance();
  template.hasResourceProperties('AWS::EC2::Instance', {
    ImageId: 'ami-0123456789abcdef0',
    InstanceType: 'm7i.2xlarge',
    KeyName: Match.absent(),
    HibernationOptions: { Configured: false },
    Monitoring: true,
    EbsOptimized: true,
    MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1, HttpEndpoint: 'enabled' },
    BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: Match.objectLike({ Encrypted: true, VolumeType: 'gp3' }) }],
  });
});

test('launches in an isolated subnet by default, with no public address', () => {
  const { template, vpc } = instance();
  const isolated = vpc.isolatedSubnets.map((s) => Stack.of(vpc).resolve(s.subnetId));
  const props = Object.values(template.findResources('AWS::EC2::Instance'))[0].Properties;
  expect(isolated).toContainEqual(props.SubnetId);
  expect(props.NetworkInterfaces).toBeUndefined();
});

test('refuses a public subnet', () => {
  expect(() => instance({ vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC } })).toThrow(
    /never goes in a public subnet/,
  );
});

test('writes user data that the appliance accepts as its configuration', () => {
  const { template } = instance({ modelPrefix: 'sealed/' });
  const buckets = Object.keys(template.findResources('AWS::S3::Bucket'));
  const [key] = Object.keys(template.findResources('AWS::KMS::Key'));
  const keyArn = 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab';
  // What CloudFormation makes of the template's intrinsics once the bucket and the key exist.
  const resolve = (value: unknown): unknown => {
    if (typeof value !== 'object' || value === null) return value;
    if (Array.isArray(value)) return value.map(resolve);
    const [[name, argument]] = Object.entries(value);
    if (name === 'Fn::Base64') return resolve(argument);
    if (name === 'Fn::Join') return (argument as [string, unknown[]])[1].map(resolve).join((argument as [string])[0]);
    if (name === 'Ref' && argument === 'AWS::Region') return 'eu-west-1';
    if (name === 'Ref' && buckets.includes(argument as string)) return 'inference-modelsbucket1a2b3c4d-9z8y7x6w5v4u';
    if (name === 'Fn::GetAtt' && (argument as string[])[0] === key) return keyArn;
    throw new Error(`unexpected intrinsic ${JSON.stringify(value)} in the user data`);
  };
  const userData = Object.values(template.findResources('AWS::EC2::Instance'))[0].Properties.UserData;
  expect(parseApplianceConfig(resolve(userData) as string)).toEqual({
    configVersion: 1,
    region: 'eu-west-1',
    bucket: 'inference-modelsbucket1a2b3c4d-9z8y7x6w5v4u',
    objects: { sealed: 'sealed/llama.sealed', dataKey: 'sealed/llama.datakey.enc', manifest: 'sealed/llama.manifest.json' },
    keyArn,
    modelName: 'llama',
    servicePort: 3000,
  });
});

test('has a role that may only fetch the model and decrypt: no Session Manager, no Instance Connect', () => {
  const { template } = instance();
  const role = Object.values(template.findResources('AWS::IAM::Role'))[0];
  expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  const policies = Object.values(template.findResources('AWS::IAM::Policy'));
  const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement);
  const allowed = statements.filter((s: { Effect: string }) => s.Effect === 'Allow');
  expect(allowed.flatMap((s: { Action: string }) => s.Action).sort()).toEqual(['kms:Decrypt', 's3:GetObject', 's3:ListBucket']);
  // Explicit Denies keep it so whatever is attached later; their effect is simulated in closed-egress.simulation.test.ts.
  const denied = statements.filter((s: { Effect: string }) => s.Effect === 'Deny');
  expect(denied.map((s: { Sid: string; Action: string }) => [s.Sid, s.Action])).toEqual([
    ['DenyS3OutsideTheModelPrefix', 's3:*'],
    ['DenyKmsOutsideTheSealingKey', 'kms:*'],
  ]);
  expect(JSON.stringify(template.toJSON())).not.toMatch(/ssm:|ssmmessages:|ec2-instance-connect:|AmazonSSM/);
});

test('makes its role an unsealer of the key', () => {
  const { template } = instance();
  const key = Object.values(template.findResources('AWS::KMS::Key'))[0];
  const unseal = key.Properties.KeyPolicy.Statement.find((s: { Sid: string }) => s.Sid === 'UnsealOnlyOnAttestedImage1');
  expect(unseal.Principal.AWS).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^InstanceRole/), 'Arn'] });
});

test('hands the appliance where to fetch from, and no secret, as JSON user data', () => {
  const { template, attested, stack } = instance({ modelPrefix: 'sealed/' });
  expect(stack.resolve(attested.applianceConfig)).toMatchObject({
    configVersion: 1,
    modelName: 'llama',
    servicePort: 3000,
    objects: { sealed: 'sealed/llama.sealed', dataKey: 'sealed/llama.datakey.enc', manifest: 'sealed/llama.manifest.json' },
  });
  const userData = JSON.stringify(Object.values(template.findResources('AWS::EC2::Instance'))[0].Properties.UserData);
  expect(userData).toContain('sealed/llama.datakey.enc');
  expect(userData).not.toMatch(/password|secret|BEGIN .*PRIVATE KEY/i);
});

test('fails synth when a key pair is forced onto the instance', () => {
  const app = new App();
  const { attested } = instance({}, new Stack(app, 'S'));
  (attested.instance.node.defaultChild as ec2.CfnInstance).keyName = 'backdoor';
  expect(() => app.synth()).toThrow(/a key pair was set on the instance/);
});

test('fails synth when hibernation is turned on', () => {
  const app = new App();
  const { attested } = instance({}, new Stack(app, 'S'));
  (attested.instance.node.defaultChild as ec2.CfnInstance).hibernationOptions = { configured: true };
  expect(() => app.synth()).toThrow(/hibernation was turned on/);
});

test.each(['m4.large', 't2.micro', 'm7i.metal-24xl', 'c5.metal', 'x1.16xlarge'])(
  'rejects %s, which has no NitroTPM',
  (type) => {
    expect(() => instance({ instanceType: new ec2.InstanceType(type) })).toThrow(
      `Instance type ${type} has no NitroTPM`,
    );
  },
);

test('warns about an instance type it does not know', () => {
  const { stack } = instance({ instanceType: new ec2.InstanceType('hpc7a.96xlarge') });
  Annotations.fromStack(stack).hasWarning('/Test/Instance', Match.stringLikeRegexp('NitroTPM support of instance type hpc7a.96xlarge is not known'));
});

test.each([
  ['m7i.2xlarge', NitroTpmSupport.SUPPORTED],
  ['g6e.xlarge', NitroTpmSupport.SUPPORTED],
  ['c5.metal', NitroTpmSupport.UNSUPPORTED],
  ['t2.micro', NitroTpmSupport.UNSUPPORTED],
  ['hpc7a.96xlarge', NitroTpmSupport.UNKNOWN],
])('knows the NitroTPM support of %s', (type, support) => {
  expect(nitroTpmSupport(type)).toBe(support);
});
