/**
 * The `cdk-sealed-inference` entry point: the constructs and the types their properties use. The verifier is the
 * `cdk-sealed-inference/attestation` entry point; modules not named here are internal.
 */
export { AttestableImage } from './attestable-image';
export type { IAttestableImage } from './attestable-image';
export { PublishedImageMeasurements } from './published-image';
export type { PublishedImageMeasurementsProps } from './published-image';
export { InvalidMeasurementError, MEASUREMENT_TAGS } from './shared/measurements';
export type { PcrMeasurements } from './shared/measurements';
export { KeyAdministration } from './key-administration';
export { SealedModelKey } from './sealed-model-key';
export type { ISealedModelKey, SealedModelKeyAttributes, SealedModelKeyProps } from './sealed-model-key';
export { roleInAccount } from './role-in-account';
export { ModelBucket } from './model-bucket';
export type { IModelBucket, ModelBucketAttributes, ModelBucketProps } from './model-bucket';
export { ZeroOperatorAccessSecurityGroup } from './zero-operator-access';
export type { IZeroOperatorAccessSecurityGroup, ZeroOperatorAccessSecurityGroupProps } from './zero-operator-access';
export { ServiceLoadBalancerSecurityGroup } from './service-load-balancer-security-group';
export type { ServiceLoadBalancerSecurityGroupProps } from './service-load-balancer-security-group';
export { EndpointDnsFirewall } from './endpoint-dns-firewall';
export type { EndpointDnsFirewallProps } from './endpoint-dns-firewall';
export { IsolatedNetwork } from './isolated-network';
export type { IsolatedNetworkProps } from './isolated-network';
export { EndpointPeer } from './endpoint-peer';
export { AttestedLaunchTemplate } from './attested-launch-template';
export type { AttestedLaunchTemplateProps } from './attested-launch-template';
export { AttestedInstance } from './attested-instance';
export type { AttestedInstanceProps } from './attested-instance';
export type { ApplianceConfig, SealedModelObjects } from './shared/appliance-config';
export { TamperAlarms } from './tamper-alarms';
export type { TamperAlarmsProps } from './tamper-alarms';
export { SealedInference } from './sealed-inference';
export type { SealedInferenceProps } from './sealed-inference';
export { SealedInferenceFleet } from './sealed-inference-fleet';
export type { SealedInferenceFleetProps } from './sealed-inference-fleet';

// The sealing API a model owner scripts against; also the "./sealing" entry point, which needs no CDK.
export {
  seal, unseal, parseManifest, SealedModelError, modelMeasurement, modelMeasurementRecord,
} from './sealing';
export type {
  SealOptions, SealResult, SealedSink, UnsealOptions, UnsealResult, SealedModelManifest, SealedModelFailure,
  MeasuredModel,
} from './sealing';
