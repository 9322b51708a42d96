import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import {
  MAX_EVENT_DESCRIPTION_LENGTH,
  MODEL_PCR,
  PCR_DIGEST_ALGORITHM,
  PcrEvent,
  replayPcrEvents,
  SHA384_LOWER_HEX,
} from '../attestation/pcr-event-log';
import { SerialQueue } from './serial-queue';
import { extendSha384Pcr, readSha384Pcrs } from './tpm2-tools';

/** Options for `ModelPcr.open`. */
export interface ModelPcrOptions {
  /**
   * The JSON file holding the event log (`PcrEvent[]`).
   *
   * It must live exactly as long as the PCR: on a tmpfs, which a restart of the service keeps and a reboot
   * (which resets the PCR) clears.
   */
  readonly eventLogPath: string;
  /**
   * The environment of tpm2-tools, whose `TPM2TOOLS_TCTI` says where the TPM is.
   *
   * @default - this process's environment
   */
  readonly env?: NodeJS.ProcessEnv;
}

function checkDigest(digest: unknown): asserts digest is string {
  if (typeof digest !== 'string' || !SHA384_LOWER_HEX.test(digest)) {
    const shown = typeof digest === 'string' ? JSON.stringify(digest.slice(0, 120)) : typeof digest;
    throw new Error(`a PCR${MODEL_PCR} digest is a SHA-384 as 96 lowercase hex characters, got ${shown}`);
  }
}

function checkDescription(description: unknown): asserts description is string {
  if (typeof description !== 'string' || description.trim().length === 0
    || description.length > MAX_EVENT_DESCRIPTION_LENGTH) {
    throw new Error(`a PCR${MODEL_PCR} event description is a non-empty string of at most ${MAX_EVENT_DESCRIPTION_LENGTH} `
      + 'characters');
  }
}

function modelPcrEvent(digest: string, description: string): PcrEvent {
  return Object.freeze({ pcr: MODEL_PCR, algorithm: PCR_DIGEST_ALGORITHM, digest, description });
}

function parseEventLog(text: string, path: string): readonly PcrEvent[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`the PCR event log ${path} is not JSON (${(e as Error).message})`, { cause: e });
  }
  if (!Array.isArray(parsed)) {
    throw new Error(`the PCR event log ${path} must be a JSON array of events`);
  }
  return Object.freeze(parsed.map((event: Partial<PcrEvent>, i) => {
    if (typeof event !== 'object' || event === null || event.pcr !== MODEL_PCR
      || event.algorithm !== PCR_DIGEST_ALGORITHM) {
      throw new Error(`event ${i} of the PCR event log ${path} is not a ${PCR_DIGEST_ALGORITHM} event of `
        + `PCR${MODEL_PCR}`);
    }
    checkDigest(event.digest);
    checkDescription(event.description);
    return modelPcrEvent(event.digest, event.description);
  }));
}

async function loadEventLog(path: string): Promise<readonly PcrEvent[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`cannot read the PCR event log ${path} (${(e as Error).message})`, { cause: e });
  }
  return parseEventLog(text, path);
}

function serialize(log: readonly PcrEvent[]): string {
  return `${JSON.stringify(log, null, 2)}\n`;
}

/** Replaces `path` in one step, so that a crash leaves the old log or the new one, never half of one. */
async function writeFileAtomically(path: string, content: string): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    await rm(temporary, { force: true });
    await writeFile(temporary, content, { mode: 0o600, flag: 'wx' });
    await rename(temporary, path);
  } catch (e) {
    await rm(temporary, { force: true });
    throw new Error(`cannot write the PCR event log ${path} (${(e as Error).message})`, { cause: e });
  }
}

/**
 * PCR15 of the TPM with the log of what the appliance extended it with, so that a verifier can replay the value an
 * attestation document reports and see which model is served.
 *
 * The log and the PCR must agree at all times: `open` refuses a log that does not replay to the TPM's PCR15 (something
 * else extended it, or the log is not this boot's), and `extend` checks the PCR before and after. Extends are
 * serialized.
 */
export class ModelPcr {
  /**
   * Loads the event log (none yet: empty) and checks that it replays to the TPM's current PCR15.
   *
   * A restarted service finds the log of its earlier run beside a PCR15 that still holds those extends.
   * @throws Error if the log is malformed or does not match PCR15, or tpm2-tools fail
   */
  static async open(options: ModelPcrOptions): Promise<ModelPcr> {
    if (typeof options.eventLogPath !== 'string' || options.eventLogPath.length === 0) {
      throw new Error('eventLogPath must name the file of the PCR event log');
    }
    const pcr = new ModelPcr(options.eventLogPath, options.env, await loadEventLog(options.eventLogPath));
    await pcr.settlePendingExtend();
    await pcr.checkTpmMatchesLog();
    return pcr;
  }

  /** Extends and reads of the log, one at a time. */
  private readonly queue = new SerialQueue();

  private constructor(
    private readonly eventLogPath: string,
    private readonly env: NodeJS.ProcessEnv | undefined,
    private log: readonly PcrEvent[],
  ) {}

  /** The events extended into PCR15 since boot, oldest first: the `eventLog` a verifier replays. */
  events(): readonly PcrEvent[] {
    return this.log;
  }

  /** PCR15's value as the log replays it (lowercase hex), which the TPM was last seen to hold. */
  value(): string {
    return replayPcrEvents(this.log, MODEL_PCR);
  }

  /**
   * Extends PCR15 with `digestHex` and records the event.
   *
   * @param digestHex lowercase hex SHA-384, e.g. of the plaintext model
   * @param description what the digest is, shown to verifiers, e.g. `model llama3 sha256:<hex> (measurement record)`
   * @returns the recorded event
   * @throws Error for a malformed digest or description, if PCR15 no longer matches the log, or tpm2-tools fail
   */
  async extend(digestHex: string, description: string): Promise<PcrEvent> {
    checkDigest(digestHex);
    checkDescription(description);
    return this.queue.run(() => this.extendNow(digestHex, description));
  }

  /**
   * Runs `read` (e.g. an attestation) with the event log, while no extend is under way: the PCR15 that `read` sees
   * is the one the log replays to, never one extended a moment before its log was written.
   */
  async whileStable<T>(read: (events: readonly PcrEvent[]) => Promise<T>): Promise<T> {
    return this.queue.run(() => read(this.log));
  }

  private async extendNow(digest: string, description: string): Promise<PcrEvent> {
    await this.checkTpmMatchesLog();
    const event = modelPcrEvent(digest, description);
    const log = Object.freeze([...this.log, event]);
    // Written ahead, as the pending log: a log written only after the extend could fail to be written (a full
    // tmpfs), leaving PCR15 ahead of its log until the instance reboots.
    await writeFileAtomically(this.pendingLogPath(), serialize(log));
    await extendSha384Pcr(MODEL_PCR, digest, { env: this.env });
    await rename(this.pendingLogPath(), this.eventLogPath);
    this.log = log;
    await this.checkTpmMatchesLog();
    return event;
  }

  private pendingLogPath(): string {
    return `${this.eventLogPath}.pending`;
  }

  /**
   * A run stopped between writing the pending log and renaming it leaves both: the pending log is the true one if
   * the extend reached the TPM, else it is dropped.
   */
  private async settlePendingExtend(): Promise<void> {
    const pending = await loadEventLog(this.pendingLogPath());
    if (pending.length === 0) return;
    const current = (await readSha384Pcrs([MODEL_PCR], { env: this.env })).get(MODEL_PCR);
    if (current === replayPcrEvents(pending, MODEL_PCR)) {
      await rename(this.pendingLogPath(), this.eventLogPath);
      this.log = pending;
    } else {
      await rm(this.pendingLogPath(), { force: true });
    }
  }

  private async checkTpmMatchesLog(): Promise<void> {
    const expected = this.value();
    const actual = (await readSha384Pcrs([MODEL_PCR], { env: this.env })).get(MODEL_PCR);
    if (actual !== expected) {
      throw new Error(`PCR${MODEL_PCR} is ${actual} but its event log ${this.eventLogPath} (${this.log.length} events) `
        + `replays to ${expected}: something else extended PCR${MODEL_PCR}, or the log is not from this boot; `
        + 'the PCR resets only when the instance reboots');
    }
  }
}
