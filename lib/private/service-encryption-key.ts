import { RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

/**
 * A rotated KMS key that encrypts what an AWS service stores for this deployment (logs, alarm messages): the account
 * administers and uses it through IAM, as for any such key, and `serviceUse` lets the service use it. Never the
 * sealing key. The policy is written in full (`CfnKey`), as the sealing key's is, so that a reviewer reads all of it.
 */
export function serviceEncryptionKey(scope: Construct, id: string, description: string, serviceUse: iam.PolicyStatement): kms.IKey {
  const key = new kms.CfnKey(scope, id, {
    description,
    enableKeyRotation: true,
    keyPolicy: new iam.PolicyDocument({
      statements: [
        new iam.PolicyStatement({
          sid: 'AccountAdministersThroughIam',
          principals: [new iam.AccountRootPrincipal()],
          actions: ['kms:*'],
          resources: ['*'],
        }),
        serviceUse,
      ],
    }),
  });
  key.applyRemovalPolicy(RemovalPolicy.RETAIN);
  return kms.Key.fromKeyArn(scope, `${id}Arn`, key.attrArn);
}
