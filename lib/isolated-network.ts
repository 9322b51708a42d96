import { Aws, RemovalPolicy, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { EndpointDnsFirewall } from './endpoint-dns-firewall';
import { acknowledgeCompliance } from './private/compliance-acknowledgment';
import { restrictEndpoints, WorkloadDestinations } from './private/endpoint-policies';
import { logGroupKey } from './private/log-group-key';
import { lookUpS3PrefixList, PREFIX_LIST_ID_FIELD } from './private/s3-prefix-list';

/** Properties of an {@link IsolatedNetwork}. */
export interface IsolatedNetworkProps {
  /**
   * How many Availability Zones the workload subnets span.
   *
   * @default 2
   */
  readonly maxAzs?: number;

  /**
   * The VPC's IPv4 CIDR block: a private range (within 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16) from /16 to
   * /24. Choose one that does not overlap the clients' network, so that the two can be peered or joined through a
   * transit gateway. Each Availability Zone gets a /24 subnet, or an equal share of a smaller block.
   *
   * @default '10.0.0.0/16'
   */
  readonly vpcCidr?: string;

  /**
   * How long VPC flow logs are kept.
   *
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly flowLogRetention?: logs.RetentionDays;
}

/**
 * A VPC with no way out: isolated subnets only (no internet gateway, no NAT), an S3 gateway endpoint and a KMS
 * interface endpoint, the only AWS services the appliance calls. Prompts and weights have no route off the VPC.
 * Once told the workload's destinations (`restrictTo`), the endpoints carry only its calls and DNS resolves only
 * its endpoints' names.
 */
export class IsolatedNetwork extends Construct {
  /** The VPC. */
  public readonly vpc: ec2.Vpc;

  /** The KMS interface endpoint. */
  public readonly kmsEndpoint: ec2.InterfaceVpcEndpoint;

  /** The S3 gateway endpoint. */
  public readonly s3Endpoint: ec2.GatewayVpcEndpoint;

  /** The DNS firewall, once `restrictTo` has been called. */
  public dnsFirewall?: EndpointDnsFirewall;

  private readonly s3PrefixListId: string;

  constructor(scope: Construct, id: string, props: IsolatedNetworkProps = {}) {
    super(scope, id);
    const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
      retention: props.flowLogRetention ?? logs.RetentionDays.ONE_YEAR,
      encryptionKey: logGroupKey(this, 'FlowLogKey', 'Encrypts the VPC flow logs of the sealed inference network'),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const maxAzs = props.maxAzs ?? 2;
    const vpcPrefix = props.vpcCidr === undefined ? DEFAULT_VPC_PREFIX : checkVpcCidr(props.vpcCidr);
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: props.vpcCidr === undefined ? undefined : ec2.IpAddresses.cidr(props.vpcCidr),
      maxAzs,
      natGateways: 0,
      subnetConfiguration: [{
        name: 'Workload',
        subnetType: ec2.SubnetType.PRIVATE_ISOLATED,
        cidrMask: Math.max(24, vpcPrefix + Math.ceil(Math.log2(maxAzs))),
      }],
      restrictDefaultSecurityGroup: true,
      flowLogs: {
        All: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs), trafficType: ec2.FlowLogTrafficType.ALL },
      },
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
    });
    const flowLogRole = this.vpc.node.findChild('All').node.findChild('IAMRole');
    acknowledgeCompliance(flowLogRole, {
      rule: 'IAMNoInlinePolicy',
      reason: 'CDK writes the flow log delivery policy inline on its own role; it names only the flow log group.',
    });
    // Only the workload's security group may reach the endpoint (see allowEndpointsFrom), not the whole VPC. The
    // endpoint's interfaces only answer, so its group allows no egress: nothing in the template may reach out.
    this.kmsEndpoint = this.vpc.addInterfaceEndpoint('Kms', {
      service: ec2.InterfaceVpcEndpointAwsService.KMS,
      privateDnsEnabled: true,
      open: false,
      securityGroups: [
        new ec2.SecurityGroup(this, 'KmsEndpointSecurityGroup', {
          vpc: this.vpc,
          description: 'KMS endpoint: HTTPS in from the attested workload only, nothing out',
          allowAllOutbound: false,
        }),
      ],
    });

    this.s3Endpoint = this.vpc.node.findChild('S3') as ec2.GatewayVpcEndpoint;
    this.s3PrefixListId = lookUpS3PrefixList(this, 'S3PrefixList').getResponseField(PREFIX_LIST_ID_FIELD);
  }

  /**
   * Closes the network around one workload: endpoint policies that carry only its calls (see `restrictEndpoints`),
   * and a DNS firewall that resolves only the KMS endpoint's name and the bucket's S3 name. Call it once.
   */
  public restrictTo(destinations: WorkloadDestinations): void {
    if (this.dnsFirewall) throw new Error(`${this.node.path}: restrictTo() was already called; the network serves one workload`);
    restrictEndpoints(this.s3Endpoint, this.kmsEndpoint, destinations);
    this.dnsFirewall = new EndpointDnsFirewall(this, 'DnsFirewall', {
      vpc: this.vpc,
      allowedDomains: workloadDomainNames(destinations),
    });
  }

  /** Lets the workload's security group call KMS through its endpoint and S3 through its gateway, over HTTPS. */
  public allowEndpointsFrom(securityGroup: ec2.ISecurityGroup): void {
    this.kmsEndpoint.connections.allowDefaultPortFrom(securityGroup, 'Attested workload to KMS');
    securityGroup.addEgressRule(ec2.Peer.prefixList(this.s3PrefixListId), ec2.Port.tcp(443), 'HTTPS to S3 (gateway)');
  }
}

/**
 * The names the appliance resolves: the Regional KMS endpoint (answered by the interface endpoint's private DNS) and
 * the bucket's virtual-hosted S3 name, which the AWS SDK uses for a bucket name without dots. Instance metadata and
 * the time service are reached by link-local address, never by name.
 */
export function workloadDomainNames(destinations: WorkloadDestinations): string[] {
  return [
    `kms.${Aws.REGION}.${Aws.URL_SUFFIX}`,
    `${destinations.bucket.bucketName}.s3.${Aws.REGION}.${Aws.URL_SUFFIX}`,
  ];
}

/** The prefix length of CDK's default VPC block, 10.0.0.0/16. */
const DEFAULT_VPC_PREFIX = 16;

/** The private IPv4 ranges (RFC 1918): first address as a number, and prefix length. */
const PRIVATE_RANGES = [
  { first: 10 * 2 ** 24, prefix: 8 },
  { first: 172 * 2 ** 24 + 16 * 2 ** 16, prefix: 12 },
  { first: 192 * 2 ** 24 + 168 * 2 ** 16, prefix: 16 },
];

/** Checks a VPC CIDR block: a private range from /16 to /24, written with its network address. Returns its prefix length. */
function checkVpcCidr(cidr: string): number {
  if (Token.isUnresolved(cidr)) return DEFAULT_VPC_PREFIX;
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  const octets = match ? match.slice(1, 5).map(Number) : [];
  const prefix = match ? Number(match[5]) : NaN;
  const address = octets.reduce((value, octet) => value * 256 + octet, 0);
  const block = (length: number) => Math.floor(address / 2 ** (32 - length));
  const isPrivate = PRIVATE_RANGES.some((range) => block(range.prefix) === Math.floor(range.first / 2 ** (32 - range.prefix)));
  if (!match || octets.some((octet) => octet > 255) || !(prefix >= 16 && prefix <= 24) || !isPrivate) {
    throw new Error(
      `vpcCidr must be a private IPv4 CIDR block (within 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16) from /16 to /24, got ${cidr}`,
    );
  }
  if (address % 2 ** (32 - prefix) !== 0) {
    throw new Error(`vpcCidr must start at its network address: got ${cidr}, whose host bits are not all zero`);
  }
  return prefix;
}
