import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { replayPcrEvents } from '../../lib/attestation/pcr-event-log';
import { ModelPcr } from '../../lib/appliance/model-pcr';
import { extendSha384Pcr, readSha384Pcrs } from '../../lib/appliance/tpm2-tools';
import { startSwtpm, Swtpm } from './doubles/swtpm';

let tpm: Swtpm;
let directory: string;
let eventLogPath: string;
let env: NodeJS.ProcessEnv;

beforeEach(async () => {
  tpm = await startSwtpm();
  env = { ...process.env, TPM2TOOLS_TCTI: tpm.tcti };
  directory = await mkdtemp(path.join(tmpdir(), 'model-pcr-'));
  eventLogPath = path.join(directory, 'pcr15-events.json');
});

afterEach(async () => {
  await tpm.stop();
  await rm(directory, { recursive: true, force: true });
});

const sha384 = (text: string) => createHash('sha384').update(text).digest('hex');
/** The TPM's extend, computed here independently: SHA-384(old || digest). */
const extended = (old: string, digest: string) =>
  createHash('sha384').update(Buffer.from(old, 'hex')).update(Buffer.from(digest, 'hex')).digest('hex');
const ZEROS = '00'.repeat(48);
const pcr15 = async () => (await readSha384Pcrs([15], { env })).get(15);

test('PCR15 after an extend is SHA-384(48 zero bytes || digest), and the log on disk records it', async () => {
  const pcr = await ModelPcr.open({ eventLogPath, env });
  expect(pcr.events()).toEqual([]);
  const digest = sha384('model bytes');

  const event = await pcr.extend(digest, 'model llama3 (SHA-384 of the plaintext GGUF)');

  expect(await pcr15()).toBe(extended(ZEROS, digest));
  expect(pcr.value()).toBe(extended(ZEROS, digest));
  expect(event).toEqual({ pcr: 15, algorithm: 'sha384', digest, description: 'model llama3 (SHA-384 of the plaintext GGUF)' });
  expect(pcr.events()).toEqual([event]);
  expect(JSON.parse(await readFile(eventLogPath, 'utf8'))).toEqual([event]);
  expect((await stat(eventLogPath)).mode & 0o777).toBe(0o600);
});

test('after a restart the log is reopened with the PCR and a second extend stays consistent', async () => {
  const first = sha384('first model');
  const second = sha384('second model');
  await (await ModelPcr.open({ eventLogPath, env })).extend(first, 'first');

  const reopened = await ModelPcr.open({ eventLogPath, env });
  expect(reopened.events().map((e) => e.digest)).toEqual([first]);
  await reopened.extend(second, 'second');

  expect(await pcr15()).toBe(extended(extended(ZEROS, first), second));
  expect(JSON.parse(await readFile(eventLogPath, 'utf8')).map((e: { description: string }) => e.description))
    .toEqual(['first', 'second']);
  expect((await ModelPcr.open({ eventLogPath, env })).events()).toEqual(reopened.events());
});

test('concurrent extends are applied one at a time, in call order', async () => {
  const pcr = await ModelPcr.open({ eventLogPath, env });
  const digests = ['a', 'b', 'c'].map(sha384);
  await Promise.all(digests.map((digest, i) => pcr.extend(digest, `event ${i}`)));

  expect(pcr.events().map((e) => e.digest)).toEqual(digests);
  expect(await pcr15()).toBe(digests.reduce(extended, ZEROS));
});

test('a read while an extend is under way sees a PCR15 that its log replays to', async () => {
  const pcr = await ModelPcr.open({ eventLogPath, env });
  const extending = pcr.extend(sha384('model'), 'model llama3');
  const seen = await pcr.whileStable(async (events) => ({ events, value: await pcr15() }));
  await extending;
  expect(seen.events).toHaveLength(1);
  expect(seen.value).toBe(replayPcrEvents(seen.events, 15));
});

test('PCR15 extended by something else, without a log, is refused', async () => {
  await extendSha384Pcr(15, sha384('someone else'), { env });
  await expect(ModelPcr.open({ eventLogPath, env }))
    .rejects.toThrow(/^PCR15 is [0-9a-f]{96} but its event log .* \(0 events\) replays to 0{96}: something else extended PCR15/);
});

test('a log from another boot (the TPM was reset) is refused', async () => {
  await writeFile(eventLogPath, JSON.stringify([{ pcr: 15, algorithm: 'sha384', digest: sha384('model'), description: 'model' }]));
  await expect(ModelPcr.open({ eventLogPath, env })).rejects.toThrow(/^PCR15 is 0{96} but its event log .* \(1 events\)/);
});

test('an extend by something else between two extends is refused and not recorded', async () => {
  const pcr = await ModelPcr.open({ eventLogPath, env });
  await pcr.extend(sha384('model'), 'model');
  await extendSha384Pcr(15, sha384('intruder'), { env });

  await expect(pcr.extend(sha384('second'), 'second')).rejects.toThrow(/something else extended PCR15/);
  expect(pcr.events()).toHaveLength(1);
  expect(JSON.parse(await readFile(eventLogPath, 'utf8'))).toHaveLength(1);
});

describe('a run stopped in the middle of an extend', () => {
  const pending = () => `${eventLogPath}.pending`;
  const events = (...names: string[]) => names.map((name) => ({ pcr: 15, algorithm: 'sha384', digest: sha384(name), description: name }));

  test('before the extend reached the TPM: the pending event is dropped', async () => {
    await (await ModelPcr.open({ eventLogPath, env })).extend(sha384('first'), 'first');
    await writeFile(pending(), JSON.stringify(events('first', 'second')));
    const reopened = await ModelPcr.open({ eventLogPath, env });
    expect(reopened.events().map((event) => event.description)).toEqual(['first']);
    await expect(stat(pending())).rejects.toThrow(/ENOENT/);
  });

  test('after the extend reached the TPM: the pending log is the true one', async () => {
    await (await ModelPcr.open({ eventLogPath, env })).extend(sha384('first'), 'first');
    await writeFile(pending(), JSON.stringify(events('first', 'second')));
    await extendSha384Pcr(15, sha384('second'), { env });
    const reopened = await ModelPcr.open({ eventLogPath, env });
    expect(reopened.events().map((event) => event.description)).toEqual(['first', 'second']);
    expect(JSON.parse(await readFile(eventLogPath, 'utf8'))).toHaveLength(2);
    expect(await pcr15()).toBe(reopened.value());
  });

  test('an extend that fails leaves the log as it was', async () => {
    const pcr = await ModelPcr.open({ eventLogPath, env });
    await pcr.extend(sha384('first'), 'first');
    await tpm.stop();
    await expect(pcr.extend(sha384('second'), 'second')).rejects.toThrow();
    expect(pcr.events()).toHaveLength(1);
    expect(JSON.parse(await readFile(eventLogPath, 'utf8'))).toHaveLength(1);
  });
});

test('malformed logs are refused', async () => {
  await writeFile(eventLogPath, '{not json');
  await expect(ModelPcr.open({ eventLogPath, env })).rejects.toThrow(/the PCR event log .* is not JSON/);
  await writeFile(eventLogPath, '{}');
  await expect(ModelPcr.open({ eventLogPath, env })).rejects.toThrow(/must be a JSON array of events/);
  await writeFile(eventLogPath, JSON.stringify([{ pcr: 14, algorithm: 'sha384', digest: sha384('x'), description: 'x' }]));
  await expect(ModelPcr.open({ eventLogPath, env })).rejects.toThrow(/event 0 of the PCR event log .* is not a sha384 event of PCR15/);
  await writeFile(eventLogPath, JSON.stringify([{ pcr: 15, algorithm: 'sha384', digest: sha384('x').toUpperCase(), description: 'x' }]));
  await expect(ModelPcr.open({ eventLogPath, env })).rejects.toThrow(/96 lowercase hex characters/);
});

test('bad digests and descriptions are refused before the TPM is touched', async () => {
  const pcr = await ModelPcr.open({ eventLogPath, env });
  const good = sha384('model');
  const badDigests = [good.toUpperCase(), good.slice(2), `${good}00`, createHash('sha256').update('m').digest('hex'), `${good.slice(1)}g`, ''];
  for (const digest of badDigests) {
    await expect(pcr.extend(digest, 'model')).rejects.toThrow(/a PCR15 digest is a SHA-384 as 96 lowercase hex characters/);
  }
  await expect(pcr.extend(good, '')).rejects.toThrow(/description is a non-empty string/);
  await expect(pcr.extend(good, 'x'.repeat(1025))).rejects.toThrow(/at most 1024 characters/);

  expect(await pcr15()).toBe(ZEROS);
  expect(pcr.events()).toEqual([]);
  await expect(stat(eventLogPath)).rejects.toThrow(/ENOENT/);
});

test('a missing tpm2-tools is named with its package', async () => {
  await expect(ModelPcr.open({ eventLogPath, env: { ...env, PATH: directory } }))
    .rejects.toThrow('tpm2_pcrread is not installed or not on PATH: install the package tpm2-tools');
});
