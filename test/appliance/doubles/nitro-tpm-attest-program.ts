/**
 * Stands in for `nitro-tpm-attest` (aws-nitro-tpm-tools) on a machine without a NitroTPM: same flags
 * (`--public-key`, `--nonce`, `--user-data`, each naming a file), the COSE_Sign1 document on stdout, errors on stderr
 * with a non-zero status. The document reports the SHA-384 bank (PCRs 0..23) of the TPM that `TPM2TOOLS_TCTI` names
 * (a real TPM such as swtpm) and is signed ES384 by a test chain's leaf key, read from the chain file beside this
 * program.
 *
 * Bundled into one executable file by `installNitroTpmAttestDouble`.
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { HIGHEST_PCR } from '../../../lib/attestation/pcr-event-log';
import { readSha384Pcrs } from '../../../lib/appliance/tpm2-tools';
import { buildTestAttestationDocument } from '../../attestation/test-attestation-document';
import { readChainFile } from './nitro-tpm-attest-chain-file';

class UsageError extends Error {}

function readInput(file: string | undefined, flag: string): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read ${flag} file ${file}: ${(e as Error).message}`, { cause: e });
  }
}

async function main(): Promise<Buffer> {
  let values;
  try {
    ({ values } = parseArgs({
      options: { 'public-key': { type: 'string' }, 'nonce': { type: 'string' }, 'user-data': { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message, { cause: e });
  }
  const publicKey = readInput(values['public-key'], '--public-key');
  if (publicKey !== undefined) {
    try {
      createPublicKey({ key: publicKey, format: 'der', type: 'spki' });
    } catch (e) {
      throw new Error(`--public-key is not a DER SubjectPublicKeyInfo: ${(e as Error).message}`, { cause: e });
    }
  }
  const nonce = readInput(values.nonce, '--nonce');
  const userData = readInput(values['user-data'], '--user-data');

  const indexes = Array.from({ length: HIGHEST_PCR + 1 }, (_, i) => i);
  const pcrs = await readSha384Pcrs(indexes, { env: process.env });
  return buildTestAttestationDocument({ chain: readChainFile(__dirname), pcrs, publicKey, nonce, userData });
}

main().then(
  (document) => { process.stdout.write(document); },
  (e: Error) => {
    process.stderr.write(`Error: ${e.message}\n`);
    process.exitCode = e instanceof UsageError ? 2 : 1;
  },
);
