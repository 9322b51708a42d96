import { Annotations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { ZeroOperatorAccessSecurityGroup } from './zero-operator-access';

/** Properties of a {@link ServiceLoadBalancerSecurityGroup}. */
export interface ServiceLoadBalancerSecurityGroupProps {
  /** The VPC the security group belongs to. */
  readonly vpc: ec2.IVpc;

  /** The security group of the instances behind the load balancer; its service port is the only port used. */
  readonly targets: ZeroOperatorAccessSecurityGroup;

  /**
   * Who may reach the service port through the load balancer.
   *
   * @default - nobody until peers are added with `allowServiceFrom()`
   */
  readonly servicePeers?: ec2.IPeer[];
}

/**
 * The security group of a load balancer in front of Zero Operator Access instances: inbound only TCP on the service
 * port from named peers, outbound only to the instances' group on that port (traffic and health checks). The
 * instances' group lets in the service port from this group alone, so a client cannot go around the load balancer.
 */
export class ServiceLoadBalancerSecurityGroup extends ec2.SecurityGroup {
  /** The TCP port of the inference service. */
  public readonly servicePort: number;

  private hasIngress = false;

  constructor(scope: Construct, id: string, props: ServiceLoadBalancerSecurityGroupProps) {
    super(scope, id, {
      vpc: props.vpc,
      allowAllOutbound: false,
      allowAllIpv6Outbound: false,
      description: 'Inference load balancer: inbound only to the service port, outbound only to the attested instances',
    });
    this.servicePort = props.targets.servicePort;
    // Written as a resource of its own rather than through addEgressRule, which would drop CDK's "no traffic" rule
    // from the group and so let EC2 add its default allow-all egress.
    new ec2.CfnSecurityGroupEgress(this, 'ToInstances', {
      groupId: this.securityGroupId,
      destinationSecurityGroupId: props.targets.securityGroupId,
      ipProtocol: 'tcp',
      fromPort: this.servicePort,
      toPort: this.servicePort,
      description: 'Inference service and readiness checks, to the attested instances only',
    });
    props.targets.allowServiceFrom(this, 'Inference service, through the load balancer only');
    props.servicePeers?.forEach((peer) => this.allowServiceFrom(peer));
    // Checked at synth time, so that peers added after construction silence the warning.
    this.node.addValidation({
      validate: () => {
        if (!this.hasIngress) {
          Annotations.of(this).addWarningV2(
            'sealed-inference:no-service-peers',
            `Nobody can reach the inference service: no peer may connect to the load balancer on TCP ` +
              `${this.servicePort}. Name the clients with servicePeers or allowServiceFrom().`,
          );
        }
        return [];
      },
    });
  }

  /** Lets `peer` reach the inference service through the load balancer. */
  public allowServiceFrom(peer: ec2.IPeer, description?: string): void {
    if (peer.uniqueId === ec2.Peer.anyIpv4().uniqueId || peer.uniqueId === ec2.Peer.anyIpv6().uniqueId) {
      Annotations.of(this).addWarningV2(
        'sealed-inference:service-open-to-all',
        `The inference service port ${this.servicePort} is open to ${peer.uniqueId}. Anyone who can route to ` +
          'the load balancer can send prompts; name the clients instead.',
      );
    }
    this.addIngressRule(peer, ec2.Port.tcp(this.servicePort), description ?? 'Inference service');
  }

  /** Only the service port may be opened inbound. */
  public override addIngressRule(peer: ec2.IPeer, connection: ec2.Port, description?: string, remoteRule?: boolean) {
    const rule = connection.toRuleJson();
    if (rule.ipProtocol !== 'tcp' || rule.fromPort !== this.servicePort || rule.toPort !== this.servicePort) {
      throw new Error(
        `${this.node.path} fronts Zero Operator Access instances: inbound traffic is allowed only on TCP ` +
          `${this.servicePort}, not ${connection.toString()}`,
      );
    }
    this.hasIngress = true;
    super.addIngressRule(peer, connection, description, remoteRule);
  }

  /** The load balancer sends only to its instances, on the service port; that rule is made in the constructor. */
  public override addEgressRule(_peer: ec2.IPeer, connection: ec2.Port): void {
    throw new Error(
      `${this.node.path} fronts Zero Operator Access instances: it sends only to them on TCP ${this.servicePort}; ` +
        `no other outbound rule (${connection.toString()}) may be added`,
    );
  }
}
