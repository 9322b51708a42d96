import { type PcrMeasurements } from '../lib';
import { hex384 } from './fixtures';
import { attestationReporting, type Context, requestsOn, sealedModelContext } from './iam-simulation';

/** Where the two stacks deploy, and what the model owner's deployment made. */
export const REGION = 'eu-west-1';
export const OWNER_ACCOUNT = '111111111111';
export const CONSUMER_ACCOUNT = '222222222222';
export const KEY_ARN = `arn:aws:kms:${REGION}:${OWNER_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
export const BUCKET_NAME = 'owner-sealed-models';
/** The model owner's sealing role. */
export const MODEL_OWNER = `arn:aws:iam::${OWNER_ACCOUNT}:role/model-owner`;
/** Another principal of the consumer's account, which its administrators could create or assume. */
export const CONSUMER_ADMIN = `arn:aws:sts::${CONSUMER_ACCOUNT}:assumed-role/admin/someone`;
/** The allowed image's PCRs, and those of an image that is not allowed. */
export const MEASUREMENTS: PcrMeasurements = { pcr4: hex384('a4'), pcr12: hex384('00') };
const OTHER_IMAGE: PcrMeasurements = { pcr4: hex384('b4'), pcr12: hex384('00') };

/** A model owner's key and bucket and a consumer's instance, as two stacks deploy them. */
export interface OwnerConsumerDeployment {
  /** The owner's key policy and bucket policy, resolved. */
  readonly keyPolicy: object;
  readonly bucketPolicy: object;
  readonly model: string;
  /** The instance as KMS and S3 see it: a session of its role. */
  readonly instance: string;
  /** The identity policies the consumer's stack attaches to the instance role. */
  readonly instancePolicies: object[];
}

/** An administrator's identity policy: every action on every resource. */
const ADMIN_POLICIES = [{ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] }];

/**
 * The requests that decide whether the owner holds the gate: only the consumer's attested instance unseals and reads
 * the model; the consumer's administrators, with every permission their account can grant, neither unseal nor
 * change the key nor touch the model; the owner seals and uploads, never unseals.
 */
export function describeOwnerConsumerRequests(deployment: OwnerConsumerDeployment): void {
  const { model, instance, instancePolicies } = deployment;
  const consumerAdmin = CONSUMER_ADMIN;
  const modelOwner = MODEL_OWNER;
  const { onKey, onModel } = requestsOn({
    account: OWNER_ACCOUNT,
    keyArn: KEY_ARN,
    keyPolicy: deployment.keyPolicy,
    bucketName: BUCKET_NAME,
    bucketPolicy: deployment.bucketPolicy,
    sealedModelKey: `models/${model}.sealed`,
  });
  const attested = (measurements = MEASUREMENTS): Context => ({
    ...attestationReporting(measurements),
    ...sealedModelContext(model),
  });

  describe("the consumer's instance, through the imported key and bucket", () => {
    test('unseals with an attestation of the allowed image', async () => {
      expect(instancePolicies.length).toBeGreaterThan(0);
      expect(await onKey(instance, 'kms:Decrypt', instancePolicies, attested())).toBe('Allowed');
    });

    test('cannot unseal without an attestation, or with one of another image', async () => {
      expect(await onKey(instance, 'kms:Decrypt', instancePolicies, sealedModelContext(model))).toBe('ExplicitlyDenied');
      expect(await onKey(instance, 'kms:Decrypt', instancePolicies, attested(OTHER_IMAGE))).not.toBe('Allowed');
    });

    test("fetches the sealed model from the owner's bucket, and nothing outside its prefix", async () => {
      expect(await onModel(instance, 's3:GetObject', instancePolicies)).toBe('Allowed');
      expect(await onModel(instance, 's3:GetObject', instancePolicies, 'private/other.bin')).not.toBe('Allowed');
      expect(await onModel(instance, 's3:PutObject', instancePolicies)).not.toBe('Allowed');
    });
  });

  describe("an administrator of the consumer's account, with *:* in its identity policy", () => {
    test.each([
      ['with an attestation of the allowed image', attested()],
      ['without an attestation', sealedModelContext(model)],
    ])('cannot unseal %s', async (_, context) => {
      expect(await onKey(consumerAdmin, 'kms:Decrypt', ADMIN_POLICIES, context)).not.toBe('Allowed');
    });

    test.each(['kms:PutKeyPolicy', 'kms:CreateGrant', 'kms:ScheduleKeyDeletion', 'kms:DisableKey'])(
      "cannot change the owner's key: %s",
      async (action) => {
        expect(await onKey(consumerAdmin, action, ADMIN_POLICIES)).not.toBe('Allowed');
      },
    );

    test('cannot seal a substitute model with it', async () => {
      expect(await onKey(consumerAdmin, 'kms:GenerateDataKey', ADMIN_POLICIES, sealedModelContext(model))).not.toBe('Allowed');
    });

    test("cannot read or replace the sealed model in the owner's bucket", async () => {
      expect(await onModel(consumerAdmin, 's3:GetObject', ADMIN_POLICIES)).not.toBe('Allowed');
      expect(await onModel(consumerAdmin, 's3:PutObject', ADMIN_POLICIES)).not.toBe('Allowed');
    });
  });

  describe('the model owner', () => {
    test('seals the named model and uploads it', async () => {
      expect(await onKey(modelOwner, 'kms:GenerateDataKey', [], sealedModelContext(model))).toBe('Allowed');
      expect(await onModel(modelOwner, 's3:PutObject', [])).toBe('Allowed');
    });

    test('cannot unseal', async () => {
      expect(await onKey(modelOwner, 'kms:Decrypt', [], attested())).not.toBe('Allowed');
    });
  });
}
