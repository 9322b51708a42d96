import { Aws, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';

/**
 * A role of another account, named before it exists: the model owner's key and bucket name the consumer's instance
 * role, which the consumer's deployment creates later. KMS and S3 refuse a policy naming a principal that does not
 * exist yet (`MalformedPolicyDocumentException`, `Invalid principal in policy`), so the policy names the role's
 * account, narrowed to that role by `aws:PrincipalArn`: only the role's sessions match, whatever else the account
 * holds or grants. Statements naming it keep every other condition (the attestation's PCRs, the model's name).
 */
export function roleInAccount(account: string, roleName: string): iam.IPrincipal {
  if (!Token.isUnresolved(account) && !/^\d{12}$/.test(account)) {
    throw new Error(`roleInAccount: the account must be a 12-digit AWS account id; got ${JSON.stringify(account)}`);
  }
  if (!Token.isUnresolved(roleName) && !/^[\w+=,.@-]{1,64}$/.test(roleName)) {
    throw new Error(
      `roleInAccount: ${JSON.stringify(roleName)} is not an IAM role name (1-64 letters, digits and +=,.@_-)`,
    );
  }
  const roleArn = `arn:${Aws.PARTITION}:iam::${account}:role/${roleName}`;
  return new iam.AccountPrincipal(account).withConditions({ ArnEquals: { 'aws:PrincipalArn': roleArn } });
}
