/**
 * The `cdk-sealed-inference/attestation` entry point: verify a NitroTPM attestation document against the pinned AWS
 * Nitro root, its channel binding and a pinned TLS connection, compare it with the expected images and model, and
 * audit a live key policy. It needs no AWS CDK. Modules not named here are internal.
 */
export { AttestationError, AttestationErrorKind } from './attestation-error';
export { InvalidVerifyOptionsError } from './invalid-verify-options-error';
export { parseAttestationDocument } from './attestation-document';
export type { AttestationDocument, SignedAttestationDocument } from './attestation-document';
export { AWS_NITRO_ROOT_COMMON_NAME, AWS_NITRO_ROOT_PEM, AWS_NITRO_ROOT_SHA256_FINGERPRINT } from './nitro-root';
export { DEFAULT_ATTESTATION_MAX_AGE_MS, verifyAttestationDocument } from './verify-attestation';
export type { VerifyAttestationOptions } from './verify-attestation';
export { extendPcr, MODEL_PCR, replayPcrEvents } from './pcr-event-log';
export type { PcrEvent } from './pcr-event-log';
export { compareAttestation, VerdictCheckName } from './attestation-expectations';
export type { AttestationExpectations, AttestationVerdict, ExpectedImage, VerdictCheck } from './attestation-expectations';
export { MalformedAttestationResponseError, parseAttestationResponse } from './attestation-response';
export type { AttestationResponse } from './attestation-response';
export { auditKeyPolicy, KeyPolicyFindingKind, MalformedKeyPolicyError } from './key-policy-audit';
export type { AdmittedImages, KeyPolicyAudit, KeyPolicyAuditOptions, KeyPolicyFinding } from './key-policy-audit';
export { CHANNEL_BINDING_PREFIX, checkChannelBinding, encodeChannelBinding, spkiSha256 } from './channel-binding';
export { PinnedConnection } from './pinned-connection';
