import { HIGHEST_PCR, SHA384_LOWER_HEX } from '../attestation/pcr-event-log';
import { runCommand } from './run-command';

/** How long one tpm2-tools call may take: a TPM answers in milliseconds, a busy resource manager in seconds. */
const TPM2_TOOLS_TIMEOUT_MS = 30_000;

/** tpm2_pcrread prints about 110 bytes per PCR; this bounds a whole bank with room to spare. */
const TPM2_TOOLS_MAX_OUTPUT_BYTES = 64 * 1024;

/** Where the TPM is: tpm2-tools read `TPM2TOOLS_TCTI` (e.g. `device:/dev/tpmrm0`) from this environment. */
export interface Tpm2ToolsOptions {
  /** @default - this process's environment */
  readonly env?: NodeJS.ProcessEnv;
}

function checkPcrIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0 || index > HIGHEST_PCR) {
    throw new Error(`PCR index must be an integer from 0 to ${HIGHEST_PCR}, got ${index}`);
  }
}

function tpm2(tool: string, args: string[], options: Tpm2ToolsOptions): Promise<Buffer> {
  return runCommand(tool, args, {
    providedBy: 'tpm2-tools',
    env: options.env,
    timeoutMs: TPM2_TOOLS_TIMEOUT_MS,
    maxOutputBytes: TPM2_TOOLS_MAX_OUTPUT_BYTES,
  });
}

/**
 * Reads PCRs of the SHA-384 bank with `tpm2_pcrread sha384:<indexes>`.
 *
 * @returns PCR index → lowercase hex value, for every index asked for
 * @throws Error if the TPM does not report one of them (e.g. it has no SHA-384 bank)
 */
export async function readSha384Pcrs(
  indexes: readonly number[], options: Tpm2ToolsOptions = {},
): Promise<Map<number, string>> {
  if (indexes.length === 0) {
    throw new Error('name at least one PCR to read');
  }
  indexes.forEach(checkPcrIndex);
  const output = (await tpm2('tpm2_pcrread', [`sha384:${indexes.join(',')}`], options)).toString('utf8');
  // The output is YAML: a line "  sha384:" then one line "    <index>: 0x<HEX>" per PCR.
  const reported = new Map<number, string>();
  for (const match of output.matchAll(/^\s*(\d+)\s*:\s*0x([0-9A-Fa-f]{96})\s*$/gm)) {
    reported.set(Number(match[1]), match[2].toLowerCase());
  }
  const pcrs = new Map<number, string>();
  for (const index of indexes) {
    const value = reported.get(index);
    if (value === undefined) {
      throw new Error(`tpm2_pcrread reported no SHA-384 value for PCR${index}; does the TPM have a SHA-384 bank?`);
    }
    pcrs.set(index, value);
  }
  return pcrs;
}

/** Extends a PCR of the SHA-384 bank with `digestHex` (lowercase hex SHA-384) by `tpm2_pcrextend`. */
export async function extendSha384Pcr(index: number, digestHex: string, options: Tpm2ToolsOptions = {}): Promise<void> {
  checkPcrIndex(index);
  if (!SHA384_LOWER_HEX.test(digestHex)) {
    throw new Error(`a SHA-384 digest is 96 lowercase hex characters, got ${JSON.stringify(digestHex)}`);
  }
  await tpm2('tpm2_pcrextend', [`${index}:sha384=${digestHex}`], options);
}
