/**
 * Reference measurements of an attestable image: the NitroTPM PCR values its boot chain produces.
 *
 * This module has no AWS CDK dependency: the constructs, the CLI and the on-instance code share it.
 */

/** Hex length of a SHA-384 digest, the bank NitroTPM attestation documents report. */
export const SHA384_HEX_LENGTH = 96;

/** A SHA-256 in hex, as the digest of a build's `pcr_measurements.json` is published and pinned. */
export const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

/** An AMI id: `ami-` and 17 hex digits, or 8 for an image registered before 2016. */
export const AMI_ID_PATTERN = /^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

/**
 * The PCR values a key policy is sealed to. All values are SHA-384, hex encoded.
 *
 * Standard boot needs PCR4 and PCR12: PCR4 alone does not cover a kernel command line injected through UEFI
 * variables (GHSA-xrv8-2pf5-f3q7). A UEFI Secure Boot image is pinned by PCR4, PCR7 and PCR12 together; PCR7 alone
 * admits every image signed under the same Secure Boot keys and is only accepted when asked for (`pcr7Only`).
 */
export interface PcrMeasurements {
  /**
   * PCR4: the boot manager code, i.e. the unified kernel image.
   *
   * @default - not pinned; only allowed for a Secure Boot image sealed to PCR7 alone (`pcr7Only`)
   */
  readonly pcr4?: string;

  /**
   * PCR7: the Secure Boot policy (platform key, key exchange keys, signature databases).
   *
   * @default - not pinned; the image is treated as a standard-boot image, pinned by `pcr4` and `pcr12`
   */
  readonly pcr7?: string;

  /**
   * PCR12: the kernel command line. 96 zeros for an image whose command line is embedded in the UKI.
   *
   * @default - not pinned; only allowed for a Secure Boot image sealed to PCR7 alone (`pcr7Only`)
   */
  readonly pcr12?: string;
}

/** One pinned PCR: its index and expected value. */
export interface PcrValue {
  readonly index: number;
  readonly value: string;
}

/** The KMS condition key that carries the value of NitroTPM PCR `index` from a request's attestation document. */
export function nitroTpmPcrConditionKey(index: number): string {
  return `kms:RecipientAttestation:NitroTPMPCR${index}`;
}

/** A measurement that is not a SHA-384 value, or a set of measurements that does not pin the image. */
export class InvalidMeasurementError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidMeasurementError';
  }
}

const SHA384_HEX = new RegExp(`^[0-9a-fA-F]{${SHA384_HEX_LENGTH}}$`);

/**
 * Checks one PCR value and returns it in lower case, as KMS reports it.
 *
 * @param label names the value in the error, e.g. "PCR4 of ami-0123…"
 */
export function normalizePcrValue(label: string, value: string): string {
  if (!SHA384_HEX.test(value)) {
    throw new InvalidMeasurementError(
      `${label} must be a SHA-384 value of ${SHA384_HEX_LENGTH} hex characters, got ${JSON.stringify(value)} ` +
        `(${value.length} characters)`,
    );
  }
  return value.toLowerCase();
}

/**
 * Checks that a set of measurements pins an image: PCR4 and PCR12 (standard boot), PCR4, PCR7 and PCR12 (Secure
 * Boot), or PCR7 alone when `pcr7Only` says so.
 *
 * @param subject names the image in the error
 */
export function checkPinsImage(subject: string, measurements: PcrMeasurements, pcr7Only = false): void {
  if (pcr7Only) {
    if (measurements.pcr7 === undefined) {
      throw new InvalidMeasurementError(`${subject} is to be sealed to PCR7 alone (pcr7Only), but has no pcr7`);
    }
    return;
  }
  if (measurements.pcr7 !== undefined && (measurements.pcr4 === undefined || measurements.pcr12 === undefined)) {
    throw new InvalidMeasurementError(
      `${subject} is a Secure Boot image pinned by PCR7 without PCR4 and PCR12: PCR7 alone admits any image signed ` +
        'under the same Secure Boot keys. Give pcr4 and pcr12 as well, or ask for PCR7 alone with pcr7Only.',
    );
  }
  const missing = [
    measurements.pcr4 === undefined ? 'pcr4' : undefined,
    measurements.pcr12 === undefined ? 'pcr12' : undefined,
  ].filter((name) => name !== undefined);
  if (missing.length > 0) {
    throw new InvalidMeasurementError(
      `${subject} is not pinned: missing ${missing.join(' and ')}. A standard-boot image needs pcr4 and pcr12 ` +
        '(PCR4 alone lets a command line supplied through UEFI variables go unmeasured); ' +
        'a Secure Boot image needs pcr4, pcr7 and pcr12.',
    );
  }
}

/** The pinned PCRs in index order. */
export function pinnedPcrs(measurements: PcrMeasurements): PcrValue[] {
  const entries: Array<[number, string | undefined]> = [
    [4, measurements.pcr4],
    [7, measurements.pcr7],
    [12, measurements.pcr12],
  ];
  return entries.filter((e): e is [number, string] => e[1] !== undefined).map(([index, value]) => ({ index, value }));
}

/**
 * The tags an attestable image's measurements are published under, on the AMI itself: written by the image's
 * publish script from its build's `pcr_measurements.json`, read back at deploy time and by the CLI. This is the one
 * definition of the contract; every reader and writer uses these keys.
 *
 * PCR values are SHA-384 hex. `measurementsSha256` is the SHA-256 (hex) of the `pcr_measurements.json` file the
 * values were copied from, so a reviewer can check the tags against the build's artifact.
 */
export const MEASUREMENT_TAGS = {
  pcr4: 'sealed-inference:pcr4',
  pcr7: 'sealed-inference:pcr7',
  pcr12: 'sealed-inference:pcr12',
  recipeVersion: 'sealed-inference:recipe-version',
  measurementsSha256: 'sealed-inference:measurements-sha256',
} as const;
