import { Size } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { ApplianceConfig } from './shared/appliance-config';
import { IAttestableImage } from './attestable-image';
import { acknowledgePinnedImage, attestedLaunch, launchViolations } from './private/attested-launch';
import { IModelBucket } from './model-bucket';
import { ISealedModelKey } from './sealed-model-key';
import { IZeroOperatorAccessSecurityGroup } from './zero-operator-access';

/** Properties of an {@link AttestedLaunchTemplate}. */
export interface AttestedLaunchTemplateProps {
  /** The attestable image to boot. Its measurements must be allowed by `key`. */
  readonly image: IAttestableImage;

  /** The instances' only security group. */
  readonly securityGroup: IZeroOperatorAccessSecurityGroup;

  /**
   * The key the model's data key is wrapped with, created in this app or imported from the model owner's account;
   * the instances' role is granted unsealing on `image` with it.
   */
  readonly key: ISealedModelKey;

  /** The bucket holding the sealed model, created or imported; the instances' role may read `modelPrefix` in it. */
  readonly modelBucket: IModelBucket;

  /** The sealed model's name. */
  readonly modelName: string;

  /**
   * The prefix the sealed model's artifacts are stored under: empty or ending in '/'.
   *
   * @default - the bucket's `modelPrefix`
   */
  readonly modelPrefix?: string;

  /**
   * A name for the instances' role. Name it when the key is in another account: the key's owner names the role
   * before it exists, with `roleInAccount()`.
   *
   * @default - a name CloudFormation generates
   */
  readonly roleName?: string;

  /**
   * The instance type. It must offer NitroTPM 2.0; bare-metal and pre-Nitro types are rejected.
   *
   * @default m7i.2xlarge
   */
  readonly instanceType?: ec2.InstanceType;

  /**
   * Size of the encrypted root volume. The root file system is read-only; the plaintext model lives in memory.
   *
   * @default Size.gibibytes(30)
   */
  readonly rootVolumeSize?: Size;

  /**
   * DNS names clients reach the instances by, such as a load balancer's: the appliance answers requests naming it by
   * an IP address or one of these names.
   *
   * @default - IP addresses only
   */
  readonly hostNames?: string[];
}

/**
 * A launch template for attested instances, with everything an {@link AttestedInstance} enforces: no key pair, no
 * Session Manager or Instance Connect permissions, IMDSv2 only with a hop limit of 1, an encrypted root volume, no
 * public address, hibernation off, and a role that may only fetch the sealed model and unseal it with an
 * attestation document.
 *
 * Each change (a new image, new user data) is a new version of the template; an Auto Scaling group launching the
 * latest version replaces its instances with an instance refresh.
 */
export class AttestedLaunchTemplate extends Construct {
  /** The launch template. */
  public readonly launchTemplate: ec2.LaunchTemplate;

  /** The instances' role. */
  public readonly role: iam.Role;

  /** The configuration handed to the appliance. */
  public readonly applianceConfig: ApplianceConfig;

  constructor(scope: Construct, id: string, props: AttestedLaunchTemplateProps) {
    super(scope, id);
    const launch = attestedLaunch(this, props);
    this.role = launch.role;
    this.applianceConfig = launch.applianceConfig;

    this.launchTemplate = new ec2.LaunchTemplate(this, 'Resource', {
      instanceType: launch.instanceType,
      machineImage: launch.machineImage,
      securityGroup: props.securityGroup,
      role: this.role,
      userData: launch.userData,
      httpTokens: ec2.LaunchTemplateHttpTokens.REQUIRED,
      httpPutResponseHopLimit: 1,
      httpEndpoint: true,
      detailedMonitoring: true,
      ebsOptimized: true,
      associatePublicIpAddress: false,
      // Hibernating writes the instance's memory, the unsealed model with it, to the root volume. Stated, not left
      // to a default, so that a reviewer reads it in the template.
      hibernationConfigured: false,
      blockDevices: launch.blockDevices,
    });
    acknowledgePinnedImage(this.launchTemplate, props.image);

    const cfnTemplate = this.launchTemplate.node.defaultChild as ec2.CfnLaunchTemplate;
    this.node.addValidation({
      validate: () => {
        const data = cfnTemplate.launchTemplateData as ec2.CfnLaunchTemplate.LaunchTemplateDataProperty;
        return launchViolations(data.keyName, data.hibernationOptions);
      },
    });
  }
}
