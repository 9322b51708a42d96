import type { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AttestationDocument, parseAttestationDocument } from '../attestation/attestation-document';
import { AttestationError } from '../attestation/attestation-error';
import { compareAttestation, expectedImageName } from '../attestation/attestation-expectations';
import { AttestationResponse, parseAttestationResponse } from '../attestation/attestation-response';
import { verifyAttestationDocument } from '../attestation/verify-attestation';
import { DocumentFacts, documentFacts, trustedRootNames, VerifyCheck, VerifyExpectations } from './verify-connection';

/**
 * `verify --document <file>`: an audit of an attestation stored earlier, judged as of a given time, without asking
 * any service. What only a live connection can prove (whose TLS key the document binds, that it answers a fresh
 * nonce) is reported as not applicable, never as passed.
 */

/** A check that a stored document cannot support, and why: neither passed nor failed. */
export interface NotApplicableCheck {
  /** `channel` or `nonce`. */
  readonly name: string;
  readonly reason: string;
}

/** What `verify --document <file> --json` prints. */
export interface StoredAttestationReport {
  readonly verified: boolean;
  /** The file the attestation was read from. */
  readonly source: string;
  /** The time certificate validity and the document's age were judged at, ISO 8601; absent when it has no timestamp. */
  readonly at?: string;
  /** The verified document's facts; absent when it did not verify. */
  readonly document?: DocumentFacts;
  /** Expected image the document matched, by AMI id or position. */
  readonly image?: string;
  /** Model digests the event log reports on PCR15. */
  readonly servedModels: string[];
  readonly checks: VerifyCheck[];
  readonly notApplicable: NotApplicableCheck[];
}

/** The largest file read: an attestation answer is a few kilobytes. */
const MAX_STORED_ATTESTATION_BYTES = 1024 * 1024;

/** Why a stored document proves nothing about a connection. */
export const NOT_APPLICABLE_TO_STORED_DOCUMENTS: readonly NotApplicableCheck[] = [
  {
    name: 'channel',
    reason: 'no connection: a stored document cannot show that the service you talk to is the instance that signed it',
  },
  {
    name: 'nonce',
    reason: 'no request: the document\'s nonce was chosen by whoever asked, so it proves freshness only to them',
  },
];

/**
 * Reads an attestation stored as the appliance's `GET /api/attestation` answers it, `{ "document": "<base64>",
 * "eventLog": [...] }`: the event log is needed for the event-log and model checks.
 *
 * @throws when the file cannot be read or is not such an answer (could not check)
 */
export function readStoredAttestation(path: string): AttestationResponse {
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_STORED_ATTESTATION_BYTES) throw new Error(`larger than ${MAX_STORED_ATTESTATION_BYTES} bytes`);
    text = bytes.toString('utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new Error(`Could not read the attestation ${path}: ${reason}`, { cause: error });
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`The attestation ${path} is not JSON: expected the answer of GET /api/attestation, { "document", "eventLog" }`);
  }
  return parseAttestationResponse(body);
}

/**
 * Checks a stored attestation as of `at`, by default the document's own timestamp: the certificate chain, signature,
 * validity and age of the document, then the image, the event log and the model. Returns the report, passed or not.
 */
export function verifyStoredAttestation(
  attestation: AttestationResponse,
  expectations: VerifyExpectations,
  options: { readonly source: string; readonly at?: Date; readonly maxAge: number },
  dependencies: { readonly trustedRoots?: X509Certificate[] } = {},
): StoredAttestationReport {
  const { images, model, configurationSha384 } = expectations;
  let at = options.at;
  const expectedDocument = () => `signed through ${trustedRootNames(dependencies.trustedRoots)}, its certificates valid ` +
    `and the document at most ${options.maxAge} s old at ${at?.toISOString() ?? "the document's timestamp"}`;
  const report = (checks: VerifyCheck[], document?: AttestationDocument): StoredAttestationReport => {
    const verdict = document === undefined ? undefined : compareAttestation(document, attestation.eventLog, { images, model, configurationSha384 });
    const all = [...checks, ...(verdict?.checks ?? [])];
    return {
      verified: all.every((check) => check.passed),
      source: options.source,
      at: at?.toISOString(),
      document: document === undefined ? undefined : documentFacts(document),
      image: verdict?.matchedImage === undefined ? undefined : expectedImageName(verdict.matchedImage, images.indexOf(verdict.matchedImage)),
      servedModels: verdict?.servedModels ?? [],
      checks: all,
      notApplicable: [...NOT_APPLICABLE_TO_STORED_DOCUMENTS],
    };
  };
  let document: AttestationDocument;
  try {
    at ??= parseAttestationDocument(attestation.document).document.timestamp;
    document = verifyAttestationDocument(attestation.document, {
      now: at, maxAge: options.maxAge * 1000, trustedRoots: dependencies.trustedRoots,
    });
  } catch (error) {
    if (!(error instanceof AttestationError)) throw error;
    return report([{ name: 'document', passed: false, expected: expectedDocument(), found: error.message }]);
  }
  const age = Math.round((at.getTime() - document.timestamp.getTime()) / 1000);
  return report([{
    name: 'document',
    passed: true,
    expected: expectedDocument(),
    found: `module ${document.moduleId}, ${document.timestamp.toISOString()} (${age} s old at ${at.toISOString()})`,
  }], document);
}
