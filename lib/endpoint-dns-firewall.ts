import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as route53resolver from 'aws-cdk-lib/aws-route53resolver';
import { Construct } from 'constructs';
import { logGroupKey } from './private/log-group-key';

/** Properties of an {@link EndpointDnsFirewall}. */
export interface EndpointDnsFirewallProps {
  /** The VPC whose DNS queries are filtered. */
  readonly vpc: ec2.IVpc;

  /** The only names the VPC may resolve, e.g. `kms.eu-west-1.amazonaws.com`; every other query is answered NXDOMAIN. */
  readonly allowedDomains: string[];

  /**
   * How long DNS query logs are kept.
   *
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly queryLogRetention?: logs.RetentionDays;
}

/**
 * A Route 53 Resolver DNS Firewall that lets a VPC resolve only the names its workload calls, and logs every query.
 *
 * Security groups do not filter the VPC resolver, and flow logs do not record its queries: a name the resolver looks
 * up carries data off the VPC to whatever server answers for its domain. Here every name but the allowed ones is
 * answered NXDOMAIN before it is forwarded, and the firewall fails closed: if it cannot answer, queries are blocked,
 * not let through. Every query, allowed or blocked, goes to a KMS-encrypted log group.
 */
export class EndpointDnsFirewall extends Construct {
  /** The rule group associated with the VPC. */
  public readonly ruleGroup: route53resolver.CfnFirewallRuleGroup;

  /** The log group DNS queries are written to. */
  public readonly queryLogs: logs.LogGroup;

  constructor(scope: Construct, id: string, props: EndpointDnsFirewallProps) {
    super(scope, id);
    if (props.allowedDomains.length === 0) {
      throw new Error(`${this.node.path}: allowedDomains is empty; the workload could resolve nothing`);
    }
    const allowed = new route53resolver.CfnFirewallDomainList(this, 'AllowedDomains', {
      domains: props.allowedDomains,
    });
    const everything = new route53resolver.CfnFirewallDomainList(this, 'AllDomains', { domains: ['*'] });
    this.ruleGroup = new route53resolver.CfnFirewallRuleGroup(this, 'Rules', {
      firewallRules: [
        {
          priority: 100,
          action: 'ALLOW',
          firewallDomainListId: allowed.attrId,
          // S3 answers a bucket's name with a CNAME to a Regional name; the allowed name vouches for where it leads.
          firewallDomainRedirectionAction: 'TRUST_REDIRECTION_DOMAIN',
        },
        {
          priority: 200,
          action: 'BLOCK',
          blockResponse: 'NXDOMAIN',
          firewallDomainListId: everything.attrId,
        },
      ],
    });
    new route53resolver.CfnFirewallRuleGroupAssociation(this, 'Association', {
      firewallRuleGroupId: this.ruleGroup.attrId,
      vpcId: props.vpc.vpcId,
      priority: 101,
      mutationProtection: 'ENABLED',
    });
    new route53resolver.CfnFirewallConfig(this, 'FailClosed', {
      resourceId: props.vpc.vpcId,
      firewallFailOpen: 'DISABLED',
    });

    this.queryLogs = new logs.LogGroup(this, 'QueryLogs', {
      retention: props.queryLogRetention ?? logs.RetentionDays.ONE_YEAR,
      encryptionKey: logGroupKey(this, 'QueryLogKey', 'Encrypts the DNS query logs of the sealed inference network'),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const queryLogging = new route53resolver.CfnResolverQueryLoggingConfig(this, 'QueryLogging', {
      destinationArn: this.queryLogs.logGroupArn,
    });
    new route53resolver.CfnResolverQueryLoggingConfigAssociation(this, 'QueryLoggingAssociation', {
      resolverQueryLogConfigId: queryLogging.attrId,
      resourceId: props.vpc.vpcId,
    });
  }
}
