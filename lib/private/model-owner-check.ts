import { Annotations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/**
 * Warns at synth time when `owners` is still empty: nobody could seal a model for the deployment. Checked then, so
 * that owners added after construction silence it.
 */
export function warnWithoutModelOwner(scope: Construct, owners: readonly iam.IPrincipal[]): void {
  scope.node.addValidation({
    validate: () => {
      if (owners.length === 0) {
        Annotations.of(scope).addWarningV2(
          'sealed-inference:no-model-owner',
          'No model owner: nobody may seal models with the key or upload them. Name the owner with modelOwners or ' +
            'allowModelOwner().',
        );
      }
      return [];
    },
  });
}
