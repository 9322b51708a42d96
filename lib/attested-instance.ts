import { Size, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { ApplianceConfig } from './appliance-config';
import { IAttestableImage } from './attestable-image';
import { acknowledgePinnedImage, attestedLaunch, attestedSubnets, launchViolations } from './attested-launch';
import { ModelBucket } from './model-bucket';
import { SealedModelKey } from './sealed-model-key';
import { ZeroOperatorAccessSecurityGroup } from './zero-operator-access';

/** Properties of an {@link AttestedInstance}. */
export interface AttestedInstanceProps {
  /** The VPC to launch in. */
  readonly vpc: ec2.IVpc;

  /** The attestable image to boot. Its measurements must be allowed by `key`. */
  readonly image: IAttestableImage;

  /** The instance's only security group. */
  readonly securityGroup: ZeroOperatorAccessSecurityGroup;

  /** The key the model's data key is wrapped with; the instance's role is allowed to unseal with it. */
  readonly key: SealedModelKey;

  /** The bucket holding the sealed model; the instance's role may read `modelPrefix` in it. */
  readonly modelBucket: ModelBucket;

  /** The sealed model's name. */
  readonly modelName: string;

  /**
   * The prefix the sealed model's artifacts are stored under: empty or ending in '/'.
   *
   * @default 'models/'
   */
  readonly modelPrefix?: string;

  /**
   * The instance type. It must offer NitroTPM 2.0; bare-metal and pre-Nitro types are rejected.
   *
   * @default m7i.2xlarge
   */
  readonly instanceType?: ec2.InstanceType;

  /**
   * Where to launch. Public subnets are rejected.
   *
   * @default - the VPC's isolated subnets, or its private subnets with egress if it has no isolated ones
   */
  readonly vpcSubnets?: ec2.SubnetSelection;

  /**
   * Size of the encrypted root volume. The root file system is read-only; the plaintext model lives in memory.
   *
   * @default Size.gibibytes(30)
   */
  readonly rootVolumeSize?: Size;
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
