import { isJsonObject } from '../shared/json-object';

/**
 * The file `cdk deploy --outputs-file` writes, `{ "<stack>": { "<output>": "<value>" } }`, and choosing the one stack
 * of it a command reads: `verify` its allowed images, `seal` where to seal to.
 */

/** A stack outputs file that cannot be used; the message says what to fix. */
export class InvalidStackOutputsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidStackOutputsError';
  }
}

/** The outputs of one stack, by the output's logical id. */
export type StackOutputs = Readonly<Record<string, unknown>>;

/** The outputs a command looks for, and how its errors name them. */
export interface SoughtOutputs {
  /** Whether a stack has them. */
  readonly foundIn: (outputs: StackOutputs) => boolean;
  /** As in "no stack T with <label>", e.g. 'AllowedImage outputs'. */
  readonly label: string;
  /** The outputs to look for, as in "has no <pattern>", e.g. 'AllowedImage<N>Pcr<M> outputs'. */
  readonly pattern: string;
  /** What a stack with them holds, as in "several stacks with <holding>", e.g. 'allowed images'. */
  readonly holding: string;
}

/** `[stack name, its outputs]`. */
export type ChosenStack = readonly [string, StackOutputs];

/**
 * The stack of the outputs file `name` (its text `text`) that has the sought outputs: `stack` if given, else the only
 * one. Throws {@link InvalidStackOutputsError} saying which to pick when there are none or several.
 */
export function chooseStack(text: string, name: string, sought: SoughtOutputs, stack?: string): ChosenStack {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InvalidStackOutputsError(`Stack outputs file ${name} is not JSON (${(error as Error).message})`);
  }
  if (!isJsonObject(value)) {
    throw new InvalidStackOutputsError(
      `Stack outputs file ${name} must map stack names to their outputs, as cdk deploy --outputs-file writes`,
    );
  }
  const stacks = Object.entries(value).filter(
    (entry): entry is [string, StackOutputs] => isJsonObject(entry[1]) && sought.foundIn(entry[1]),
  );
  const names = stacks.map(([stackName]) => stackName).join(', ');
  if (stack !== undefined) {
    const found = stacks.find(([stackName]) => stackName === stack);
    if (found === undefined) {
      throw new InvalidStackOutputsError(
        `Stack outputs file ${name} has no stack ${stack} with ${sought.label}; it has ${names || 'none'}`,
      );
    }
    return found;
  }
  if (stacks.length === 1) return stacks[0];
  throw new InvalidStackOutputsError(
    stacks.length === 0
      ? `Stack outputs file ${name} has no ${sought.pattern}: write it with cdk deploy --outputs-file from a stack ` +
          'with SealedInference or SealedInferenceFleet'
      : `Stack outputs file ${name} has several stacks with ${sought.holding} (${names}): pick one with --stack`,
  );
}
