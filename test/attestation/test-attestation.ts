/**
 * Builds NitroTPM-style attestation documents signed by a throw-away P-384 chain root → intermediate → leaf,
 * for tests and test doubles of `nitro-tpm-attest`.
 */
import 'reflect-metadata';
import { KeyObject, X509Certificate, sign, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { encode, Tagged } from 'cbor';
import { COSE_ALG_ES384, COSE_SIGN1_TAG, coseSign1SigStructure } from '../../lib/attestation';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ES384 = { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' };
const DAY_MS = 24 * 60 * 60 * 1000;

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

/** Validity periods of the test chain; every certificate defaults to one day either side of now. */
export interface TestChainOptions {
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly leafNotBefore?: Date;
  readonly leafNotAfter?: Date;
}

async function issue(
  name: string, keys: webcrypto.CryptoKeyPair, issuer: { name: string; key: webcrypto.CryptoKey } | undefined,
  notBefore: Date, notAfter: Date, ca: boolean,
): Promise<TestCertificate> {
  const extensions = [
    new x509.BasicConstraintsExtension(ca, undefined, true),
    new x509.KeyUsagesExtension(ca ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign
      : x509.KeyUsageFlags.digitalSignature, true),
  ];
  const serialNumber = Buffer.from(webcrypto.getRandomValues(new Uint8Array(8))).toString('hex').replace(/^./, '1');
  const cert = issuer === undefined
    ? await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber, name, notBefore, notAfter, keys, signingAlgorithm: ES384, extensions,
    })
    : await x509.X509CertificateGenerator.create({
      serialNumber, subject: name, issuer: issuer.name, notBefore, notAfter, publicKey: keys.publicKey,
      signingKey: issuer.key, signingAlgorithm: ES384, extensions,
    });
  const der = Buffer.from(cert.rawData);
  return { der, certificate: new X509Certificate(der), privateKey: KeyObject.from(keys.privateKey) };
}

/** Creates a fresh P-384 chain root → intermediate → leaf. */
export async function createTestChain(options: TestChainOptions = {}): Promise<TestChain> {
  const now = Date.now();
  const notBefore = options.notBefore ?? new Date(now - DAY_MS);
  const notAfter = options.notAfter ?? new Date(now + DAY_MS);
  const generate = () => webcrypto.subtle.generateKey(ES384, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
  const [rootKeys, intermediateKeys, leafKeys] = await Promise.all([generate(), generate(), generate()]);
  const rootName = 'CN=test.nitro-root';
  const intermediateName = 'CN=test.nitro-intermediate';
  const root = await issue(rootName, rootKeys, undefined, notBefore, notAfter, true);
  const intermediate = await issue(intermediateName, intermediateKeys,
    { name: rootName, key: rootKeys.privateKey }, notBefore, notAfter, true);
  const leaf = await issue('CN=test.nitro-leaf', leafKeys, { name: intermediateName, key: intermediateKeys.privateKey },
    options.leafNotBefore ?? notBefore, options.leafNotAfter ?? notAfter, false);
  return { root, intermediate, leaf };
}

/** What a test document says; everything but the chain has a default. */
export interface TestDocumentOptions {
  readonly chain: TestChain;
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
