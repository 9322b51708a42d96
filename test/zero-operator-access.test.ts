import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { ZeroOperatorAccessSecurityGroup } from '../lib';
import { testStack } from './fixtures';

function securityGroup(props: Partial<ConstructorParameters<typeof ZeroOperatorAccessSecurityGroup>[2]> = {}) {
  const stack = testStack();
  const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0 });
  const group = new ZeroOperatorAccessSecurityGroup(stack, 'Zoa', { vpc, ...props });
  return { stack, vpc, group };
}

/** Every egress rule of the group, inline or as a separate resource. */
function egressRules(template: Template): Array<Record<string, unknown>> {
  const group = Object.values(template.findResources('AWS::EC2::SecurityGroup'))[0];
  const separate = Object.values(template.findResources('AWS::EC2::SecurityGroupEgress')).map((r) => r.Properties);
  return [...(group.Properties.SecurityGroupEgress ?? []), ...separate];
}

test('allows inbound only TCP on the service port from the named peers', () => {
  const { stack } = securityGroup({ servicePeers: [ec2.Peer.ipv4('10.1.0.0/16')] });
  const template = Template.fromStack(stack);
  template.hasResourceProperties('AWS::EC2::SecurityGroup', {
    SecurityGroupIngress: [{ CidrIp: '10.1.0.0/16', IpProtocol: 'tcp', FromPort: 3000, ToPort: 3000 }],
  });
  template.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
});

test('opens nothing inbound by default', () => {
  const template = Template.fromStack(securityGroup().stack);
  const group = Object.values(template.findResources('AWS::EC2::SecurityGroup'))[0];
  expect(group.Properties.SecurityGroupIngress).toBeUndefined();
});

test('uses a custom service port', () => {
  const { stack, group } = securityGroup({ servicePort: 8443, servicePeers: [ec2.Peer.ipv4('10.1.0.0/16')] });
  expect(group.servicePort).toBe(8443);
  Template.fromStack(stack).hasResourceProperties('AWS::EC2::SecurityGroup', {
    SecurityGroupIngress: [Match.objectLike({ FromPort: 8443, ToPort: 8443 })],
  });
});

test('allows outbound only HTTPS, to the VPC by default', () => {
  const rules = egressRules(Template.fromStack(securityGroup().stack));
  expect(rules).toEqual([
    expect.objectContaining({ CidrIp: { 'Fn::GetAtt': [expect.any(String), 'CidrBlock'] }, IpProtocol: 'tcp', FromPort: 443, ToPort: 443 }),
  ]);
});

test('keeps the default allow-all egress away when every rule is a separate resource', () => {
  const { stack, group, vpc } = securityGroup({ endpointPeers: [] });
  const endpoint = new ec2.SecurityGroup(stack, 'Endpoint', { vpc });
  group.addEgressRule(endpoint, ec2.Port.tcp(443));
  group.addEgressRule(ec2.Peer.prefixList('pl-12345678'), ec2.Port.tcp(443));
  const template = Template.fromStack(stack);
  const inline = Object.values(template.findResources('AWS::EC2::SecurityGroup', {
    Properties: { GroupDescription: Match.stringLikeRegexp('Zero Operator Access') },
  }))[0].Properties.SecurityGroupEgress;
  expect(inline).toEqual([expect.objectContaining({ CidrIp: '255.255.255.255/32', IpProtocol: 'icmp', FromPort: 252, ToPort: 86 })]);
  for (const rule of egressRules(template).slice(1)) expect(rule).toMatchObject({ IpProtocol: 'tcp', FromPort: 443 });
});

test.each([
  ['SSH', ec2.Port.tcp(22)],
  ['all traffic', ec2.Port.allTraffic()],
  ['another TCP port', ec2.Port.tcp(3001)],
  ['the service port over UDP', ec2.Port.udp(3000)],
  ['a port range covering the service', ec2.Port.tcpRange(2999, 3001)],
])('throws at synth time on an inbound rule for %s', (_, port) => {
  const { group } = securityGroup();
  expect(() => group.addIngressRule(ec2.Peer.ipv4('10.0.0.0/8'), port)).toThrow(
    /Zero Operator Access security group: inbound traffic is allowed only on TCP 3000/,
  );
});

test('throws when a connection to the instance is opened on another port', () => {
  const { group, stack, vpc } = securityGroup();
  const other = new ec2.SecurityGroup(stack, 'Other', { vpc });
  expect(() => group.connections.allowFrom(other, ec2.Port.tcp(22))).toThrow(/inbound traffic is allowed only on TCP 3000/);
});

test.each([
  ['all traffic', ec2.Port.allTraffic()],
  ['HTTP', ec2.Port.tcp(80)],
  ['DNS over TCP', ec2.Port.tcp(53)],
])('throws at synth time on an outbound rule for %s', (_, port) => {
  const { group } = securityGroup();
  expect(() => group.addEgressRule(ec2.Peer.anyIpv4(), port)).toThrow(/outbound traffic is allowed only on TCP 443/);
});

test('warns when the service is opened to the whole internet', () => {
  const { stack } = securityGroup({ servicePeers: [ec2.Peer.anyIpv4()] });
  Annotations.fromStack(stack).hasWarning('/Test/Zoa', Match.stringLikeRegexp('open to 0.0.0.0/0'));
});

test('rejects an impossible port', () => {
  expect(() => securityGroup({ servicePort: 70000 })).toThrow(/servicePort must be an integer from 1 to 65535, got 70000/);
});

/** The paths that carry the warning with this id. */
const warnedAt = (stack: ReturnType<typeof testStack>, id: string) =>
  Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp(`\\[ack: ${id}\\]`)).map((w) => w.id);

describe('synth warnings', () => {
  test('warns that nobody can reach the service until a peer is allowed', () => {
    const { stack } = securityGroup();
    expect(warnedAt(stack, 'sealed-inference:no-service-peers')).toEqual(['/Test/Zoa']);
  });

  test('does not warn about service peers once one is allowed after construction', () => {
    const { stack, group } = securityGroup();
    group.allowServiceFrom(ec2.Peer.ipv4('10.1.0.0/16'));
    expect(warnedAt(stack, 'sealed-inference:no-service-peers')).toEqual([]);
  });

  test('warns that S3 through a gateway endpoint is cut off with the default endpoint peer', () => {
    const { stack } = securityGroup();
    expect(warnedAt(stack, 'sealed-inference:no-s3-gateway-peer')).toEqual(['/Test/Zoa']);
  });

  test('does not warn about S3 once a prefix list is allowed, even after construction', () => {
    const { stack, group } = securityGroup();
    group.allowEndpoint(ec2.Peer.prefixList('pl-6da54004'));
    expect(warnedAt(stack, 'sealed-inference:no-s3-gateway-peer')).toEqual([]);
  });

  test('does not warn about S3 when the endpoint peers are named', () => {
    const { stack } = securityGroup({ endpointPeers: [ec2.Peer.ipv4('10.0.5.0/24')] });
    expect(warnedAt(stack, 'sealed-inference:no-s3-gateway-peer')).toEqual([]);
  });
});
