/**
 * The appliance's configuration, delivered as instance user data in JSON.
 *
 * User data is not measured: anyone who can launch an instance can change it. It therefore says only where to
 * fetch from and what to call the model; it carries no secret, and the appliance verifies everything it fetches
 * against the key (which only unwraps for an attested, allowed image) and the sealed model's authenticated header.
 *
 * This module has no AWS CDK dependency: the construct writes it, the appliance reads it.
 */
export interface ApplianceConfig {
  /** Version of this configuration's shape. */
  readonly configVersion: number;
  /** The AWS Region of the bucket and the key. */
  readonly region: string;
  /** The bucket holding the sealed artifacts. */
  readonly bucket: string;
  /** Object keys of the sealed model's artifacts. */
  readonly objects: SealedModelObjects;
  /** ARN of the key the model's data key is wrapped with. */
  readonly keyArn: string;
  /** The model's name, as in the data key's encryption context. */
  readonly modelName: string;
  /** TCP port of the inference service. */
  readonly servicePort: number;
  /**
   * DNS names clients use to reach the inference service. The service answers requests naming it by an IP address
   * or one of these names, and refuses every other `Host` (421), which stops DNS rebinding.
   * @default - IP addresses only
   */
  readonly hostNames?: string[];
}

/** Object keys of one sealed model in its bucket. */
export interface SealedModelObjects {
  /** The encrypted model. */
  readonly sealed: string;
  /** The data key, wrapped by KMS. */
  readonly dataKey: string;
  /** The manifest describing the sealed model. */
  readonly manifest: string;
}

/** An AWS Region's name, such as eu-west-1. */
const REGION_NAME = String.raw`[a-z]{2}(?:-[a-z]+)+-\d{1,2}`;

/** An AWS Region's name, whole. */
export const AWS_REGION_PATTERN = new RegExp(`^${REGION_NAME}$`);

/**
 * A KMS key ARN (not an alias): a single-Region key's id is a UUID, a multi-Region key's `mrk-` and 32 hex digits.
 * The first group is the key's Region.
 */
export const KMS_KEY_ARN_PATTERN = new RegExp(
  String.raw`^arn:aws[a-z-]*:kms:(${REGION_NAME}):\d{12}:key/(?:[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$`,
);

/** The current {@link ApplianceConfig.configVersion}. */
export const APPLIANCE_CONFIG_VERSION = 1;

/** Where sealed models are stored in a model bucket unless told otherwise (`modelPrefix`). */
export const DEFAULT_MODEL_PREFIX = 'models/';

/** Where the artifacts of model `name` live under `prefix` (empty or ending in '/'). */
export function sealedModelObjects(prefix: string, name: string): SealedModelObjects {
  return {
    sealed: `${prefix}${name}.sealed`,
    dataKey: `${prefix}${name}.datakey.enc`,
    manifest: `${prefix}${name}.manifest.json`,
  };
}
