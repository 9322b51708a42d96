import { CfnOutput } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { AttestedInstance } from './attested-instance';
import { IAttestableImage } from './attestable-image';
import { inferenceNetwork } from './private/inference-network';
import { KeyAdministration } from './key-administration';
import { IModelBucket } from './model-bucket';
import { addReviewerOutputs } from './private/reviewer-outputs';
import { SealedModelStorage } from './private/sealed-model-storage';
import { ISealedModelKey } from './sealed-model-key';
import { TamperAlarms } from './tamper-alarms';
import { ZeroOperatorAccessSecurityGroup } from './zero-operator-access';

/** Properties of {@link SealedInference}. */
export interface SealedInferenceProps {
  /**
   * The attestable image the instance runs, with its measurements pinned (`AttestableImage.fromMeasurements`) or
   * read from its tags at deploy time (`AttestableImage.fromPublishedMeasurements`).
   */
  readonly image: IAttestableImage;

  /**
   * Further images the key accepts, each in a statement of its own: the next image during a rolling upgrade.
   *
   * @default - only `image`
   */
  readonly additionalAllowedImages?: IAttestableImage[];

  /**
   * The sealing key: the model owner's, e.g. imported from their account with
   * `SealedModelKey.fromSealedModelKeyAttributes()`. Its policy must let the instance role (see `instanceRoleName`)
   * decrypt with an attestation of `image`; synth warns (`sealed-inference:imported-key-policy`) with the statement.
   *
   * @default - a new {@link SealedModelKey}, sealed to `image` and `additionalAllowedImages`
   */
  readonly key?: ISealedModelKey;

  /**
   * The bucket holding the sealed model: the model owner's, e.g. imported with `ModelBucket.fromModelBucketAttributes()`.
   *
   * @default - a new {@link ModelBucket}
   */
  readonly modelBucket?: IModelBucket;

  /**
   * A name for the instance role: with a `key` in another account, its owner names the role with `roleInAccount()`.
   *
   * @default - a name CloudFormation generates
   */
  readonly instanceRoleName?: string;

  /** The sealed model's name (the `--name` it was sealed with). */
  readonly modelName: string;

  /**
   * The prefix the sealed model's artifacts are stored under: empty or ending in '/'.
   *
   * @default - the `modelPrefix` of the `modelBucket` given, else 'models/'
   */
  readonly modelPrefix?: string;

  /**
   * The model owner's principals: they may generate data keys for this model and upload under `modelPrefix`,
   * never decrypt. Principals in other accounts are allowed.
   *
   * @default - none; the model owner is added later with `allowModelOwner()`, and until then a synth warning
   * (`sealed-inference:no-model-owner`) says that nobody can seal
   */
  readonly modelOwners?: iam.IPrincipal[];

  /**
   * Who may reach the inference service.
   *
   * @default - nobody until peers are added with `allowServiceFrom()`, and until then a synth warning
   * (`sealed-inference:no-service-peers`) says so
   */
  readonly servicePeers?: ec2.IPeer[];

  /**
   * The inference service's TCP port.
   *
   * @default 3000
   */
  readonly servicePort?: number;

  /**
   * A VPC of your own. It must give the workload private access to S3 and KMS; name where with `endpointPeers`.
   *
   * @default - an {@link IsolatedNetwork}: no internet gateway, no NAT, S3 and KMS endpoints only
   */
  readonly vpc?: ec2.IVpc;

  /**
   * The CIDR block of the isolated network this construct creates: a private IPv4 range from /16 to /24 that does
   * not overlap the clients' network, so that the two can be peered. Only without `vpc`: with it, this throws.
   *
   * @default '10.0.0.0/16'
   */
  readonly vpcCidr?: string;

  /**
   * Where the instance may send HTTPS in a VPC of your own: its KMS endpoint and its S3 endpoint. An S3 gateway
   * endpoint is reached at S3's public addresses, not the VPC's: allow it with `EndpointPeer.s3Gateway(stack)` (the
   * Region's S3 prefix list, looked up when the stack deploys) or `ec2.Peer.prefixList('pl-...')`, e.g.
   * `[ec2.Peer.ipv4(vpc.vpcCidrBlock), EndpointPeer.s3Gateway(stack)]`. Only with `vpc`: without it, this throws,
   * since the isolated network allows exactly its own endpoints.
   *
   * @default - with the isolated network, exactly its KMS endpoint and S3 gateway; with your own VPC, its primary
   * CIDR block, and a synth warning (`sealed-inference:no-s3-gateway-peer`) that S3 through a gateway endpoint is
   * cut off
   */
  readonly endpointPeers?: ec2.IPeer[];

  /**
   * Where to launch the instance.
   *
   * @default - the VPC's isolated subnets, or its private subnets with egress
   */
  readonly vpcSubnets?: ec2.SubnetSelection;

  /**
   * The instance type; it must offer NitroTPM 2.0.
   *
   * @default m7i.2xlarge
   */
  readonly instanceType?: ec2.InstanceType;

  /**
   * Who manages the sealing key.
   *
   * @default KeyAdministration.throughDeployments(): the stack's CloudFormation execution role only
   */
  readonly keyAdministration?: KeyAdministration;

  /**
   * The ARN of an event bus in the model owner's account that receives the tamper alarms as well (see
   * {@link TamperAlarms}). That bus's policy must allow `events:PutEvents` from this account.
   *
   * @default - alarms go to the deployment's own topic only
   */
  readonly modelOwnerEventBusArn?: string;

  /**
   * A KMS key for the model bucket's encryption at rest (never the sealing key).
   *
   * @default - S3-managed keys
   */
  readonly bucketEncryptionKey?: kms.IKey;
}

/**
 * Confidential inference for one sealed model: a KMS key that unwraps the model's data key only for attested
 * instances of the allowed images, a bucket for the sealed artifacts, and an instance with Zero Operator Access in
 * a network with no way out, serving the model on one port.
 *
 * Stack outputs show the reviewer what the deployment is sealed to: the image ids and their measurements, the key,
 * the bucket and the service URL.
 */
export class SealedInference extends Construct {
  /** The VPC the instances run in: the one given as `vpc`, or the isolated network's. */
  public readonly vpc: ec2.IVpc;

  /** The sealing key. */
  public readonly key: ISealedModelKey;

  /** The bucket for the sealed artifacts. */
  public readonly modelBucket: IModelBucket;

  /** The security group of the inference instance. */
  public readonly securityGroup: ZeroOperatorAccessSecurityGroup;

  /** The inference instance. */
  public readonly attestedInstance: AttestedInstance;

  /** Alarms on changes to the key, the allowed images, the instance's user data and the stack. */
  public readonly tamperAlarms: TamperAlarms;

  /** The URL of the inference service (TLS 1.3, its key bound to the instance's attestation), reachable from the allowed peers. */
  public readonly serviceUrl: string;

  private readonly modelName: string;
  private readonly storage: SealedModelStorage;

  constructor(scope: Construct, id: string, props: SealedInferenceProps) {
    super(scope, id);
    this.modelName = props.modelName;
    const allowedImages = [props.image, ...(props.additionalAllowedImages ?? [])];

    const { vpc, isolatedNetwork } = inferenceNetwork(this, props);
    this.vpc = vpc;

    this.storage = new SealedModelStorage(this, props, allowedImages, isolatedNetwork);
    this.key = this.storage.key;
    this.modelBucket = this.storage.modelBucket;
    const modelPrefix = this.storage.modelPrefix;
    this.securityGroup = new ZeroOperatorAccessSecurityGroup(this, 'SecurityGroup', {
      vpc,
      servicePort: props.servicePort,
      servicePeers: props.servicePeers,
      endpointPeers: isolatedNetwork ? [] : props.endpointPeers,
    });
    isolatedNetwork?.allowEndpointsFrom(this.securityGroup);
    isolatedNetwork?.restrictTo({ bucket: this.modelBucket.bucket, modelPrefix, keyArn: this.key.keyArn });
    this.attestedInstance = new AttestedInstance(this, 'Instance', {
      vpc,
      vpcSubnets: props.vpcSubnets,
      image: props.image,
      securityGroup: this.securityGroup,
      key: this.key,
      modelBucket: this.modelBucket,
      modelName: props.modelName,
      modelPrefix,
      instanceType: props.instanceType,
      roleName: props.instanceRoleName,
    });
    props.modelOwners?.forEach((owner) => this.allowModelOwner(owner));

    const instance = this.attestedInstance.instance;
    this.tamperAlarms = new TamperAlarms(this, 'TamperAlarms', {
      keyArn: this.storage.watchedKeyArn,
      imageIds: allowedImages.map((image) => image.imageId),
      instanceId: instance.instanceId,
      modelOwnerEventBusArn: props.modelOwnerEventBusArn,
    });
    this.serviceUrl = `https://${instance.instancePrivateIp}:${this.securityGroup.servicePort}`;
    this.addOutputs(allowedImages);
  }

  /** Lets `principal` seal the model with the key and upload it to the bucket. It can never decrypt. */
  public allowModelOwner(principal: iam.IPrincipal): void {
    this.storage.allowModelOwner(principal);
  }

  /** Lets `peer` reach the inference service. */
  public allowServiceFrom(peer: ec2.IPeer): void {
    this.securityGroup.allowServiceFrom(peer);
  }

  private addOutputs(allowedImages: IAttestableImage[]): void {
    addReviewerOutputs(this, {
      allowedImages,
      workload: 'the instance',
      key: this.key,
      modelBucket: this.modelBucket,
      modelName: this.modelName,
      modelPrefix: this.storage.modelPrefix,
      serviceUrl: this.serviceUrl,
    });
    new CfnOutput(this, 'InstanceId', {
      value: this.attestedInstance.instance.instanceId,
      description: 'The attested inference instance',
    });
  }
}
