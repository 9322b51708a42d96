/**
 * The signing chain of the `nitro-tpm-attest` double, in a 0600 file beside the program: the certificates the
 * document carries and the leaf's private key, never the CA keys.
 */
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { TestSigningChain } from '../../attestation/test-attestation-document';

const CHAIN_FILE = 'nitro-tpm-attest-chain.json';

/** DER certificates in base64 and the leaf's PKCS#8 PEM key. */
interface ChainFile {
  readonly root: string;
  readonly intermediate: string;
  readonly leaf: string;
  readonly leafKey: string;
}

/** Writes what signing takes of `chain` into `directory`. */
export async function writeChainFile(chain: TestSigningChain, directory: string): Promise<void> {
  const file: ChainFile = {
    root: chain.root.der.toString('base64'),
    intermediate: chain.intermediate.der.toString('base64'),
    leaf: chain.leaf.der.toString('base64'),
    leafKey: chain.leaf.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
  await writeFile(path.join(directory, CHAIN_FILE), JSON.stringify(file), { mode: 0o600 });
}

/** Reads the chain `writeChainFile` wrote into `directory`. */
export function readChainFile(directory: string): TestSigningChain {
  const file: ChainFile = JSON.parse(readFileSync(path.join(directory, CHAIN_FILE), 'utf8'));
  return {
    root: { der: Buffer.from(file.root, 'base64') },
    intermediate: { der: Buffer.from(file.intermediate, 'base64') },
    leaf: { der: Buffer.from(file.leaf, 'base64'), privateKey: createPrivateKey(file.leafKey) },
  };
}
