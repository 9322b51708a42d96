import { randomBytes, X509Certificate } from 'node:crypto';
import type { AttestationDocument } from '../attestation/attestation-document';
import { AttestationError } from '../attestation/attestation-error';
import { compareAttestation, ExpectedImage, expectedImageName } from '../attestation/attestation-expectations';
import { checkChannelBinding } from '../attestation/channel-binding';
import type { AttestationResponse } from '../attestation/attestation-response';
import { auditKeyPolicy, KeyPolicyFinding } from '../attestation/key-policy-audit';
import { AWS_NITRO_ROOT_SHA256_FINGERPRINT } from '../attestation/nitro-root';
import type { PinnedConnection } from '../attestation/pinned-connection';
import { verifyAttestationDocument } from '../attestation/verify-attestation';
import type { MeasuredModel } from '../sealing/model-measurement';
import { fetchAttestation } from './fetch-attestation';
import type { CliDependencies } from './program';

/**
 * Verifying one connection to a service: a fresh attestation asked for over it, and every check `verify`, `verify
 * --all` and the gateway apply to it.
 */

/** One line of the report: a check, what it expected and what it found. */
export interface VerifyCheck {
  /** `document`, `channel`, `image`, `event-log`, `model` or `key-policy`. */
  readonly name: string;
  readonly passed: boolean;
  readonly expected: string;
  readonly found: string;
}

/** What `verify --json` prints. */
export interface VerifyReport {
  readonly verified: boolean;
  readonly service: string;
  /** The nonce sent, hex. */
  readonly nonce: string;
  /** The SHA-256 (hex) of the SubjectPublicKeyInfo of the TLS key the service presented. */
  readonly tlsSpkiSha256: string;
  /** The verified document's facts; absent when it did not verify. */
  readonly document?: DocumentFacts;
  /** Expected image the document matched, by AMI id or position. */
  readonly image?: string;
  /** Model digests the event log reports on PCR15. */
  readonly servedModels: string[];
  readonly checks: VerifyCheck[];
  /** The key policy audit's findings, with `--key`. */
  readonly keyPolicyFindings?: KeyPolicyFinding[];
}

/** The facts of a verified document a report shows. */
export interface DocumentFacts {
  readonly moduleId: string;
  /** ISO 8601. */
  readonly timestamp: string;
  /** Each PCR's value, hex, by index. */
  readonly pcrs: Record<string, string>;
}

/** The roots a document must chain to, as a report names them. */
export function trustedRootNames(roots: readonly X509Certificate[] | undefined): string {
  return roots === undefined
    ? `the AWS Nitro root (SHA-256 ${AWS_NITRO_ROOT_SHA256_FINGERPRINT})`
    : roots.map((root) => `root ${root.subject.replace(/\n/g, ', ')}`).join(' or ');
}

/** A verified document's facts, its PCRs in index order. */
export function documentFacts(document: AttestationDocument): DocumentFacts {
  return {
    moduleId: document.moduleId,
    timestamp: document.timestamp.toISOString(),
    pcrs: Object.fromEntries([...document.pcrs].sort(([a], [b]) => a - b).map(([index, value]) => [String(index), value])),
  };
}

/** What a service must show, read once before any attestation is asked for. */
export interface VerifyExpectations {
  readonly images: ExpectedImage[];
  /** The one model the service may serve (its manifest). */
  readonly model?: MeasuredModel;
  /** The SHA-384 of the configuration the service must have measured before acting (from the deployment's outputs). */
  readonly configurationSha384?: string;
  /** The key to audit, with its live policy as read. */
  readonly key?: { readonly arn: string; readonly policy: string };
}

/**
 * Asks for a fresh attestation over `connection` and checks it: the document, that it binds this connection's TLS
 * key, the image, the event log, the model and (with a key in the expectations) the key policy.
 *
 * @throws AttestationUnavailableError when the service does not answer an attestation (could not check)
 */
export async function verifyConnection(
  connection: PinnedConnection,
  expectations: VerifyExpectations,
  options: {
    readonly maxAge: number;
    readonly timeout: number;
    /** Called with the attestation as received, before it is checked: to keep it for an audit. */
    readonly onAttestation?: (response: AttestationResponse) => void;
  },
  dependencies: Pick<CliDependencies, 'trustedRoots'> = {},
): Promise<VerifyReport> {
  const { images, model, configurationSha384, key } = expectations;
  const service = connection.serviceUrl.href;
  const nonce = randomBytes(32);
  const response = await fetchAttestation(connection, nonce, options.timeout * 1000);
  options.onAttestation?.(response);

  // The key is audited whatever the document shows: a key that unseals for more than expected is a finding of its own.
  const audit = key === undefined ? undefined : auditKeyPolicy(key.policy, images, { keyArn: key.arn });
  const keyPolicyCheck: VerifyCheck[] = key === undefined || audit === undefined ? [] : [{
    name: 'key-policy',
    passed: audit.sealed,
    expected: `${key.arn} decrypts only for ${images.map(expectedImageName).join(', ')}, each gated by its PCRs, without grants`,
    found: audit.sealed ? 'as expected' : audit.findings.map((finding) => finding.message).join('; '),
  }];

  const checks: VerifyCheck[] = [];
  const roots = dependencies.trustedRoots;
  const expectedDocument = `signed through ${trustedRootNames(roots)}, at most ${options.maxAge} s old, nonce ${nonce.toString('hex')}`;
  const unverified = (failed: VerifyCheck): VerifyReport => ({
    verified: false, service, nonce: nonce.toString('hex'), tlsSpkiSha256: connection.peerSpkiSha256, servedModels: [],
    checks: [...checks, failed, ...keyPolicyCheck], keyPolicyFindings: audit?.findings,
  });
  const now = new Date();
  let document: AttestationDocument;
  try {
    document = verifyAttestationDocument(response.document, {
      expectedNonce: nonce, maxAge: options.maxAge * 1000, now, trustedRoots: roots,
    });
  } catch (error) {
    if (!(error instanceof AttestationError)) throw error;
    return unverified({ name: 'document', passed: false, expected: expectedDocument, found: error.message });
  }
  const age = Math.max(0, Math.round((now.getTime() - document.timestamp.getTime()) / 1000));
  checks.push({
    name: 'document',
    passed: true,
    expected: expectedDocument,
    found: `module ${document.moduleId}, ${document.timestamp.toISOString()} (${age} s old), the nonce sent`,
  });

  // Nothing the document says about this connection counts unless it names this connection's key.
  const expectedChannel = `the document binds this connection's TLS key (SPKI SHA-256 ${connection.peerSpkiSha256})`;
  try {
    checkChannelBinding(document, connection.peerSpkiSha256);
  } catch (error) {
    if (!(error instanceof AttestationError)) throw error;
    return unverified({ name: 'channel', passed: false, expected: expectedChannel, found: error.message });
  }
  checks.push({
    name: 'channel', passed: true, expected: expectedChannel,
    found: `TLS key SPKI SHA-256 ${connection.peerSpkiSha256}, bound by the document`,
  });

  const verdict = compareAttestation(document, response.eventLog, { images, model, configurationSha384 });
  checks.push(...verdict.checks);
  checks.push(...keyPolicyCheck);
  return {
    verified: checks.every((check) => check.passed),
    service,
    nonce: nonce.toString('hex'),
    tlsSpkiSha256: connection.peerSpkiSha256,
    document: documentFacts(document),
    image: verdict.matchedImage === undefined ? undefined : expectedImageName(verdict.matchedImage, images.indexOf(verdict.matchedImage)),
    servedModels: verdict.servedModels,
    checks,
    keyPolicyFindings: audit?.findings,
  };
}
