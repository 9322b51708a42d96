import { Annotations, Aws, Size, Stack, Token, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { acknowledgeCompliance } from './compliance-acknowledgment';
import { APPLIANCE_CONFIG_VERSION, ApplianceConfig, sealedModelObjects } from '../shared/appliance-config';
import { IAttestableImage } from '../attestable-image';
import type { AttestedLaunchTemplateProps } from '../attested-launch-template';
import { checkModelName } from '../shared/model-identity';
import { NitroTpmSupport, nitroTpmSupport } from '../shared/nitro-tpm-support';

/**
 * What every launch of an attested instance is made of, whether one instance (AttestedInstance) or a fleet of them
 * (AttestedLaunchTemplate): the instance type check, the role, the appliance's configuration, the image and the
 * encrypted root volume. Kept in one place so that the two cannot drift apart.
 */
type AttestedLaunchOptions = AttestedLaunchTemplateProps;

/** The parts of an attested launch, ready for an instance or a launch template. */
export interface AttestedLaunch {
  readonly instanceType: ec2.InstanceType;
  readonly role: iam.Role;
  readonly applianceConfig: ApplianceConfig;
  readonly userData: ec2.UserData;
  readonly machineImage: ec2.IMachineImage;
  readonly blockDevices: ec2.BlockDevice[];
}

/** The instance type when none is given: NitroTPM 2.0, enough memory for a mid-sized model on CPU. */
export const DEFAULT_INSTANCE_TYPE = 'm7i.2xlarge';

/**
 * Checks the instance type and model name, and makes the role (`Role` under `scope`) and the user data. Throws on an
 * instance type that cannot attest.
 */
export function attestedLaunch(scope: Construct, options: AttestedLaunchOptions): AttestedLaunch {
  const instanceType = options.instanceType ?? new ec2.InstanceType(DEFAULT_INSTANCE_TYPE);
  checkNitroTpm(scope, instanceType.toString());
  const modelName = Token.isUnresolved(options.modelName) ? options.modelName : checkModelName(options.modelName);
  const modelPrefix = options.modelPrefix ?? options.modelBucket.modelPrefix;
  const role = unsealerRole(scope, options, modelPrefix);
  const applianceConfig: ApplianceConfig = {
    configVersion: APPLIANCE_CONFIG_VERSION,
    region: Aws.REGION,
    bucket: options.modelBucket.bucketName,
    objects: sealedModelObjects(modelPrefix, modelName),
    keyArn: options.key.keyArn,
    modelName,
    servicePort: options.securityGroup.servicePort,
    ...(options.hostNames ? { hostNames: options.hostNames } : {}),
  };
  return {
    instanceType,
    role,
    applianceConfig,
    userData: ec2.UserData.custom(Stack.of(scope).toJsonString(applianceConfig)),
    machineImage: new AttestableMachineImage(options.image),
    blockDevices: [
      {
        deviceName: '/dev/xvda',
        volume: ec2.BlockDeviceVolume.ebs((options.rootVolumeSize ?? Size.gibibytes(30)).toGibibytes(), {
          encrypted: true,
          volumeType: ec2.EbsDeviceVolumeType.GP3,
          deleteOnTermination: true,
        }),
      },
    ],
  };
}

/** Refuses public subnets and picks the isolated ones, or private ones with egress, when none are named. */
export function attestedSubnets(scope: Construct, vpc: ec2.IVpc, selection?: ec2.SubnetSelection): ec2.SubnetSelection {
  if (selection?.subnetType === ec2.SubnetType.PUBLIC) {
    throw new Error(`${scope.node.path}: a Zero Operator Access instance never goes in a public subnet`);
  }
  return selection ?? {
    subnetType: vpc.isolatedSubnets.length > 0 ? ec2.SubnetType.PRIVATE_ISOLATED : ec2.SubnetType.PRIVATE_WITH_EGRESS,
  };
}

/**
 * What must stay true of the launch after any escape hatch: no key pair, no hibernation. Returns what is wrong.
 * `hibernationOptions` is the CloudFormation property of an instance or a launch template's data.
 */
export function launchViolations(keyName: string | undefined, hibernationOptions: unknown): string[] {
  return [
    ...(keyName === undefined ? [] : ['a key pair was set on the instance: Zero Operator Access instances have no way to log in']),
    ...((hibernationOptions as { configured?: boolean } | undefined)?.configured === false
      ? []
      : ['hibernation was turned on: it would write the unsealed model in memory to the root volume']),
  ];
}

/** A pinned image id is a literal in the template on purpose; say so to CloudFormation's template validation. */
export function acknowledgePinnedImage(resource: Construct, image: IAttestableImage): void {
  if (Token.isUnresolved(image.imageId)) return;
  Validations.of(resource).acknowledge({
    id: 'CloudFormation-Validate::W9010',
    reason: 'The image is pinned on purpose: the key policy is sealed to this image and a reviewer reads its id.',
  });
}

/** The role of an attested instance: read the sealed model's prefix, unseal with an attestation document. */
function unsealerRole(scope: Construct, options: AttestedLaunchOptions, modelPrefix: string): iam.Role {
  const role = new iam.Role(scope, 'Role', {
    assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
    description: 'Attested inference instance: fetch the sealed model, unseal it with an attestation document',
    roleName: options.roleName,
  });
  options.modelBucket.grantFetch(role, modelPrefix);
  const modelObjects = options.modelBucket.bucket.arnForObjects(`${modelPrefix}*`);
  Validations.of(role).acknowledge({
    id: `AwsSolutions-IAM5[Resource::${nagResourceName(Stack.of(scope).resolve(modelObjects))}]`,
    reason: 'Read-only (s3:GetObject) on the sealed-model prefix: the objects are encrypted and only unseal here.',
  });
  acknowledgeCompliance(role, {
    rule: 'IAMNoInlinePolicy',
    reason: "The role's only policy is inline so that it lives and dies with this instance's role.",
  });
  options.key.grantUnseal(role, options.image);
  // Whatever is attached to the role later, it reads no other S3 object or bucket and uses no other key: nothing it
  // could write prompts to, or encrypt them under, for someone else to read.
  role.addToPrincipalPolicy(new iam.PolicyStatement({
    sid: 'DenyS3OutsideTheModelPrefix',
    effect: iam.Effect.DENY,
    actions: ['s3:*'],
    notResources: [options.modelBucket.bucket.bucketArn, modelObjects],
  }));
  role.addToPrincipalPolicy(new iam.PolicyStatement({
    sid: 'DenyKmsOutsideTheSealingKey',
    effect: iam.Effect.DENY,
    actions: ['kms:*'],
    notResources: [options.key.keyArn],
  }));
  return role;
}

/** How cdk-nag names a resolved ARN in a finding's id: references as `<LogicalId.Attribute>` and `<AWS::Partition>`. */
function nagResourceName(value: unknown): string {
  if (typeof value === 'string') return value;
  const [name, argument] = Object.entries(value as Record<string, unknown>)[0];
  if (name === 'Ref') return `<${argument}>`;
  if (name === 'Fn::GetAtt') return `<${(argument as string[]).join('.')}>`;
  if (name === 'Fn::Join') {
    const [separator, parts] = argument as [string, unknown[]];
    return parts.map(nagResourceName).join(separator);
  }
  throw new Error(`Cannot name ${JSON.stringify(value)} as cdk-nag does`);
}

/** The image as CDK needs it: a plain AMI id, valid in whatever Region the stack deploys to. */
class AttestableMachineImage implements ec2.IMachineImage {
  constructor(private readonly image: IAttestableImage) {}

  public getImage(): ec2.MachineImageConfig {
    return { imageId: this.image.imageId, osType: ec2.OperatingSystemType.LINUX, userData: ec2.UserData.forLinux() };
  }
}

function checkNitroTpm(scope: Construct, instanceType: string): void {
  if (Token.isUnresolved(instanceType)) return;
  switch (nitroTpmSupport(instanceType)) {
    case NitroTpmSupport.UNSUPPORTED:
      throw new Error(
        `Instance type ${instanceType} has no NitroTPM (bare-metal or pre-Nitro), so it cannot attest. ` +
          `Choose a Nitro type such as ${DEFAULT_INSTANCE_TYPE}.`,
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
