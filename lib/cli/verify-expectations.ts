import { KMS_KEY_ARN_PATTERN, sealedModelObjects } from '../shared/appliance-config';
import { ExpectedImage, normalizeExpectedImage } from '../attestation/attestation-expectations';
import { configurationDigest } from '../attestation/configuration-measurement';
import { isJsonObject } from '../shared/json-object';
import { AMI_ID_PATTERN } from '../shared/measurements';
import { deploymentIn } from './model-deployment-outputs';
import { chooseStack, SoughtOutputs } from './stack-outputs-file';

/**
 * Reading the images `sealed-inference verify` expects from the files people already have: the JSON
 * `sealed-inference measurements` prints, and the outputs file `cdk deploy --outputs-file` writes.
 */

/** An expectation file that cannot be used; the message says what to fix. */
export class InvalidExpectationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidExpectationError';
  }
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InvalidExpectationError(`${what} is not JSON (${(error as Error).message})`);
  }
}

function checkedImage(subject: string, values: ExpectedImage): ExpectedImage {
  if (values.imageId !== undefined && !AMI_ID_PATTERN.test(values.imageId)) {
    throw new InvalidExpectationError(`${subject}: imageId ${JSON.stringify(values.imageId)} is not an AMI id`);
  }
  try {
    return normalizeExpectedImage(subject, values);
  } catch (error) {
    throw new InvalidExpectationError((error as Error).message);
  }
}

const MEASUREMENT_KEYS = ['imageId', 'pcr4', 'pcr7', 'pcr12'];

/**
 * The images of a measurements file: one object as `sealed-inference measurements` prints it
 * (`{ "imageId", "pcr4", "pcr12" }` or `{ "imageId", "pcr7" }`), or an array of them for several images.
 *
 * @param name the file's name, for errors
 */
export function readMeasurementsFile(text: string, name: string): ExpectedImage[] {
  const value = parseJson(text, `Measurements file ${name}`);
  const entries = Array.isArray(value) ? value : [value];
  if (entries.length === 0) throw new InvalidExpectationError(`Measurements file ${name} lists no image`);
  return entries.map((entry, i) => {
    const subject = `image ${i + 1} of ${name}`;
    if (!isJsonObject(entry)) {
      throw new InvalidExpectationError(`${subject} must be an object like sealed-inference measurements prints`);
    }
    const unknown = Object.keys(entry).filter((key) => !MEASUREMENT_KEYS.includes(key));
    if (unknown.length > 0) {
      throw new InvalidExpectationError(`${subject} has unknown field ${unknown.join(', ')}; expected ${MEASUREMENT_KEYS.join(', ')}`);
    }
    const strings = Object.entries(entry).filter(([, v]) => typeof v !== 'string');
    if (strings.length > 0) throw new InvalidExpectationError(`${subject}: ${strings[0][0]} must be a string`);
    return checkedImage(subject, entry as Record<string, string>);
  });
}

/** `…AllowedImage<N>Id` or `…AllowedImage<N>Pcr<M>`, as `SealedInference` names its outputs, with CDK's optional hash. */
const ALLOWED_IMAGE_OUTPUT = /^(.*)AllowedImage(\d+)(Id|Pcr4|Pcr7|Pcr12)(?:[0-9A-F]{8})?$/;

const ALLOWED_IMAGES: SoughtOutputs = {
  foundIn: (outputs) => Object.keys(outputs).some((key) => ALLOWED_IMAGE_OUTPUT.test(key)),
  label: 'AllowedImage outputs',
  pattern: 'AllowedImage<N>Pcr<M> outputs',
  holding: 'allowed images',
};

/**
 * The allowed images of one stack in a `cdk deploy --outputs-file` file (`{ "<stack>": { "<output>": "<value>" } }`),
 * from the `AllowedImage<N>Id` and `AllowedImage<N>Pcr<M>` outputs of `SealedInference`.
 *
 * @param stack the stack to read; may be omitted when the file holds one stack with allowed images
 */
export function readStackOutputs(text: string, name: string, stack?: string): ExpectedImage[] {
  const [stackName, outputs] = chooseStack(text, name, ALLOWED_IMAGES, stack);
  const images = new Map<string, Record<string, string>>();
  for (const [key, output] of Object.entries(outputs)) {
    const match = ALLOWED_IMAGE_OUTPUT.exec(key);
    if (match === null) continue;
    const [, prefix, n, field] = match;
    if (typeof output !== 'string') throw new InvalidExpectationError(`Output ${key} of stack ${stackName} must be a string`);
    const image = images.get(`${prefix}\0${n}`) ?? {};
    image[field === 'Id' ? 'imageId' : field.toLowerCase()] = output;
    images.set(`${prefix}\0${n}`, image);
  }
  const prefixes = new Set([...images.keys()].map((key) => key.split('\0')[0]));
  if (prefixes.size > 1) {
    throw new InvalidExpectationError(
      `Stack ${stackName} in ${name} has allowed images of several constructs (${[...prefixes].join(', ')}): keep one construct's outputs in the file`,
    );
  }
  return [...images.entries()]
    .sort(([a], [b]) => Number(a.split('\0')[1]) - Number(b.split('\0')[1]))
    .map(([key, image]) => checkedImage(`allowed image ${key.split('\0')[1]} of stack ${stackName}`, image));
}

/**
 * The digest of the configuration the deployment in a `cdk deploy --outputs-file` file gives its instances (its key,
 * bucket, prefix and model name; the Region is the key's), as the appliance measures it into PCR15; `undefined` when
 * the stack has no sealed-model outputs to compute it from.
 *
 * @param modelName picks the deployment serving it when the stack has several
 */
export function deployedConfigurationSha384(text: string, name: string, stack?: string, modelName?: string): string | undefined {
  const [stackName, outputs] = chooseStack(text, name, ALLOWED_IMAGES, stack);
  let deployment;
  try {
    deployment = deploymentIn(stackName, outputs, name, modelName);
  } catch (error) {
    throw new InvalidExpectationError(`${(error as Error).message.replace(/--name <model>$/, '--model <manifest.json>')}`);
  }
  if (deployment === undefined) return undefined;
  const region = KMS_KEY_ARN_PATTERN.exec(deployment.keyArn)?.[1];
  if (region === undefined) {
    throw new InvalidExpectationError(
      `Output KeyArn of stack ${stackName} in ${name} is not a KMS key ARN: ${JSON.stringify(deployment.keyArn)}`,
    );
  }
  return configurationDigest({
    region,
    keyArn: deployment.keyArn,
    bucket: deployment.bucket,
    objects: sealedModelObjects(deployment.prefix, deployment.modelName),
    modelName: deployment.modelName,
  });
}
