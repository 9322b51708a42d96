/**
 * How a sealed model names itself to KMS. Every data key is generated and unwrapped under an encryption context
 * that carries the model's name, so a wrapped key only ever unwraps for the model it was made for.
 *
 * This module has no AWS CDK dependency: the key policy, the sealing CLI and the appliance share it.
 */

/** Encryption context key whose value is the model's name. */
export const MODEL_CONTEXT_KEY = 'sealed-inference:model';

/** Encryption context key whose value is the sealed format's version. */
export const FORMAT_CONTEXT_KEY = 'sealed-inference:format';

/** The only encryption context keys a sealed model's data key may carry. */
export const ENCRYPTION_CONTEXT_KEYS = [MODEL_CONTEXT_KEY, FORMAT_CONTEXT_KEY];

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Whether `name` is a valid model name: a string of the safe alphabet {@link checkModelName} describes. */
export function isModelName(name: unknown): name is string {
  return typeof name === 'string' && MODEL_NAME.test(name);
}

/** Checks a model name: it names S3 objects and appears in key policies, so it is kept to a safe alphabet. */
export function checkModelName(name: string): string {
  if (!isModelName(name)) {
    throw new Error(
      `Model name must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit; ` +
        `got ${JSON.stringify(name)}`,
    );
  }
  return name;
}
