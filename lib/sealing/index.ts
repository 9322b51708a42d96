/**
 * The sealing API a model owner scripts against: seal and unseal a model, read its manifest, compute the measurement
 * PCR15 shows for it. Runtime code only (no CDK): the `cdk-sealed-inference/sealing` entry point.
 */
export { seal } from './seal';
export type { SealOptions, SealResult, SealedSink } from './seal';
export { sealToDirectory, sealedModelFiles } from './seal-to-directory';
export type { SealToDirectoryOptions, SealedModelFiles } from './seal-to-directory';
export { unseal, unsealInto } from './unseal';
export type { PlaintextSink, UnsealOptions, UnsealResult } from './unseal';
export { parseManifest } from './manifest';
export type { SealedModelManifest } from './manifest';
export { SealedModelError } from './sealed-model-error';
export type { SealedModelFailure } from './sealed-model-error';
export { modelMeasurement, modelMeasurementRecord } from './model-measurement';
export type { MeasuredModel } from './model-measurement';
export type { SealedHeader, SealedTrailer } from './format';
