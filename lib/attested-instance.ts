import { Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { ApplianceConfig } from './shared/appliance-config';
import { acknowledgePinnedImage, attestedLaunch, attestedSubnets, launchViolations } from './private/attested-launch';
import { AttestedLaunchTemplateProps } from './attested-launch-template';

/** Properties of an {@link AttestedInstance}: what every attested launch takes, and where to launch. */
export interface AttestedInstanceProps extends AttestedLaunchTemplateProps {
  /** The VPC to launch in. */
  readonly vpc: ec2.IVpc;

  /**
   * Where to launch. Public subnets are rejected.
   *
   * @default - the VPC's isolated subnets, or its private subnets with egress if it has no isolated ones
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
}

/**
 * An EC2 instance booted from an attestable image with Zero Operator Access: no key pair, no Session Manager or
 * Instance Connect permissions, IMDSv2 only with a hop limit of 1, an encrypted root volume, a private subnet and
 * a role that may only fetch the sealed model and unseal it with an attestation document.
 *
 * The appliance's configuration goes in user data as JSON. User data is not measured, so it carries no secret.
 */
export class AttestedInstance extends Construct {
  /** The instance. */
  public readonly instance: ec2.Instance;

  /** The instance's role. */
  public readonly role: iam.Role;

  /** The configuration handed to the appliance. */
  public readonly applianceConfig: ApplianceConfig;

  constructor(scope: Construct, id: string, props: AttestedInstanceProps) {
    super(scope, id);
    const launch = attestedLaunch(this, props);
    const vpcSubnets = attestedSubnets(this, props.vpc, props.vpcSubnets);
    this.role = launch.role;
    this.applianceConfig = launch.applianceConfig;

    this.instance = new ec2.Instance(this, 'Resource', {
      vpc: props.vpc,
      vpcSubnets,
      instanceType: launch.instanceType,
      machineImage: launch.machineImage,
      securityGroup: props.securityGroup,
      role: this.role,
      userData: launch.userData,
      userDataCausesReplacement: true,
      httpTokens: ec2.HttpTokens.REQUIRED,
      httpPutResponseHopLimit: 1,
      httpEndpoint: true,
      detailedMonitoring: true,
      ebsOptimized: true,
      ssmSessionPermissions: false,
      blockDevices: launch.blockDevices,
    });

    Validations.of(this.instance).acknowledge({
      id: 'AwsSolutions-EC29',
      reason: 'The instance is stateless and replaced on every image upgrade; termination protection would block it.',
    });
    acknowledgePinnedImage(this.instance, props.image);
    const cfnInstance = this.instance.node.defaultChild as ec2.CfnInstance;
    // Hibernating writes the instance's memory, the unsealed model with it, to the root volume. Stated, not left to
    // a default, so that a reviewer reads it in the template.
    cfnInstance.hibernationOptions = { configured: false };
    this.node.addValidation({ validate: () => launchViolations(cfnInstance.keyName, cfnInstance.hibernationOptions) });
  }
}
