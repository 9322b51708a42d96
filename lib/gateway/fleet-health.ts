import type { VerifyReport } from '../cli/verify-connection';
import type { AttestationFailedError } from './attestation-failure';

/** An instance of the fleet whose last verification passed: its connections carry requests. */
export interface VerifiedInstance {
  readonly verified: true;
  /** The attestation document's module id: which NitroTPM (and so which instance) signed it. */
  readonly moduleId: string;
  /** The expected image the document matched, by AMI id or position. */
  readonly image?: string;
  /** The model digests the event log reports on PCR15. */
  readonly servedModels: string[];
  /** When its last verification passed, ISO 8601. */
  readonly verifiedAt: string;
}

/** An instance of the fleet whose last verification failed: refused, nothing is forwarded to it. */
export interface RefusedInstance {
  readonly verified: false;
  /** The document's module id, when the document itself verified. */
  readonly moduleId?: string;
  /** The failure's code, as clients receive it in an error's `code` (`image-mismatch`, `channel-mismatch`, …). */
  readonly failedCheck: string;
  readonly reason: string;
  /** When it was refused, ISO 8601. */
  readonly refusedAt: string;
}

/** What the gateway last learned of one instance. */
export type InstanceHealth = VerifiedInstance | RefusedInstance;

/** What `GET /health` answers in fleet mode: 200 while at least one instance verified recently, else 503. */
export interface FleetHealth {
  readonly verified: boolean;
  readonly fleet: true;
  /** The service connected to: the load balancer. */
  readonly service: string;
  /** Every instance reached, keyed by the SHA-256 (hex) of its TLS key's SubjectPublicKeyInfo. */
  readonly instances: Record<string, InstanceHealth>;
  /** Why nothing is forwarded, while `verified` is false. */
  readonly reason?: string;
  readonly failedCheck?: string;
}

/**
 * The most instances remembered: a fleet that replaces instances for days makes a new key with each one; the
 * instances heard of least recently are forgotten first.
 */
const MAX_REMEMBERED_INSTANCES = 64;

/**
 * What the gateway knows of each instance of a fleet, by the TLS key it presented: the outcome of the last
 * verification of a connection to it, and the last failure that named no instance (nothing answered a connection).
 */
export class FleetRecord {
  private readonly instances = new Map<string, InstanceHealth>();
  private unreachable?: AttestationFailedError;

  /**
   * @param service the service URL, as connected to
   * @param recentMs how long a passed verification keeps the fleet verified with nothing newer
   */
  constructor(private readonly service: string, private readonly recentMs: number) {}

  /** Records a passed verification; returns the instance's previous state. */
  public recordVerified(report: VerifyReport, at: Date): { readonly current: VerifiedInstance; readonly previous?: InstanceHealth } {
    const current: VerifiedInstance = {
      verified: true,
      moduleId: report.document?.moduleId ?? '',
      image: report.image,
      servedModels: report.servedModels,
      verifiedAt: at.toISOString(),
    };
    this.unreachable = undefined;
    return { current, previous: this.remember(report.tlsSpkiSha256, current) };
  }

  /** Records a refused instance, named by its TLS key; returns its previous state. */
  public recordRefused(
    tlsSpkiSha256: string,
    moduleId: string | undefined,
    failure: AttestationFailedError,
    at: Date,
  ): { readonly current: RefusedInstance; readonly previous?: InstanceHealth } {
    const current: RefusedInstance = {
      verified: false, moduleId, failedCheck: failure.code, reason: failure.reason, refusedAt: at.toISOString(),
    };
    return { current, previous: this.remember(tlsSpkiSha256, current) };
  }

  /** Records a connection that could not be made: no instance answered. */
  public recordUnreachable(failure: AttestationFailedError): void {
    this.unreachable = failure;
  }

  /** The state `GET /health` answers at `now`. */
  public health(now: Date): FleetHealth {
    const instances = Object.fromEntries(this.instances);
    const recent = [...this.instances.values()].some((instance) =>
      instance.verified && now.getTime() - Date.parse(instance.verifiedAt) <= this.recentMs);
    if (recent) return { verified: true, fleet: true, service: this.service, instances };
    const why = this.whyNotVerified(now);
    return { verified: false, fleet: true, service: this.service, instances, reason: why.reason, failedCheck: why.failedCheck };
  }

  private whyNotVerified(now: Date): { reason: string; failedCheck: string } {
    if (this.unreachable !== undefined) return { reason: this.unreachable.reason, failedCheck: this.unreachable.code };
    const refused = [...this.instances.values()].filter((instance): instance is RefusedInstance => !instance.verified);
    if (refused.length > 0) {
      const last = refused[refused.length - 1];
      return { reason: `every instance reached lately was refused; the last: ${last.reason}`, failedCheck: last.failedCheck };
    }
    if (this.instances.size > 0) {
      return {
        reason: `no instance verified in the last ${Math.round(this.recentMs / 1000)} s (at ${now.toISOString()})`,
        failedCheck: 'not-recently-verified',
      };
    }
    return { reason: 'the first verification has not finished yet', failedCheck: 'not-yet-verified' };
  }

  /** Stores `health` as the instance's newest, most recently heard of last; returns what it replaces. */
  private remember(tlsSpkiSha256: string, health: InstanceHealth): InstanceHealth | undefined {
    const previous = this.instances.get(tlsSpkiSha256);
    this.instances.delete(tlsSpkiSha256);
    this.instances.set(tlsSpkiSha256, health);
    if (this.instances.size > MAX_REMEMBERED_INSTANCES) this.instances.delete(this.instances.keys().next().value!);
    return previous;
  }
}
