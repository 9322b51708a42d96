import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, PCIDSS321Checks } from 'cdk-nag';

/**
 * Registers the cdk-nag packs a security reviewer expects: AWS Solutions, NIST 800-53 rev 5, HIPAA Security and
 * PCI DSS 3.2.1. Synthesis fails on any finding that is not acknowledged on its resource; acknowledgments and their
 * reasons are written into the template's metadata.
 */
export function addComplianceChecks(app: App): void {
  Validations.of(app).addPlugins(
    new AwsSolutionsChecks(app, { writeSuppressionsToCloudFormation: true }),
    new NIST80053R5Checks(app, { writeSuppressionsToCloudFormation: true }),
    new HIPAASecurityChecks(app, { writeSuppressionsToCloudFormation: true }),
    new PCIDSS321Checks(app, { writeSuppressionsToCloudFormation: true }),
  );
}
