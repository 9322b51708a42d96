import { verify as verifySignature, KeyObject } from 'node:crypto';
import { decodeFirstSync, encode, Tagged } from 'cbor';
import { AttestationError, AttestationErrorKind } from './attestation-error';

/** CBOR tag of a COSE_Sign1 message (RFC 9052). */
export const COSE_SIGN1_TAG = 18;

/** COSE algorithm identifier of ECDSA with SHA-384 (ES384). */
export const COSE_ALG_ES384 = -35;

/** Byte length of an ES384 signature: r and s, 48 bytes each. */
const ES384_SIGNATURE_LENGTH = 96;


/** The parts of a COSE_Sign1 message: `[protected bstr, unprotected map, payload bstr, signature bstr]`. */
export interface CoseSign1 {
  /** The serialized protected header. */
  readonly protectedHeader: Buffer;
  /** The signed payload. */
  readonly payload: Buffer;
  /** The signature; for ES384 the raw `r || s`. */
  readonly signature: Buffer;
}

function malformed(message: string): AttestationError {
  return new AttestationError(AttestationErrorKind.MALFORMED_DOCUMENT, message);
}

/**
 * Decodes one CBOR item, turning decoder failures into `malformed-document`. Maps decode as `Map`, so that integer
 * keys (COSE labels, PCR indexes) keep their type.
 */
export function decodeCbor(bytes: Uint8Array, what: string): unknown {
  try {
    return decodeFirstSync(bytes, { preferMap: true });
  } catch (e) {
    throw malformed(`${what} is not valid CBOR (${(e as Error).message})`);
  }
}

/** Splits a tagged or untagged COSE_Sign1 message into its parts and checks that it is signed with ES384. */
export function decodeCoseSign1(bytes: Uint8Array): CoseSign1 {
  let item = decodeCbor(bytes, 'the attestation document');
  if (item instanceof Tagged) {
    if (item.tag !== COSE_SIGN1_TAG) {
      throw malformed(`expected COSE_Sign1 (CBOR tag ${COSE_SIGN1_TAG}), got CBOR tag ${item.tag}`);
    }
    item = item.value;
  }
  if (!Array.isArray(item) || item.length !== 4) {
    throw malformed('expected a COSE_Sign1 array of four items [protected, unprotected, payload, signature]');
  }
  const [protectedHeader, , payload, signature] = item;
  if (!(protectedHeader instanceof Uint8Array) || !(payload instanceof Uint8Array) || !(signature instanceof Uint8Array)) {
    throw malformed('the protected header, payload and signature of the COSE_Sign1 message must be byte strings');
  }
  const header = protectedHeader.length === 0 ? new Map() : decodeCbor(protectedHeader, 'the protected header');
  const alg = header instanceof Map ? header.get(1) : undefined;
  if (alg !== COSE_ALG_ES384) {
    throw malformed(`expected algorithm ES384 (${COSE_ALG_ES384}) in the protected header, got ${String(alg)}`);
  }
  return {
    protectedHeader: Buffer.from(protectedHeader),
    payload: Buffer.from(payload),
    signature: Buffer.from(signature),
  };
}

/** The bytes a COSE_Sign1 signature covers: `["Signature1", protected, external_aad = h'', payload]`. */
export function coseSign1SigStructure(protectedHeader: Uint8Array, payload: Uint8Array): Buffer {
  return encode(['Signature1', Buffer.from(protectedHeader), Buffer.alloc(0), Buffer.from(payload)]);
}

/** Throws `bad-signature` unless the message's ES384 signature verifies with `publicKey`. */
export function verifyCoseSign1(message: CoseSign1, publicKey: KeyObject): void {
  if (message.signature.length !== ES384_SIGNATURE_LENGTH) {
    throw new AttestationError(AttestationErrorKind.BAD_SIGNATURE,
      `an ES384 signature is ${ES384_SIGNATURE_LENGTH} bytes (r || s), got ${message.signature.length}`);
  }
  const data = coseSign1SigStructure(message.protectedHeader, message.payload);
  let valid: boolean;
  try {
    valid = verifySignature('sha384', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, message.signature);
  } catch (e) {
    throw new AttestationError(AttestationErrorKind.BAD_SIGNATURE,
      `the signature cannot be checked with the certificate's key (${(e as Error).message})`);
  }
  if (!valid) {
    throw new AttestationError(AttestationErrorKind.BAD_SIGNATURE,
      'the COSE_Sign1 signature does not match the payload and the document certificate\'s public key');
  }
}
