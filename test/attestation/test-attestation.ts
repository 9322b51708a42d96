/**
 * Builds NitroTPM-style attestation documents signed by a throw-away P-384 chain root → intermediate → leaf,
 * for tests and test doubles of `nitro-tpm-attest`.
 */
import 'reflect-metadata';
import { KeyObject, X509Certificate, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { TestCertificate, TestChain } from './test-attestation-document';

export * from './test-attestation-document';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ES384 = { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' };
const DAY_MS = 24 * 60 * 60 * 1000;

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
