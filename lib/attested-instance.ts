import { Annotations, Aws, Size, Stack, Token, Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { APPLIANCE_CONFIG_VERSION, ApplianceConfig, sealedModelObjects } from './appliance-config';
import { IAttestableImage } from './attestable-image';
import { checkModelName } from './model-identity';
import { ModelBucket } from './model-bucket';
import { NitroTpmSupport, nitroTpmSupport } from './nitro-tpm-support';
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
    const instanceType = props.instanceType ?? new ec2.InstanceType('m7i.2xlarge');
    checkNitroTpm(this, instanceType.toString());
    if (props.vpcSubnets?.subnetType === ec2.SubnetType.PUBLIC) {
      throw new Error(`${this.node.path}: a Zero Operator Access instance never goes in a public subnet`);
    }
    const modelName = Token.isUnresolved(props.modelName) ? props.modelName : checkModelName(props.modelName);
    const modelPrefix = props.modelPrefix ?? 'models/';

    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'Attested inference instance: fetch the sealed model, unseal it with an attestation document',
    });
    props.modelBucket.grantFetch(this.role, modelPrefix);
    const bucketLogicalId = Stack.of(this).resolve((props.modelBucket.bucket.node.defaultChild as s3.CfnBucket).logicalId);
    Validations.of(this.role).acknowledge(
      {
        id: `AwsSolutions-IAM5[Resource::<${bucketLogicalId}.Arn>/${modelPrefix}*]`,
        reason: 'Read-only (s3:GetObject) on the sealed-model prefix: the objects are encrypted and only unseal here.',
      },
      {
        id: 'NIST.800.53.R5-IAMNoInlinePolicy',
        reason: "The role's only policy is inline so that it lives and dies with this instance's role.",
      },
    );
    props.key.allowUnseal(this.role);
    // The key policy is what gates decrypt; the identity policy is needed too when the key is in another account.
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['kms:Decrypt'], resources: [props.key.keyArn] }),
    );

    this.applianceConfig = {
      configVersion: APPLIANCE_CONFIG_VERSION,
      region: Aws.REGION,
      bucket: props.modelBucket.bucket.bucketName,
      objects: sealedModelObjects(modelPrefix, modelName),
      keyArn: props.key.keyArn,
      modelName,
      servicePort: props.securityGroup.servicePort,
    };
    const userData = ec2.UserData.custom(Stack.of(this).toJsonString(this.applianceConfig));

    this.instance = new ec2.Instance(this, 'Resource', {
      vpc: props.vpc,
      vpcSubnets: props.vpcSubnets ?? defaultSubnets(props.vpc),
      instanceType,
      machineImage: new AttestableMachineImage(props.image),
      securityGroup: props.securityGroup,
      role: this.role,
      userData,
      userDataCausesReplacement: true,
      httpTokens: ec2.HttpTokens.REQUIRED,
      httpPutResponseHopLimit: 1,
      httpEndpoint: true,
      detailedMonitoring: true,
      ebsOptimized: true,
      ssmSessionPermissions: false,
      blockDevices: [
        {
          deviceName: '/dev/xvda',
          volume: ec2.BlockDeviceVolume.ebs((props.rootVolumeSize ?? Size.gibibytes(30)).toGibibytes(), {
            encrypted: true,
            volumeType: ec2.EbsDeviceVolumeType.GP3,
            deleteOnTermination: true,
          }),
        },
      ],
    });

    Validations.of(this.instance).acknowledge({
      id: 'AwsSolutions-EC29',
      reason: 'The instance is stateless and replaced on every image upgrade; termination protection would block it.',
    });
    if (!Token.isUnresolved(props.image.imageId)) {
      Validations.of(this.instance).acknowledge({
        id: 'CloudFormation-Validate::W9010',
        reason: 'The image is pinned on purpose: the key policy is sealed to this image and a reviewer reads its id.',
      });
    }
    const cfnInstance = this.instance.node.defaultChild as ec2.CfnInstance;
    // Hibernating writes the instance's memory, the unsealed model with it, to the root volume. Stated, not left to
    // a default, so that a reviewer reads it in the template.
    cfnInstance.hibernationOptions = { configured: false };
    this.node.addValidation({
      validate: () => [
        ...(cfnInstance.keyName === undefined
          ? []
          : ['a key pair was set on the instance: Zero Operator Access instances have no way to log in']),
        ...(isHibernationOff(cfnInstance.hibernationOptions)
          ? []
          : ['hibernation was turned on: it would write the unsealed model in memory to the root volume']),
      ],
    });
  }
}

/** The image as CDK's Instance needs it: a plain AMI id, valid in whatever Region the stack deploys to. */
class AttestableMachineImage implements ec2.IMachineImage {
  constructor(private readonly image: IAttestableImage) {}

  public getImage(): ec2.MachineImageConfig {
    return { imageId: this.image.imageId, osType: ec2.OperatingSystemType.LINUX, userData: ec2.UserData.forLinux() };
  }
}

function isHibernationOff(options: ec2.CfnInstance['hibernationOptions']): boolean {
  return (options as ec2.CfnInstance.HibernationOptionsProperty | undefined)?.configured === false;
}

function defaultSubnets(vpc: ec2.IVpc): ec2.SubnetSelection {
  return {
    subnetType: vpc.isolatedSubnets.length > 0 ? ec2.SubnetType.PRIVATE_ISOLATED : ec2.SubnetType.PRIVATE_WITH_EGRESS,
  };
}

function checkNitroTpm(scope: Construct, instanceType: string): void {
  if (Token.isUnresolved(instanceType)) return;
  switch (nitroTpmSupport(instanceType)) {
    case NitroTpmSupport.UNSUPPORTED:
      throw new Error(
        `Instance type ${instanceType} has no NitroTPM (bare-metal or pre-Nitro), so it cannot attest. ` +
          'Choose a Nitro type such as m7i.2xlarge.',
      );
    case NitroTpmSupport.UNKNOWN:
      Annotations.of(scope).addWarningV2(
        'sealed-inference:nitro-tpm-unknown',
        `NitroTPM support of instance type ${instanceType} is not known to this library. Check it with ` +
          `aws ec2 describe-instance-types --instance-types ${instanceType} --query ` +
          "'InstanceTypes[].NitroTpmInfo'",
      );
      break;
    case NitroTpmSupport.SUPPORTED:
      break;
  }
}
