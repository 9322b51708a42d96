import { Aws, Stack, Validations } from 'aws-cdk-lib';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { acknowledgeCompliance } from './compliance-acknowledgment';
import { acknowledgeDeployTimeFunctions } from './deploy-time-function-acknowledgment';

/** Where the lookup's response holds the prefix list id: read it with `getResponseField`. */
export const PREFIX_LIST_ID_FIELD = 'PrefixLists.0.PrefixListId';

/**
 * Looks up the Region's AWS-managed S3 prefix list when the stack deploys, as `id` under `scope`.
 * Traffic through a gateway endpoint goes to S3's public addresses: a security group can only name them through
 * this prefix list, whose id no CloudFormation attribute returns.
 */
export function lookUpS3PrefixList(scope: Construct, id: string): cr.AwsCustomResource {
  const lookup = new cr.AwsCustomResource(scope, id, {
    onUpdate: {
      service: 'EC2',
      action: 'describeManagedPrefixLists',
      parameters: { Filters: [{ Name: 'prefix-list-name', Values: [`com.amazonaws.${Aws.REGION}.s3`] }] },
      physicalResourceId: cr.PhysicalResourceId.fromResponse(PREFIX_LIST_ID_FIELD),
      outputPaths: [PREFIX_LIST_ID_FIELD],
    },
    policy: cr.AwsCustomResourcePolicy.fromSdkCalls({ resources: cr.AwsCustomResourcePolicy.ANY_RESOURCE }),
    installLatestAwsSdk: false,
  });
  acknowledgeLookup(lookup);
  return lookup;
}

/** The lookup is CDK's AwsCustomResource: a singleton Lambda at stack level and a describe-only policy. */
function acknowledgeLookup(lookup: cr.AwsCustomResource): void {
  const policy = lookup.node.findChild('CustomResourcePolicy');
  Validations.of(policy).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason: 'ec2:DescribeManagedPrefixLists supports no resource-level permissions; it is the only action granted.',
  });
  acknowledgeCompliance(policy, {
    rule: 'IAMNoInlinePolicy',
    reason: 'The describe-only policy is inline on the lookup function role and attached nowhere else.',
  });
  const singleton = Stack.of(lookup).node.findChild(`AWS${cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace(/-/g, '')}`);
  acknowledgeDeployTimeFunctions(singleton, 'the deploy-time lookup function');
}
