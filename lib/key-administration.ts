import * as iam from 'aws-cdk-lib/aws-iam';
import { Stack } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/**
 * Who may manage a sealed model key: change its policy, rotate, disable or delete it.
 *
 * Administrators never get cryptographic use of the key. But whoever can change the key policy can, in a second
 * step, write themselves a decrypt statement: choosing the administrators is choosing whom the model's owner
 * trusts not to do that. Key policy changes are recorded by CloudTrail as `PutKeyPolicy`.
 */
export class KeyAdministration {
  /**
   * The key's account administers it, through IAM: any principal of the account whose identity policy allows a
   * management action (`kms:PutKeyPolicy`, `kms:ScheduleKeyDeletion`, ...) may take it. No identity policy can
   * grant decrypt, encrypt or grant creation, because the key policy never delegates those to the account.
   */
  public static delegatedToAccount(): KeyAdministration {
    return new KeyAdministration(undefined);
  }

  /**
   * Only the named principals administer the key; IAM policies in the account cannot grant management.
   *
   * Name the role that deploys the stack (e.g. the CDK bootstrap's CloudFormation execution role) among them:
   * KMS refuses to create a key whose policy would lock the creator out, and CloudFormation needs `PutKeyPolicy`
   * to apply later policy changes such as allowing a new image.
   */
  public static restrictedTo(principals: iam.IPrincipal[]): KeyAdministration {
    if (principals.length === 0) {
      throw new Error('KeyAdministration.restrictedTo() needs at least one principal: the key would be unmanageable');
    }
    return new KeyAdministration(principals);
  }

  private constructor(private readonly principals: iam.IPrincipal[] | undefined) {}

  /** Whether management is restricted to named principals rather than delegated to the account's IAM. */
  public get isRestricted(): boolean {
    return this.principals !== undefined;
  }

  /** @internal */
  public _principals(scope: IConstruct): iam.IPrincipal[] {
    return this.principals ?? [new iam.AccountPrincipal(Stack.of(scope).account)];
  }
}
