import { Aws, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';

/** Properties of an {@link IsolatedNetwork}. */
export interface IsolatedNetworkProps {
  /**
   * How many Availability Zones the workload subnets span.
   *
   * @default 2
   */
  readonly maxAzs?: number;

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
 */
export class IsolatedNetwork extends Construct {
  /** The VPC. */
  public readonly vpc: ec2.Vpc;

  /** The KMS interface endpoint. */
  public readonly kmsEndpoint: ec2.InterfaceVpcEndpoint;

  private readonly s3PrefixListId: string;

  constructor(scope: Construct, id: string, props: IsolatedNetworkProps = {}) {
    super(scope, id);
    const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
      retention: props.flowLogRetention ?? logs.RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: props.maxAzs ?? 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'Workload', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 }],
      restrictDefaultSecurityGroup: true,
      flowLogs: {
        All: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs), trafficType: ec2.FlowLogTrafficType.ALL },
      },
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
    });
    Validations.of(flowLogs).acknowledge({
      id: 'NIST.800.53.R5-CloudWatchLogGroupEncrypted',
      reason: 'Flow logs record addresses, ports and byte counts, never payloads; CloudWatch encrypts them at rest.',
    });
    const flowLogRole = this.vpc.node.findChild('All').node.findChild('IAMRole');
    Validations.of(flowLogRole).acknowledge({
      id: 'NIST.800.53.R5-IAMNoInlinePolicy',
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

    // Traffic through a gateway endpoint goes to S3's public addresses: a security group can only name them
    // through the region's AWS-managed prefix list, whose id no CloudFormation attribute returns.
    const s3PrefixList = new cr.AwsCustomResource(this, 'S3PrefixList', {
      onUpdate: {
        service: 'EC2',
        action: 'describeManagedPrefixLists',
        parameters: { Filters: [{ Name: 'prefix-list-name', Values: [`com.amazonaws.${Aws.REGION}.s3`] }] },
        physicalResourceId: cr.PhysicalResourceId.fromResponse('PrefixLists.0.PrefixListId'),
        outputPaths: ['PrefixLists.0.PrefixListId'],
      },
      policy: cr.AwsCustomResourcePolicy.fromSdkCalls({ resources: cr.AwsCustomResourcePolicy.ANY_RESOURCE }),
      installLatestAwsSdk: false,
    });
    this.s3PrefixListId = s3PrefixList.getResponseField('PrefixLists.0.PrefixListId');
    acknowledgePrefixListLookup(s3PrefixList);
  }

  /** Lets the workload's security group call KMS through its endpoint and S3 through its gateway, over HTTPS. */
  public allowEndpointsFrom(securityGroup: ec2.ISecurityGroup): void {
    this.kmsEndpoint.connections.allowDefaultPortFrom(securityGroup, 'Attested workload to KMS');
    securityGroup.addEgressRule(ec2.Peer.prefixList(this.s3PrefixListId), ec2.Port.tcp(443), 'HTTPS to S3 (gateway)');
  }
}

/** The lookup is CDK's AwsCustomResource: a singleton Lambda at stack level and a describe-only policy. */
function acknowledgePrefixListLookup(lookup: cr.AwsCustomResource): void {
  const policy = lookup.node.findChild('CustomResourcePolicy');
  Validations.of(policy).acknowledge(
    {
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'ec2:DescribeManagedPrefixLists supports no resource-level permissions; it is the only action granted.',
    },
    {
      id: 'NIST.800.53.R5-IAMNoInlinePolicy',
      reason: 'The describe-only policy is inline on the lookup function role and attached nowhere else.',
    },
  );
  const singleton = Stack.of(lookup).node.findChild(`AWS${cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace(/-/g, '')}`);
  Validations.of(singleton).acknowledge(
    {
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      reason: 'The deploy-time lookup function only writes its own logs; the managed policy grants exactly that.',
    },
    {
      id: 'NIST.800.53.R5-LambdaConcurrency',
      reason: 'Invoked only by CloudFormation during deployments of this stack; it serves no traffic.',
    },
    {
      id: 'NIST.800.53.R5-LambdaDLQ',
      reason: 'Invoked synchronously by CloudFormation, which reports and rolls back on failure.',
    },
    {
      id: 'NIST.800.53.R5-LambdaInsideVPC',
      reason: 'It calls the EC2 API only, which the isolated VPC could not reach; it handles no model or prompt.',
    },
  );
}
