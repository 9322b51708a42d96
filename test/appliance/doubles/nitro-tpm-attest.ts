/**
 * Installs the `nitro-tpm-attest` double (nitro-tpm-attest-program.ts) as one executable JavaScript file, bundled
 * with esbuild so that it starts as fast as plain Node.js.
 */
import { chmod } from 'node:fs/promises';
import * as path from 'node:path';
import { build } from 'esbuild';
import { TestSigningChain } from '../../attestation/test-attestation-document';
import { writeChainFile } from './nitro-tpm-attest-chain-file';

/**
 * Writes the double as `<directory>/nitro-tpm-attest` (mode 0755) with the signing chain beside it (mode 0600).
 *
 * @param chain signs the documents; its root is the trusted root a verifier needs
 * @param directory an existing directory of its own: the double finds its chain next to itself
 * @returns the path of the executable
 */
export async function installNitroTpmAttestDouble(chain: TestSigningChain, directory: string): Promise<string> {
  const executable = path.join(directory, 'nitro-tpm-attest');
  await build({
    entryPoints: [path.join(__dirname, 'nitro-tpm-attest-program.ts')],
    outfile: executable,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    banner: { js: '#!/usr/bin/env node' },
    logLevel: 'silent',
  });
  await chmod(executable, 0o755);
  await writeChainFile(chain, directory);
  return executable;
}
