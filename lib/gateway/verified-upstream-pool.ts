import type { X509Certificate } from 'node:crypto';
import type { PinnedConnection } from '../attestation/pinned-connection';
import { connectToService } from '../cli/fetch-attestation';
import { VerifyExpectations, verifyConnection, VerifyReport } from '../cli/verify-connection';
import { AttestationFailedError, failureOfError, failureOfReport } from './attestation-failure';
import { FleetRecord, InstanceHealth } from './fleet-health';
import { GatewayHealth, NOT_YET_VERIFIED, SingleServiceHealth, unverifiedHealth, verifiedHealth } from './gateway-health';

/** A TLS connection whose own attestation passed: the only kind the gateway ever sends a request over. */
export interface VerifiedUpstream {
  readonly connection: PinnedConnection;
  readonly report: VerifyReport;
  readonly verifiedAt: Date;
}

/** How the pool reaches and judges the service. */
export interface VerifiedUpstreamPoolOptions {
  readonly serviceUrl: URL;
  readonly expectations: VerifyExpectations;
  /** The oldest attestation document accepted, in seconds. */
  readonly maxAgeSeconds: number;
  /** How long to wait for a connection or an attestation, in seconds. */
  readonly timeoutSeconds: number;
  /** A connection older than this is retired, in milliseconds. */
  readonly reverifyMs: number;
  /** The most connections open at once, verifying or in use. */
  readonly maxConnections: number;
  /** The roots attestation documents may chain to; the AWS Nitro root when absent. */
  readonly trustedRoots?: X509Certificate[];
  /** Called after every verification of a single service, with the new and the previous state. */
  readonly onHealthChange: (health: SingleServiceHealth, previous: SingleServiceHealth) => void;
  /** Fleet mode: each connection may end in another instance, and each instance is judged on its own. */
  readonly fleet?: FleetPoolOptions;
}

/** How the pool treats a service whose connections land on several instances. */
export interface FleetPoolOptions {
  /** Fresh connections tried for one request, each perhaps to another instance, before it is answered 502. */
  readonly attempts: number;
  /** Called after every verification, with the instance's TLS key SPKI hash, its new and its previous state. */
  readonly onInstanceChange: (tlsSpkiSha256: string, current: InstanceHealth, previous: InstanceHealth | undefined) => void;
  /** Called when a connection could not be made at all: no instance answered it. */
  readonly onUnreachable: (failure: AttestationFailedError) => void;
}

/** How long a passed verification keeps a fleet verified, in reverification intervals: the next one may be late. */
const FLEET_RECENT_INTERVALS = 2;

/**
 * An idle connection is closed after this long: before the appliance's 5 s keep-alive timeout closes it while a
 * request may be on its way.
 */
export const IDLE_CLOSE_MS = 4_000;

interface PooledUpstream extends VerifiedUpstream {
  idleTimer?: NodeJS.Timeout;
}

/**
 * A fresh connection's verification: passed; failed, with the instance it reached when one answered; or lost, the
 * connection closed right after it verified, which says nothing against the service.
 */
type Attempt =
  | { readonly upstream: PooledUpstream }
  | { readonly failure: AttestationFailedError; readonly instance?: { readonly tlsSpkiSha256: string; readonly moduleId?: string } }
  | { readonly failure: AttestationFailedError; readonly lost: true };

type FailedAttempt = Exclude<Attempt, { upstream: PooledUpstream } | { lost: true }>;

/**
 * The gateway's upstream connections. Each is opened for itself and verified over itself (a fresh nonce, the
 * channel binding of its own TLS key) before it is handed out; one request at a time uses a connection, and a
 * connection is reused while it is young and recently used. A failed verification closes every connection, so that
 * nothing is forwarded until a fresh connection verifies again; in fleet mode it closes only the connections to the
 * instance that failed (the same TLS key), and a request that needs a new connection tries several.
 */
export class VerifiedUpstreamPool {
  private readonly open = new Set<PooledUpstream>();
  /** Idle connections, most recently used last. */
  private readonly idle: PooledUpstream[] = [];
  private leased = 0;
  private verifying = 0;
  private readonly waiting: Array<() => void> = [];
  private state: SingleServiceHealth = NOT_YET_VERIFIED;
  /** In fleet mode, what is known of each instance, and whom to tell. */
  private readonly fleet?: { readonly record: FleetRecord; readonly options: FleetPoolOptions };
  private closed = false;

  constructor(private readonly options: VerifiedUpstreamPoolOptions) {
    if (options.fleet !== undefined) {
      const record = new FleetRecord(options.serviceUrl.href, FLEET_RECENT_INTERVALS * options.reverifyMs);
      this.fleet = { record, options: options.fleet };
    }
  }

  /** The outcome of the last verification; in fleet mode, of the last verification of each instance. */
  public get health(): GatewayHealth {
    return this.fleet?.record.health(new Date()) ?? this.state;
  }

  /**
   * A verified connection for one request: an idle one, or a new one once it verified. Give it back with
   * {@link release}.
   *
   * @throws AttestationFailedError when a new connection was needed and its verification (in fleet mode, that of
   * each connection tried) failed or could not be made
   */
  public async acquire(): Promise<VerifiedUpstream> {
    for (;;) {
      if (this.closed) throw new AttestationFailedError('gateway-closed', 'the gateway is shutting down');
      const reused = this.takeIdle();
      if (reused !== undefined) {
        this.leased++;
        return reused;
      }
      if (this.leased + this.verifying < this.options.maxConnections) {
        // Counted as leased while it verifies, so that waiters woken meanwhile do not open one too many.
        this.leased++;
        try {
          return await this.openVerified();
        } catch (error) {
          this.leased--;
          // A waiter learns the failure by trying a fresh connection of its own.
          this.wakeOne();
          throw error;
        }
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  /** Gives a connection back: kept for the next request when `reusable`, else closed. */
  public release(upstream: VerifiedUpstream, reusable: boolean): void {
    this.leased--;
    const pooled = upstream as PooledUpstream;
    if (reusable && !this.closed && this.open.has(pooled) && pooled.connection.isOpen && !this.isTooOld(pooled)) {
      this.park(pooled);
    } else {
      upstream.connection.close();
    }
    this.wakeOne();
  }

  /**
   * Verifies a fresh connection now and keeps it for the next request, retiring idle connections older than the
   * reverification interval: keeps the state current while no request comes. A failure is in the state.
   */
  public async reverify(): Promise<void> {
    for (const old of this.idle.filter((upstream) => this.isTooOld(upstream))) this.retire(old);
    if (this.leased + this.verifying + this.idle.length >= this.options.maxConnections && this.idle.length > 0) {
      this.retire(this.idle[0]);
    }
    if (this.closed || this.leased + this.verifying >= this.options.maxConnections) return;
    this.verifying++;
    try {
      this.park(await this.openVerified());
    } catch {
      // The failure is in the state, and told through onHealthChange (in fleet mode, onInstanceChange or onUnreachable).
    } finally {
      this.verifying--;
      this.wakeOne();
    }
  }

  /** Closes every connection; requests in progress end. */
  public close(): void {
    this.closed = true;
    this.closeAll();
    for (const wake of this.waiting.splice(0)) wake();
  }

  /** A fresh verified connection; in fleet mode, the first of up to `attempts` fresh connections that verifies. */
  private async openVerified(): Promise<PooledUpstream> {
    const attempts = this.options.fleet?.attempts ?? 1;
    let failure: AttestationFailedError | undefined;
    for (let attempt = 1; attempt <= attempts && !this.closed; attempt++) {
      const outcome = await this.attempt();
      if ('upstream' in outcome) return outcome.upstream;
      failure = 'lost' in outcome ? outcome.failure : this.fail(outcome);
    }
    if (failure === undefined) throw new AttestationFailedError('gateway-closed', 'the gateway is shutting down');
    if (attempts === 1) throw failure;
    throw new AttestationFailedError(failure.code, `none of ${attempts} fresh connections verified; the last: ${failure.reason}`);
  }

  private async attempt(): Promise<Attempt> {
    const { serviceUrl, expectations, maxAgeSeconds, timeoutSeconds, trustedRoots } = this.options;
    let connection: PinnedConnection;
    try {
      connection = await connectToService(serviceUrl, timeoutSeconds * 1000);
    } catch (error) {
      return { failure: failureOfError(error) };
    }
    const instance = { tlsSpkiSha256: connection.peerSpkiSha256 };
    let report: VerifyReport;
    try {
      report = await verifyConnection(connection, expectations, { maxAge: maxAgeSeconds, timeout: timeoutSeconds }, { trustedRoots });
    } catch (error) {
      connection.close();
      return { failure: failureOfError(error), instance };
    }
    if (!report.verified) {
      connection.close();
      return { failure: failureOfReport(report), instance: { ...instance, moduleId: report.document?.moduleId } };
    }
    if (this.closed || !connection.isOpen) {
      connection.close();
      return { failure: failureOfError(new Error('the connection closed right after it verified')), lost: true };
    }
    const upstream: PooledUpstream = { connection, report, verifiedAt: new Date() };
    this.open.add(upstream);
    connection.onClose(() => this.forget(upstream));
    if (this.fleet !== undefined) {
      const { current, previous } = this.fleet.record.recordVerified(report, upstream.verifiedAt);
      if (!this.closed) this.fleet.options.onInstanceChange(report.tlsSpkiSha256, current, previous);
    } else {
      this.setHealth(verifiedHealth(report, upstream.verifiedAt));
    }
    return { upstream };
  }

  /**
   * Stops forwarding to what failed: with a single service, no connection opened before the failure is used again;
   * in a fleet, no connection to the instance that failed.
   */
  private fail(attempt: FailedAttempt): AttestationFailedError {
    const { failure, instance } = attempt;
    if (this.fleet === undefined) {
      this.closeAll();
      this.setHealth(unverifiedHealth(failure));
    } else if (instance === undefined) {
      this.fleet.record.recordUnreachable(failure);
      if (!this.closed) this.fleet.options.onUnreachable(failure);
    } else {
      for (const upstream of [...this.open]) {
        if (upstream.report.tlsSpkiSha256 === instance.tlsSpkiSha256) this.retire(upstream);
      }
      const { current, previous } = this.fleet.record.recordRefused(instance.tlsSpkiSha256, instance.moduleId, failure, new Date());
      if (!this.closed) this.fleet.options.onInstanceChange(instance.tlsSpkiSha256, current, previous);
    }
    return failure;
  }

  private setHealth(health: SingleServiceHealth): void {
    const previous = this.state;
    this.state = health;
    if (!this.closed) this.options.onHealthChange(health, previous);
  }

  private takeIdle(): PooledUpstream | undefined {
    for (let upstream = this.idle.pop(); upstream !== undefined; upstream = this.idle.pop()) {
      if (upstream.connection.isOpen && !this.isTooOld(upstream)) {
        clearTimeout(upstream.idleTimer);
        return upstream;
      }
      this.retire(upstream);
    }
    return undefined;
  }

  private park(upstream: PooledUpstream): void {
    upstream.idleTimer = setTimeout(() => this.retire(upstream), IDLE_CLOSE_MS).unref();
    this.idle.push(upstream);
  }

  private forget(upstream: PooledUpstream): void {
    clearTimeout(upstream.idleTimer);
    this.open.delete(upstream);
    const index = this.idle.indexOf(upstream);
    if (index >= 0) this.idle.splice(index, 1);
  }

  private retire(upstream: PooledUpstream): void {
    this.forget(upstream);
    upstream.connection.close();
  }

  private isTooOld(upstream: PooledUpstream): boolean {
    return Date.now() - upstream.verifiedAt.getTime() >= this.options.reverifyMs;
  }

  private closeAll(): void {
    for (const upstream of [...this.open]) {
      clearTimeout(upstream.idleTimer);
      upstream.connection.close();
    }
    this.open.clear();
    this.idle.length = 0;
  }

  private wakeOne(): void {
    this.waiting.shift()?.();
  }
}
