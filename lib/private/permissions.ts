/**
 * The IAM actions each role of the sealed-inference constructs is given, in one place: the key policy, the identity
 * policies written by grants and the statements an imported key's owner is asked for all read these lists.
 */

/** Actions that manage a key without using it: the administrators' share. */
export const KEY_MANAGEMENT_ACTIONS = [
  'kms:DescribeKey',
  'kms:GetKeyPolicy',
  'kms:PutKeyPolicy',
  'kms:ListKeyPolicies',
  'kms:ListResourceTags',
  'kms:TagResource',
  'kms:UntagResource',
  'kms:UpdateKeyDescription',
  'kms:EnableKey',
  'kms:DisableKey',
  'kms:GetKeyRotationStatus',
  'kms:EnableKeyRotation',
  'kms:DisableKeyRotation',
  'kms:ListKeyRotations',
  'kms:RotateKeyOnDemand',
  'kms:ScheduleKeyDeletion',
  'kms:CancelKeyDeletion',
  'kms:CreateAlias',
  'kms:UpdateAlias',
  'kms:DeleteAlias',
  'kms:ListGrants',
  'kms:RevokeGrant',
  'kms:RetireGrant',
];

/** Generating a data key to seal a model with: the model owner's share. */
export const SEAL_ACTIONS = ['kms:GenerateDataKey'];

/** Resolving an alias or ARN to the key before sealing. */
export const DESCRIBE_KEY_ACTIONS = ['kms:DescribeKey'];

/** Unwrapping a model's data key, allowed only with an attestation document: the workload's share. */
export const UNSEAL_ACTIONS = ['kms:Decrypt'];

/** Uploading sealed artifacts, multipart uploads and their abort included. */
export const MODEL_UPLOAD_ACTIONS = ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'];

/** Reading sealed artifacts. */
export const MODEL_FETCH_ACTIONS = ['s3:GetObject'];

/** Listing a prefix, so that S3 answers a missing object with 404 rather than 403. */
export const MODEL_LIST_ACTIONS = ['s3:ListBucket'];
