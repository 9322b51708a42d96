import { GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { modelEncryptionContext } from './manifest';

/**
 * A model's data key from KMS `GenerateDataKey`, bound to the model by its encryption context. Runtime code (no
 * aws-cdk-lib): the sealing CLI uses it.
 */

/** A fresh data key: the plaintext to seal with, and the same key wrapped by KMS to store beside the model. */
export interface ModelDataKey {
  /**
   * The 32-byte AES-256 key. It lives in memory only: the caller wipes it with `fill(0)` as soon as the model is
   * sealed, and never writes it anywhere.
   */
  readonly plaintext: Buffer;
  /** The key wrapped by KMS: `<name>.datakey.enc`. Only KMS can unwrap it, under the same encryption context. */
  readonly ciphertextBlob: Buffer;
  /** The ARN of the KMS key that wrapped it. */
  readonly keyArn: string;
}

/** Attempts per KMS call, including the first. */
const MAX_ATTEMPTS = 6;

/** A KMS client that retries throttling and transient errors; the Region by default from the SDK's chain. */
export function newKmsClient(region?: string): KMSClient {
  return new KMSClient({ region, maxAttempts: MAX_ATTEMPTS, retryMode: 'standard' });
}

/**
 * Generates an AES-256 data key for model `modelName` under KMS key `keyId` (key id, key ARN, alias name or alias
 * ARN), with the encryption context {@link modelEncryptionContext}. Throws with a message saying what to fix when
 * KMS refuses.
 */
export async function generateDataKey(client: KMSClient, keyId: string, modelName: string): Promise<ModelDataKey> {
  const encryptionContext = modelEncryptionContext(modelName);
  let response;
  try {
    response = await client.send(
      new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: encryptionContext }),
    );
  } catch (error) {
    throw new Error(explain(error, keyId, modelName), { cause: error });
  }
  const { Plaintext, CiphertextBlob, KeyId } = response;
  if (!Plaintext || Plaintext.length !== 32 || !CiphertextBlob || !KeyId) {
    if (Plaintext) Plaintext.fill(0);
    throw new Error(
      `KMS GenerateDataKey with key ${keyId} returned an incomplete answer (no 32-byte key, wrapped key or key ARN)`,
    );
  }
  return {
    plaintext: Buffer.from(Plaintext.buffer, Plaintext.byteOffset, Plaintext.length),
    ciphertextBlob: Buffer.from(CiphertextBlob),
    keyArn: KeyId,
  };
}

function explain(error: unknown, keyId: string, modelName: string): string {
  const name = (error as { name?: string }).name ?? 'unknown error';
  const reason = `${(error as Error).message ?? String(error)} (${name})`;
  switch (name) {
    case 'AccessDeniedException':
      return (
        `KMS refused to generate a data key with key ${keyId} for model ${modelName}: ${reason}. Your principal may ` +
        `need to be a model owner of the key, and the key policy must allow the model name ${modelName}`
      );
    case 'NotFoundException':
      return `KMS key ${keyId} was not found: ${reason}. Check the key id, ARN or alias and the Region`;
    case 'DisabledException':
    case 'KMSInvalidStateException':
      return `KMS key ${keyId} cannot be used now: ${reason}. Check that it is enabled and not pending deletion`;
    default:
      return `Could not generate a data key with KMS key ${keyId}: ${reason}`;
  }
}
