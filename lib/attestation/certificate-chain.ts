import { X509Certificate } from 'node:crypto';
import { AttestationError, AttestationErrorKind } from './attestation-error';

function parseCertificate(der: Buffer, name: string): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (e) {
    throw new AttestationError(AttestationErrorKind.MALFORMED_DOCUMENT,
      `the ${name} certificate is not a DER X.509 certificate (${(e as Error).message})`);
  }
}

function describe(cert: X509Certificate, name: string): string {
  return `${name} certificate (${cert.subject.replace(/\n/g, ', ')})`;
}

/**
 * Checks the chain `cabundle[0]` (root) → `cabundle[1..]` (intermediates) → `leaf` and returns the leaf.
 *
 * The root must be one of `trustedRoots` byte for byte; each later certificate must be issued and signed by the one
 * before it, every issuer must be a CA, and every certificate must be valid at `at`.
 * @throws AttestationError of kind `malformed-document`, `unknown-root`, `broken-chain`, `certificate-expired` or
 * `certificate-not-yet-valid`
 */
export function verifyCertificateChain(
  leafDer: Buffer, cabundle: Buffer[], trustedRoots: X509Certificate[], at: Date,
): X509Certificate {
  const names = cabundle.map((_, i) => (i === 0 ? 'root' : `intermediate ${i}`)).concat('leaf');
  const chain = cabundle.concat(leafDer).map((der, i) => parseCertificate(der, names[i]));

  const root = chain[0];
  if (!trustedRoots.some((trusted) => trusted.raw.equals(root.raw))) {
    throw new AttestationError(AttestationErrorKind.UNKNOWN_ROOT,
      `the ${describe(root, 'root')} with SHA-256 fingerprint ${root.fingerprint256} is not a trusted root`);
  }
  for (let i = 1; i < chain.length; i++) {
    const issuer = chain[i - 1];
    const cert = chain[i];
    if (!issuer.ca) {
      throw new AttestationError(AttestationErrorKind.BROKEN_CHAIN,
        `the ${describe(issuer, names[i - 1])} is not a CA and cannot issue the ${names[i]} certificate`);
    }
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
      throw new AttestationError(AttestationErrorKind.BROKEN_CHAIN,
        `the ${describe(cert, names[i])} was not issued and signed by the ${describe(issuer, names[i - 1])}`);
    }
  }
  chain.forEach((cert, i) => {
    const validFrom = new Date(cert.validFrom);
    const validTo = new Date(cert.validTo);
    if (at < validFrom) {
      throw new AttestationError(AttestationErrorKind.CERTIFICATE_NOT_YET_VALID,
        `the ${describe(cert, names[i])} is valid from ${validFrom.toISOString()}, after ${at.toISOString()}`);
    }
    if (at > validTo) {
      throw new AttestationError(AttestationErrorKind.CERTIFICATE_EXPIRED,
        `the ${describe(cert, names[i])} expired at ${validTo.toISOString()}, before ${at.toISOString()}`);
    }
  });
  return chain[chain.length - 1];
}
