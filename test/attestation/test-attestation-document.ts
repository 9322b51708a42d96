/**
 * Encodes and signs NitroTPM-style attestation documents with a test chain's leaf key. Apart from the chain builder
 * (test-attestation.ts), so that the `nitro-tpm-attest` double bundles without the certificate-generation library.
 */
import { KeyObject, X509Certificate, sign } from 'node:crypto';
import { encode, Tagged } from 'cbor';
import { COSE_ALG_ES384, COSE_SIGN1_TAG, coseSign1SigStructure } from '../../lib/attestation/cose-sign1';

/** One certificate of a test chain with its private key. */
export interface TestCertificate {
  readonly der: Buffer;
  readonly certificate: X509Certificate;
  readonly privateKey: KeyObject;
}

/** A root → intermediate → leaf chain; the leaf signs documents. */
export interface TestChain {
  readonly root: TestCertificate;
  readonly intermediate: TestCertificate;
  readonly leaf: TestCertificate;
}

/** What signing a document takes of a chain: the leaf's certificate and key, the bundle's certificates. */
export interface TestSigningChain {
  readonly root: Pick<TestCertificate, 'der'>;
  readonly intermediate: Pick<TestCertificate, 'der'>;
  readonly leaf: Pick<TestCertificate, 'der' | 'privateKey'>;
}

/** What a test document says; everything but the chain has a default. */
export interface TestDocumentOptions {
  readonly chain: TestSigningChain;
  /** PCR index → hex value. @default PCR0..PCR15 of 48 zero bytes, except PCR4 = 48 × 0x04 */
  readonly pcrs?: Map<number, string>;
  /** @default now */
  readonly timestamp?: Date;
  readonly publicKey?: Buffer;
  readonly userData?: Buffer;
  readonly nonce?: Buffer;
  /** @default 'i-0123456789abcdef0-tpm0123456789abcdef' */
  readonly moduleId?: string;
  /** @default [root, intermediate] */
  readonly cabundle?: Buffer[];
  /** Replaces the payload after signing, to tamper with a signed document. */
  readonly replacePayload?: (payload: Buffer) => Buffer;
}

/** Default PCR values of test documents. */
export function testPcrs(): Map<number, string> {
  const pcrs = new Map<number, string>();
  for (let i = 0; i < 16; i++) {
    pcrs.set(i, Buffer.alloc(48, i === 4 ? 4 : 0).toString('hex'));
  }
  return pcrs;
}

/** Encodes the attestation payload map exactly as the document carries it. */
export function encodeTestPayload(options: TestDocumentOptions): Buffer {
  const pcrs = new Map<number, Buffer>();
  for (const [index, hex] of options.pcrs ?? testPcrs()) {
    pcrs.set(index, Buffer.from(hex, 'hex'));
  }
  const payload = new Map<string, unknown>([
    ['module_id', options.moduleId ?? 'i-0123456789abcdef0-tpm0123456789abcdef'],
    ['digest', 'SHA384'],
    ['timestamp', (options.timestamp ?? new Date()).getTime()],
    ['nitrotpm_pcrs', pcrs],
    ['certificate', options.chain.leaf.der],
    ['cabundle', options.cabundle ?? [options.chain.root.der, options.chain.intermediate.der]],
    ['public_key', options.publicKey ?? null],
    ['user_data', options.userData ?? null],
    ['nonce', options.nonce ?? null],
  ]);
  return Buffer.from(encode(payload));
}

/** Builds a COSE_Sign1 (tag 18) attestation document signed with ES384 by the chain's leaf key. */
export function buildTestAttestationDocument(options: TestDocumentOptions): Buffer {
  const protectedHeader = Buffer.from(encode(new Map([[1, COSE_ALG_ES384]])));
  const payload = encodeTestPayload(options);
  const signature = sign('sha384', coseSign1SigStructure(protectedHeader, payload),
    { key: options.chain.leaf.privateKey, dsaEncoding: 'ieee-p1363' });
  const signedPayload = options.replacePayload ? options.replacePayload(payload) : payload;
  return Buffer.from(encode(new Tagged(COSE_SIGN1_TAG, [protectedHeader, new Map(), signedPayload, signature])));
}
