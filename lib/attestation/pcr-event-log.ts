import { createHash } from 'node:crypto';

/** The PCR bank NitroTPM attestation documents report. */
export const PCR_DIGEST_ALGORITHM = 'sha384';

/** The highest PCR index of a TPM 2.0 PC-client bank, as NitroTPM has (PCRs 0..23). */
export const HIGHEST_PCR = 23;

/** The PCR the appliance extends with the SHA-384 of the model it serves. */
export const MODEL_PCR = 15;

/** One extend of a PCR, recorded so that a verifier can replay the PCR's value and see what it means. */
export interface PcrEvent {
  readonly pcr: number;
  readonly algorithm: typeof PCR_DIGEST_ALGORITHM;
  /** Lowercase hex SHA-384 the PCR was extended with. */
  readonly digest: string;
  /** What the digest is, e.g. `model llama3 sha256:<hex> (measurement record)`. */
  readonly description: string;
}

/** The longest event description: the appliance refuses to record a longer one, and verifiers to accept it. */
export const MAX_EVENT_DESCRIPTION_LENGTH = 1024;

/** A SHA-384 digest as PCR events carry it: 96 lowercase hex characters. */
export const SHA384_LOWER_HEX = /^[0-9a-f]{96}$/;

/** Extends a SHA-384 PCR value: new = SHA-384(old || digest). */
export function extendPcr(value: Buffer, digest: Buffer): Buffer {
  return createHash('sha384').update(value).update(digest).digest();
}

/** The value of PCR `pcr` after `events`, starting from its reset value (48 zero bytes), as lowercase hex. */
export function replayPcrEvents(events: readonly PcrEvent[], pcr: number): string {
  let value: Buffer = Buffer.alloc(48);
  for (const event of events) {
    if (event.pcr !== pcr) continue;
    if (event.algorithm !== PCR_DIGEST_ALGORITHM || !SHA384_LOWER_HEX.test(event.digest)) {
      throw new Error(`PCR event ${JSON.stringify(event.description)} is not a lowercase hex SHA-384 digest`);
    }
    value = extendPcr(value, Buffer.from(event.digest, 'hex'));
  }
  return value.toString('hex');
}
