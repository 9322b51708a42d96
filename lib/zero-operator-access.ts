import { Annotations, Lazy, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';

/** The port the appliance serves its chat UI and API on. */
export const DEFAULT_SERVICE_PORT = 3000;

/** The only outbound port: HTTPS to the AWS service endpoints the workload calls (S3, KMS). */
const HTTPS = 443;

/**
 * The security group of Zero Operator Access instances, as an attested launch needs it: the group and its service
 * port. The library implements it only with {@link ZeroOperatorAccessSecurityGroup} and offers no import of an
 * existing group, whose rules it could not check.
 */
export interface IZeroOperatorAccessSecurityGroup extends ec2.ISecurityGroup {
  /** The TCP port of the inference service: the only inbound port. */
  readonly servicePort: number;
}

/** Properties of a {@link ZeroOperatorAccessSecurityGroup}. */
export interface ZeroOperatorAccessSecurityGroupProps {
  /** The VPC the security group belongs to. */
  readonly vpc: ec2.IVpc;

  /**
   * The TCP port of the inference service: the only inbound port.
   *
   * @default 3000
   */
  readonly servicePort?: number;

  /**
   * Who may reach the service port.
   *
   * @default - nobody until peers are added with `allowServiceFrom()`
   */
  readonly servicePeers?: ec2.IPeer[];

  /**
   * Where outbound HTTPS may go: the AWS service endpoints the workload calls. A gateway endpoint (S3) is reached at
   * the service's public addresses, not the VPC's: name it with `EndpointPeer.s3Gateway()` or its prefix list.
   *
   * @default - the VPC's primary CIDR block, where its interface endpoints live; a synth warning says that S3
   * through a gateway endpoint is not allowed until a prefix list peer is added
   */
  readonly endpointPeers?: ec2.IPeer[];
}

/**
 * The security group of a Zero Operator Access instance: inbound only TCP on the service port, outbound only HTTPS
 * to named endpoints. There is no rule for SSH or any other way in, and adding one throws at synth time.
 */
export class ZeroOperatorAccessSecurityGroup extends ec2.SecurityGroup implements IZeroOperatorAccessSecurityGroup {
  /** The TCP port of the inference service. */
  public readonly servicePort: number;

  private hasIngress = false;
  private hasPrefixListEgress = false;

  constructor(scope: Construct, id: string, props: ZeroOperatorAccessSecurityGroupProps) {
    super(scope, id, {
      vpc: props.vpc,
      allowAllOutbound: false,
      allowAllIpv6Outbound: false,
      description: 'Zero Operator Access: inbound only to the inference service, outbound only HTTPS to endpoints',
    });
    keepDefaultEgressAway(this.node.defaultChild as ec2.CfnSecurityGroup);
    const port = props.servicePort ?? DEFAULT_SERVICE_PORT;
    if (!Token.isUnresolved(port) && (!Number.isInteger(port) || port < 1 || port > 65535)) {
      throw new Error(`servicePort must be an integer from 1 to 65535, got ${port}`);
    }
    this.servicePort = port;
    props.servicePeers?.forEach((peer) => this.allowServiceFrom(peer));
    for (const peer of props.endpointPeers ?? [ec2.Peer.ipv4(props.vpc.vpcCidrBlock)]) {
      this.allowEndpoint(peer);
    }
    // Checked at synth time, after every rule the app adds, so that rules added later silence the warnings.
    this.node.addValidation({
      validate: () => {
        if (!this.hasIngress) this.warnNoServicePeers();
        if (props.endpointPeers === undefined && !this.hasPrefixListEgress) this.warnNoS3Gateway();
        return [];
      },
    });
  }

  /** Lets `peer` reach the inference service port. */
  public allowServiceFrom(peer: ec2.IPeer, description?: string): void {
    if (peer.uniqueId === ec2.Peer.anyIpv4().uniqueId || peer.uniqueId === ec2.Peer.anyIpv6().uniqueId) {
      Annotations.of(this).addWarningV2(
        'sealed-inference:service-open-to-all',
        `The inference service port ${this.servicePort} is open to ${peer.uniqueId}. Anyone who can route to ` +
          'the instance can send prompts; name the clients instead.',
      );
    }
    this.addIngressRule(peer, ec2.Port.tcp(this.servicePort), description ?? 'Inference service');
  }

  /** Lets the instance call AWS service endpoints at `peer` over HTTPS. */
  public allowEndpoint(peer: ec2.IPeer, description?: string): void {
    this.addEgressRule(peer, ec2.Port.tcp(HTTPS), description ?? 'HTTPS to AWS service endpoints');
  }

  /** Only the service port may be opened inbound; anything else would be a way in. */
  public override addIngressRule(peer: ec2.IPeer, connection: ec2.Port, description?: string, remoteRule?: boolean) {
    if (!isTcpPort(connection, this.servicePort)) {
      throw new Error(
        `${this.node.path} is a Zero Operator Access security group: inbound traffic is allowed only on TCP ` +
          `${this.servicePort}, not ${connection.toString()}`,
      );
    }
    this.hasIngress = true;
    super.addIngressRule(peer, connection, description, remoteRule);
  }

  /** Only HTTPS may leave: the workload talks to AWS service endpoints, nothing else. */
  public override addEgressRule(peer: ec2.IPeer, connection: ec2.Port, description?: string, remoteRule?: boolean) {
    if (!isTcpPort(connection, HTTPS)) {
      throw new Error(
        `${this.node.path} is a Zero Operator Access security group: outbound traffic is allowed only on TCP ` +
          `${HTTPS} to AWS service endpoints, not ${connection.toString()}`,
      );
    }
    this.hasPrefixListEgress ||= peer.toEgressRuleConfig().destinationPrefixListId !== undefined;
    super.addEgressRule(peer, connection, description, remoteRule);
  }

  private warnNoServicePeers(): void {
    Annotations.of(this).addWarningV2(
      'sealed-inference:no-service-peers',
      `Nobody can reach the inference service: no peer may connect to TCP ${this.servicePort}. Name the clients ` +
        'with servicePeers or allowServiceFrom().',
    );
  }

  private warnNoS3Gateway(): void {
    Annotations.of(this).addWarningV2(
      'sealed-inference:no-s3-gateway-peer',
      "Outbound HTTPS may go only to the VPC's CIDR block. If the VPC reaches S3 through a gateway endpoint, the " +
        "instance cannot fetch the sealed model: a gateway endpoint is reached at S3's public addresses. Add " +
        "EndpointPeer.s3Gateway(stack), or ec2.Peer.prefixList() with the Region's S3 prefix list, to endpointPeers; " +
        'if S3 is reached through an interface endpoint in the VPC, acknowledge this warning.',
    );
  }
}

/**
 * EC2 gives a security group an allow-all egress rule unless the group itself lists egress rules. CDK drops its
 * "no traffic" placeholder as soon as any egress rule is added, even one rendered as a separate resource (to a
 * security group or prefix list), which would leave the default open. This keeps the placeholder whenever the
 * group's own list would otherwise be empty.
 */
function keepDefaultEgressAway(group: ec2.CfnSecurityGroup): void {
  const rendered = group.securityGroupEgress;
  group.securityGroupEgress = Lazy.uncachedAny({
    produce: (context) => {
      const rules = context.resolve(rendered);
      return Array.isArray(rules) && rules.length > 0 ? rules : [NO_TRAFFIC];
    },
  });
}

/** An egress rule that matches no packet (an ICMP type/code range that is empty). */
const NO_TRAFFIC = {
  cidrIp: '255.255.255.255/32',
  description: 'Matches no traffic: keeps the default allow-all egress rule away',
  ipProtocol: 'icmp',
  fromPort: 252,
  toPort: 86,
};

function isTcpPort(connection: ec2.Port, port: number): boolean {
  const rule = connection.toRuleJson();
  return rule.ipProtocol === 'tcp' && rule.fromPort === port && rule.toPort === port;
}
