/**
 * Which instance types offer NitroTPM 2.0, as far as this library knows. The authoritative answer is
 * `aws ec2 describe-instance-types --filters Name=nitro-tpm-support,Values=supported`, which needs credentials;
 * this table lets synth reject the types that can never attest and flag the ones it does not know.
 */

/** What is known about an instance type's NitroTPM support. */
export enum NitroTpmSupport {
  SUPPORTED = 'supported',
  UNSUPPORTED = 'unsupported',
  UNKNOWN = 'unknown',
}

/** Nitro-based x86 families with NitroTPM 2.0 (virtualized sizes). */
const SUPPORTED_FAMILIES = new Set([
  'c5', 'c5a', 'c5ad', 'c5d', 'c5n', 'c6a', 'c6i', 'c6id', 'c6in', 'c7a', 'c7i', 'c7i-flex',
  'm5', 'm5a', 'm5ad', 'm5d', 'm5dn', 'm5n', 'm5zn', 'm6a', 'm6i', 'm6id', 'm6idn', 'm6in', 'm7a', 'm7i', 'm7i-flex',
  'r5', 'r5a', 'r5ad', 'r5b', 'r5d', 'r5dn', 'r5n', 'r6a', 'r6i', 'r6id', 'r6idn', 'r6in', 'r7a', 'r7i', 'r7iz',
  't3', 't3a', 'g4dn', 'g5', 'g6', 'g6e', 'p4d', 'p5',
]);

/** Xen-based and other pre-Nitro families: no NitroTPM. */
const UNSUPPORTED_FAMILIES = new Set([
  'c1', 'c3', 'c4', 'cc2', 'cr1', 'd2', 'f1', 'g2', 'g3', 'g3s', 'h1', 'hs1', 'i2', 'i3',
  'm1', 'm2', 'm3', 'm4', 'p2', 'p3', 'r3', 'r4', 't1', 't2', 'x1', 'x1e',
]);

/** Looks up `instanceType` (e.g. `m7i.2xlarge`). Bare-metal sizes have no NitroTPM. */
export function nitroTpmSupport(instanceType: string): NitroTpmSupport {
  const [family, size] = instanceType.split('.');
  if (size === 'metal' || size?.startsWith('metal-') || UNSUPPORTED_FAMILIES.has(family)) {
    return NitroTpmSupport.UNSUPPORTED;
  }
  return SUPPORTED_FAMILIES.has(family) ? NitroTpmSupport.SUPPORTED : NitroTpmSupport.UNKNOWN;
}
