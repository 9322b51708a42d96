import { Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { lookUpS3PrefixList, PREFIX_LIST_ID_FIELD } from './private/s3-prefix-list';

/** The id of the stack's one S3 prefix list lookup. */
const LOOKUP_ID = 'SealedInferenceS3PrefixList';

/** Endpoint peers for a VPC of your own: where the workload may send HTTPS (`endpointPeers`). */
export class EndpointPeer {
  /**
   * S3 through a gateway endpoint: the Region's S3 prefix list (a gateway endpoint is reached at S3's public
   * addresses, not the VPC's). Its id is looked up when the stack deploys, once per stack, by a custom resource. If
   * you know the id, `ec2.Peer.prefixList('pl-...')` does the same without a lookup.
   */
  public static s3Gateway(scope: Construct): ec2.IPeer {
    const stack = Stack.of(scope);
    const lookup = (stack.node.tryFindChild(LOOKUP_ID) as cr.AwsCustomResource | undefined) ?? lookUpS3PrefixList(stack, LOOKUP_ID);
    return ec2.Peer.prefixList(lookup.getResponseField(PREFIX_LIST_ID_FIELD));
  }

  private constructor() {}
}
