import type { VerifyReport } from '../cli/verify-connection';
import type { AttestationFailedError } from './attestation-failure';
import type { FleetHealth } from './fleet-health';

/** What `GET /health` answers while the last verification passed (status 200). */
export interface VerifiedHealth {
  readonly verified: true;
  /** The service verified, as connected to. */
  readonly service: string;
  /** The expected image the document matched, by AMI id or position. */
  readonly image?: string;
  /** The document's PCRs, by index. */
  readonly pcrs: Record<string, string>;
  /** The model digests the event log reports on PCR15. */
  readonly servedModels: string[];
  /** The SHA-256 (hex) of the SubjectPublicKeyInfo of the TLS key the document binds, pinned for that connection. */
  readonly tlsSpkiSha256: string;
  /** When the verification passed, ISO 8601. */
  readonly verifiedAt: string;
}

/** What `GET /health` answers while nothing is forwarded (status 503). */
export interface UnverifiedHealth {
  readonly verified: false;
  readonly reason: string;
  /** The failure's code, as clients receive it in the error's `code`. */
  readonly failedCheck: string;
}

/** A single service's state: the outcome of the gateway's last verification. */
export type SingleServiceHealth = VerifiedHealth | UnverifiedHealth;

/** The gateway's state: a single service's, or in fleet mode that of each instance reached. */
export type GatewayHealth = SingleServiceHealth | FleetHealth;

/** The state before the first verification ends. */
export const NOT_YET_VERIFIED: UnverifiedHealth = {
  verified: false, reason: 'the first verification has not finished yet', failedCheck: 'not-yet-verified',
};

/** The health a passed verification gives. */
export function verifiedHealth(report: VerifyReport, verifiedAt: Date): VerifiedHealth {
  return {
    verified: true,
    service: report.service,
    image: report.image,
    pcrs: report.document?.pcrs ?? {},
    servedModels: report.servedModels,
    tlsSpkiSha256: report.tlsSpkiSha256,
    verifiedAt: verifiedAt.toISOString(),
  };
}

/** The health a failed verification gives. */
export function unverifiedHealth(failure: AttestationFailedError): UnverifiedHealth {
  return { verified: false, reason: failure.reason, failedCheck: failure.code };
}
