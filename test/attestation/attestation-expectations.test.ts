import { createHash } from 'node:crypto';
import {
  AttestationDocument, compareAttestation, extendPcr, ExpectedImage, MODEL_PCR, PcrEvent, VerdictCheckName,
} from '../../lib/attestation';
import { InvalidMeasurementError } from '../../lib/shared/measurements';
import { MeasuredModel, modelMeasurement } from '../../lib/sealing/model-measurement';

const hex = (byte: string) => byte.repeat(48);
const ZERO = hex('00');
const sha384 = (text: string) => createHash('sha384').update(text).digest('hex');
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const EXPECTED: MeasuredModel = { modelName: 'llama3', plaintextSize: 13, sha256: sha256('model weights') };
const MODEL = modelMeasurement(EXPECTED);
const OTHER_MODEL = modelMeasurement({ ...EXPECTED, sha256: sha256('other weights') });
const EXPECTED_TEXT = `only model llama3 sha256:${EXPECTED.sha256} (13 bytes; measurement ${MODEL}) on PCR15`;

const IMAGE_A: ExpectedImage = { imageId: 'ami-0aaaaaaaaaaaaaaaa', pcr4: hex('a4'), pcr12: ZERO };
const IMAGE_B: ExpectedImage = { imageId: 'ami-0bbbbbbbbbbbbbbbb', pcr4: hex('b4'), pcr12: ZERO };
const SECURE_BOOT: ExpectedImage = { pcr7: hex('57') };

function modelEvent(digest: string, pcr = MODEL_PCR): PcrEvent {
  return { pcr, algorithm: 'sha384', digest, description: `model (SHA-384 ${digest.slice(0, 8)})` };
}

/** The value a PCR has after extending it with `digests`, computed independently of replayPcrEvents. */
function extended(...digests: string[]): string {
  return digests.reduce((value, d) => extendPcr(Buffer.from(value, 'hex'), Buffer.from(d, 'hex')).toString('hex'), ZERO);
}

function documentWith(pcrs: Record<number, string>): AttestationDocument {
  const all = new Map<number, string>();
  for (let i = 0; i < 24; i++) all.set(i, pcrs[i] ?? ZERO);
  return {
    moduleId: 'i-0123456789abcdef0-tpm0123456789abcdef', timestamp: new Date(), digest: 'SHA384', pcrs: all,
    certificate: Buffer.alloc(0), cabundle: [],
  };
}

const imageA = (pcr15 = extended(MODEL)) => documentWith({ 4: hex('a4'), 12: ZERO, [MODEL_PCR]: pcr15 });

test('a document of an expected image serving the expected model passes every check', () => {
  const verdict = compareAttestation(imageA(), [modelEvent(MODEL)], { images: [IMAGE_A], model: EXPECTED });
  expect(verdict.trustworthy).toBe(true);
  expect(verdict.matchedImage).toBe(IMAGE_A);
  expect(verdict.servedModels).toEqual([MODEL]);
  expect(verdict.checks).toEqual([
    {
      name: VerdictCheckName.IMAGE, passed: true,
      expected: `ami-0aaaaaaaaaaaaaaaa (PCR4=${hex('a4')} PCR12=${ZERO})`,
      found: `ami-0aaaaaaaaaaaaaaaa (PCR4=${hex('a4')} PCR12=${ZERO})`,
    },
    {
      name: VerdictCheckName.EVENT_LOG, passed: true,
      expected: `PCR15=${extended(MODEL)} (replay of 1 event)`, found: `PCR15=${extended(MODEL)}`,
    },
    {
      name: VerdictCheckName.MODEL, passed: true,
      expected: EXPECTED_TEXT, found: `${MODEL} (model (SHA-384 ${MODEL.slice(0, 8)}))`,
    },
  ]);
});

describe('image', () => {
  test('matches any one of several expected images, and names it', () => {
    const document = documentWith({ 4: hex('b4'), 12: ZERO, 15: extended(MODEL) });
    const verdict = compareAttestation(document, [modelEvent(MODEL)], { images: [IMAGE_A, IMAGE_B] });
    expect(verdict.trustworthy).toBe(true);
    expect(verdict.matchedImage).toBe(IMAGE_B);
    expect(verdict.checks[0].expected).toBe(
      `ami-0aaaaaaaaaaaaaaaa (PCR4=${hex('a4')} PCR12=${ZERO}), or ami-0bbbbbbbbbbbbbbbb (PCR4=${hex('b4')} PCR12=${ZERO})`,
    );
  });

  test.each([
    ['another boot manager (PCR4)', { 4: hex('c4'), 12: ZERO }],
    ['an injected command line (PCR12)', { 4: hex('a4'), 12: hex('0c') }],
    ['PCR4 of one image with the PCR12 of none', { 4: hex('b4'), 12: hex('0c') }],
  ])('fails for %s and reports the values found', (_name, pcrs) => {
    const document = documentWith({ ...pcrs, 15: extended(MODEL) });
    const verdict = compareAttestation(document, [modelEvent(MODEL)], { images: [IMAGE_A, IMAGE_B] });
    expect(verdict.trustworthy).toBe(false);
    expect(verdict.matchedImage).toBeUndefined();
    expect(verdict.checks[0]).toMatchObject({ name: 'image', passed: false, found: `PCR4=${pcrs[4]} PCR12=${pcrs[12]}` });
  });

  test('a Secure Boot image is matched by PCR7 alone, and expected values are compared case-insensitively', () => {
    const document = documentWith({ 4: hex('99'), 7: hex('57'), 15: ZERO });
    const verdict = compareAttestation(document, [], { images: [{ pcr7: hex('57').toUpperCase() }] });
    expect(verdict.trustworthy).toBe(true);
    expect(verdict.checks[0].found).toBe(`image 1 (PCR7=${hex('57')})`);
  });

  test('a PCR the document does not report fails as absent', () => {
    const document = documentWith({ 15: ZERO });
    document.pcrs.delete(7);
    const verdict = compareAttestation(document, [], { images: [SECURE_BOOT] });
    expect(verdict.checks[0]).toMatchObject({ passed: false, found: 'PCR7=(absent)' });
  });

  test('no expected image is a programming error', () => {
    expect(() => compareAttestation(imageA(), [], { images: [] })).toThrow(/At least one expected image/);
  });

  test.each([
    ['pins nothing', {}, /expected image image 2 is not pinned: missing pcr4 and pcr12/],
    ['has only an AMI id', { imageId: 'ami-0aaaaaaaaaaaaaaaa' }, /expected image ami-0aaaaaaaaaaaaaaaa is not pinned: missing pcr4 and pcr12/],
    ['pins PCR4 alone', { pcr4: hex('a4') }, /expected image image 2 is not pinned: missing pcr12/],
    ['pins a value that is no SHA-384', { pcr7: 'a4' }, /PCR7 of expected image image 2 must be a SHA-384 value/],
  ])('an expected image that %s is refused, rather than matching any document', (_name, image, message) => {
    expect(() => compareAttestation(imageA(), [modelEvent(MODEL)], { images: [image] })).toThrow(InvalidMeasurementError);
    expect(() => compareAttestation(imageA(), [modelEvent(MODEL)], { images: [IMAGE_A, image] })).toThrow(message);
  });
});

describe('event log', () => {
  test('a log that does not replay to PCR15 fails', () => {
    const verdict = compareAttestation(imageA(extended(OTHER_MODEL)), [modelEvent(MODEL)], { images: [IMAGE_A] });
    expect(verdict.trustworthy).toBe(false);
    expect(verdict.checks[1]).toEqual({
      name: 'event-log', passed: false,
      expected: `PCR15=${extended(MODEL)} (replay of 1 event)`, found: `PCR15=${extended(OTHER_MODEL)}`,
    });
  });

  test('an empty log replays to 48 zero bytes; a document whose PCR15 was extended does not match it', () => {
    expect(compareAttestation(imageA(ZERO), [], { images: [IMAGE_A] }).trustworthy).toBe(true);
    const verdict = compareAttestation(imageA(), [], { images: [IMAGE_A] });
    expect(verdict.checks[1]).toMatchObject({ passed: false, expected: `PCR15=${ZERO} (replay of 0 events)` });
  });

  test('a malformed digest fails the replay with the reason', () => {
    const verdict = compareAttestation(imageA(), [modelEvent(MODEL.toUpperCase())], { images: [IMAGE_A] });
    expect(verdict.checks[1]).toMatchObject({ passed: false, expected: 'PCR15 replayable from the event log' });
    expect(verdict.checks[1].found).toMatch(/is not a lowercase hex SHA-384 digest/);
  });

  test('events on other PCRs are replayed and checked too', () => {
    const digest = sha384('config');
    const document = documentWith({ 4: hex('a4'), 12: ZERO, 14: extended(digest), 15: extended(MODEL) });
    const log = [modelEvent(digest, 14), modelEvent(MODEL)];
    const verdict = compareAttestation(document, log, { images: [IMAGE_A], model: EXPECTED });
    expect(verdict.trustworthy).toBe(true);
    expect(verdict.checks.map((c) => [c.name, c.found.slice(0, 6)])).toEqual([
      ['image', 'ami-0a'], ['event-log', 'PCR14='], ['event-log', 'PCR15='], ['model', MODEL.slice(0, 6)],
    ]);
    const tampered = compareAttestation(document, [modelEvent(sha384('other config'), 14), modelEvent(MODEL)], { images: [IMAGE_A] });
    expect(tampered.checks[1]).toMatchObject({ name: 'event-log', passed: false });
  });
});

describe('model', () => {
  test('the same model extended twice (a restarted service) passes', () => {
    const verdict = compareAttestation(imageA(extended(MODEL, MODEL)), [modelEvent(MODEL), modelEvent(MODEL)],
      { images: [IMAGE_A], model: EXPECTED });
    expect(verdict.trustworthy).toBe(true);
    expect(verdict.servedModels).toEqual([MODEL]);
  });

  test('another model fails, although the log replays', () => {
    const verdict = compareAttestation(imageA(extended(OTHER_MODEL)), [modelEvent(OTHER_MODEL)],
      { images: [IMAGE_A], model: EXPECTED });
    expect(verdict.checks.map((c) => c.passed)).toEqual([true, true, false]);
    expect(verdict.checks[2].found).toMatch(new RegExp(`^${OTHER_MODEL} `));
  });

  test('the expected model followed by another fails: the service now serves both', () => {
    const verdict = compareAttestation(imageA(extended(MODEL, OTHER_MODEL)), [modelEvent(MODEL), modelEvent(OTHER_MODEL)],
      { images: [IMAGE_A], model: EXPECTED });
    expect(verdict.checks[2].passed).toBe(false);
    expect(verdict.servedModels).toEqual([MODEL, OTHER_MODEL]);
  });

  test('no model event fails when a model is expected, and is only reported otherwise', () => {
    const expected = compareAttestation(imageA(ZERO), [], { images: [IMAGE_A], model: { ...EXPECTED, sha256: EXPECTED.sha256.toUpperCase() } });
    expect(expected.checks[2]).toEqual({
      name: 'model', passed: false, expected: EXPECTED_TEXT, found: 'no model event on PCR15',
    });
    const reported = compareAttestation(imageA(ZERO), [], { images: [IMAGE_A] });
    expect(reported.trustworthy).toBe(true);
    expect(reported.checks.map((c) => c.name)).toEqual(['image', 'event-log']);
  });
});

describe('the configuration the instance measured first', () => {
  const CONFIGURATION = sha384('sealed-inference-configuration/1 of the deployment');
  const configurationEvent = (digest: string): PcrEvent =>
    ({ pcr: MODEL_PCR, algorithm: 'sha384', digest, description: 'configuration (sealed-inference-configuration/1) for model llama' });
  const compare = (log: PcrEvent[]) => compareAttestation(imageA(extended(...log.map((e) => e.digest))), log,
    { images: [IMAGE_A], model: EXPECTED, configurationSha384: CONFIGURATION });
  const check = (log: PcrEvent[]) => compare(log).checks.find((c) => c.name === VerdictCheckName.CONFIGURATION);

  test('passes when the log begins with it, also after a restart measured it again, and models are told apart', () => {
    const log = [configurationEvent(CONFIGURATION), modelEvent(MODEL), configurationEvent(CONFIGURATION), modelEvent(MODEL)];
    expect(compare(log)).toMatchObject({ trustworthy: true, servedModels: [MODEL] });
  });

  test('fails for another configuration: another bucket, key or model name the instance was told', () => {
    const other = sha384('another bucket');
    expect(check([configurationEvent(other), modelEvent(MODEL)])).toEqual({
      name: VerdictCheckName.CONFIGURATION,
      passed: false,
      expected: `configuration ${CONFIGURATION} first on PCR15, and no other`,
      found: `${other} (configuration (sealed-inference-configuration/1) for model llama)`,
    });
  });

  test('fails when a later configuration differs, or none came first', () => {
    expect(check([configurationEvent(CONFIGURATION), modelEvent(MODEL), configurationEvent(sha384('edited'))])?.passed).toBe(false);
    expect(check([modelEvent(MODEL), configurationEvent(CONFIGURATION)])).toMatchObject({ passed: false, found: expect.stringMatching(/^first /) });
    expect(check([])).toMatchObject({ passed: false, found: 'no event on PCR15' });
  });

  test('an event labelled as configuration is still checked by its digest: a relabelled model event fails', () => {
    expect(check([configurationEvent(MODEL), modelEvent(MODEL)])?.passed).toBe(false);
  });
});
