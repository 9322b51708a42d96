import { Annotations, CfnOutput, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/** An imported resource whose policy is its owner's, as `OwnerPolicyRequests` describes it. */
export interface ImportedResource {
  /** What the resource is, e.g. 'key' or 'bucket'. */
  readonly kind: string;
  /** Its ARN or name, possibly a token. */
  readonly name: string;
  /** The warning's id, e.g. 'sealed-inference:imported-key-policy'. */
  readonly warningId: string;
  /** What in the owner's stack writes the statements, e.g. 'A ModelBucket in the owner's stack writes them ...'. */
  readonly remedy: string;
}

/**
 * Says, at synth time and as a stack output, which statements the owner of an imported resource must add to its
 * policy: a grant on it works only once they are there, and a deployment would not say why.
 */
export class OwnerPolicyRequests {
  private count = 0;

  constructor(private readonly scope: Construct, private readonly resource: ImportedResource) {}

  /** Asks for `statements`, which let a principal `what` (e.g. 'unseal for <role>'); `note` precedes them. */
  public ask(what: string, statements: iam.PolicyStatement[], note = ''): void {
    const { kind, name, warningId, remedy } = this.resource;
    const capitalized = `${kind[0].toUpperCase()}${kind.slice(1)}`;
    // CloudFormation takes only a literal description: a resource named at deploy time is described, not named.
    const named = Token.isUnresolved(name) ? `the ${kind}` : name;
    this.count += 1;
    const stack = Stack.of(this.scope);
    const json = statements.map((statement) => statement.toStatementJson());
    const output = new CfnOutput(this.scope, `${capitalized}PolicyRequest${this.count}`, {
      value: stack.toJsonString(json),
      description: `${capitalized} policy statements the owner of ${named} must add to ${what}`,
    });
    const readable = JSON.stringify(stack.resolve(json), undefined, 1).replace(/\n\s*/g, ' ');
    Annotations.of(this.scope).addWarningV2(
      warningId,
      `The ${Token.isUnresolved(name) ? kind : `${kind} ${name}`} is imported: its policy cannot change from this ` +
        `stack. To ${what}, its owner must add to the ${kind} policy (output ${stack.resolve(output.logicalId)} has ` +
        `it with every ARN resolved):${note} ${readable}. ${remedy}`,
    );
  }
}
