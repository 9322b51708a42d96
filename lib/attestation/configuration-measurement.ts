import { createHash } from 'node:crypto';
import type { SealedModelObjects } from '../shared/appliance-config';
import type { PcrEvent } from './pcr-event-log';

/**
 * The configuration event: before it fetches anything, the appliance extends PCR15 with the SHA-384 of a canonical
 * record of what it will act on. User data is not measured by the boot chain, and whoever can stop the instance can
 * edit it (another bucket, another key whose policy names the instance role); with this event, an attestation shows
 * which Region, key, objects and model name the instance was told to use, and a verifier compares them with the
 * deployment's.
 *
 * The record is UTF-8 text, one `name=value` line each, in this order, every line ending in `\n`:
 *
 * ```
 * sealed-inference-configuration/1
 * region=eu-west-1
 * key=arn:aws:kms:eu-west-1:111111111111:key/…
 * bucket=…
 * sealed=models/llama.sealed
 * data-key=models/llama.datakey.enc
 * manifest=models/llama.manifest.json
 * model=llama
 * ```
 *
 * so that `printf 'sealed-inference-configuration/1\nregion=…\n…model=llama\n' | sha384sum` recomputes the digest.
 */

/** The first line of the record: its format and version. */
export const CONFIGURATION_RECORD_VERSION = 'sealed-inference-configuration/1';

/** What the appliance is configured to act on: the part of its configuration that decides what it serves. */
export interface MeasuredConfiguration {
  readonly region: string;
  readonly keyArn: string;
  readonly bucket: string;
  readonly objects: SealedModelObjects;
  readonly modelName: string;
}

/** The description of configuration events begins with this; the digest, not the description, is what is checked. */
export const CONFIGURATION_EVENT_PREFIX = 'configuration ';

/** The canonical record of `configuration`, as the digest covers it. */
export function configurationRecord(configuration: MeasuredConfiguration): string {
  const fields: Array<[string, string]> = [
    ['region', configuration.region],
    ['key', configuration.keyArn],
    ['bucket', configuration.bucket],
    ['sealed', configuration.objects.sealed],
    ['data-key', configuration.objects.dataKey],
    ['manifest', configuration.objects.manifest],
    ['model', configuration.modelName],
  ];
  for (const [name, value] of fields) {
    // A line break in a value could forge the next line; no valid Region, ARN, bucket, key or name has one.
    if (typeof value !== 'string' || [...value].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) {
      throw new Error(`the configuration's ${name} must be a string without control characters, got ${JSON.stringify(value)}`);
    }
  }
  return [CONFIGURATION_RECORD_VERSION, ...fields.map(([name, value]) => `${name}=${value}`)].map((line) => `${line}\n`).join('');
}

/** The SHA-384 (lowercase hex) PCR15 is extended with for `configuration`. */
export function configurationDigest(configuration: MeasuredConfiguration): string {
  return createHash('sha384').update(configurationRecord(configuration), 'utf8').digest('hex');
}

/** The description the appliance records with the configuration event. */
export function configurationEventDescription(configuration: MeasuredConfiguration): string {
  return `${CONFIGURATION_EVENT_PREFIX}(${CONFIGURATION_RECORD_VERSION}) for model ${configuration.modelName}`;
}

/** Whether `event` is a configuration event, as the appliance labels it. */
export function isConfigurationEvent(event: PcrEvent): boolean {
  return event.description.startsWith(CONFIGURATION_EVENT_PREFIX);
}
