import { App, Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { addComplianceChecks } from '../bin/compliance';
import { ModelBucket, SealedInferenceFleet, SealedInferenceFleetProps, SealedModelKey } from '../lib';
import { parseApplianceConfig } from '../lib/appliance/user-data';
import { hex384, IMAGE_A, IMAGE_B, sealingKeys, testStack } from './fixtures';

const CLIENTS = '10.9.0.0/16';

function fleet(props: Partial<SealedInferenceFleetProps> = {}, stack: Stack = testStack()) {
  const inference = new SealedInferenceFleet(stack, 'Fleet', {
    image: IMAGE_A,
    modelName: 'llama',
    servicePeers: [ec2.Peer.ipv4(CLIENTS)],
    ...props,
  });
  return {
    stack,
    inference,
    get template() {
      return Template.fromStack(stack);
    },
  };
}

const only = (template: Template, type: string) => {
  const resources = Object.values(template.findResources(type));
  expect(resources).toHaveLength(1);
  return resources[0];
};
const logicalId = (template: Template, type: string, description: RegExp) =>
  Object.entries(template.findResources(type)).find(([, r]) => description.test(r.Properties.GroupDescription))![0];
const outputs = (template: Template) =>
  Object.fromEntries(Object.entries(template.toJSON().Outputs).map(([id, o]) => [id.replace(/[0-9A-F]{8}$/, ''), (o as { Value: unknown }).Value]));

describe('launch template', () => {
  test('carries what an attested instance enforces: no key pair, IMDSv2 with hop limit 1, encrypted volume, no public address, no hibernation', () => {
    const { template } = fleet();
    const data = only(template, 'AWS::EC2::LaunchTemplate').Properties.LaunchTemplateData;
    expect(data).toMatchObject({
      ImageId: IMAGE_A.imageId,
      InstanceType: 'm7i.2xlarge',
      MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1, HttpEndpoint: 'enabled' },
      HibernationOptions: { Configured: false },
      NetworkInterfaces: [expect.objectContaining({ DeviceIndex: 0, AssociatePublicIpAddress: false })],
      Monitoring: { Enabled: true },
    });
    expect(data.KeyName).toBeUndefined();
    expect(data.BlockDeviceMappings.length).toBeGreaterThan(0);
    for (const device of data.BlockDeviceMappings) expect(device.Ebs).toMatchObject({ Encrypted: true });
  });

  test.each([
    ['a key pair', { keyName: 'backdoor' }, /a key pair was set on the instance/],
    ['hibernation', { hibernationOptions: { configured: true } }, /hibernation was turned on/],
  ])('fails synth when %s is forced onto the template', (_, change, message) => {
    const app = new App();
    const { inference } = fleet({}, new Stack(app, 'S'));
    const cfn = inference.launchTemplate.launchTemplate.node.defaultChild as ec2.CfnLaunchTemplate;
    cfn.launchTemplateData = { ...(cfn.launchTemplateData as object), ...change };
    expect(() => app.synth()).toThrow(message);
  });

  test('hands the appliance its configuration, naming the load balancer as a host it may be reached by', () => {
    const { template } = fleet({ modelPrefix: 'sealed/' });
    const [bucket] = Object.keys(template.findResources('AWS::S3::Bucket', { Properties: { VersioningConfiguration: Match.anyValue(), LoggingConfiguration: Match.anyValue() } }));
    const [key] = Object.keys(sealingKeys(template));
    const [loadBalancer] = Object.keys(template.findResources('AWS::ElasticLoadBalancingV2::LoadBalancer'));
    const keyArn = 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const dnsName = 'internal-Fleet-LoadB-1A2B3C4D5E6F-0123456789.elb.eu-west-1.amazonaws.com';
    // What CloudFormation makes of the user data's intrinsics once the bucket, key and load balancer exist.
    const resolve = (value: unknown): unknown => {
      if (typeof value !== 'object' || value === null) return value;
      const [[name, argument]] = Object.entries(value);
      if (name === 'Fn::Base64') return resolve(argument);
      if (name === 'Fn::Join') return (argument as [string, unknown[]])[1].map(resolve).join((argument as [string])[0]);
      if (name === 'Ref' && argument === 'AWS::Region') return 'eu-west-1';
      if (name === 'Ref' && argument === bucket) return 'fleet-modelsbucket1a2b3c4d-9z8y7x6w5v4u';
      if (name === 'Fn::GetAtt' && (argument as string[])[0] === key) return keyArn;
      if (name === 'Fn::GetAtt' && (argument as string[])[0] === loadBalancer && (argument as string[])[1] === 'DNSName') return dnsName;
      throw new Error(`unexpected intrinsic ${JSON.stringify(value)} in the user data`);
    };
    const userData = only(template, 'AWS::EC2::LaunchTemplate').Properties.LaunchTemplateData.UserData;
    expect(parseApplianceConfig(resolve(userData) as string)).toEqual({
      configVersion: 1,
      region: 'eu-west-1',
      bucket: 'fleet-modelsbucket1a2b3c4d-9z8y7x6w5v4u',
      objects: { sealed: 'sealed/llama.sealed', dataKey: 'sealed/llama.datakey.enc', manifest: 'sealed/llama.manifest.json' },
      keyArn,
      modelName: 'llama',
      servicePort: 3000,
      hostNames: [dnsName.toLowerCase()],
    });
  });

  test('gives the instances a role that may only fetch the model and decrypt, and makes it the unsealer', () => {
    const { template } = fleet();
    const [role] = Object.values(template.findResources('AWS::IAM::Role', {
      Properties: { AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 'ec2.amazonaws.com' } })] } },
    }));
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    const statements = Object.values(template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: Match.stringLikeRegexp('^FleetLaunchTemplateRole') }] },
    })).flatMap((p) => p.Properties.PolicyDocument.Statement);
    const allowed = statements.filter((s: { Effect: string }) => s.Effect === 'Allow');
    expect(allowed.flatMap((s: { Action: string }) => s.Action).sort()).toEqual(['kms:Decrypt', 's3:GetObject', 's3:ListBucket']);
    expect(statements.filter((s: { Effect: string }) => s.Effect === 'Deny').map((s: { Sid: string }) => s.Sid))
      .toEqual(['DenyS3OutsideTheModelPrefix', 'DenyKmsOutsideTheSealingKey']);
    const unseal = Object.values(sealingKeys(template))[0].Properties.KeyPolicy.Statement
      .find((s: { Sid: string }) => s.Sid === 'UnsealOnlyOnAttestedImage1');
    expect(unseal.Principal.AWS).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^FleetLaunchTemplateRole/), 'Arn'] });
  });

  test.each(['m4.large', 't2.micro', 'c5.metal'])('refuses %s, which has no NitroTPM', (type) => {
    expect(() => fleet({ instanceType: new ec2.InstanceType(type) })).toThrow(`Instance type ${type} has no NitroTPM`);
  });

  test('warns about an instance type it does not know', () => {
    const { stack } = fleet({ instanceType: new ec2.InstanceType('hpc7a.96xlarge') });
    Annotations.fromStack(stack).hasWarning('/Test/Fleet/LaunchTemplate', Match.stringLikeRegexp('NitroTPM support of instance type hpc7a.96xlarge is not known'));
  });

  test('accepts a GPU instance type with NitroTPM', () => {
    const { template } = fleet({ instanceType: new ec2.InstanceType('g6e.xlarge') });
    expect(only(template, 'AWS::EC2::LaunchTemplate').Properties.LaunchTemplateData.InstanceType).toBe('g6e.xlarge');
  });
});

describe('load balancer', () => {
  test('is internal, in the isolated subnets, behind its own security group', () => {
    const { template, inference, stack } = fleet();
    const loadBalancer = only(template, 'AWS::ElasticLoadBalancingV2::LoadBalancer').Properties;
    expect(loadBalancer).toMatchObject({ Type: 'network', Scheme: 'internal' });
    expect(loadBalancer.SecurityGroups).toEqual([
      { 'Fn::GetAtt': [logicalId(template, 'AWS::EC2::SecurityGroup', /^Inference load balancer/), 'GroupId'] },
    ]);
    const vpc = inference.loadBalancer.vpc!;
    expect(loadBalancer.Subnets).toEqual(vpc.isolatedSubnets.map((s) => stack.resolve(s.subnetId)));
  });

  test('passes TCP through on the service port: no TLS listener and no certificate anywhere', () => {
    const { template } = fleet({ servicePort: 8443 });
    const listeners = Object.values(template.findResources('AWS::ElasticLoadBalancingV2::Listener')).map((l) => l.Properties);
    expect(listeners).toEqual([expect.objectContaining({ Protocol: 'TCP', Port: 8443 })]);
    for (const listener of listeners) {
      expect(listener.Certificates).toBeUndefined();
      expect(listener.SslPolicy).toBeUndefined();
    }
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::ListenerCertificate', 0);
    template.resourceCountIs('AWS::CertificateManager::Certificate', 0);
    expect(JSON.stringify(template.toJSON())).not.toMatch(/"TLS"|Certificates|CertificateArn/);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', { Protocol: 'TCP', Port: 8443, TargetType: 'instance' });
  });

  test('sends traffic only to instances whose appliance is ready: HTTPS GET /api/ready answering 200', () => {
    const target = only(fleet().template, 'AWS::ElasticLoadBalancingV2::TargetGroup').Properties;
    expect(target).toMatchObject({ HealthCheckProtocol: 'HTTPS', HealthCheckPath: '/api/ready', Matcher: { HttpCode: '200' } });
    expect(target.HealthCheckPort ?? 'traffic-port').toBe('traffic-port');
  });
});

describe('auto scaling group', () => {
  test('launches the latest template version in the isolated subnets, replacing instances the load balancer finds unready', () => {
    const { template, inference, stack } = fleet({ unsealGracePeriod: Duration.minutes(45) });
    const group = only(template, 'AWS::AutoScaling::AutoScalingGroup').Properties;
    const vpc = inference.loadBalancer.vpc!;
    expect(group.VPCZoneIdentifier).toEqual(vpc.isolatedSubnets.map((s) => stack.resolve(s.subnetId)));
    expect(group).toMatchObject({
      HealthCheckType: 'ELB',
      HealthCheckGracePeriod: 2700,
      LaunchTemplate: { Version: { 'Fn::GetAtt': [expect.stringMatching(/^FleetLaunchTemplate/), 'LatestVersionNumber'] } },
      TargetGroupARNs: [{ Ref: expect.stringMatching(/^FleetLoadBalancerServiceInstances/) }],
    });
  });

  test('upgrades by instance refresh that keeps every instance in service until its replacement is healthy', () => {
    const group = only(fleet().template, 'AWS::AutoScaling::AutoScalingGroup');
    expect(group.UpdatePolicy.AutoScalingInstanceRefresh).toEqual({
      Strategy: 'Rolling',
      Preferences: { MinHealthyPercentage: 100, MaxHealthyPercentage: 200 },
    });
    expect(group.UpdatePolicy.AutoScalingRollingUpdate).toBeUndefined();
    expect(group.UpdatePolicy.AutoScalingReplacingUpdate).toBeUndefined();
  });

  test('runs two instances by default and the sizes it is given', () => {
    expect(only(fleet().template, 'AWS::AutoScaling::AutoScalingGroup').Properties).toMatchObject({ MinSize: '2', MaxSize: '2' });
    const sized = only(fleet({ minCapacity: 1, desiredCapacity: 3, maxCapacity: 6 }).template, 'AWS::AutoScaling::AutoScalingGroup');
    expect(sized.Properties).toMatchObject({ MinSize: '1', DesiredCapacity: '3', MaxSize: '6' });
  });

  test.each([
    [{ minCapacity: 0 }, 'minCapacity must be a whole number of instances, at least 1; got 0'],
    [{ minCapacity: 1.5, maxCapacity: 2 }, 'minCapacity must be a whole number of instances, at least 1; got 1.5'],
    [{ minCapacity: 3, maxCapacity: 2 }, 'minCapacity (3) must not exceed maxCapacity (2)'],
    [{ minCapacity: 2, desiredCapacity: 1, maxCapacity: 4 }, 'desiredCapacity (1) must be at least minCapacity (2)'],
    [{ minCapacity: 1, desiredCapacity: 5, maxCapacity: 4 }, 'desiredCapacity (5) must not exceed maxCapacity (4)'],
  ])('refuses capacity %j at synth', (capacity, message) => {
    expect(() => fleet(capacity)).toThrow(message);
  });
});

describe('security groups', () => {
  test('no security group allows traffic out to anywhere', () => {
    const { template } = fleet();
    const groups = Object.values(template.findResources('AWS::EC2::SecurityGroup'));
    expect(groups.length).toBeGreaterThanOrEqual(3);
    // EC2 adds an allow-all egress rule to a group that lists none of its own.
    for (const group of groups) expect(group.Properties.SecurityGroupEgress?.length).toBeGreaterThan(0);
    const egress = [
      ...groups.flatMap((group) => group.Properties.SecurityGroupEgress ?? []),
      ...Object.values(template.findResources('AWS::EC2::SecurityGroupEgress')).map((rule) => rule.Properties),
    ];
    for (const rule of egress) {
      expect(rule.CidrIp).not.toBe('0.0.0.0/0');
      expect(rule.CidrIpv6).not.toBe('::/0');
    }
  });

  test('lets the named peers reach the load balancer, and only the load balancer reach the instances, on the service port', () => {
    const { template } = fleet();
    const instances = logicalId(template, 'AWS::EC2::SecurityGroup', /^Zero Operator Access/);
    const loadBalancer = logicalId(template, 'AWS::EC2::SecurityGroup', /^Inference load balancer/);
    const groups = template.findResources('AWS::EC2::SecurityGroup');
    expect(groups[instances].Properties.SecurityGroupIngress).toBeUndefined();
    expect(groups[loadBalancer].Properties.SecurityGroupIngress).toEqual([
      expect.objectContaining({ CidrIp: CLIENTS, IpProtocol: 'tcp', FromPort: 3000, ToPort: 3000 }),
    ]);
    const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress')).map((r) => r.Properties);
    const toInstances = ingress.filter((r) => JSON.stringify(r.GroupId).includes(instances));
    expect(toInstances).toEqual([
      expect.objectContaining({ IpProtocol: 'tcp', FromPort: 3000, ToPort: 3000, SourceSecurityGroupId: { 'Fn::GetAtt': [loadBalancer, 'GroupId'] } }),
    ]);
    const egress = Object.values(template.findResources('AWS::EC2::SecurityGroupEgress')).map((r) => r.Properties);
    expect(egress.filter((r) => JSON.stringify(r.GroupId).includes(loadBalancer))).toEqual([
      expect.objectContaining({ IpProtocol: 'tcp', FromPort: 3000, ToPort: 3000, DestinationSecurityGroupId: { 'Fn::GetAtt': [instances, 'GroupId'] } }),
    ]);
  });

  test('adds peers later through the load balancer, and refuses other ports in or any other way out', () => {
    const { inference } = fleet({ servicePeers: [] });
    inference.allowServiceFrom(ec2.Peer.ipv4('10.8.0.0/16'));
    Template.fromStack(inference.loadBalancerSecurityGroup.stack).hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupIngress: [Match.objectLike({ CidrIp: '10.8.0.0/16', FromPort: 3000 })],
    });
    const group = inference.loadBalancerSecurityGroup;
    expect(() => group.addIngressRule(ec2.Peer.ipv4('10.0.0.0/8'), ec2.Port.tcp(22))).toThrow(/inbound traffic is allowed only on TCP 3000/);
    expect(() => group.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.allTraffic())).toThrow(/no other outbound rule/);
    expect(() => inference.securityGroup.addIngressRule(ec2.Peer.ipv4('10.0.0.0/8'), ec2.Port.tcp(22))).toThrow(/only on TCP 3000/);
  });

  test('warns when the service is opened to the whole internet', () => {
    const { stack } = fleet({ servicePeers: [ec2.Peer.anyIpv4()] });
    Annotations.fromStack(stack).hasWarning('/Test/Fleet/LoadBalancerSecurityGroup', Match.stringLikeRegexp('open to 0.0.0.0/0'));
  });
});

test('allows the current and the next image in separate statements; new instances launch the current one', () => {
  const { template } = fleet({ additionalAllowedImages: [IMAGE_B] });
  const statements = Object.values(sealingKeys(template))[0].Properties.KeyPolicy.Statement;
  expect(statements.filter((s: { Sid: string }) => s.Sid.startsWith('Unseal'))).toHaveLength(2);
  expect(only(template, 'AWS::EC2::LaunchTemplate').Properties.LaunchTemplateData.ImageId).toBe(IMAGE_A.imageId);
});

test('outputs what the key is sealed to and how to verify the service through the load balancer', () => {
  const { template } = fleet({ additionalAllowedImages: [IMAGE_B] });
  const url = ['https://', { 'Fn::GetAtt': [expect.stringMatching(/^FleetLoadBalancer/), 'DNSName'] }, ':3000'];
  const command = (name: string) => ({
    'Fn::Join': ['', [`npx sealed-inference ${name} https://`, url[1],
      ':3000 --stack-outputs outputs.json --stack Test --model llama.manifest.json']],
  });
  expect(outputs(template)).toMatchObject({
    FleetImageId: IMAGE_A.imageId,
    FleetAllowedImage1Id: IMAGE_A.imageId,
    FleetAllowedImage1Pcr4: hex384('a4'),
    FleetAllowedImage1Pcr12: hex384('0c'),
    FleetAllowedImage2Id: IMAGE_B.imageId,
    FleetAllowedImage2Pcr4: hex384('b4'),
    FleetKeyArn: { 'Fn::GetAtt': [expect.any(String), 'Arn'] },
    FleetModelBucketName: { Ref: expect.any(String) },
    FleetModelPrefix: 'models/',
    FleetModelName: 'llama',
    FleetModelManifestUri: { 'Fn::Join': ['', ['s3://', { Ref: expect.any(String) }, '/models/llama.manifest.json']] },
    FleetServiceUrl: { 'Fn::Join': ['', url] },
    FleetVerifyCommand: command('verify'),
    FleetGatewayCommand: command('gateway'),
    FleetAutoScalingGroupName: { Ref: expect.stringMatching(/^FleetInstancesASG/) },
  });
});

test('lets the model owner seal and upload, never decrypt', () => {
  const { template } = fleet({ modelOwners: [new iam.ArnPrincipal('arn:aws:iam::222222222222:role/owner')] });
  const statements = Object.values(sealingKeys(template))[0].Properties.KeyPolicy.Statement;
  const owner = statements.filter((s: { Principal: unknown }) => JSON.stringify(s.Principal).includes('222222222222'));
  expect(owner.flatMap((s: { Action: string }) => s.Action).sort()).toEqual(['kms:DescribeKey', 'kms:GenerateDataKey']);
});

describe('compliance', () => {
  const checked = (context: Record<string, unknown> = {}) => {
    const app = new App({ context });
    const stack = new Stack(app, 'Fleet');
    new SealedInferenceFleet(stack, 'Inference', { image: IMAGE_A, modelName: 'llama', servicePeers: [ec2.Peer.ipv4(CLIENTS)] });
    addComplianceChecks(app);
    return { app, stack };
  };

  test('passes AwsSolutions, NIST 800-53 r5, HIPAA Security and PCI DSS 3.2.1, every acknowledgment with a reason in the template', () => {
    const { app, stack } = checked();
    expect(() => app.synth()).not.toThrow();
    type Acknowledged = { Type: string; Metadata?: { cdk_nag?: { rules_to_suppress: Array<{ id: string; reason: string }> } } };
    const resources = Object.values(Template.fromStack(stack).toJSON().Resources) as Acknowledged[];
    for (const rule of resources.flatMap((r) => r.Metadata?.cdk_nag?.rules_to_suppress ?? [])) {
      expect(rule.reason.length).toBeGreaterThan(30);
    }
    const loadBalancer = resources.find((r) => r.Type === 'AWS::ElasticLoadBalancingV2::LoadBalancer')!;
    const acknowledged = loadBalancer.Metadata!.cdk_nag!.rules_to_suppress;
    expect(acknowledged).toEqual(expect.arrayContaining([
      { id: 'AwsSolutions-ELB2', reason: expect.stringContaining('access logs only for TLS listeners') },
      ...['NIST.800.53.R5', 'HIPAA.Security', 'PCI.DSS.321'].map((pack) => (
        { id: `${pack}-ELBv2ACMCertificateRequired`, reason: expect.stringContaining('TLS 1.3 ends on each attested instance') }
      )),
      { id: 'HIPAA.Security-ELBDeletionProtectionEnabled', reason: expect.stringContaining('holds no state') },
    ]));
    // PCI DSS 3.2.1 does not check deletion protection: nothing to acknowledge there.
    expect(acknowledged.map((rule) => rule.id)).not.toContain('PCI.DSS.321-ELBDeletionProtectionEnabled');
  });

  test("passes CloudFormation's built-in template validation, which fails on what it does not know", () => {
    expect(() => checked({ '@aws-cdk/core:validateAgainstDefaultRules': true }).app.synth()).not.toThrow();
    const careless = checked({ '@aws-cdk/core:validateAgainstDefaultRules': true });
    const template = careless.stack.node.findAll().find((c) => c instanceof ec2.CfnLaunchTemplate) as ec2.CfnLaunchTemplate;
    template.addPropertyOverride('LaunchTemplateData.NoSuchProperty', 'x');
    expect(() => careless.app.synth()).toThrow(/NoSuchProperty/);
  });
});

describe('VPC and synth warnings', () => {
  const warnedAt = (stack: Stack, id: string) =>
    Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp(`\\[ack: ${id}\\]`)).map((w) => w.id);
  const OWNER = new iam.ArnPrincipal('arn:aws:iam::222222222222:role/owner');

  test('exposes the isolated network it creates, in the block given', () => {
    const { stack, inference, template } = fleet({ vpcCidr: '192.168.32.0/20' });
    template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '192.168.32.0/20' });
    expect(stack.resolve(inference.vpc.vpcId)).toEqual({ Ref: Object.keys(template.findResources('AWS::EC2::VPC'))[0] });
  });

  test('rejects endpointPeers without a VPC of your own', () => {
    expect(() => fleet({ endpointPeers: [ec2.Peer.ipv4('10.0.7.0/24')] })).toThrow(/endpointPeers \(10\.0\.7\.0\/24\) apply only to a VPC of your own/);
  });

  test('warns on the load balancer, not the instances, that nobody can reach the service', () => {
    const { stack } = fleet({ servicePeers: [], modelOwners: [OWNER] });
    expect(warnedAt(stack, 'sealed-inference:no-service-peers')).toEqual(['/Test/Fleet/LoadBalancerSecurityGroup']);
  });

  test('does not warn about service peers allowed after construction', () => {
    const { stack, inference } = fleet({ servicePeers: [], modelOwners: [OWNER] });
    inference.allowServiceFrom(ec2.Peer.ipv4(CLIENTS));
    expect(warnedAt(stack, 'sealed-inference:no-service-peers')).toEqual([]);
  });

  test('warns that nobody can seal until a model owner is allowed', () => {
    const { stack } = fleet();
    expect(warnedAt(stack, 'sealed-inference:no-model-owner')).toEqual(['/Test/Fleet']);
  });

  test('does not warn about a model owner allowed after construction', () => {
    const { stack, inference } = fleet();
    inference.allowModelOwner(OWNER);
    expect(warnedAt(stack, 'sealed-inference:no-model-owner')).toEqual([]);
  });
});

test("serves the model owner's key and bucket, imported, with the role name the owner admits", () => {
  const stack = testStack();
  const keyArn = 'arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab';
  const { inference, template } = fleet({
    key: SealedModelKey.fromSealedModelKeyAttributes(stack, 'OwnersKey', { keyArn, modelNames: ['llama'] }),
    modelBucket: ModelBucket.fromModelBucketAttributes(stack, 'OwnersModels', { bucketName: 'owner-sealed-models', account: '222222222222' }),
    instanceRoleName: 'sealed-inference-fleet',
  }, stack);
  expect(sealingKeys(template)).toEqual({});
  template.resourceCountIs('AWS::S3::Bucket', 0);
  template.hasResourceProperties('AWS::IAM::Role', { RoleName: 'sealed-inference-fleet' });
  expect(inference.launchTemplate.applianceConfig).toMatchObject({ keyArn, bucket: 'owner-sealed-models' });
  expect(inference.tamperAlarms.rules.map((rule) => rule.node.id)).not.toContain('Key');
  expect(() => inference.allowModelOwner(new iam.ArnPrincipal('arn:aws:iam::222222222222:role/owner'))).toThrow(/is imported/);
});
