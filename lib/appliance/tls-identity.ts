import 'reflect-metadata';
import { KeyObject, webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { spkiSha256 } from '../attestation/channel-binding';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/**
 * The appliance's TLS identity: an ECDSA P-256 key pair made in memory at start and a self-signed certificate for it.
 * No CA vouches for it: clients trust it because every attestation document binds its key (channel-binding.ts).
 * The private key exists only in this process's memory; a restart makes a new one.
 */
export interface TlsIdentity {
  /** The private key, PKCS#8 PEM, for node:tls (which takes no KeyObject); never written anywhere. */
  readonly key: string;
  /** The self-signed certificate, PEM. */
  readonly cert: string;
  /** The SHA-256 (hex) of the certificate's SubjectPublicKeyInfo, as the channel binding names it. */
  readonly spkiSha256: string;
}

const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
/** The certificate's validity says nothing (clients pin the attested key); a year outlives any image. */
const VALIDITY_MS = 365 * 24 * 60 * 60 * 1000;
/** Allows for a client clock a little behind the instance's. */
const BACKDATE_MS = 60 * 60 * 1000;

/** Makes a fresh key pair and its self-signed certificate. */
export async function createTlsIdentity(now = new Date()): Promise<TlsIdentity> {
  const keys = await webcrypto.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair;
  const serialNumber = Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^./, '1');
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber,
    name: 'CN=sealed-inference appliance',
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + VALIDITY_MS),
    keys,
    signingAlgorithm: ECDSA_P256,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    ],
  });
  const cert = certificate.toString('pem');
  return {
    key: KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string,
    cert,
    spkiSha256: spkiSha256(new X509Certificate(cert)),
  };
}
