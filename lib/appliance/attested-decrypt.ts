import { DecryptCommand, DecryptCommandOutput, KMSClient, KMSServiceException } from '@aws-sdk/client-kms';
import { createRecipientKeyPair } from '../attestation/recipient-key';
import { openRecipientEnvelope, RecipientEnvelopeError } from '../attestation/recipient-envelope';
import { Attester } from './attester';
import { isTransient } from './retry';

/**
 * Unwraps a sealed model's data key through KMS with NitroTPM attestation: the key travels from KMS wrapped to a key
 * pair that exists only in this process, and KMS releases it only to an image its key policy names.
 */

/** Bytes of an AES-256 data key. */
const DATA_KEY_BYTES = 32;

/** KMS's length limit for `CiphertextBlob`: the most a wrapped data key can be. */
export const MAX_CIPHERTEXT_BLOB_BYTES = 6144;

/** Why the data key could not be unwrapped. */
export enum DataKeyFailure {
  /** The NitroTPM could not produce an attestation document. */
  ATTESTATION_UNAVAILABLE = 'attestation-unavailable',
  /** KMS denied the request: the image's PCRs are not in the key policy, or the instance role may not use the key. */
  ATTESTATION_REJECTED = 'attestation-rejected',
  /** KMS refused the attestation document itself (not signed by NitroTPM, too old, or without a usable public key). */
  ATTESTATION_INVALID = 'attestation-invalid',
  /** The wrapped data key was not made by this KMS key under this encryption context. */
  WRONG_CIPHERTEXT = 'wrong-ciphertext',
  /** The KMS key does not exist, is disabled, pending deletion, or not a symmetric encryption key. */
  KEY_UNUSABLE = 'key-unusable',
  /** KMS answered with the data key in clear: the Recipient was ignored, so the answer is refused. */
  PLAINTEXT_IN_CLEAR = 'plaintext-in-clear',
  /** KMS's `CiphertextForRecipient` is missing, malformed, or does not hold a 32-byte key. */
  BAD_ENVELOPE = 'bad-envelope',
  /** KMS is throttling, failing (5xx) or unreachable: retry later. */
  KMS_UNAVAILABLE = 'kms-unavailable',
  /** Any other refusal from KMS. */
  KMS_REFUSED = 'kms-refused',
}

/** The data key could not be unwrapped; `transient` says whether retrying the whole call may succeed. */
export class DataKeyUnwrapError extends Error {
  constructor(
    /** Why, as a machine-readable kind. */
    public readonly kind: DataKeyFailure,
    /** True when the cause is temporary (throttling, KMS 5xx, network): the caller may retry. */
    public readonly transient: boolean,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DataKeyUnwrapError';
  }
}

/** What {@link decryptDataKey} needs. */
export interface DecryptDataKeyRequest {
  /** The KMS client; its retry settings apply to each call. */
  readonly kms: KMSClient;
  /** Produces the NitroTPM attestation document carrying the recipient public key. */
  readonly attester: Attester;
  /** The KMS key that wrapped the data key (key ARN recommended). */
  readonly keyId: string;
  /** The wrapped data key: the content of `<name>.datakey.enc`. */
  readonly ciphertextBlob: Uint8Array;
  /** The encryption context the data key was generated under (the model's identity). */
  readonly encryptionContext: Record<string, string>;
}

/** KMS error names that mean "try again later". */
const TRANSIENT_ERRORS = new Set([
  'ThrottlingException', 'KMSInternalException', 'DependencyTimeoutException', 'KeyUnavailableException',
]);

function checkRequest(request: DecryptDataKeyRequest): void {
  if (typeof request.keyId !== 'string' || request.keyId.trim() === '') {
    throw new Error('decryptDataKey: keyId must name the KMS key that wrapped the data key');
  }
  const size = request.ciphertextBlob?.length ?? 0;
  if (size === 0 || size > MAX_CIPHERTEXT_BLOB_BYTES) {
    throw new Error(`decryptDataKey: ciphertextBlob must be 1 to ${MAX_CIPHERTEXT_BLOB_BYTES} bytes, got ${size}`);
  }
  const context = request.encryptionContext;
  if (typeof context !== 'object' || context === null ||
    Object.values(context).some((value) => typeof value !== 'string')) {
    throw new Error('decryptDataKey: encryptionContext must map strings to strings');
  }
}

/** Turns a failed KMS call into a one-line reason a platform team can act on. */
function explainKmsError(error: unknown, request: DecryptDataKeyRequest): DataKeyUnwrapError {
  const keyId = request.keyId;
  if (!(error instanceof KMSServiceException)) {
    // No answer from KMS at all: connection refused or reset, DNS, timeout, or no credentials from the instance role.
    return new DataKeyUnwrapError(DataKeyFailure.KMS_UNAVAILABLE, true,
      `could not reach KMS for key ${keyId}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }
  const detail = `${error.name}: ${error.message}`;
  const fail = (kind: DataKeyFailure, message: string, transient = false) =>
    new DataKeyUnwrapError(kind, transient, `${message} (${detail})`, { cause: error });
  if (TRANSIENT_ERRORS.has(error.name) || error.$fault === 'server') {
    return fail(DataKeyFailure.KMS_UNAVAILABLE, `KMS is throttling or failing for key ${keyId}; retry later`, true);
  }
  switch (error.name) {
    case 'AccessDeniedException':
      return fail(DataKeyFailure.ATTESTATION_REJECTED, `attestation rejected by KMS: this image's PCRs are not in the key policy of ${keyId} ` +
        '(or the instance role may not use the key)');
    case 'ValidationException':
      return fail(DataKeyFailure.ATTESTATION_INVALID, 'KMS refused the attestation document: it must be signed by the NitroTPM, ' +
        'at most five minutes old (check the instance clock), and carry an RSA-2048 public key');
    case 'InvalidCiphertextException':
      return fail(DataKeyFailure.WRONG_CIPHERTEXT, `the wrapped data key does not belong to KMS key ${keyId} with encryption context ` +
        `${JSON.stringify(request.encryptionContext)}: the model was sealed with another key or for another model name`);
    case 'IncorrectKeyException':
      return fail(DataKeyFailure.WRONG_CIPHERTEXT, `the wrapped data key was made by another KMS key than ${keyId}: ` +
        'deploy with the key the model was sealed with, or re-seal the model');
    case 'NotFoundException':
      return fail(DataKeyFailure.KEY_UNUSABLE, `KMS key ${keyId} was not found: check the key ARN and the Region`);
    case 'DisabledException':
      return fail(DataKeyFailure.KEY_UNUSABLE, `KMS key ${keyId} is disabled: enable it`);
    case 'KMSInvalidStateException':
      return fail(DataKeyFailure.KEY_UNUSABLE, `KMS key ${keyId} is in a state that allows no decryption, such as pending ` +
        'deletion: cancel the deletion, then enable it');
    case 'InvalidKeyUsageException':
      return fail(DataKeyFailure.KEY_UNUSABLE, `KMS key ${keyId} is not a symmetric encryption key`);
    default:
      return fail(DataKeyFailure.KMS_REFUSED, `KMS refused to decrypt the data key with key ${keyId}`);
  }
}

async function attest(attester: Attester, publicKey: Buffer): Promise<Buffer> {
  try {
    return await attester.attest({ publicKey });
  } catch (error) {
    throw new DataKeyUnwrapError(DataKeyFailure.ATTESTATION_UNAVAILABLE, isTransient(error),
      `could not get a NitroTPM attestation document: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }
}

/**
 * Unwraps the model's data key: creates an ephemeral RSA key pair, has the NitroTPM attest its public key, calls KMS
 * Decrypt with that document as Recipient, and opens the `CiphertextForRecipient` envelope with the private key.
 * The data key is never in clear on the wire; an answer carrying `Plaintext` is refused and wiped.
 *
 * @returns the 32-byte data key; the caller wipes it (`fill(0)`) when done
 * @throws DataKeyUnwrapError with a one-line reason; `transient` says whether to retry
 */
export async function decryptDataKey(request: DecryptDataKeyRequest): Promise<Buffer> {
  checkRequest(request);
  const recipient = await createRecipientKeyPair();
  const attestationDocument = await attest(request.attester, recipient.publicKeyDer);

  let response: DecryptCommandOutput;
  try {
    response = await request.kms.send(new DecryptCommand({
      KeyId: request.keyId,
      CiphertextBlob: request.ciphertextBlob,
      EncryptionContext: request.encryptionContext,
      Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: attestationDocument },
    }));
  } catch (error) {
    throw explainKmsError(error, request);
  }

  if (response.Plaintext !== undefined && response.Plaintext.length > 0) {
    response.Plaintext.fill(0);
    throw new DataKeyUnwrapError(DataKeyFailure.PLAINTEXT_IN_CLEAR, false,
      `KMS answered with the data key in clear instead of CiphertextForRecipient for key ${request.keyId}: refused, ` +
      'the endpoint ignored the attestation Recipient (check that the KMS endpoint is genuine)');
  }
  if (response.CiphertextForRecipient === undefined || response.CiphertextForRecipient.length === 0) {
    throw new DataKeyUnwrapError(DataKeyFailure.BAD_ENVELOPE, false,
      `KMS answered without CiphertextForRecipient for key ${request.keyId}`);
  }

  let dataKey: Buffer;
  try {
    dataKey = openRecipientEnvelope(response.CiphertextForRecipient, recipient.privateKey);
  } catch (error) {
    if (error instanceof RecipientEnvelopeError) {
      throw new DataKeyUnwrapError(DataKeyFailure.BAD_ENVELOPE, false, error.message, { cause: error });
    }
    throw error;
  }
  if (dataKey.length !== DATA_KEY_BYTES) {
    const length = dataKey.length;
    dataKey.fill(0);
    throw new DataKeyUnwrapError(DataKeyFailure.BAD_ENVELOPE, false,
      `the unwrapped data key is ${length} bytes, expected ${DATA_KEY_BYTES} (AES-256)`);
  }
  return dataKey;
}
