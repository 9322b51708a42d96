import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { IsolatedNetwork } from '../isolated-network';
import type { SealedInferenceProps } from '../sealed-inference';

/** Where a sealed inference pattern runs: a VPC of the user's own, or an isolated network it creates. */
export interface InferenceNetwork {
  readonly vpc: ec2.IVpc;
  /** The isolated network, when the pattern created one. */
  readonly isolatedNetwork?: IsolatedNetwork;
}

/**
 * Uses `props.vpc`, or creates an isolated network (`Network` under `scope`). Throws on a prop that applies only to
 * the other case: it would otherwise be ignored without a word.
 */
export function inferenceNetwork(scope: Construct, props: SealedInferenceProps): InferenceNetwork {
  if (props.vpc) {
    if (props.vpcCidr !== undefined) {
      throw new Error(
        `${scope.node.path}: vpcCidr (${props.vpcCidr}) is the block of the VPC this construct creates; it has no ` +
          'effect with a VPC of your own (vpc). Remove one of the two.',
      );
    }
    return { vpc: props.vpc };
  }
  if (props.endpointPeers !== undefined) {
    throw new Error(
      `${scope.node.path}: endpointPeers (${props.endpointPeers.map((peer) => peer.uniqueId).join(', ') || 'empty'}) ` +
        'apply only to a VPC of your own (vpc); the isolated network this construct creates allows exactly its KMS ' +
        'and S3 endpoints. Pass vpc, or remove endpointPeers.',
    );
  }
  const isolatedNetwork = new IsolatedNetwork(scope, 'Network', { vpcCidr: props.vpcCidr });
  return { vpc: isolatedNetwork.vpc, isolatedNetwork };
}
