import { AttestationError, AttestationErrorKind } from './attestation-error';
import { CoseSign1, decodeCbor, decodeCoseSign1 } from './cose-sign1';

/** The content of a NitroTPM attestation document (the payload of its COSE_Sign1 message). */
export interface AttestationDocument {
  /** The NitroTPM module that produced the document. */
  readonly moduleId: string;
  /** When the document was produced (millisecond precision). */
  readonly timestamp: Date;
  /** The PCR bank's digest algorithm; `SHA384` for NitroTPM. */
  readonly digest: string;
  /** PCR values by index, lowercase hex. */
  readonly pcrs: Map<number, string>;
  /** The DER certificate whose key signed the document. */
  readonly certificate: Buffer;
  /** DER certificates from the root (first) to the issuer of `certificate` (last). */
  readonly cabundle: Buffer[];
  /** The public key the requester asked to include (DER SubjectPublicKeyInfo for KMS). */
  readonly publicKey?: Buffer;
  /** Application data the requester asked to include. */
  readonly userData?: Buffer;
  /** The nonce the requester asked to include. */
  readonly nonce?: Buffer;
}

/** A parsed document with the COSE_Sign1 parts its signature covers. */
export interface SignedAttestationDocument {
  readonly document: AttestationDocument;
  readonly message: CoseSign1;
}

function malformed(message: string): AttestationError {
  return new AttestationError(AttestationErrorKind.MALFORMED_DOCUMENT, message);
}

function bytesField(payload: Map<unknown, unknown>, name: string): Buffer {
  const value = payload.get(name);
  if (!(value instanceof Uint8Array)) {
    throw malformed(`field ${name} must be a byte string`);
  }
  return Buffer.from(value);
}

function optionalBytesField(payload: Map<unknown, unknown>, name: string): Buffer | undefined {
  const value = payload.get(name);
  return value === undefined || value === null ? undefined : bytesField(payload, name);
}

function textField(payload: Map<unknown, unknown>, name: string): string {
  const value = payload.get(name);
  if (typeof value !== 'string' || value.length === 0) {
    throw malformed(`field ${name} must be a non-empty text string`);
  }
  return value;
}

function pcrsField(payload: Map<unknown, unknown>): Map<number, string> {
  const value = payload.get('nitrotpm_pcrs');
  if (!(value instanceof Map)) {
    throw malformed('field nitrotpm_pcrs must be a map of PCR index to byte string');
  }
  const pcrs = new Map<number, string>();
  for (const [index, digest] of value) {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || !(digest instanceof Uint8Array)) {
      throw malformed(`nitrotpm_pcrs entry ${String(index)} must map a PCR index to a byte string`);
    }
    pcrs.set(index, Buffer.from(digest).toString('hex'));
  }
  return pcrs;
}

function timestampField(payload: Map<unknown, unknown>): Date {
  const value = payload.get('timestamp');
  const ms = typeof value === 'bigint' ? Number(value) : value;
  if (typeof ms !== 'number' || !Number.isSafeInteger(ms) || ms <= 0) {
    throw malformed('field timestamp must be a positive integer (milliseconds since the epoch)');
  }
  return new Date(ms);
}

/** Reads the attestation fields from a decoded COSE_Sign1 message without checking any signature. */
export function parseAttestationPayload(payloadBytes: Uint8Array): AttestationDocument {
  const payload = decodeCbor(payloadBytes, 'the document payload');
  if (!(payload instanceof Map)) {
    throw malformed('the document payload must be a CBOR map');
  }
  const cabundle = payload.get('cabundle');
  if (!Array.isArray(cabundle) || cabundle.length === 0 || !cabundle.every((c) => c instanceof Uint8Array)) {
    throw malformed('field cabundle must be a non-empty array of DER certificates');
  }
  return {
    moduleId: textField(payload, 'module_id'),
    timestamp: timestampField(payload),
    digest: textField(payload, 'digest'),
    pcrs: pcrsField(payload),
    certificate: bytesField(payload, 'certificate'),
    cabundle: cabundle.map((c: Uint8Array) => Buffer.from(c)),
    publicKey: optionalBytesField(payload, 'public_key'),
    userData: optionalBytesField(payload, 'user_data'),
    nonce: optionalBytesField(payload, 'nonce'),
  };
}

/**
 * Parses a NitroTPM attestation document (COSE_Sign1 over a CBOR map) as `nitro-tpm-attest` writes it.
 *
 * Nothing is verified: use `verifyAttestationDocument` before trusting any value.
 * @throws AttestationError of kind `malformed-document`
 */
export function parseAttestationDocument(bytes: Uint8Array): SignedAttestationDocument {
  const message = decodeCoseSign1(bytes);
  return { document: parseAttestationPayload(message.payload), message };
}
