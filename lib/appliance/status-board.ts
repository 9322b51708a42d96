import { AppliancePhase, ApplianceStatus, ServedModel } from './appliance-status';

/** The appliance's current status: written by the boot pipeline, read by `GET /api/status`. */
export class StatusBoard {
  private status: ApplianceStatus = { phase: 'starting', since: new Date().toISOString() };

  current(): ApplianceStatus {
    return this.status;
  }

  enter(phase: AppliancePhase): void {
    this.status = { phase, model: this.status.model, since: new Date().toISOString() };
  }

  /** In phase `waiting` for `what`; the time waiting began is kept while the appliance keeps looking. */
  wait(what: string): void {
    const since = this.status.phase === 'waiting' ? this.status.since : new Date().toISOString();
    this.status = { phase: 'waiting', waitingFor: what, since };
  }

  progress(bytes: number, total: number): void {
    this.status = { ...this.status, progress: { bytes, total } };
  }

  model(model: ServedModel): void {
    this.status = { ...this.status, model };
  }

  fail(failedPhase: AppliancePhase, reason: string): void {
    this.status = { phase: 'failed', failedPhase, reason, model: this.status.model, since: new Date().toISOString() };
  }
}
