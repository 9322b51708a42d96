import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { EndpointPeer, KeyAdministration, ModelBucket, SealedInference, SealedInferenceProps, SealedModelKey } from '../lib';
import { hex384, IMAGE_A, IMAGE_B, sealingKeys, testStack } from './fixtures';

function pattern(props: Partial<SealedInferenceProps> = {}) {
  const stack = testStack();
  const inference = new SealedInference(stack, 'Inference', { image: IMAGE_A, modelName: 'llama', ...props });
  return { stack, inference, template: Template.fromStack(stack) };
}

const outputs = (template: Template) =>
  Object.fromEntries(Object.entries(template.toJSON().Outputs).map(([id, o]) => [id.replace(/[0-9A-F]{8}$/, ''), (o as { Value: unknown }).Value]));

describe('isolated network', () => {
  test('has no internet gateway and no NAT, only S3 and KMS endpoints', () => {
    const { template } = pattern();
    template.resourceCountIs('AWS::EC2::InternetGateway', 0);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::EgressOnlyInternetGateway', 0);
    const endpoints = Object.values(template.findResources('AWS::EC2::VPCEndpoint')).map((e) => ({
      type: e.Properties.VpcEndpointType,
      service: JSON.stringify(e.Properties.ServiceName),
    }));
    expect(endpoints).toEqual([
      { type: 'Gateway', service: expect.stringContaining('.s3') },
      { type: 'Interface', service: expect.stringContaining('kms') },
    ]);
    expect(JSON.stringify(template.findResources('AWS::EC2::Route'))).not.toMatch(/0\.0\.0\.0\/0/);
  });

  test('lets only the instance reach the KMS endpoint, and the instance only HTTPS to KMS and S3', () => {
    const { template } = pattern();
    const egress = Object.values(template.findResources('AWS::EC2::SecurityGroupEgress')).map((r) => r.Properties);
    expect(egress).toHaveLength(2);
    for (const rule of egress) expect(rule).toMatchObject({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443 });
    expect(egress.map((r) => Object.keys(r).find((k) => k.startsWith('Destination'))).sort()).toEqual([
      'DestinationPrefixListId',
      'DestinationSecurityGroupId',
    ]);
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      IpProtocol: 'tcp',
      FromPort: 443,
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^InferenceSecurityGroup'), 'GroupId'] },
    });
    const lookup = JSON.stringify(template.findResources('Custom::AWS'));
    expect(lookup).toContain('describeManagedPrefixLists');
    expect(lookup).toMatch(/prefix-list-name.*com\.amazonaws\..*\.s3/);
  });

  test('no security group allows traffic out to anywhere', () => {
    const { template } = pattern();
    const groups = Object.values(template.findResources('AWS::EC2::SecurityGroup'));
    expect(groups.length).toBeGreaterThanOrEqual(2);
    const egress = [
      ...groups.flatMap((group) => group.Properties.SecurityGroupEgress ?? []),
      ...Object.values(template.findResources('AWS::EC2::SecurityGroupEgress')).map((rule) => rule.Properties),
    ];
    for (const rule of egress) {
      expect(rule.CidrIp).not.toBe('0.0.0.0/0');
      expect(rule.CidrIpv6).not.toBe('::/0');
    }
  });

  test('records all VPC traffic in flow logs', () => {
    pattern().template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'ALL' });
  });
});

test('uses a VPC of your own, with HTTPS to its CIDR block unless told otherwise', () => {
  const stack = testStack();
  const vpc = new ec2.Vpc(stack, 'Mine', { natGateways: 0 });
  new SealedInference(stack, 'Inference', { image: IMAGE_A, modelName: 'llama', vpc });
  const template = Template.fromStack(stack);
  template.resourceCountIs('AWS::EC2::VPC', 1);
  template.resourceCountIs('Custom::AWS', 0);
  template.hasResourceProperties('AWS::EC2::SecurityGroup', {
    SecurityGroupEgress: [Match.objectLike({ CidrIp: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Mine'), 'CidrBlock'] }, FromPort: 443 })],
  });
});

test('allows the current and the next image in separate statements; the instance runs the current one', () => {
  const { template } = pattern({ additionalAllowedImages: [IMAGE_B] });
  const key = Object.values(sealingKeys(template))[0];
  expect(key.Properties.KeyPolicy.Statement.filter((s: { Sid: string }) => s.Sid.startsWith('Unseal'))).toHaveLength(2);
  template.hasResourceProperties('AWS::EC2::Instance', { ImageId: IMAGE_A.imageId });
});

test('binds the key to the model name', () => {
  const { template } = pattern();
  expect(JSON.stringify(sealingKeys(template))).toContain(
    '"kms:EncryptionContext:sealed-inference:model":["llama"]',
  );
});

test('lets the model owner seal and upload, never decrypt', () => {
  const { template } = pattern({ modelOwners: [new iam.ArnPrincipal('arn:aws:iam::222222222222:role/owner')] });
  const statements = Object.values(sealingKeys(template))[0].Properties.KeyPolicy.Statement;
  const owner = statements.filter((s: { Principal: unknown }) => JSON.stringify(s.Principal).includes('222222222222'));
  expect(owner.flatMap((s: { Action: string }) => s.Action).sort()).toEqual(['kms:DescribeKey', 'kms:GenerateDataKey']);
  template.hasResourceProperties('AWS::S3::BucketPolicy', {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({ Principal: { AWS: 'arn:aws:iam::222222222222:role/owner' }, Action: Match.arrayWith(['s3:PutObject']) }),
      ]),
    },
  });
});

test('outputs what the key is sealed to, for a reviewer to compare with the build', () => {
  const { template } = pattern({ additionalAllowedImages: [IMAGE_B], servicePeers: [ec2.Peer.ipv4('10.0.0.0/16')] });
  expect(outputs(template)).toMatchObject({
    InferenceImageId: IMAGE_A.imageId,
    InferenceAllowedImage1Id: IMAGE_A.imageId,
    InferenceAllowedImage1Pcr4: hex384('a4'),
    InferenceAllowedImage1Pcr12: hex384('0c'),
    InferenceAllowedImage2Id: IMAGE_B.imageId,
    InferenceAllowedImage2Pcr4: hex384('b4'),
    InferenceAllowedImage2Pcr12: hex384('00'),
    InferenceKeyArn: { 'Fn::GetAtt': [expect.any(String), 'Arn'] },
    InferenceModelBucketName: { Ref: expect.any(String) },
    InferenceModelPrefix: 'models/',
    InferenceServiceUrl: { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [expect.any(String), 'PrivateIp'] }, ':3000']] },
    InferenceModelName: 'llama',
    InferenceModelManifestUri: { 'Fn::Join': ['', ['s3://', { Ref: expect.any(String) }, '/models/llama.manifest.json']] },
  });
});

test('outputs the commands a client runs to verify the service, with this stack as the expectation', () => {
  const { template } = pattern({ servicePeers: [ec2.Peer.ipv4('10.0.0.0/16')] });
  const join = (command: string) => ({
    'Fn::Join': ['', [`npx sealed-inference ${command} https://`, { 'Fn::GetAtt': [expect.any(String), 'PrivateIp'] },
      ':3000 --stack-outputs outputs.json --stack Test --model llama.manifest.json']],
  });
  expect(outputs(template)).toMatchObject({ InferenceVerifyCommand: join('verify'), InferenceGatewayCommand: join('gateway') });
});

/** The paths that carry the warning with this id. */
const warnedAt = (stack: ReturnType<typeof testStack>, id: string) =>
  Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp(`\\[ack: ${id}\\]`)).map((w) => w.id);
const OWNER = new iam.ArnPrincipal('arn:aws:iam::222222222222:role/owner');
const CLIENTS = [ec2.Peer.ipv4('10.9.0.0/16')];

describe('VPC', () => {
  test('exposes the isolated network it creates, in the block given', () => {
    const { stack, inference, template } = pattern({ vpcCidr: '10.42.0.0/16' });
    template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '10.42.0.0/16' });
    const [vpcId] = Object.keys(template.findResources('AWS::EC2::VPC'));
    expect(stack.resolve(inference.vpc.vpcId)).toEqual({ Ref: vpcId });
  });

  test('exposes a VPC of your own', () => {
    const stack = testStack();
    const vpc = new ec2.Vpc(stack, 'Mine', { natGateways: 0 });
    expect(new SealedInference(stack, 'Inference', { image: IMAGE_A, modelName: 'llama', vpc }).vpc).toBe(vpc);
  });

  test('rejects a block that is not private, naming it', () => {
    expect(() => pattern({ vpcCidr: '100.64.0.0/16' })).toThrow(/vpcCidr must be a private IPv4 CIDR block .* got 100\.64\.0\.0\/16/);
  });

  test('rejects vpcCidr with a VPC of your own, where it would do nothing', () => {
    const stack = testStack();
    const vpc = new ec2.Vpc(stack, 'Mine', { natGateways: 0 });
    expect(() => new SealedInference(stack, 'Inference', { image: IMAGE_A, modelName: 'llama', vpc, vpcCidr: '10.1.0.0/16' }))
      .toThrow('Test/Inference: vpcCidr (10.1.0.0/16) is the block of the VPC this construct creates');
  });

  test('rejects endpointPeers without a VPC of your own, where they would be ignored', () => {
    expect(() => pattern({ endpointPeers: [ec2.Peer.ipv4('10.0.7.0/24')] }))
      .toThrow('Test/Inference: endpointPeers (10.0.7.0/24) apply only to a VPC of your own (vpc)');
  });

  test("allows S3's gateway endpoint in a VPC of your own, with no warning", () => {
    const stack = testStack();
    const vpc = new ec2.Vpc(stack, 'Mine', { natGateways: 0, gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } } });
    new SealedInference(stack, 'Inference', {
      image: IMAGE_A,
      modelName: 'llama',
      vpc,
      endpointPeers: [ec2.Peer.ipv4(vpc.vpcCidrBlock), EndpointPeer.s3Gateway(stack)],
    });
    const template = Template.fromStack(stack);
    const [lookup] = Object.keys(template.findResources('Custom::AWS'));
    template.hasResourceProperties('AWS::EC2::SecurityGroupEgress', {
      DestinationPrefixListId: { 'Fn::GetAtt': [lookup, 'PrefixLists.0.PrefixListId'] },
      IpProtocol: 'tcp',
      FromPort: 443,
      ToPort: 443,
    });
    expect(warnedAt(stack, 'sealed-inference:no-s3-gateway-peer')).toEqual([]);
  });

  test('warns that S3 through a gateway endpoint is cut off in a VPC of your own with the default endpoint peer', () => {
    const stack = testStack();
    const vpc = new ec2.Vpc(stack, 'Mine', { natGateways: 0 });
    new SealedInference(stack, 'Inference', { image: IMAGE_A, modelName: 'llama', vpc });
    expect(warnedAt(stack, 'sealed-inference:no-s3-gateway-peer')).toEqual(['/Test/Inference/SecurityGroup']);
  });
});

describe('synth warnings', () => {
  test('none when the model owner and the clients are named', () => {
    const { stack } = pattern({ modelOwners: [OWNER], servicePeers: CLIENTS });
    expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toEqual([]);
  });

  /** A pattern not yet synthesized, so that what is added after construction counts. */
  const unsynthesized = (props: Partial<SealedInferenceProps>) => {
    const stack = testStack();
    return { stack, inference: new SealedInference(stack, 'Inference', { image: IMAGE_A, modelName: 'llama', ...props }) };
  };

  test('warns that nobody can reach the service until a peer is allowed', () => {
    const { stack } = unsynthesized({ modelOwners: [OWNER] });
    expect(warnedAt(stack, 'sealed-inference:no-service-peers')).toEqual(['/Test/Inference/SecurityGroup']);
  });

  test('does not warn about service peers allowed after construction', () => {
    const { stack, inference } = unsynthesized({ modelOwners: [OWNER] });
    inference.allowServiceFrom(CLIENTS[0]);
    expect(warnedAt(stack, 'sealed-inference:no-service-peers')).toEqual([]);
  });

  test('warns that nobody can seal until a model owner is allowed', () => {
    const { stack } = unsynthesized({ servicePeers: CLIENTS });
    expect(warnedAt(stack, 'sealed-inference:no-model-owner')).toEqual(['/Test/Inference']);
  });

  test('does not warn about a model owner allowed after construction', () => {
    const { stack, inference } = unsynthesized({ servicePeers: CLIENTS });
    inference.allowModelOwner(OWNER);
    expect(warnedAt(stack, 'sealed-inference:no-model-owner')).toEqual([]);
  });
});

describe("with the model owner's key and bucket, imported from their account", () => {
  const OWNER_KEY = 'arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab';
  const withOwnersStorage = (props: Partial<SealedInferenceProps> = {}) => {
    const stack = testStack();
    const inference = new SealedInference(stack, 'Inference', {
      image: IMAGE_A,
      modelName: 'llama',
      servicePeers: CLIENTS,
      key: SealedModelKey.fromSealedModelKeyAttributes(stack, 'OwnersKey', { keyArn: OWNER_KEY, modelNames: ['llama'] }),
      modelBucket: ModelBucket.fromModelBucketAttributes(stack, 'OwnersModels', {
        bucketName: 'owner-sealed-models',
        account: '222222222222',
        modelPrefix: 'sealed/',
      }),
      instanceRoleName: 'sealed-inference-instance',
      ...props,
    });
    return { stack, inference };
  };

  test("creates no key and no bucket, and points the instance at the owner's", () => {
    const { stack, inference } = withOwnersStorage();
    const template = Template.fromStack(stack);
    expect(sealingKeys(template)).toEqual({});
    template.resourceCountIs('AWS::S3::Bucket', 0);
    expect(inference.attestedInstance.applianceConfig).toMatchObject({
      keyArn: OWNER_KEY,
      bucket: 'owner-sealed-models',
      objects: { manifest: 'sealed/llama.manifest.json' },
    });
    template.hasResourceProperties('AWS::IAM::Role', { RoleName: 'sealed-inference-instance' });
    // The endpoints let through the owner's key and prefix, nothing else.
    expect(JSON.stringify(template.findResources('AWS::EC2::VPCEndpoint'))).toContain(OWNER_KEY);
    expect(JSON.stringify(template.findResources('AWS::EC2::VPCEndpoint'))).toContain('owner-sealed-models/sealed/*');
    expect(outputs(template)).toMatchObject({ InferenceKeyArn: OWNER_KEY, InferenceModelPrefix: 'sealed/' });
  });

  test("watches the instance, the images and the stack, and leaves the key to its owner's alarms", () => {
    const { inference } = withOwnersStorage();
    const watched = inference.tamperAlarms.rules.map((rule) => rule.node.id);
    expect(watched).toEqual(['ImageTags', 'Image', 'InstanceUserData', 'Stack']);
  });

  test('warns with the statement the owner must add, and not that nobody can seal', () => {
    const { stack } = withOwnersStorage();
    expect(warnedAt(stack, 'sealed-inference:imported-key-policy')).not.toEqual([]);
    expect(warnedAt(stack, 'sealed-inference:no-model-owner')).toEqual([]);
  });

  test('refuses to admit a model owner, whose grants belong where the key and bucket are', () => {
    const { inference } = withOwnersStorage();
    expect(() => inference.allowModelOwner(OWNER)).toThrow(
      /the key or the bucket is imported, its policy written elsewhere: admit the model owner where they are created/,
    );
  });

  test('refuses settings that apply only to a key or a bucket it creates', () => {
    expect(() => withOwnersStorage({ keyAdministration: KeyAdministration.immutablePolicy() })).toThrow(
      'Test/Inference: keyAdministration applies to a key this construct creates, not to the key given (key)',
    );
    const stack = testStack();
    expect(() => withOwnersStorage({ bucketEncryptionKey: new kms.Key(stack, 'BucketKey') })).toThrow(
      /bucketEncryptionKey applies to a bucket this construct creates/,
    );
  });
});
