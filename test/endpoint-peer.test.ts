import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { EndpointPeer } from '../lib';
import { testStack } from './fixtures';

test("names S3's gateway endpoint by the Region's S3 prefix list, looked up when the stack deploys", () => {
  const stack = testStack();
  const peer = EndpointPeer.s3Gateway(stack);
  expect(peer.toEgressRuleConfig()).toEqual({ destinationPrefixListId: expect.any(String) });
  const template = Template.fromStack(stack);
  const [[logicalId, lookup]] = Object.entries(template.findResources('Custom::AWS'));
  expect(JSON.stringify(lookup)).toMatch(/describeManagedPrefixLists.*prefix-list-name.*com\.amazonaws\..*\.s3/);
  expect(stack.resolve(peer.toEgressRuleConfig().destinationPrefixListId)).toEqual({
    'Fn::GetAtt': [logicalId, 'PrefixLists.0.PrefixListId'],
  });
});

test('looks the prefix list up once per stack, however many constructs ask', () => {
  const stack = testStack();
  const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0 });
  const peers = [EndpointPeer.s3Gateway(stack), EndpointPeer.s3Gateway(new ec2.SecurityGroup(stack, 'Group', { vpc }))];
  Template.fromStack(stack).resourceCountIs('Custom::AWS', 1);
  expect(stack.resolve(peers[1].toEgressRuleConfig())).toEqual(stack.resolve(peers[0].toEgressRuleConfig()));
});
