/**
 * A local KMS speaking the JSON 1.1 protocol (`X-Amz-Target: TrentService.Decrypt`), so that the real `KMSClient`
 * talks to it through `endpoint`. It holds one symmetric key whose policy allows Decrypt only with a NitroTPM
 * attestation document of an allowed image, the way this project's key policy does, and answers attested requests
 * with a real CMS envelope. GenerateDataKey answers as it does for the model owner, who may seal.
 */
import { createCipheriv, createDecipheriv, createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KMSClient } from '@aws-sdk/client-kms';
import { AttestationDocument, AttestationError, parseAttestationDocument, verifyAttestationDocument } from '../../../lib/attestation';
import { checkPinsImage, normalizePcrValue, PcrMeasurements, pinnedPcrs } from '../../../lib/shared/measurements';
import { buildRecipientEnvelope } from '../../attestation/recipient-envelope-builder';

/** What the fake is set up with. */
export interface FakeKmsOptions {
  /** Roots an attestation document's chain may start from (the test chain's root). */
  readonly trustedRoots: X509Certificate[];
  /** The images the key policy allows: one statement each, PCR4 + PCR12 or PCR7, compared ignoring case. */
  readonly allowedImages: PcrMeasurements[];
  /** @default 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab' */
  readonly keyArn?: string;
}

/** One request the fake received. */
export interface FakeKmsRequest {
  /** The operation from `X-Amz-Target`, e.g. `Decrypt`. */
  readonly operation: string;
  /** Whether the request carried a Recipient (an attestation document). */
  readonly withRecipient: boolean;
  /** The `user_data` of the Recipient's attestation document, when it had one that parses. */
  readonly attestationUserData?: Buffer;
  readonly keyId?: string;
  readonly encryptionContext?: Record<string, string>;
}

/** A KMS error the fake answers with instead of doing its work. */
export interface FakeKmsFault {
  readonly status: number;
  readonly type: string;
  readonly message?: string;
}

interface KmsRequest {
  KeyId?: string;
  KeySpec?: string;
  CiphertextBlob?: string;
  EncryptionContext?: Record<string, string>;
  Recipient?: { KeyEncryptionAlgorithm?: string; AttestationDocument?: string };
}

/** One allowed image as the PCR index/value pairs its policy statement pins, values lower case. */
type PcrValuesOfImage = Array<{ index: number; value: string }>;

class KmsFault extends Error {
  constructor(public readonly type: string, message: string, public readonly status = 400) {
    super(message);
  }
}

/** Marks the fake's own blobs; any other bytes are not a ciphertext of this key. */
const BLOB_MAGIC = Buffer.from('fake-kms-v1');
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** The recipient key size the Nitro Enclaves SDK documents for `RSAES_OAEP_SHA_256`. */
const RECIPIENT_KEY_BITS = 2048;

/** Encryption context as KMS binds it: independent of the order of its entries. */
function canonicalContext(context: Record<string, string>): Buffer {
  return Buffer.from(JSON.stringify(Object.keys(context).sort().map((key) => [key, context[key]])));
}

export class FakeKms {
  /** Starts the fake on a free loopback port. */
  public static async start(options: FakeKmsOptions): Promise<FakeKms> {
    const fake = new FakeKms(options);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  /** The ARN of the fake's one key. */
  public readonly keyArn: string;
  /** Every request received, in order. */
  public readonly requests: FakeKmsRequest[] = [];
  /** Answer Decrypt with `Plaintext` and no `CiphertextForRecipient`, as a KMS that ignores the Recipient would. */
  public answerInClear = false;
  /** The key's state: Decrypt fails with DisabledException when disabled, KMSInvalidStateException when pending deletion. */
  public keyState: 'Enabled' | 'Disabled' | 'PendingDeletion' = 'Enabled';

  private readonly server: http.Server;
  private readonly masterKey = randomBytes(32);
  private readonly allowedImages: PcrValuesOfImage[];
  private readonly faults: FakeKmsFault[] = [];

  private constructor(private readonly options: FakeKmsOptions) {
    this.keyArn = options.keyArn ?? 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    this.allowedImages = options.allowedImages.map((image, i) => {
      // KMS evaluates whatever a policy pins, a key sealed to PCR7 alone (pcr7Only) included.
      const sealedToPcr7Alone = image.pcr7 !== undefined && image.pcr4 === undefined && image.pcr12 === undefined;
      checkPinsImage(`allowed image ${i}`, image, sealedToPcr7Alone);
      return pinnedPcrs(image).map(({ index, value }) => ({ index, value: normalizePcrValue(`PCR${index}`, value) }));
    });
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => this.answer(req, Buffer.concat(chunks).toString('utf8'), res));
    });
  }

  public get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** A real KMS client pointed at the fake with static test credentials; one attempt unless told otherwise. */
  public client(maxAttempts = 1): KMSClient {
    return new KMSClient({
      endpoint: this.endpoint,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIAFAKEFAKEFAKEFAKE', secretAccessKey: 'fake-secret' },
      maxAttempts,
    });
  }

  /** Wraps a data key under the fake's key, bound to `encryptionContext`, as `GenerateDataKey` would. */
  public wrap(dataKey: Buffer, encryptionContext: Record<string, string>): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.masterKey, iv);
    cipher.setAAD(canonicalContext(encryptionContext));
    const ciphertext = Buffer.concat([cipher.update(dataKey), cipher.final()]);
    return Buffer.concat([BLOB_MAGIC, iv, cipher.getAuthTag(), ciphertext]);
  }

  /** Answers the next requests with `faults`, one each, before working normally again. */
  public failNext(...faults: FakeKmsFault[]): void {
    this.faults.push(...faults);
  }

  public async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private answer(req: http.IncomingMessage, body: string, res: http.ServerResponse): void {
    const target = String(req.headers['x-amz-target'] ?? '');
    const operation = target.replace(/^TrentService\./, '');
    let request: KmsRequest | undefined;
    try {
      request = JSON.parse(body) as KmsRequest;
    } catch {
      // Recorded as received; answered below as a serialization error.
    }
    this.requests.push({
      operation,
      withRecipient: request?.Recipient !== undefined,
      attestationUserData: userDataOf(request?.Recipient?.AttestationDocument),
      keyId: request?.KeyId,
      encryptionContext: request?.EncryptionContext,
    });
    res.setHeader('content-type', 'application/x-amz-json-1.1');
    try {
      const fault = this.faults.shift();
      if (fault) {
        throw new KmsFault(fault.type, fault.message ?? `injected ${fault.type}`, fault.status);
      }
      if (req.method !== 'POST' || !target.startsWith('TrentService.') ||
        req.headers['content-type'] !== 'application/x-amz-json-1.1') {
        throw new KmsFault('UnknownOperationException', `expected a KMS JSON 1.1 POST, got ${req.method} ${target}`);
      }
      if (request === undefined) {
        throw new KmsFault('SerializationException', 'the request body is not JSON');
      }
      if (operation === 'GenerateDataKey') {
        res.end(JSON.stringify(this.generateDataKey(request)));
        return;
      }
      if (operation !== 'Decrypt') {
        throw new KmsFault('UnsupportedOperationException', `the fake KMS answers Decrypt and GenerateDataKey only, not ${operation}`);
      }
      res.end(JSON.stringify(this.decrypt(request)));
    } catch (error) {
      const fault = error instanceof KmsFault ? error : new KmsFault('KMSInternalException', String(error), 500);
      res.statusCode = fault.status;
      res.end(JSON.stringify({ __type: fault.type, message: fault.message }));
    }
  }

  /** A fresh AES-256 data key, in clear and wrapped under the fake's key bound to the request's encryption context. */
  private generateDataKey(request: KmsRequest): Record<string, string> {
    if (request.KeyId === undefined) {
      throw new KmsFault('ValidationException', '1 validation error detected: Value null at \'keyId\' failed to satisfy constraint');
    }
    this.checkKeyUsable(request.KeyId);
    if (request.KeySpec !== 'AES_256') {
      throw new KmsFault('ValidationException', `the fake KMS makes AES_256 data keys only, not ${String(request.KeySpec)}`);
    }
    const dataKey = randomBytes(32);
    try {
      return {
        KeyId: this.keyArn,
        Plaintext: dataKey.toString('base64'),
        CiphertextBlob: this.wrap(dataKey, request.EncryptionContext ?? {}).toString('base64'),
      };
    } finally {
      dataKey.fill(0);
    }
  }

  private checkKeyUsable(keyId: string | undefined): void {
    if (keyId !== undefined && keyId !== this.keyArn && keyId !== this.keyArn.split('/')[1]) {
      throw new KmsFault('NotFoundException', `Key '${keyId}' does not exist`);
    }
    if (this.keyState === 'Disabled') {
      throw new KmsFault('DisabledException', `${this.keyArn} is disabled.`);
    }
    if (this.keyState === 'PendingDeletion') {
      throw new KmsFault('KMSInvalidStateException', `${this.keyArn} is pending deletion.`);
    }
  }

  private decrypt(request: KmsRequest): Record<string, string> {
    this.checkKeyUsable(request.KeyId);
    if (request.Recipient === undefined) {
      // The key policy allows Decrypt only with a NitroTPM attestation: without one its condition keys are absent.
      throw new KmsFault('AccessDeniedException', `User is not authorized to perform: kms:Decrypt on resource: ${this.keyArn} ` +
        'because no resource-based policy allows the kms:Decrypt action');
    }
    const document = this.checkRecipient(request.Recipient);
    const publicKey = document.publicKey as Buffer;
    const dataKey = this.unwrap(request);
    try {
      if (this.answerInClear) {
        return { KeyId: this.keyArn, Plaintext: dataKey.toString('base64'), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
      }
      return {
        KeyId: this.keyArn,
        CiphertextForRecipient: buildRecipientEnvelope(dataKey, publicKey).toString('base64'),
        EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
      };
    } finally {
      dataKey.fill(0);
    }
  }

  /** Verifies the attestation document and evaluates the key policy against its PCRs. */
  private checkRecipient(recipient: NonNullable<KmsRequest['Recipient']>): AttestationDocument {
    if (recipient.KeyEncryptionAlgorithm !== 'RSAES_OAEP_SHA_256') {
      throw new KmsFault('ValidationException',
        `1 validation error detected: Value '${recipient.KeyEncryptionAlgorithm}' at 'recipient.keyEncryptionAlgorithm' ` +
        'failed to satisfy constraint: Member must satisfy enum value set: [RSAES_OAEP_SHA_256]');
    }
    // KMS does not document the error for a document it cannot verify (bad signature, unknown root, too old);
    // ValidationException, its error for an invalid parameter, stands in for it.
    let document: AttestationDocument;
    try {
      document = verifyAttestationDocument(Buffer.from(recipient.AttestationDocument ?? '', 'base64'),
        { trustedRoots: this.options.trustedRoots });
    } catch (error) {
      if (error instanceof AttestationError) {
        throw new KmsFault('ValidationException', `The attestation document is invalid: ${error.message}`);
      }
      throw error;
    }
    if (document.publicKey === undefined) {
      throw new KmsFault('ValidationException', 'The attestation document does not contain a public key');
    }
    const key = createPublicKey({ key: document.publicKey, format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'rsa' || key.asymmetricKeyDetails?.modulusLength !== RECIPIENT_KEY_BITS) {
      throw new KmsFault('ValidationException',
        `The attestation document's public key must be RSA-${RECIPIENT_KEY_BITS}`);
    }
    const allowed = this.allowedImages.some((image) =>
      image.every(({ index, value }) => document.pcrs.get(index)?.toLowerCase() === value));
    if (!allowed) {
      throw new KmsFault('AccessDeniedException', `User is not authorized to perform: kms:Decrypt on resource: ${this.keyArn} ` +
        'because no resource-based policy allows the kms:Decrypt action');
    }
    return document;
  }

  private unwrap(request: KmsRequest): Buffer {
    const blob = Buffer.from(request.CiphertextBlob ?? '', 'base64');
    const header = BLOB_MAGIC.length + IV_BYTES + TAG_BYTES;
    if (blob.length <= header || !blob.subarray(0, BLOB_MAGIC.length).equals(BLOB_MAGIC)) {
      throw new KmsFault('InvalidCiphertextException', '');
    }
    const decipher = createDecipheriv('aes-256-gcm', this.masterKey, blob.subarray(BLOB_MAGIC.length, BLOB_MAGIC.length + IV_BYTES));
    decipher.setAAD(canonicalContext(request.EncryptionContext ?? {}));
    decipher.setAuthTag(blob.subarray(BLOB_MAGIC.length + IV_BYTES, header));
    try {
      return Buffer.concat([decipher.update(blob.subarray(header)), decipher.final()]);
    } catch {
      throw new KmsFault('InvalidCiphertextException', '');
    }
  }
}

/** The user_data of a base64 attestation document, unverified: what a request carried, for tests to inspect. */
function userDataOf(document: string | undefined): Buffer | undefined {
  try {
    return document === undefined ? undefined : parseAttestationDocument(Buffer.from(document, 'base64')).document.userData;
  } catch {
    return undefined;
  }
}
