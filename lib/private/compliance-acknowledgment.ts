import { Validations } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/** The compliance packs of cdk-nag that this library's resources are checked against, by the prefix of their rule ids. */
const NIST_800_53_R5 = 'NIST.800.53.R5';
const HIPAA_SECURITY = 'HIPAA.Security';
const PCI_DSS_321 = 'PCI.DSS.321';

/**
 * The compliance rules this library acknowledges, each with the packs that check it (cdk-nag's `lib/packs`). A rule
 * is acknowledged in exactly those packs: none that does not check it, and none left to fail synthesis.
 * `test/compliance.test.ts` compares this table with cdk-nag's pack definitions.
 */
export const PACKS_CHECKING = {
  ELBDeletionProtectionEnabled: [NIST_800_53_R5, HIPAA_SECURITY],
  ELBLoggingEnabled: [NIST_800_53_R5, HIPAA_SECURITY, PCI_DSS_321],
  ELBv2ACMCertificateRequired: [NIST_800_53_R5, HIPAA_SECURITY, PCI_DSS_321],
  IAMNoInlinePolicy: [NIST_800_53_R5, HIPAA_SECURITY, PCI_DSS_321],
  LambdaConcurrency: [NIST_800_53_R5, HIPAA_SECURITY],
  LambdaDLQ: [NIST_800_53_R5, HIPAA_SECURITY],
  LambdaInsideVPC: [NIST_800_53_R5, HIPAA_SECURITY, PCI_DSS_321],
  S3BucketReplicationEnabled: [NIST_800_53_R5, HIPAA_SECURITY, PCI_DSS_321],
  S3DefaultEncryptionKMS: [NIST_800_53_R5, HIPAA_SECURITY, PCI_DSS_321],
} as const satisfies Record<string, readonly string[]>;

/** A compliance rule, by its name in cdk-nag (the rule id without the pack's prefix). */
export type ComplianceRule = keyof typeof PACKS_CHECKING;

/** A compliance rule whose finding this design accepts, and why. */
export interface ComplianceAcknowledgment {
  readonly rule: ComplianceRule;
  readonly reason: string;
}

/**
 * Acknowledges compliance rules on `scope` (and everything under it) in every pack that checks them, each with one
 * reason, which cdk-nag writes into the template beside each pack's rule id.
 */
export function acknowledgeCompliance(scope: IConstruct, ...acknowledgments: ComplianceAcknowledgment[]): void {
  Validations.of(scope).acknowledge(
    ...acknowledgments.flatMap(({ rule, reason }) => PACKS_CHECKING[rule].map((pack) => ({ id: `${pack}-${rule}`, reason }))),
  );
}
