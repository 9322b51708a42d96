import { chooseStack, InvalidStackOutputsError, SoughtOutputs, StackOutputs } from './stack-outputs-file';

/**
 * Where a deployment of `SealedInference` or `SealedInferenceFleet` expects its sealed model, read from the outputs
 * file `cdk deploy --outputs-file` writes: so that `seal` uses the deployment's key, bucket, prefix and model name.
 */

/** What one deployment's outputs say about its sealed model. */
export interface ModelDeployment {
  readonly stack: string;
  /** The construct's part of the output ids, e.g. `Inference` for `InferenceKeyArn…`. */
  readonly construct: string;
  readonly keyArn: string;
  readonly bucket: string;
  /** Empty for the bucket's root. */
  readonly prefix: string;
  readonly modelName: string;
}

/** The outputs of one deployment, as the construct names them; CDK adds the construct's id before and a hash after. */
const FIELDS = ['KeyArn', 'ModelBucketName', 'ModelPrefix', 'ModelName'] as const;
type Field = (typeof FIELDS)[number];
const DEPLOYMENT_OUTPUT = new RegExp(`^(.*)(${FIELDS.join('|')})(?:[0-9A-F]{8})?$`);

/** How the construct writes an empty `ModelPrefix`, which CloudFormation cannot output. */
const BUCKET_ROOT = '(bucket root)';

/** The deployments of a stack by their construct's part of the output ids: those with all four outputs. */
function deploymentsOf(stack: string, outputs: StackOutputs): ModelDeployment[] {
  const byConstruct = new Map<string, Partial<Record<Field, string>>>();
  for (const [key, value] of Object.entries(outputs)) {
    const match = DEPLOYMENT_OUTPUT.exec(key);
    if (match === null || typeof value !== 'string') continue;
    const [, construct, field] = match;
    byConstruct.set(construct, { ...byConstruct.get(construct), [field]: value });
  }
  return [...byConstruct.entries()]
    .filter((entry): entry is [string, Record<Field, string>] => FIELDS.every((field) => entry[1][field] !== undefined))
    .map(([construct, found]) => ({
      stack,
      construct,
      keyArn: found.KeyArn,
      bucket: found.ModelBucketName,
      prefix: found.ModelPrefix === BUCKET_ROOT ? '' : found.ModelPrefix,
      modelName: found.ModelName,
    }));
}

const SEALED_MODELS: SoughtOutputs = {
  foundIn: (outputs) => deploymentsOf('', outputs).length > 0,
  label: 'sealed-model outputs',
  pattern: `${FIELDS.join(', ')} outputs`,
  holding: 'sealed models',
};

/**
 * The deployment of the outputs file `name` (its text `text`) a model is sealed for: in `stack` if given, else in
 * the only stack with one; of several in that stack, the one serving `modelName`. Throws
 * {@link InvalidStackOutputsError} saying what to pick when there are none or several.
 */
export function readModelDeployment(text: string, name: string, stack?: string, modelName?: string): ModelDeployment {
  const [stackName, outputs] = chooseStack(text, name, SEALED_MODELS, stack);
  return deploymentIn(stackName, outputs, name, modelName)!;
}

/**
 * The deployment among the outputs of stack `stackName` (of the file `name`): the only one, or of several the one
 * serving `modelName`; `undefined` when the stack has none. Throws {@link InvalidStackOutputsError} when several
 * remain.
 */
export function deploymentIn(
  stackName: string,
  outputs: StackOutputs,
  name: string,
  modelName?: string,
): ModelDeployment | undefined {
  const deployments = deploymentsOf(stackName, outputs);
  if (deployments.length <= 1) return deployments[0];
  const serving = deployments.find((deployment) => deployment.modelName === modelName);
  if (serving !== undefined) return serving;
  const listed = deployments.map((d) => `${d.modelName} of ${d.construct}`).join(', ');
  throw new InvalidStackOutputsError(
    `Stack ${stackName} in ${name} has several sealed models (${listed}): pick one with --name <model>`,
  );
}
