import { Duration, IResource, RemovalPolicy, Resource, Token, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledgeCompliance } from './private/compliance-acknowledgment';
import { OwnerPolicyRequests } from './private/owner-policy-request';
import { MODEL_FETCH_ACTIONS, MODEL_LIST_ACTIONS, MODEL_UPLOAD_ACTIONS } from './private/permissions';
import { SealedModelKey } from './sealed-model-key';
import { DEFAULT_MODEL_PREFIX } from './shared/appliance-config';

/**
 * A bucket for sealed model artifacts: one this stack creates ({@link ModelBucket}) or an existing one, e.g. in the
 * model owner's account, imported with `ModelBucket.fromBucketName()`.
 */
export interface IModelBucket extends IResource {
  /** The underlying bucket. */
  readonly bucket: s3.IBucket;

  /** The bucket's name. */
  readonly bucketName: string;

  /** The prefix sealed models are stored under unless a grant names another: empty or ending in '/'. */
  readonly modelPrefix: string;

  /**
   * Lets the model owner upload sealed artifacts under `prefix`, including multipart uploads and their abort.
   *
   * @param prefix empty or ending in '/'; by default `modelPrefix`
   */
  grantUpload(grantee: iam.IGrantable, prefix?: string): iam.Grant;

  /**
   * Lets the workload read sealed artifacts under `prefix`, and list that prefix: S3 tells a missing object (404)
   * from a refused one (403) only to a caller allowed `s3:ListBucket`, and the workload waits for a model not
   * uploaded yet.
   *
   * @param prefix empty or ending in '/'; by default `modelPrefix`
   */
  grantFetch(grantee: iam.IGrantable, prefix?: string): iam.Grant;
}

/** What identifies an existing model bucket, for {@link ModelBucket.fromModelBucketAttributes}. */
export interface ModelBucketAttributes {
  /** The bucket's name. */
  readonly bucketName: string;

  /**
   * The account that owns the bucket. Name it when it is not this stack's: grants then write identity policies only,
   * and the owner's bucket policy must allow the same (`ModelBucket.grantFetch()` in the owner's stack).
   *
   * @default - this stack's account
   */
  readonly account?: string;

  /**
   * The bucket's Region.
   *
   * @default - this stack's Region
   */
  readonly region?: string;

  /**
   * The prefix sealed models are stored under: empty or ending in '/'.
   *
   * @default 'models/'
   */
  readonly modelPrefix?: string;
}

/** Properties of a {@link ModelBucket}. */
export interface ModelBucketProps {
  /**
   * The prefix sealed models are stored under unless a grant names another: empty or ending in '/'.
   *
   * @default 'models/'
   */
  readonly modelPrefix?: string;

  /**
   * A KMS key for encryption at rest. Never the sealing key: it refuses every unattested decrypt, so S3 could not
   * serve the objects. The sealed artifacts are encrypted anyway; this key protects them as a second layer.
   *
   * @default - S3-managed keys (SSE-S3)
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * How long replaced or deleted versions of sealed artifacts are kept.
   *
   * @default Duration.days(30)
   */
  readonly noncurrentVersionExpiration?: Duration;

  /**
   * Where server access logs go.
   *
   * @default - a dedicated access-log bucket, retained on delete
   */
  readonly accessLogsBucket?: s3.IBucket;
}

/**
 * An S3 bucket for sealed model artifacts: private, TLS-only, versioned, logged and retained on delete.
 *
 * Uploading (the model owner) and fetching (the workload) are granted separately and scoped to a prefix.
 */
export class ModelBucket extends Resource implements IModelBucket {
  /** An existing model bucket in this stack's account and Region, by name; sealed models under 'models/'. */
  public static fromBucketName(scope: Construct, id: string, bucketName: string): IModelBucket {
    return ModelBucket.fromModelBucketAttributes(scope, id, { bucketName });
  }

  /** An existing model bucket, possibly in another account, with the prefix sealed models are stored under. */
  public static fromModelBucketAttributes(scope: Construct, id: string, attributes: ModelBucketAttributes): IModelBucket {
    return new ImportedModelBucket(scope, id, attributes);
  }

  /** The underlying bucket. */
  public readonly bucket: s3.Bucket;

  public readonly bucketName: string;

  public readonly modelPrefix: string;

  constructor(scope: Construct, id: string, props: ModelBucketProps = {}) {
    super(scope, id);
    this.modelPrefix = checkPrefix(props.modelPrefix ?? DEFAULT_MODEL_PREFIX);
    const accessLogsBucket = props.accessLogsBucket ?? this.createAccessLogsBucket();
    this.bucket = new s3.Bucket(this, 'Resource', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: true,
      encryption: props.encryptionKey ? s3.BucketEncryption.KMS : s3.BucketEncryption.S3_MANAGED,
      encryptionKey: props.encryptionKey,
      bucketKeyEnabled: props.encryptionKey !== undefined,
      serverAccessLogsBucket: accessLogsBucket,
      serverAccessLogsPrefix: 'model-bucket/',
      lifecycleRules: [
        {
          id: 'ExpireReplacedVersions',
          noncurrentVersionExpiration: props.noncurrentVersionExpiration ?? Duration.days(30),
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.bucketName = this.bucket.bucketName;

    acknowledgeCompliance(this.bucket, {
      rule: 'S3BucketReplicationEnabled',
      reason: 'Sealed artifacts are reproducible by the model owner from the original; versioning guards overwrites.',
    });
    if (!props.encryptionKey) {
      acknowledgeCompliance(this.bucket, {
        rule: 'S3DefaultEncryptionKMS',
        reason: 'Objects are AES-256-GCM sealed before upload with a KMS data key; SSE-S3 is a second layer. ' +
          'Pass encryptionKey for SSE-KMS.',
      });
    }
    if (props.encryptionKey) {
      const encryptionKeyArn = props.encryptionKey.keyArn;
      this.node.addValidation({
        validate: () =>
          this.node.root.node
            .findAll()
            .filter((c): c is SealedModelKey => c instanceof SealedModelKey && c.keyArn === encryptionKeyArn)
            .map(
              (c) =>
                `encryptionKey is the sealing key ${c.node.path}: S3 could not decrypt with it. ` +
                'Use S3-managed keys or a separate KMS key.',
            ),
      });
    }
  }

  /** Works across accounts: the bucket policy names a foreign principal. */
  public grantUpload(grantee: iam.IGrantable, prefix: string = this.modelPrefix): iam.Grant {
    return grantOnModels(this.bucket, grantee, prefix, MODEL_UPLOAD_ACTIONS);
  }

  /** Works across accounts: the bucket policy names a foreign principal. */
  public grantFetch(grantee: iam.IGrantable, prefix: string = this.modelPrefix): iam.Grant {
    return grantFetchModels(this.bucket, grantee, prefix);
  }

  private createAccessLogsBucket(): s3.Bucket {
    // Object ownership is left to CDK: it grants S3's log delivery by bucket policy or ACL, per feature flag.
    const bucket = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      lifecycleRules: [{ id: 'ExpireOldLogs', expiration: Duration.days(365), noncurrentVersionExpiration: Duration.days(30) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This is the access-log bucket; logging its own access would recurse.',
    });
    acknowledgeCompliance(
      bucket,
      {
        rule: 'S3BucketReplicationEnabled',
        reason: 'Access logs are an audit aid for one bucket; replicate them centrally if your policy requires it.',
      },
      {
        rule: 'S3DefaultEncryptionKMS',
        reason: 'S3 server access logging delivers only to buckets encrypted with SSE-S3.',
      },
    );
    return bucket;
  }
}

/**
 * A model bucket that exists outside this stack. Its grants write identity policies; across accounts, the owner's
 * bucket policy must allow the same, and synth says which statements the owner must add.
 */
class ImportedModelBucket extends Resource implements IModelBucket {
  public readonly bucket: s3.IBucket;
  public readonly bucketName: string;
  public readonly modelPrefix: string;
  private readonly ownerRequests: OwnerPolicyRequests;

  constructor(scope: Construct, id: string, attributes: ModelBucketAttributes) {
    super(scope, id, { account: attributes.account, region: attributes.region });
    this.modelPrefix = checkPrefix(attributes.modelPrefix ?? DEFAULT_MODEL_PREFIX);
    this.bucket = s3.Bucket.fromBucketAttributes(this, 'Bucket', {
      bucketName: attributes.bucketName,
      account: attributes.account,
      region: attributes.region,
    });
    this.bucketName = this.bucket.bucketName;
    this.ownerRequests = new OwnerPolicyRequests(this, {
      kind: 'bucket',
      name: this.bucketName,
      warningId: 'sealed-inference:imported-bucket-policy',
      remedy: "A ModelBucket in the owner's stack writes them with grantFetch() or grantUpload() for the same principal.",
    });
  }

  public grantUpload(grantee: iam.IGrantable, prefix: string = this.modelPrefix): iam.Grant {
    return this.askOwnerFor(`upload for ${grantee.grantPrincipal}`, grantOnModels(this.bucket, grantee, prefix, MODEL_UPLOAD_ACTIONS));
  }

  public grantFetch(grantee: iam.IGrantable, prefix: string = this.modelPrefix): iam.Grant {
    return this.askOwnerFor(`fetch for ${grantee.grantPrincipal}`, grantFetchModels(this.bucket, grantee, prefix));
  }

  /** A grant across accounts also needs statements in the bucket policy, which only the bucket's owner can add. */
  private askOwnerFor(what: string, grant: iam.Grant): iam.Grant {
    if (grant.resourceStatements.length > 0) this.ownerRequests.ask(what, grant.resourceStatements);
    return grant;
  }
}

/** Reading the objects under `prefix`, and listing that prefix. */
function grantFetchModels(bucket: s3.IBucket, grantee: iam.IGrantable, prefix: string): iam.Grant {
  return grantOnModels(bucket, grantee, prefix, MODEL_FETCH_ACTIONS).combine(iam.Grant.addToPrincipalOrResource({
    grantee,
    actions: MODEL_LIST_ACTIONS,
    resourceArns: [bucket.bucketArn],
    resource: bucket,
    conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } },
  }));
}

/** `actions` on the objects under `prefix`: in the identity policy, and in the bucket policy where one is needed. */
function grantOnModels(bucket: s3.IBucket, grantee: iam.IGrantable, prefix: string, actions: string[]): iam.Grant {
  return iam.Grant.addToPrincipalOrResource({
    grantee,
    actions,
    resourceArns: [bucket.arnForObjects(`${checkPrefix(prefix)}*`)],
    resource: bucket,
  });
}

/** A prefix is empty or a relative S3 "folder" ending in '/'. Returns it. */
function checkPrefix(prefix: string): string {
  if (Token.isUnresolved(prefix)) return prefix;
  const wellFormed = /^[A-Za-z0-9!_.'()-]+(\/[A-Za-z0-9!_.'()-]+)*\/$/.test(prefix);
  if (prefix !== '' && (!wellFormed || prefix.split('/').some((segment) => segment === '.' || segment === '..'))) {
    throw new Error(
      `Prefix must be empty or a path ending in '/' without a leading '/', e.g. "models/"; got ${JSON.stringify(prefix)}`,
    );
  }
  return prefix;
}
