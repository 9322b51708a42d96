import { Duration, RemovalPolicy, Token, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { SealedModelKey } from './sealed-model-key';

/** Properties of a {@link ModelBucket}. */
export interface ModelBucketProps {
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
export class ModelBucket extends Construct {
  /** The underlying bucket. */
  public readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: ModelBucketProps = {}) {
    super(scope, id);
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

    Validations.of(this.bucket).acknowledge({
      id: 'NIST.800.53.R5-S3BucketReplicationEnabled',
      reason: 'Sealed artifacts are reproducible by the model owner from the original; versioning guards overwrites.',
    });
    if (!props.encryptionKey) {
      Validations.of(this.bucket).acknowledge({
        id: 'NIST.800.53.R5-S3DefaultEncryptionKMS',
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

  /**
   * Lets the model owner upload sealed artifacts under `prefix`, including multipart uploads and their abort.
   * Works across accounts (the bucket policy names a foreign principal).
   */
  public grantUpload(grantee: iam.IGrantable, prefix: string): iam.Grant {
    return this.grantOnObjects(grantee, prefix, [
      's3:PutObject',
      's3:AbortMultipartUpload',
      's3:ListMultipartUploadParts',
    ]);
  }

  /**
   * Lets the workload read sealed artifacts under `prefix`, and list that prefix: S3 tells a missing object (404) from
   * a refused one (403) only to a caller allowed `s3:ListBucket`, and the workload waits for a model not uploaded yet.
   */
  public grantFetch(grantee: iam.IGrantable, prefix: string): iam.Grant {
    return this.grantOnObjects(grantee, prefix, ['s3:GetObject']).combine(iam.Grant.addToPrincipalOrResource({
      grantee,
      actions: ['s3:ListBucket'],
      resourceArns: [this.bucket.bucketArn],
      resource: this.bucket,
      conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } },
    }));
  }

  private grantOnObjects(grantee: iam.IGrantable, prefix: string, actions: string[]): iam.Grant {
    checkPrefix(prefix);
    return iam.Grant.addToPrincipalOrResource({
      grantee,
      actions,
      resourceArns: [this.bucket.arnForObjects(`${prefix}*`)],
      resource: this.bucket,
    });
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
    Validations.of(bucket).acknowledge(
      {
        id: 'AwsSolutions-S1',
        reason: 'This is the access-log bucket; logging its own access would recurse.',
      },
      {
        id: 'NIST.800.53.R5-S3BucketLoggingEnabled',
        reason: 'This is the access-log bucket; logging its own access would recurse.',
      },
      {
        id: 'NIST.800.53.R5-S3BucketReplicationEnabled',
        reason: 'Access logs are an audit aid for one bucket; replicate them centrally if your policy requires it.',
      },
      {
        id: 'NIST.800.53.R5-S3DefaultEncryptionKMS',
        reason: 'S3 server access logging delivers only to buckets encrypted with SSE-S3.',
      },
    );
    return bucket;
  }
}

/** A prefix is empty or a relative S3 "folder" ending in '/'. */
function checkPrefix(prefix: string): void {
  if (Token.isUnresolved(prefix)) return;
  const wellFormed = /^[A-Za-z0-9!_.'()-]+(\/[A-Za-z0-9!_.'()-]+)*\/$/.test(prefix);
  if (prefix !== '' && (!wellFormed || prefix.split('/').some((segment) => segment === '.' || segment === '..'))) {
    throw new Error(
      `Prefix must be empty or a path ending in '/' without a leading '/', e.g. "models/"; got ${JSON.stringify(prefix)}`,
    );
  }
}
