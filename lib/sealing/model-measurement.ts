import { createHash } from 'crypto';
import { checkModelName } from '../shared/model-identity';
import { FORMAT_VERSION } from './format';

/**
 * The model measurement: what the appliance extends PCR15 with for the model it serves, and what a verifier expects
 * there. It is the SHA-384 of a short canonical text record naming the format, the model, its size and its SHA-256,
 * so that the plaintext is hashed once (SHA-256, the identity users know) and PCR15 still receives a SHA-384.
 * The record is specified in docs/sealed-model-format.md, where it is recomputed with printf and sha384sum.
 */

/** The facts about a model its measurement binds: a manifest has them all. */
export interface MeasuredModel {
  readonly modelName: string;
  /** Size of the plaintext model in bytes. */
  readonly plaintextSize: number;
  /** SHA-256 of the plaintext model, lowercase hex. */
  readonly sha256: string;
}

/** The first line of every record; its number changes whenever the record's layout does. */
export const MEASUREMENT_RECORD_HEADING = 'sealed-inference/model-measurement 1';

/**
 * The canonical record, as UTF-8 bytes (ASCII, as model names are): five lines, each ended by `\n`.
 *
 *   sealed-inference/model-measurement 1
 *   format sealed-inference/model <format version>
 *   name <model name>
 *   size <plaintext size in decimal>
 *   sha256 <SHA-256 of the plaintext, lowercase hex>
 *
 * @throws Error when a field is not what a sealed model can have
 */
export function modelMeasurementRecord(model: MeasuredModel): Buffer {
  checkModelName(model.modelName);
  if (!Number.isSafeInteger(model.plaintextSize) || model.plaintextSize < 0) {
    throw new Error(`a model's plaintext size is a whole number of bytes, got ${JSON.stringify(model.plaintextSize)}`);
  }
  if (typeof model.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(model.sha256)) {
    throw new Error(`a model's SHA-256 is 64 lowercase hex characters, got ${JSON.stringify(model.sha256)}`);
  }
  const lines = [
    MEASUREMENT_RECORD_HEADING,
    `format sealed-inference/model ${FORMAT_VERSION}`,
    `name ${model.modelName}`,
    `size ${model.plaintextSize}`,
    `sha256 ${model.sha256}`,
  ];
  return Buffer.from(lines.map((line) => `${line}\n`).join(''), 'utf8');
}

/** The model's measurement: SHA-384 of {@link modelMeasurementRecord}, lowercase hex, what PCR15 is extended with. */
export function modelMeasurement(model: MeasuredModel): string {
  return createHash('sha384').update(modelMeasurementRecord(model)).digest('hex');
}
