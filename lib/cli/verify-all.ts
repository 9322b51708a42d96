import type { X509Certificate } from 'node:crypto';
import { printableText } from '../attestation/attestation-response';
import type { PinnedConnection } from '../attestation/pinned-connection';
import { connectToService } from './fetch-attestation';
import { VerifyExpectations, verifyConnection, VerifyReport } from './verify-connection';

/**
 * `verify --all`: a load balancer sends each new connection to one of several instances, so one verification proves
 * nothing about the next connection. This opens several, verifies each on its own and reports each instance reached.
 */

/** What was learned of one instance, by the TLS key it presented and the NitroTPM that signed its document. */
export interface InstanceReport {
  /** The SHA-256 (hex) of the SubjectPublicKeyInfo of the instance's TLS key. */
  readonly tlsSpkiSha256: string;
  /** The document's module id, when a document verified far enough to name it. */
  readonly moduleId?: string;
  /**
   * `verified` when every connection to it verified; `not-trustworthy` when one failed a check; `could-not-check`
   * when it did not answer an attestation.
   */
  readonly verdict: 'verified' | 'not-trustworthy' | 'could-not-check';
  /** How many of the connections opened reached it. */
  readonly connections: number;
  /** The report of its first failed connection, else of its last verified one. */
  readonly report?: VerifyReport;
  /** Why it could not be checked. */
  readonly reason?: string;
}

/** What `verify --all --json` prints. */
export interface FleetVerifyReport {
  /** True when at least one instance was reached and every instance reached verified. */
  readonly verified: boolean;
  readonly service: string;
  /** The connections opened. */
  readonly attempts: number;
  readonly instances: InstanceReport[];
  /** Why each connection that could not be made failed: it reached no instance. */
  readonly unreachable: string[];
}

/** Connections `verify --all` opens unless told otherwise: enough to reach each of a few instances more than once. */
export const DEFAULT_VERIFY_ATTEMPTS = 8;

/** The longest text a line of the summary prints from a check. */
const MAX_PRINTED_TEXT = 1024;

/**
 * Opens `attempts` connections to `serviceUrl`, one after another, verifies each over itself and groups them by
 * instance.
 */
export async function verifyEachConnection(
  serviceUrl: URL,
  expectations: VerifyExpectations,
  attempts: number,
  options: { readonly maxAge: number; readonly timeout: number },
  dependencies: { readonly trustedRoots?: X509Certificate[] } = {},
): Promise<FleetVerifyReport> {
  const instances: MutableInstance[] = [];
  const unreachable: string[] = [];
  for (let attempt = 0; attempt < attempts; attempt++) {
    let connection: PinnedConnection;
    try {
      connection = await connectToService(serviceUrl, options.timeout * 1000);
    } catch (error) {
      unreachable.push(printableText((error as Error).message, MAX_PRINTED_TEXT));
      continue;
    }
    try {
      const report = await verifyConnection(connection, expectations, options, dependencies);
      record(instances, connection.peerSpkiSha256, report.document?.moduleId, { report });
    } catch (error) {
      record(instances, connection.peerSpkiSha256, undefined, { reason: printableText((error as Error).message, MAX_PRINTED_TEXT) });
    } finally {
      connection.close();
    }
  }
  const reports = instances.map(toInstanceReport);
  return {
    verified: reports.length > 0 && reports.every((instance) => instance.verdict === 'verified'),
    service: serviceUrl.href,
    attempts,
    instances: reports,
    unreachable,
  };
}

/** The human report: one line an instance, then the summary. Text from the service is escaped. */
export function formatFleetReport(fleet: FleetVerifyReport): string {
  const lines = [`Service ${fleet.service}: ${fleet.attempts} connections, each verified on its own`];
  for (const instance of fleet.instances) {
    const name = `instance ${instance.tlsSpkiSha256}${instance.moduleId === undefined ? '' : ` (module ${printableText(instance.moduleId, 100)})`}`;
    const count = `${instance.connections} connection${instance.connections === 1 ? '' : 's'}`;
    const report = instance.report;
    if (instance.verdict === 'verified' && report !== undefined) {
      const models = report.servedModels.length === 0 ? 'no model yet' : `model ${report.servedModels.join(', ')}`;
      lines.push(printableText(`  ok    ${name}: image ${report.image}, ${models}; ${count}`, 2 * MAX_PRINTED_TEXT));
    } else if (instance.verdict === 'not-trustworthy' && report !== undefined) {
      const failed = report.checks.find((check) => !check.passed)!;
      lines.push(`  FAIL  ${name}: ${failed.name}: expected ${printableText(failed.expected, MAX_PRINTED_TEXT)}; ` +
        `found ${printableText(failed.found, MAX_PRINTED_TEXT)}; ${count}`);
    } else {
      lines.push(`  ????  ${name}: could not check: ${instance.reason}; ${count}`);
    }
  }
  for (const reason of fleet.unreachable) lines.push(`  ----  no instance: could not connect: ${reason}`);
  lines.push(summary(fleet));
  return `${lines.join('\n')}\n`;
}

/** The last line of the human report: the verdict. */
function summary(fleet: FleetVerifyReport): string {
  const count = (verdict: InstanceReport['verdict']) => fleet.instances.filter((instance) => instance.verdict === verdict).length;
  const reached = fleet.instances.length;
  const unreachable = fleet.unreachable.length === 0 ? '' : `; ${fleet.unreachable.length} connections reached no instance`;
  if (fleet.verified) return `Verified: all ${reached} instances reached${unreachable}.`;
  if (count('not-trustworthy') > 0) {
    return `NOT TRUSTWORTHY: ${count('not-trustworthy')} of ${reached} instances reached failed a check` +
      `, ${count('verified')} verified${unreachable}.`;
  }
  if (reached === 0) return `Could not check: none of ${fleet.attempts} connections reached an instance.`;
  return `Could not check every instance: ${count('could-not-check')} of ${reached} did not answer an attestation` +
    `, ${count('verified')} verified${unreachable}.`;
}

interface MutableInstance {
  readonly tlsSpkiSha256: string;
  moduleId?: string;
  connections: number;
  readonly reports: VerifyReport[];
  readonly reasons: string[];
}

/**
 * Adds one connection's outcome to its instance: the same TLS key and module id, or the same key when the outcome
 * names no module. One key under two module ids is two instances: the key left the instance that made it.
 */
function record(
  instances: MutableInstance[],
  tlsSpkiSha256: string,
  moduleId: string | undefined,
  outcome: { report?: VerifyReport; reason?: string },
): void {
  let instance = instances.find((known) => known.tlsSpkiSha256 === tlsSpkiSha256 &&
    (moduleId === undefined || known.moduleId === undefined || known.moduleId === moduleId));
  if (instance === undefined) {
    instance = { tlsSpkiSha256, moduleId, connections: 0, reports: [], reasons: [] };
    instances.push(instance);
  }
  instance.moduleId ??= moduleId;
  instance.connections++;
  if (outcome.report !== undefined) instance.reports.push(outcome.report);
  if (outcome.reason !== undefined) instance.reasons.push(outcome.reason);
}

function toInstanceReport(instance: MutableInstance): InstanceReport {
  const { tlsSpkiSha256, moduleId, connections } = instance;
  const failed = instance.reports.find((report) => !report.verified);
  if (failed !== undefined) return { tlsSpkiSha256, moduleId, verdict: 'not-trustworthy', connections, report: failed };
  if (instance.reasons.length > 0) {
    return { tlsSpkiSha256, moduleId, verdict: 'could-not-check', connections, reason: instance.reasons[0], report: instance.reports.at(-1) };
  }
  return { tlsSpkiSha256, moduleId, verdict: 'verified', connections, report: instance.reports.at(-1) };
}
