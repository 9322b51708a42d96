import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { EndpointDnsFirewall, SealedInference } from '../lib';
import { expectLogGroupEncrypted, IMAGE_A, testStack } from './fixtures';

function pattern(stack: Stack = testStack()) {
  const inference = new SealedInference(stack, 'Inference', { image: IMAGE_A, modelName: 'llama' });
  return { inference, template: Template.fromStack(stack) };
}

const vpcRef = { Ref: Match.stringLikeRegexp('^InferenceNetworkVpc[0-9A-F]{8}$') };

describe('the isolated network of a pattern', () => {
  const { template } = pattern();

  test('resolves only the Regional KMS name and the model bucket\'s S3 name', () => {
    template.hasResourceProperties('AWS::Route53Resolver::FirewallDomainList', {
      Domains: [
        { 'Fn::Join': ['', ['kms.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }]] },
        { 'Fn::Join': ['', [{ Ref: Match.stringLikeRegexp('^InferenceModels') }, '.s3.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }]] },
      ],
    });
  });

  test('allows those names first, trusting the CNAME S3 answers with, and answers every other name NXDOMAIN', () => {
    const lists = template.findResources('AWS::Route53Resolver::FirewallDomainList');
    const everything = Object.keys(lists).find((id) => JSON.stringify(lists[id].Properties.Domains) === '["*"]');
    const allowed = Object.keys(lists).find((id) => id !== everything);
    template.hasResourceProperties('AWS::Route53Resolver::FirewallRuleGroup', {
      FirewallRules: [
        {
          Priority: 100,
          Action: 'ALLOW',
          FirewallDomainListId: { 'Fn::GetAtt': [allowed, 'Id'] },
          FirewallDomainRedirectionAction: 'TRUST_REDIRECTION_DOMAIN',
        },
        { Priority: 200, Action: 'BLOCK', BlockResponse: 'NXDOMAIN', FirewallDomainListId: { 'Fn::GetAtt': [everything, 'Id'] } },
      ],
    });
  });

  test('filters the VPC\'s queries, protected from changes by mutation protection', () => {
    template.hasResourceProperties('AWS::Route53Resolver::FirewallRuleGroupAssociation', {
      VpcId: vpcRef,
      FirewallRuleGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('DnsFirewallRules'), 'Id'] },
      MutationProtection: 'ENABLED',
    });
  });

  test('fails closed: when the firewall cannot answer, queries are blocked', () => {
    template.hasResourceProperties('AWS::Route53Resolver::FirewallConfig', { ResourceId: vpcRef, FirewallFailOpen: 'DISABLED' });
  });

  test('logs every query of the VPC to a log group encrypted with a KMS key of its own', () => {
    template.hasResourceProperties('AWS::Route53Resolver::ResolverQueryLoggingConfig', {
      DestinationArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('DnsFirewallQueryLogs'), 'Arn'] },
    });
    template.hasResourceProperties('AWS::Route53Resolver::ResolverQueryLoggingConfigAssociation', { ResourceId: vpcRef });
    template.hasResourceProperties('AWS::Logs::LogGroup', {
      KmsKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('DnsFirewallQueryLogKey'), 'Arn'] },
      RetentionInDays: 365,
    });
    expectLogGroupEncrypted(template, 'InferenceNetworkDnsFirewallQueryLogs', 'InferenceNetworkDnsFirewallQueryLogKey');
    template.hasResourceProperties('AWS::KMS::Key', {
      Description: 'Encrypts the DNS query logs of the sealed inference network',
      EnableKeyRotation: true,
    });
  });
});

test('a VPC of your own gets no firewall: its DNS is yours to filter', () => {
  const stack = testStack();
  const vpc = new ec2.Vpc(stack, 'Own', { subnetConfiguration: [{ name: 'Isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
  new SealedInference(stack, 'Inference', { image: IMAGE_A, modelName: 'llama', vpc });
  Template.fromStack(stack).resourceCountIs('AWS::Route53Resolver::FirewallRuleGroup', 0);
});

test('refuses an empty allow list, which would resolve nothing', () => {
  const stack = testStack();
  const vpc = new ec2.Vpc(stack, 'Vpc');
  expect(() => new EndpointDnsFirewall(stack, 'Firewall', { vpc, allowedDomains: [] })).toThrow(/allowedDomains is empty/);
});
