import { MetadataService } from '@aws-sdk/ec2-metadata-service';
import {
  APPLIANCE_CONFIG_VERSION,
  ApplianceConfig,
  AWS_REGION_PATTERN,
  KMS_KEY_ARN_PATTERN,
  sealedModelObjects,
} from '../shared/appliance-config';
import { isJsonObject } from '../shared/json-object';
import { checkModelName } from '../shared/model-identity';

/**
 * The appliance's configuration, read from instance user data over IMDSv2 (never v1).
 *
 * User data is not measured: whoever can launch an instance can write it. It is therefore parsed strictly (exactly
 * the known fields, each in its expected form) and used only to say where to fetch from; what is fetched is
 * trusted only once the attested key has unwrapped it and the sealed model has verified.
 */

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const PREFIX = /^([A-Za-z0-9!_.*'()-]+\/)*$/;

const FIELDS = ['configVersion', 'region', 'bucket', 'objects', 'keyArn', 'modelName', 'servicePort', 'hostNames'];

/** A DNS name: dot-separated labels of letters, digits and inner hyphens, without a trailing dot. */
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
/** More names than a service has: a list this long is a mistake. */
const MAX_HOST_NAMES = 32;

/** Thrown for user data that is not a valid appliance configuration; the message says what to fix. */
export class ApplianceConfigError extends Error {
  constructor(message: string) {
    super(`invalid appliance configuration in user data: ${message}`);
    this.name = 'ApplianceConfigError';
  }
}

function field<T>(config: Record<string, unknown>, name: string, check: (value: unknown) => value is T, form: string): T {
  const value = config[name];
  if (!check(value)) throw new ApplianceConfigError(`${name} must be ${form}, got ${JSON.stringify(value)}`);
  return value;
}

const isString = (value: unknown): value is string => typeof value === 'string';
const matching = (pattern: RegExp) => (value: unknown): value is string => isString(value) && pattern.test(value);

/** Parses and checks the configuration; every object key must be the model's own artifact under one prefix. */
export function parseApplianceConfig(text: string): ApplianceConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ApplianceConfigError('it is not JSON');
  }
  if (!isJsonObject(parsed)) {
    throw new ApplianceConfigError('it is not a JSON object');
  }
  const config = parsed;
  const unknown = Object.keys(config).filter((name) => !FIELDS.includes(name));
  if (unknown.length > 0) throw new ApplianceConfigError(`unknown fields ${unknown.join(', ')}`);

  const version = config.configVersion;
  if (version !== APPLIANCE_CONFIG_VERSION) {
    throw new ApplianceConfigError(`configVersion ${JSON.stringify(version)} is not supported (expected ${APPLIANCE_CONFIG_VERSION})`);
  }
  const region = field(config, 'region', matching(AWS_REGION_PATTERN), 'an AWS Region such as eu-west-1');
  const bucket = field(config, 'bucket', matching(BUCKET), 'an S3 bucket name');
  const keyArn = field(config, 'keyArn', matching(KMS_KEY_ARN_PATTERN), 'the ARN of a KMS key (arn:aws:kms:<region>:<account>:key/<id>)');
  if (KMS_KEY_ARN_PATTERN.exec(keyArn)![1] !== region) {
    throw new ApplianceConfigError(`keyArn is in another Region than ${region}`);
  }
  const modelName = field(config, 'modelName', isString, 'a string');
  try {
    checkModelName(modelName);
  } catch (error) {
    throw new ApplianceConfigError((error as Error).message);
  }
  const servicePort = field(
    config, 'servicePort',
    (value): value is number => Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535,
    'a TCP port number',
  );
  const objects = field(
    config, 'objects',
    isJsonObject,
    'an object naming the sealed, dataKey and manifest objects',
  );
  const sealed = field(objects, 'sealed', isString, 'a string');
  const prefix = sealed.slice(0, sealed.length - `${modelName}.sealed`.length);
  const expected = sealedModelObjects(prefix, modelName);
  const dotSegment = prefix.split('/').some((segment) => segment === '.' || segment === '..');
  const sameObjects = Object.keys(objects).length === 3 &&
    (Object.keys(expected) as Array<keyof typeof expected>).every((name) => objects[name] === expected[name]);
  if (!sealed.endsWith(`${modelName}.sealed`) || !PREFIX.test(prefix) || dotSegment || !sameObjects) {
    throw new ApplianceConfigError(
      `objects must be the artifacts of model ${modelName} under one prefix, e.g. ${JSON.stringify(expected)}`,
    );
  }
  const hostNames = config.hostNames === undefined ? {} : { hostNames: parseHostNames(config.hostNames) };
  return { configVersion: version, region, bucket, objects: expected, keyArn, modelName, servicePort, ...hostNames };
}

/** DNS names only, in lower case: an IP address needs no listing, as the service accepts any. */
function parseHostNames(value: unknown): string[] {
  const form = `a list of 1 to ${MAX_HOST_NAMES} DNS names such as ["chat.example.com"]`;
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_HOST_NAMES) {
    throw new ApplianceConfigError(`hostNames must be ${form}, got ${JSON.stringify(value)}`);
  }
  return value.map((name: unknown, index) => {
    const lower = typeof name === 'string' ? name.toLowerCase() : undefined;
    // The last label of a DNS name is never all digits: that is an IPv4 address.
    if (lower === undefined || !DNS_NAME.test(lower) || /(^|\.)\d+$/.test(lower)) {
      throw new ApplianceConfigError(
        `hostNames[${index}] must be a DNS name (letters, digits, hyphens and dots; no IP address, port or trailing dot), ` +
          `got ${JSON.stringify(name)}`,
      );
    }
    return lower;
  });
}

/** Reads the configuration from user data through IMDSv2 (`AWS_EC2_METADATA_SERVICE_ENDPOINT` overrides where). */
export async function readApplianceConfig(metadata: MetadataService): Promise<ApplianceConfig> {
  let text: string;
  try {
    // Relative: the client prefixes the endpoint's path, which is at least '/'.
    text = await metadata.request('latest/user-data', {});
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) {
      throw new ApplianceConfigError('the instance has no user data: launch it with the appliance configuration');
    }
    throw error;
  }
  return parseApplianceConfig(text);
}

/** A metadata client that never falls back to IMDSv1. */
export function newMetadataService(): MetadataService {
  return new MetadataService({
    ec2MetadataV1Disabled: true,
    httpOptions: { timeout: 5000 },
    tokenTtl: 60,
    retries: 5,
    backoff: (failures) => Math.min(2 ** failures, 10),
  });
}
