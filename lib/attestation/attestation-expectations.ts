import { checkPinsImage, normalizePcrValue, PcrMeasurements, pinnedPcrs } from '../shared/measurements';
import { MeasuredModel, modelMeasurement } from '../sealing/model-measurement';
import type { AttestationDocument } from './attestation-document';
import { isConfigurationEvent } from './configuration-measurement';
import { MODEL_PCR, PcrEvent, replayPcrEvents } from './pcr-event-log';

/**
 * Comparing a verified attestation document with what its verifier expects: which images may run, and which model
 * they may serve. Runtime code: no AWS SDK or CDK dependency.
 */

/** An image the verifier accepts, by the PCRs a key policy pins: PCR4 and PCR12, or PCR7 (lower-case hex). */
export interface ExpectedImage extends PcrMeasurements {
  /**
   * The image's AMI id, to name it in the verdict.
   *
   * @default - the image is named by its position, "image 1", "image 2", ...
   */
  readonly imageId?: string;
}

/** What a verified document and its event log must show. */
export interface AttestationExpectations {
  /** The images the instance may run; its document must match one of them exactly. */
  readonly images: readonly ExpectedImage[];
  /**
   * The one model the instance may serve, by name, size and SHA-256 (a manifest has them): every model event of the
   * log must be its measurement, the SHA-384 of its measurement record (`modelMeasurement`).
   *
   * @default - the model is not checked; the verdict only reports what the log says
   */
  readonly model?: MeasuredModel;
  /**
   * The SHA-384 (lower-case hex) of the configuration the instance must act on ({@link configurationDigest}): the
   * first PCR15 event must be a configuration event with it, and every configuration event must be it.
   *
   * @default - the configuration is not checked
   */
  readonly configurationSha384?: string;
}

/** Names of the checks a verdict reports, in order. */
export enum VerdictCheckName {
  /** The document's PCRs are those of one expected image. */
  IMAGE = 'image',
  /** Every PCR the event log extends (always PCR15) has the value the log replays to. */
  EVENT_LOG = 'event-log',
  /** The log begins with the expected configuration, and every configuration event is it. */
  CONFIGURATION = 'configuration',
  /** Every model event of the log is the expected model, and there is one. */
  MODEL = 'model',
}

/** One check of a verdict: what was expected and what was found. */
export interface VerdictCheck {
  readonly name: VerdictCheckName;
  readonly passed: boolean;
  readonly expected: string;
  readonly found: string;
}

/** The outcome of {@link compareAttestation}. */
export interface AttestationVerdict {
  /** True when every check passed. */
  readonly trustworthy: boolean;
  /** The expected image the document matched. */
  readonly matchedImage?: ExpectedImage;
  /** Distinct model measurements the log extended PCR15 with, in order of first appearance (configuration events aside). */
  readonly servedModels: string[];
  readonly checks: VerdictCheck[];
}

/** The name of expected image `index` (0-based) in a verdict. */
export function expectedImageName(image: ExpectedImage, index: number): string {
  return image.imageId ?? `image ${index + 1}`;
}

/**
 * `image` with its PCR values in lower-case hex, once checked that it pins an image with SHA-384 values: PCR7, or
 * PCR4 and PCR12. An image that pins less (`{}`, `{ pcr4 }`) would match any document and admit any key policy
 * statement.
 *
 * @param name the image, for errors
 * @throws InvalidMeasurementError naming the image and what is malformed or missing
 */
export function normalizeExpectedImage(name: string, image: ExpectedImage): ExpectedImage {
  const pcr = (index: number, value: string | undefined) =>
    value === undefined ? undefined : normalizePcrValue(`PCR${index} of ${name}`, value);
  const normalized = {
    imageId: image.imageId,
    pcr4: pcr(4, image.pcr4),
    pcr7: pcr(7, image.pcr7),
    pcr12: pcr(12, image.pcr12),
  };
  // A verifier checks what a deployment was sealed to, including a key sealed to PCR7 alone on purpose (pcr7Only).
  const sealedToPcr7Alone = normalized.pcr7 !== undefined && normalized.pcr4 === undefined && normalized.pcr12 === undefined;
  checkPinsImage(name, normalized, sealedToPcr7Alone);
  return normalized;
}

/**
 * Checks every expected image with {@link normalizeExpectedImage}.
 *
 * @throws InvalidMeasurementError naming the first image that does not pin an image, and what it lacks
 */
export function checkExpectedImages(images: readonly ExpectedImage[]): void {
  images.forEach((image, i) => normalizeExpectedImage(`expected image ${expectedImageName(image, i)}`, image));
}

/** `PCR4=… PCR12=…`: the given PCR values, in index order. */
export function describePcrs(values: ReadonlyArray<{ index: number; value: string | undefined }>): string {
  return values.map(({ index, value }) => `PCR${index}=${value ?? '(absent)'}`).join(' ');
}

/**
 * Compares a document that `verifyAttestationDocument` accepted, and the PCR event log served with it, with the
 * verifier's expectations. Nothing here checks signatures: verify the document first.
 *
 * - image: the document's PCRs must equal every PCR one expected image pins;
 * - event log: each PCR the log extends, and always PCR15, must equal the log's replay from 48 zero bytes, so that
 *   the log is the true history of the PCR;
 * - configuration (with `configurationSha384`): the first PCR15 event is a configuration event with that digest,
 *   and so is every configuration event (a restarted service measures its configuration again);
 * - model (with `model`): every other PCR15 event must be its measurement, and the log must contain it (a restarted
 *   service extends PCR15 with the same model again).
 *
 * @throws InvalidMeasurementError when an expected image does not pin an image ({@link checkExpectedImages})
 * @throws Error when the expected model's name, size or SHA-256 cannot be a sealed model's
 */
export function compareAttestation(
  document: AttestationDocument,
  eventLog: readonly PcrEvent[],
  expectations: AttestationExpectations,
): AttestationVerdict {
  if (expectations.images.length === 0) {
    throw new Error('At least one expected image is needed to compare an attestation document with');
  }
  checkExpectedImages(expectations.images);
  const image = compareImage(document, expectations.images);
  const checks = [image.check, ...compareEventLog(document, eventLog)];
  const pcr15Events = eventLog.filter((event) => event.pcr === MODEL_PCR);
  const modelEvents = pcr15Events.filter((event) => !isConfigurationEvent(event));
  const servedModels = [...new Set(modelEvents.map((event) => event.digest))];
  if (expectations.configurationSha384 !== undefined) {
    checks.push(compareConfiguration(pcr15Events, expectations.configurationSha384.toLowerCase()));
  }
  if (expectations.model !== undefined) checks.push(compareModel(modelEvents, expectations.model));
  return {
    trustworthy: checks.every((check) => check.passed),
    matchedImage: image.matched,
    servedModels,
    checks,
  };
}

function compareImage(
  document: AttestationDocument,
  images: readonly ExpectedImage[],
): { check: VerdictCheck; matched?: ExpectedImage } {
  const matched = images.find((image) =>
    pinnedPcrs(image).every(({ index, value }) => document.pcrs.get(index) === value.toLowerCase()),
  );
  // Report the document's values of every PCR some expected image pins, so that a mismatch shows what differs.
  const indices = [...new Set(images.flatMap((image) => pinnedPcrs(image).map(({ index }) => index)))].sort((a, b) => a - b);
  const found = describePcrs(indices.map((index) => ({ index, value: document.pcrs.get(index) })));
  const expected = images
    .map((image, i) => `${expectedImageName(image, i)} (${describePcrs(pinnedPcrs(image))})`)
    .join(images.length > 1 ? ', or ' : '');
  return {
    check: {
      name: VerdictCheckName.IMAGE,
      passed: matched !== undefined,
      expected,
      found: matched === undefined ? found : `${expectedImageName(matched, images.indexOf(matched))} (${found})`,
    },
    matched,
  };
}

function compareEventLog(document: AttestationDocument, eventLog: readonly PcrEvent[]): VerdictCheck[] {
  const indices = [...new Set([MODEL_PCR, ...eventLog.map((event) => event.pcr)])].sort((a, b) => a - b);
  return indices.map((index) => {
    const events = eventLog.filter((event) => event.pcr === index).length;
    let replayed: string;
    try {
      replayed = replayPcrEvents(eventLog, index);
    } catch (error) {
      return {
        name: VerdictCheckName.EVENT_LOG,
        passed: false,
        expected: `PCR${index} replayable from the event log`,
        found: (error as Error).message,
      };
    }
    const actual = document.pcrs.get(index);
    return {
      name: VerdictCheckName.EVENT_LOG,
      passed: actual === replayed,
      expected: `PCR${index}=${replayed} (replay of ${events} event${events === 1 ? '' : 's'})`,
      found: `PCR${index}=${actual ?? '(absent)'}`,
    };
  });
}

function compareConfiguration(pcr15Events: readonly PcrEvent[], configurationSha384: string): VerdictCheck {
  const configurationEvents = pcr15Events.filter(isConfigurationEvent);
  const first = pcr15Events[0];
  const found = first === undefined
    ? `no event on PCR${MODEL_PCR}`
    : [
      ...(isConfigurationEvent(first) ? [] : [`first ${first.digest} (${first.description})`]),
      ...configurationEvents.map((event) => `${event.digest} (${event.description})`),
    ].join(', ') || `no configuration event on PCR${MODEL_PCR}`;
  return {
    name: VerdictCheckName.CONFIGURATION,
    passed: first !== undefined && isConfigurationEvent(first)
      && configurationEvents.every((event) => event.digest === configurationSha384),
    expected: `configuration ${configurationSha384} first on PCR${MODEL_PCR}, and no other`,
    found,
  };
}

function compareModel(modelEvents: readonly PcrEvent[], model: MeasuredModel): VerdictCheck {
  const measurement = modelMeasurement({ ...model, sha256: model.sha256.toLowerCase() });
  const others = modelEvents.filter((event) => event.digest !== measurement);
  const found = modelEvents.length === 0
    ? `no model event on PCR${MODEL_PCR}`
    : modelEvents.map((event) => `${event.digest} (${event.description})`).join(', ');
  return {
    name: VerdictCheckName.MODEL,
    passed: modelEvents.length > 0 && others.length === 0,
    expected: `only model ${model.modelName} sha256:${model.sha256.toLowerCase()} (${model.plaintextSize} bytes; ` +
      `measurement ${measurement}) on PCR${MODEL_PCR}`,
    found,
  };
}
