import type { X509Certificate } from 'node:crypto';
import type { PinnedConnection } from '../attestation/pinned-connection';
import { connectToService } from '../cli/fetch-attestation';
import { VerifyExpectations, verifyConnection, VerifyReport } from '../cli/verify-command';
import { AttestationFailedError, failureOfError, failureOfReport } from './attestation-failure';
import { GatewayHealth, NOT_YET_VERIFIED, unverifiedHealth, verifiedHealth } from './gateway-health';

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
  /** Called after every verification, with the new and the previous state. */
  readonly onHealthChange: (health: GatewayHealth, previous: GatewayHealth) => void;
}

/**
 * An idle connection is closed after this long: before the appliance's 5 s keep-alive timeout closes it while a
 * request may be on its way.
 */
export const IDLE_CLOSE_MS = 4_000;

interface PooledUpstream extends VerifiedUpstream {
  idleTimer?: NodeJS.Timeout;
}

/**
 * The gateway's upstream connections. Each is opened for itself and verified over itself (a fresh nonce, the
 * channel binding of its own TLS key) before it is handed out; one request at a time uses a connection, and a
 * connection is reused while it is young and recently used. A failed verification closes every connection, so that
 * nothing is forwarded until a fresh connection verifies again.
 */
export class VerifiedUpstreamPool {
  private readonly open = new Set<PooledUpstream>();
  /** Idle connections, most recently used last. */
  private readonly idle: PooledUpstream[] = [];
  private leased = 0;
  private verifying = 0;
  private readonly waiting: Array<() => void> = [];
  private state: GatewayHealth = NOT_YET_VERIFIED;
  private closed = false;

  constructor(private readonly options: VerifiedUpstreamPoolOptions) {}

  /** The outcome of the last verification. */
  public get health(): GatewayHealth {
    return this.state;
  }

  /**
   * A verified connection for one request: an idle one, or a new one once it verified. Give it back with
   * {@link release}.
   *
   * @throws AttestationFailedError when a new connection was needed and its verification failed or could not be made
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
      // The failure is in the state, and told through onHealthChange.
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

  private async openVerified(): Promise<PooledUpstream> {
    const { serviceUrl, expectations, maxAgeSeconds, timeoutSeconds, trustedRoots } = this.options;
    let connection: PinnedConnection;
    try {
      connection = await connectToService(serviceUrl, timeoutSeconds * 1000);
    } catch (error) {
      throw this.fail(failureOfError(error));
    }
    let report: VerifyReport;
    try {
      report = await verifyConnection(connection, expectations, { maxAge: maxAgeSeconds, timeout: timeoutSeconds }, { trustedRoots });
    } catch (error) {
      connection.close();
      throw this.fail(failureOfError(error));
    }
    if (!report.verified) {
      connection.close();
      throw this.fail(failureOfReport(report));
    }
    if (this.closed || !connection.isOpen) {
      connection.close();
      throw failureOfError(new Error('the connection closed right after it verified'));
    }
    const upstream: PooledUpstream = { connection, report, verifiedAt: new Date() };
    this.open.add(upstream);
    connection.onClose(() => this.forget(upstream));
    this.setHealth(verifiedHealth(report, upstream.verifiedAt));
    return upstream;
  }

  /** Stops forwarding: no connection opened before the failure is used again. */
  private fail(failure: AttestationFailedError): AttestationFailedError {
    this.closeAll();
    this.setHealth(unverifiedHealth(failure));
    return failure;
  }

  private setHealth(health: GatewayHealth): void {
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
