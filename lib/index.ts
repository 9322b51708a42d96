export * from './measurements';
export * from './model-identity';
export * from './appliance-config';
export * from './attestable-image';
export * from './published-measurements';
export * from './published-image';
export * from './key-administration';
export * from './sealed-model-key';
export * from './model-bucket';
export * from './zero-operator-access';
export * from './isolated-network';
export * from './endpoint-peer';
export * from './nitro-tpm-support';
export * from './attested-instance';
export * from './attested-launch-template';
export * from './sealed-inference';
export * from './service-load-balancer-security-group';
export * from './sealed-inference-fleet';
export * from './attestation';

// The sealing API a model owner scripts against; also the "./sealing" entry point, which needs no CDK.
export {
  seal, unseal, parseManifest, SealedModelError, modelMeasurement, modelMeasurementRecord,
} from './sealing';
export type {
  SealOptions, SealResult, SealedSink, UnsealOptions, UnsealResult, SealedModelManifest, SealedModelFailure,
  MeasuredModel,
} from './sealing';
