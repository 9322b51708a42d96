import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { AttestationRequest, Attester } from './attester';
import { runCommand } from './run-command';
import { SerialQueue } from './serial-queue';

/** Options for `NitroTpmAttest`. */
export interface NitroTpmAttestOptions {
  /**
   * The `nitro-tpm-attest` program (package aws-nitro-tpm-tools): a name looked up on PATH, or a path.
   *
   * @default 'nitro-tpm-attest'
   */
  readonly command?: string;
  /**
   * A private, memory-backed directory (e.g. the service's systemd RuntimeDirectory) where the inputs are written
   * for the program, each call in its own 0700 subdirectory removed when the call ends.
   */
  readonly workDirectory: string;
  /**
   * The program's environment; `TPM_DEVICE` says which TPM device it uses.
   *
   * @default - this process's environment
   */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Milliseconds before the program is stopped.
   *
   * @default 30000
   */
  readonly timeoutMs?: number;
}

/** A document is a few kilobytes (a certificate chain and 24 PCRs); anything near this bound is not one. */
const MAX_DOCUMENT_BYTES = 64 * 1024;

/** The program's flags, by the request field whose bytes they name a file of. */
const INPUT_FLAGS = [
  ['publicKey', '--public-key'],
  ['nonce', '--nonce'],
  ['userData', '--user-data'],
] as const;

/**
 * Gets NitroTPM attestation documents from `nitro-tpm-attest`, which asks the TPM to sign the current PCRs
 * together with the requested public key, nonce and user data, and writes the COSE_Sign1 document to stdout.
 *
 * The program takes its inputs as files: they are written with mode 0600 to a fresh 0700 directory under
 * `workDirectory` and removed when the call ends, whether it succeeded or not. Calls are serialized, one at a time
 * on the one TPM.
 */
export class NitroTpmAttest implements Attester {
  private readonly command: string;
  private readonly workDirectory: string;
  private readonly env: NodeJS.ProcessEnv | undefined;
  private readonly timeoutMs: number;
  private readonly queue = new SerialQueue();

  constructor(options: NitroTpmAttestOptions) {
    if (typeof options.workDirectory !== 'string' || !path.isAbsolute(options.workDirectory)) {
      throw new Error(`workDirectory must be an absolute path, got ${JSON.stringify(options.workDirectory)}`);
    }
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
      throw new Error(`timeoutMs must be a positive integer of milliseconds, got ${timeoutMs}`);
    }
    this.command = options.command ?? 'nitro-tpm-attest';
    this.workDirectory = options.workDirectory;
    this.env = options.env;
    this.timeoutMs = timeoutMs;
  }

  /**
   * Runs the program once for `request` and returns the document it wrote.
   *
   * @throws Error with a one-line reason if an input is empty, the program is missing, fails, times out or writes
   * no document
   */
  async attest(request: AttestationRequest): Promise<Buffer> {
    for (const [field] of INPUT_FLAGS) {
      const value = request[field];
      if (value !== undefined && (!Buffer.isBuffer(value) || value.length === 0)) {
        throw new Error(`attestation request field ${field} must be non-empty bytes when given`);
      }
    }
    return this.queue.run(() => this.attestNow(request));
  }

  private async attestNow(request: AttestationRequest): Promise<Buffer> {
    let directory: string;
    try {
      directory = await mkdtemp(path.join(this.workDirectory, 'attest-'));
    } catch (e) {
      const reason = (e as Error).message;
      throw new Error(`cannot create a directory for nitro-tpm-attest's inputs in ${this.workDirectory} (${reason})`,
        { cause: e });
    }
    try {
      const args: string[] = [];
      for (const [field, flag] of INPUT_FLAGS) {
        const value = request[field];
        if (value === undefined) continue;
        const file = path.join(directory, flag.slice(2));
        await writeFile(file, value, { mode: 0o600, flag: 'wx' });
        args.push(flag, file);
      }
      const document = await runCommand(this.command, args, {
        providedBy: 'aws-nitro-tpm-tools',
        env: this.env,
        timeoutMs: this.timeoutMs,
        maxOutputBytes: MAX_DOCUMENT_BYTES,
      });
      if (document.length === 0) {
        throw new Error(`${this.command} exited successfully but wrote no attestation document`);
      }
      return document;
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  }
}
