import { CfnOutput, Duration, Token, Validations } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { acknowledgeCompliance } from './private/compliance-acknowledgment';
import { attestedSubnets } from './private/attested-launch';
import { AttestedLaunchTemplate } from './attested-launch-template';
import { inferenceNetwork } from './private/inference-network';
import { IModelBucket } from './model-bucket';
import { addReviewerOutputs } from './private/reviewer-outputs';
import { SealedModelStorage } from './private/sealed-model-storage';
import { SealedInferenceProps } from './sealed-inference';
import { ISealedModelKey } from './sealed-model-key';
import { ServiceLoadBalancerSecurityGroup } from './service-load-balancer-security-group';
import { TamperAlarms } from './tamper-alarms';
import { ZeroOperatorAccessSecurityGroup } from './zero-operator-access';

/** The appliance answers 200 here only once the model is unsealed, verified and measured into PCR15. */
const READINESS_PATH = '/api/ready';

/**
 * Properties of {@link SealedInferenceFleet}: those of {@link SealedInference}, applied to every instance, where
 * `servicePeers` reach the load balancer and `vpcSubnets` hold the load balancer and the instances; and the group's
 * sizes.
 */
export interface SealedInferenceFleetProps extends SealedInferenceProps {
  /**
   * The fewest instances the group runs.
   *
   * @default 2
   */
  readonly minCapacity?: number;

  /**
   * How many instances the group runs. Set it only to override scaling: every deployment resets the group to it.
   *
   * @default - `minCapacity` when the group is created; left alone afterwards
   */
  readonly desiredCapacity?: number;

  /**
   * The most instances the group runs.
   *
   * @default - `desiredCapacity` if given, otherwise `minCapacity`
   */
  readonly maxCapacity?: number;

  /**
   * How long a new instance has to boot, fetch, unseal and verify the model and answer the readiness check before
   * Auto Scaling may replace it as unhealthy. Unsealing streams the whole model through AES-GCM and Ollama hashes it,
   * so allow for the largest model the fleet will serve; during an image upgrade each new instance also waits this
   * long before the next is replaced.
   *
   * @default Duration.minutes(30)
   */
  readonly unsealGracePeriod?: Duration;
}

/**
 * Confidential inference for one sealed model on a fleet: the key, bucket and isolated network of
 * {@link SealedInference}, with an Auto Scaling group of attested instances behind an internal Network Load Balancer.
 *
 * The load balancer passes TCP through: TLS ends on each instance, whose key is bound into its attestation, so a
 * client verifies every connection on its own. It sends traffic only to instances that answer the appliance's
 * readiness check, and an image upgrade is an instance refresh that keeps the whole fleet's capacity in service,
 * replacing an old instance only once a new one is ready.
 */
export class SealedInferenceFleet extends Construct {
  /** The VPC the instances run in: the one given as `vpc`, or the isolated network's. */
  public readonly vpc: ec2.IVpc;

  /** The sealing key. */
  public readonly key: ISealedModelKey;

  /** The bucket for the sealed artifacts. */
  public readonly modelBucket: IModelBucket;

  /** The security group of the inference instances: the service port only from the load balancer. */
  public readonly securityGroup: ZeroOperatorAccessSecurityGroup;

  /** The security group of the load balancer: the service port only from the allowed peers. */
  public readonly loadBalancerSecurityGroup: ServiceLoadBalancerSecurityGroup;

  /** The launch template of the inference instances. */
  public readonly launchTemplate: AttestedLaunchTemplate;

  /** The Auto Scaling group of the inference instances. */
  public readonly autoScalingGroup: autoscaling.AutoScalingGroup;

  /** The internal Network Load Balancer in front of the instances. */
  public readonly loadBalancer: elbv2.NetworkLoadBalancer;

  /** The load balancer's target group, health-checked on the appliance's readiness. */
  public readonly targetGroup: elbv2.NetworkTargetGroup;

  /** Alarms on changes to the key, the allowed images, the group and the stack. */
  public readonly tamperAlarms: TamperAlarms;

  /** The URL of the inference service through the load balancer (TLS 1.3, ending on the attested instances). */
  public readonly serviceUrl: string;

  private readonly storage: SealedModelStorage;

  constructor(scope: Construct, id: string, props: SealedInferenceFleetProps) {
    super(scope, id);
    const capacity = checkCapacity(props);
    const allowedImages = [props.image, ...(props.additionalAllowedImages ?? [])];

    const { vpc, isolatedNetwork } = inferenceNetwork(this, props);
    this.vpc = vpc;
    const vpcSubnets = attestedSubnets(this, vpc, props.vpcSubnets);

    this.storage = new SealedModelStorage(this, props, allowedImages, isolatedNetwork);
    this.key = this.storage.key;
    this.modelBucket = this.storage.modelBucket;
    const modelPrefix = this.storage.modelPrefix;
    this.securityGroup = new ZeroOperatorAccessSecurityGroup(this, 'SecurityGroup', {
      vpc,
      servicePort: props.servicePort,
      endpointPeers: isolatedNetwork ? [] : props.endpointPeers,
    });
    isolatedNetwork?.allowEndpointsFrom(this.securityGroup);
    isolatedNetwork?.restrictTo({ bucket: this.modelBucket.bucket, modelPrefix, keyArn: this.key.keyArn });
    this.loadBalancerSecurityGroup = new ServiceLoadBalancerSecurityGroup(this, 'LoadBalancerSecurityGroup', {
      vpc,
      targets: this.securityGroup,
      servicePeers: props.servicePeers,
    });
    const port = this.securityGroup.servicePort;

    this.loadBalancer = new elbv2.NetworkLoadBalancer(this, 'LoadBalancer', {
      vpc,
      vpcSubnets,
      internetFacing: false,
      securityGroups: [this.loadBalancerSecurityGroup],
      crossZoneEnabled: true,
    });
    acknowledgeLoadBalancer(this.loadBalancer);

    this.launchTemplate = new AttestedLaunchTemplate(this, 'LaunchTemplate', {
      image: props.image,
      securityGroup: this.securityGroup,
      key: this.key,
      modelBucket: this.modelBucket,
      modelName: props.modelName,
      modelPrefix,
      instanceType: props.instanceType,
      roleName: props.instanceRoleName,
      // Clients name the load balancer in the Host header; the appliance answers only names it was told.
      hostNames: [this.loadBalancer.loadBalancerDnsName],
    });

    this.autoScalingGroup = new autoscaling.AutoScalingGroup(this, 'Instances', {
      vpc,
      vpcSubnets,
      launchTemplate: this.launchTemplate.launchTemplate,
      ...capacity,
      healthChecks: autoscaling.HealthChecks.withAdditionalChecks({
        additionalTypes: [autoscaling.AdditionalHealthCheckType.ELB],
        gracePeriod: props.unsealGracePeriod ?? Duration.minutes(30),
      }),
      // A new image or configuration is a new launch template version: replace the instances with an instance
      // refresh that launches first and terminates an old instance only once a new one is healthy (ready).
      updatePolicy: autoscaling.UpdatePolicy.instanceRefresh({
        strategy: autoscaling.InstanceRefreshStrategy.ROLLING,
        minHealthyPercentage: 100,
        maxHealthyPercentage: 200,
      }),
      groupMetrics: [autoscaling.GroupMetrics.all()],
    });
    acknowledgeAutoScalingGroup(this.autoScalingGroup);

    const listener = this.loadBalancer.addListener('Service', { port, protocol: elbv2.Protocol.TCP });
    this.targetGroup = listener.addTargets('Instances', {
      port,
      protocol: elbv2.Protocol.TCP,
      targets: [this.autoScalingGroup],
      healthCheck: {
        // The check does not validate the self-signed certificate; it only asks whether the appliance is ready.
        protocol: elbv2.Protocol.HTTPS,
        path: READINESS_PATH,
        healthyHttpCodes: '200',
        interval: Duration.seconds(10),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 3,
      },
    });

    this.serviceUrl = `https://${this.loadBalancer.loadBalancerDnsName}:${port}`;
    this.tamperAlarms = new TamperAlarms(this, 'TamperAlarms', {
      keyArn: this.storage.watchedKeyArn,
      imageIds: allowedImages.map((image) => image.imageId),
      autoScalingGroupName: this.autoScalingGroup.autoScalingGroupName,
      modelOwnerEventBusArn: props.modelOwnerEventBusArn,
    });
    props.modelOwners?.forEach((owner) => this.allowModelOwner(owner));
    addReviewerOutputs(this, {
      allowedImages,
      workload: 'the fleet',
      key: this.key,
      modelBucket: this.modelBucket,
      modelName: props.modelName,
      modelPrefix,
      serviceUrl: this.serviceUrl,
    });
    new CfnOutput(this, 'AutoScalingGroupName', {
      value: this.autoScalingGroup.autoScalingGroupName,
      description: 'The attested inference instances; follow an image upgrade with describe-instance-refreshes',
    });
  }

  /** Lets `principal` seal the model with the key and upload it to the bucket. It can never decrypt. */
  public allowModelOwner(principal: iam.IPrincipal): void {
    this.storage.allowModelOwner(principal);
  }

  /** Lets `peer` reach the inference service through the load balancer. */
  public allowServiceFrom(peer: ec2.IPeer): void {
    this.loadBalancerSecurityGroup.allowServiceFrom(peer);
  }
}

/** The group's sizes, checked: at least one instance, min ≤ desired ≤ max. */
function checkCapacity(props: SealedInferenceFleetProps): Pick<autoscaling.AutoScalingGroupProps, 'minCapacity' | 'desiredCapacity' | 'maxCapacity'> {
  const minCapacity = props.minCapacity ?? 2;
  const desiredCapacity = props.desiredCapacity;
  const maxCapacity = props.maxCapacity ?? desiredCapacity ?? minCapacity;
  const sizes = { minCapacity, desiredCapacity, maxCapacity };
  for (const [name, value] of Object.entries(sizes)) {
    if (value !== undefined && !Token.isUnresolved(value) && (!Number.isInteger(value) || value < 1)) {
      throw new Error(`${name} must be a whole number of instances, at least 1; got ${value}`);
    }
  }
  const known = (value?: number) => value !== undefined && !Token.isUnresolved(value);
  if (known(minCapacity) && known(maxCapacity) && minCapacity > maxCapacity) {
    throw new Error(`minCapacity (${minCapacity}) must not exceed maxCapacity (${maxCapacity})`);
  }
  if (known(desiredCapacity) && known(minCapacity) && desiredCapacity! < minCapacity) {
    throw new Error(`desiredCapacity (${desiredCapacity}) must be at least minCapacity (${minCapacity})`);
  }
  if (known(desiredCapacity) && known(maxCapacity) && desiredCapacity! > maxCapacity) {
    throw new Error(`desiredCapacity (${desiredCapacity}) must not exceed maxCapacity (${maxCapacity})`);
  }
  return sizes;
}

function acknowledgeLoadBalancer(loadBalancer: elbv2.NetworkLoadBalancer): void {
  const noAccessLogs = 'Network Load Balancers write access logs only for TLS listeners; this one passes TCP through ' +
    'so that TLS ends on the attested instances. VPC flow logs (on by default in the isolated network) record every ' +
    'connection.';
  Validations.of(loadBalancer).acknowledge({ id: 'AwsSolutions-ELB2', reason: noAccessLogs });
  acknowledgeCompliance(
    loadBalancer,
    {
      rule: 'ELBv2ACMCertificateRequired',
      reason: 'TLS 1.3 ends on each attested instance, with a key made inside it and bound into its attestation; a ' +
        'certificate on the load balancer would end TLS outside the attested boundary and break that binding.',
    },
    {
      rule: 'ELBDeletionProtectionEnabled',
      reason: 'The load balancer holds no state and is recreated by a deployment (clients read its URL from the ' +
        'ServiceUrl output); deletion protection would make deleting the stack fail.',
    },
    { rule: 'ELBLoggingEnabled', reason: noAccessLogs },
  );
}

function acknowledgeAutoScalingGroup(group: autoscaling.AutoScalingGroup): void {
  Validations.of(group).acknowledge({
    id: 'AwsSolutions-AS3',
    reason: 'Scaling activities are recorded in the group activity history and sent to EventBridge; the group ' +
      'holds no state that a missed notification would lose.',
  });
}
