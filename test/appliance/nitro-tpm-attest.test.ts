import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ModelPcr } from '../../lib/appliance/model-pcr';
import { NitroTpmAttest } from '../../lib/appliance/nitro-tpm-attest';
import { readSha384Pcrs } from '../../lib/appliance/tpm2-tools';
import { verifyAttestationDocument } from '../../lib/attestation';
import { createTestChain, TestChain } from '../attestation/test-attestation';
import { installNitroTpmAttestDouble } from './doubles/nitro-tpm-attest';
import { startSwtpm, Swtpm } from './doubles/swtpm';

let chain: TestChain;
let tpm: Swtpm;
let directory: string;
let command: string;
let workDirectory: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  directory = await mkdtemp(path.join(tmpdir(), 'nitro-tpm-attest-'));
  chain = await createTestChain();
  const doubleDirectory = path.join(directory, 'bin');
  await mkdir(doubleDirectory);
  [command, tpm] = await Promise.all([installNitroTpmAttestDouble(chain, doubleDirectory), startSwtpm()]);
  env = { ...process.env, TPM2TOOLS_TCTI: tpm.tcti };
});

afterAll(async () => {
  await tpm?.stop();
  await rm(directory, { recursive: true, force: true });
});

beforeEach(async () => {
  workDirectory = await mkdtemp(path.join(directory, 'work-'));
});

/** A stand-in program written as a shell script, for the failures the real tool can show. */
async function script(name: string, body: string): Promise<string> {
  const file = path.join(directory, name);
  await writeFile(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  await chmod(file, 0o755);
  return file;
}

test('the document is verified against the test root and carries the key, nonce, user data and the TPM\'s PCR15', async () => {
  const modelDigest = createHash('sha384').update('model').digest();
  const pcr = await ModelPcr.open({ eventLogPath: path.join(directory, 'pcr15-events.json'), env });
  await pcr.extend(modelDigest.toString('hex'), 'model');
  const publicKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' });
  const nonce = randomBytes(32);
  const userData = Buffer.from('boot 1');

  const attester = new NitroTpmAttest({ command, workDirectory, env });
  const bytes = await attester.attest({ publicKey, nonce, userData });

  const document = verifyAttestationDocument(bytes, { trustedRoots: [chain.root.certificate], expectedNonce: nonce });
  expect(document.publicKey).toEqual(publicKey);
  expect(document.nonce).toEqual(nonce);
  expect(document.userData).toEqual(userData);
  const bank = Array.from({ length: 24 }, (_, i) => i);
  expect(document.pcrs).toEqual(await readSha384Pcrs(bank, { env }));
  const expectedPcr15 = createHash('sha384').update(Buffer.alloc(48)).update(modelDigest).digest('hex');
  expect(document.pcrs.get(15)).toBe(expectedPcr15);
  expect(document.pcrs.get(15)).toBe(pcr.value());
  expect(await readdir(workDirectory)).toEqual([]);
});

test('only the inputs given are passed, each a 0600 file in a fresh 0700 directory', async () => {
  const statArguments = await script('stat-arguments', 'echo "$# $1 $3"; stat -c %a "$(dirname "$2")" "$2" "$4"; cat "$2" "$4"');
  const attester = new NitroTpmAttest({ command: statArguments, workDirectory, env });

  const output = await attester.attest({ nonce: Buffer.from('NONCE'), userData: Buffer.from('DATA') });

  expect(output.toString()).toBe('4 --nonce --user-data\n700\n600\n600\nNONCEDATA');
  expect(await readdir(workDirectory)).toEqual([]);
});

test('a failing command gives its last stderr line and leaves the work directory empty', async () => {
  const attester = new NitroTpmAttest({ command, workDirectory, env: { ...env, TPM2TOOLS_TCTI: 'swtpm:host=127.0.0.1,port=1' } });
  await expect(attester.attest({ nonce: randomBytes(16) }))
    .rejects.toThrow(`${command} exited with status 1: Error: tpm2_pcrread exited with status 1: ERROR: Could not load tcti`);
  expect(await readdir(workDirectory)).toEqual([]);

  const failing = await script('failing', 'echo "first line" >&2; echo "Error: the TPM is busy" >&2; exit 3');
  await expect(new NitroTpmAttest({ command: failing, workDirectory }).attest({ nonce: randomBytes(16) }))
    .rejects.toThrow(`${failing} exited with status 3: Error: the TPM is busy`);
  expect(await readdir(workDirectory)).toEqual([]);
});

test('the double refuses a public key that is not DER SubjectPublicKeyInfo, as the real tool does', async () => {
  await expect(new NitroTpmAttest({ command, workDirectory, env }).attest({ publicKey: Buffer.from('not a key') }))
    .rejects.toThrow(`${command} exited with status 1: Error: --public-key is not a DER SubjectPublicKeyInfo`);
});

test('a missing command names the package that provides it', async () => {
  const attester = new NitroTpmAttest({ workDirectory, env: { ...env, PATH: workDirectory } });
  await expect(attester.attest({ nonce: randomBytes(16) }))
    .rejects.toThrow('nitro-tpm-attest is not installed or not on PATH: install the package aws-nitro-tpm-tools');
  expect(await readdir(workDirectory)).toEqual([]);
});

test('a command that hangs is stopped after the timeout', async () => {
  const hanging = await script('hanging', 'exec sleep 30');
  const attester = new NitroTpmAttest({ command: hanging, workDirectory, timeoutMs: 300 });
  const attempt = attester.attest({ nonce: randomBytes(16) });
  await expect(attempt).rejects.toThrow(`${hanging} did not finish within 300 ms; it was stopped`);
  // Worth another try, unlike a refusal.
  await expect(attempt).rejects.toMatchObject({ transient: true });
  expect(await readdir(workDirectory)).toEqual([]);
});

test('a command that writes nothing is an error', async () => {
  const silent = await script('silent', 'exit 0');
  await expect(new NitroTpmAttest({ command: silent, workDirectory }).attest({}))
    .rejects.toThrow(`${silent} exited successfully but wrote no attestation document`);
});

test('concurrent calls run one at a time', async () => {
  const lock = path.join(directory, 'lock');
  const exclusive = await script('exclusive',
    `mkdir "${lock}" 2>/dev/null || { echo "overlapping call" >&2; exit 1; }\nsleep 0.2\ncat "$2"\nrmdir "${lock}"`);
  const attester = new NitroTpmAttest({ command: exclusive, workDirectory });

  const nonces = [1, 2, 3].map(() => randomBytes(16));
  const outputs = await Promise.all(nonces.map((nonce) => attester.attest({ nonce })));

  expect(outputs).toEqual(nonces);
});

test('bad options and empty inputs are refused early', async () => {
  expect(() => new NitroTpmAttest({ workDirectory: 'relative/dir' })).toThrow(/workDirectory must be an absolute path/);
  expect(() => new NitroTpmAttest({ workDirectory, timeoutMs: 0 })).toThrow(/timeoutMs must be a positive integer/);
  await expect(new NitroTpmAttest({ command, workDirectory, env }).attest({ nonce: Buffer.alloc(0) }))
    .rejects.toThrow('attestation request field nonce must be non-empty bytes when given');
  await expect(new NitroTpmAttest({ command, workDirectory: path.join(directory, 'missing') }).attest({}))
    .rejects.toThrow(/cannot create a directory for nitro-tpm-attest's inputs in .*missing \(ENOENT/);
});
