import * as iam from 'aws-cdk-lib/aws-iam';
import { DefaultStackSynthesizer, Stack } from 'aws-cdk-lib';
import { KEY_MANAGEMENT_ACTIONS } from './private/permissions';
import { IConstruct } from 'constructs';

/** Options for the administration modes that name break-glass principals. */
export interface BreakGlassOptions {
  /**
   * Principals that may also manage the key outside deployments, in an emergency: disable it, schedule its deletion
   * and undo either (docs/runbooks/break-glass.md). With a mutable policy they may also change it.
   *
   * @default - none: only deployments manage the key
   */
  readonly breakGlass?: iam.IPrincipal[];
}

/**
 * Who may manage a sealed model key: change its policy, rotate, disable or delete it.
 *
 * Administrators never get cryptographic use of the key. But whoever can change the key policy can, in a second
 * step, write themselves a decrypt statement: choosing the administrators is choosing whom the model's owner
 * trusts not to do that. Key policy changes are recorded by CloudTrail as `PutKeyPolicy`.
 */
export class KeyAdministration {
  /**
   * The default: the key is managed by the stack's CloudFormation execution role (the CDK bootstrap's
   * `cfn-exec-role`), so that its policy changes only through a deployment of this stack, plus the named
   * break-glass principals. No IAM policy in the account can grant management.
   *
   * The stack must use CDK's `DefaultStackSynthesizer`, which names that role; with another synthesizer, choose
   * `restrictedTo()` explicitly.
   */
  public static throughDeployments(options: BreakGlassOptions = {}): KeyAdministration {
    return new KeyAdministration('deployments', options.breakGlass ?? [], true);
  }

  /**
   * The key policy can never change: no principal holds `kms:PutKeyPolicy`, and CloudFormation creates the key with
   * `BypassPolicyLockoutSafetyCheck`. The stack's CloudFormation execution role and the break-glass principals keep
   * the other management actions (rotation, aliases, tags, disable, deletion), none of which reaches the model.
   *
   * What it costs: the images and principals of the policy are fixed when the key is created. A new image means a new
   * key, the model sealed again under it, and a new deployment (docs/runbooks/image-upgrade.md); an update of the
   * stack that would change the policy fails in CloudFormation and rolls back.
   */
  public static immutablePolicy(options: BreakGlassOptions = {}): KeyAdministration {
    return new KeyAdministration('deployments', options.breakGlass ?? [], false);
  }

  /**
   * The key's account administers it, through IAM: any principal of the account whose identity policy allows a
   * management action (`kms:PutKeyPolicy`, `kms:ScheduleKeyDeletion`, ...) may take it. No identity policy can
   * grant decrypt, encrypt or grant creation, because the key policy never delegates those to the account. But an
   * account administrator can rewrite the policy and then unseal: synth warns
   * (`sealed-inference:key-administration-delegated`).
   */
  public static delegatedToAccount(): KeyAdministration {
    return new KeyAdministration('account', [], true);
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
    return new KeyAdministration('named', principals, true);
  }

  private constructor(
    /** Who manages the key: deployments of the stack (and break-glass principals), the account's IAM, or named principals. */
    public readonly managedBy: 'deployments' | 'account' | 'named',
    private readonly principals: iam.IPrincipal[],
    /** Whether anyone may change the key policy. */
    public readonly policyIsMutable: boolean,
  ) {}

  /** @internal */
  public _principals(scope: IConstruct): iam.IPrincipal[] {
    switch (this.managedBy) {
      case 'account':
        return [new iam.AccountPrincipal(Stack.of(scope).account)];
      case 'deployments':
        return [new iam.ArnPrincipal(cloudFormationExecutionRoleArn(scope)), ...this.principals];
      case 'named':
        return this.principals;
    }
  }

  /** @internal The management actions the administrators get: all of them, or all but `PutKeyPolicy`. */
  public _actions(): string[] {
    return this.policyIsMutable ? KEY_MANAGEMENT_ACTIONS : KEY_MANAGEMENT_ACTIONS.filter((a) => a !== 'kms:PutKeyPolicy');
  }
}

/** The role CloudFormation deploys `scope`'s stack with, as CDK's default synthesizer names it. */
function cloudFormationExecutionRoleArn(scope: IConstruct): string {
  const stack = Stack.of(scope);
  if (!(stack.synthesizer instanceof DefaultStackSynthesizer)) {
    throw new Error(
      `${scope.node.path}: the key is administered through deployments by default, but stack ${stack.stackName} ` +
        `uses ${stack.synthesizer.constructor.name}, which names no CloudFormation execution role. Choose ` +
        'KeyAdministration.restrictedTo([...]) with the role that deploys the stack, or delegatedToAccount().',
    );
  }
  // The synthesizer's ARN carries placeholders for the CDK CLI; in a template they must be the stack's own values.
  return stack.synthesizer.cloudFormationExecutionRoleArn
    .replace(/\$\{AWS::Partition\}/g, stack.partition)
    .replace(/\$\{AWS::AccountId\}/g, stack.account)
    .replace(/\$\{AWS::Region\}/g, stack.region);
}
