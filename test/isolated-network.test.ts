import { Match, Template } from 'aws-cdk-lib/assertions';
import { IsolatedNetwork } from '../lib';
import { expectLogGroupEncrypted, testStack } from './fixtures';

function network(vpcCidr?: string, maxAzs?: number) {
  const stack = testStack();
  new IsolatedNetwork(stack, 'Network', { vpcCidr, maxAzs });
  const template = Template.fromStack(stack);
  const subnets = Object.values(template.findResources('AWS::EC2::Subnet')).map((s) => s.Properties.CidrBlock).sort();
  return { template, subnets };
}

test('uses 10.0.0.0/16 with a /24 subnet per Availability Zone by default', () => {
  const { template, subnets } = network();
  template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '10.0.0.0/16' });
  expect(subnets).toEqual(['10.0.0.0/24', '10.0.1.0/24']);
});

test('records all traffic in flow logs, encrypted with a KMS key of their own', () => {
  const { template } = network();
  template.hasResourceProperties('AWS::EC2::FlowLog', {
    TrafficType: 'ALL',
    LogGroupName: { Ref: Match.stringLikeRegexp('^NetworkFlowLogs') },
  });
  template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 365 });
  expectLogGroupEncrypted(template, 'NetworkFlowLogs', 'NetworkFlowLogKey');
  template.hasResourceProperties('AWS::KMS::Key', {
    Description: 'Encrypts the VPC flow logs of the sealed inference network',
    EnableKeyRotation: true,
  });
});

test('uses the given CIDR block, so that the clients can peer with a block they chose', () => {
  const { template, subnets } = network('172.20.8.0/22');
  template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '172.20.8.0/22' });
  expect(subnets).toEqual(['172.20.8.0/24', '172.20.9.0/24']);
});

test('shares a block too small for /24 subnets equally among the Availability Zones', () => {
  expect(network('192.168.7.0/24').subnets).toEqual(['192.168.7.0/25', '192.168.7.128/25']);
  expect(network('10.4.0.0/24', 3).subnets).toEqual(['10.4.0.0/26', '10.4.0.128/26', '10.4.0.64/26']);
});

test.each([
  ['a public block', '8.8.0.0/16'],
  ['a block outside 172.16.0.0/12', '172.32.0.0/16'],
  ['a block larger than /16', '10.0.0.0/8'],
  ['a block smaller than /24', '10.0.0.0/25'],
  ['an octet above 255', '10.0.256.0/24'],
  ['something else', 'ten-dot-oh'],
])('rejects %s, naming it', (_, cidr) => {
  expect(() => network(cidr)).toThrow(
    `vpcCidr must be a private IPv4 CIDR block (within 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16) from /16 to /24, got ${cidr}`,
  );
});

test('rejects a block whose host bits are set', () => {
  expect(() => network('10.0.0.1/16')).toThrow('vpcCidr must start at its network address: got 10.0.0.1/16');
});
