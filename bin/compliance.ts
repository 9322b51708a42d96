import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, NIST80053R5Checks } from 'cdk-nag';

/**
 * Registers the cdk-nag packs a security reviewer expects. Synthesis fails on any finding that is not acknowledged
 * on its resource; acknowledgments and their reasons are written into the template's metadata.
 */
export function addComplianceChecks(app: App): void {
  Validations.of(app).addPlugins(
    new AwsSolutionsChecks(app, { writeSuppressionsToCloudFormation: true }),
    new NIST80053R5Checks(app, { writeSuppressionsToCloudFormation: true }),
  );
}
