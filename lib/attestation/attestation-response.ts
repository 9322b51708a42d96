import { isJsonObject } from '../shared/json-object';
import { HIGHEST_PCR, MAX_EVENT_DESCRIPTION_LENGTH, PcrEvent } from './pcr-event-log';

/**
 * The answer of the appliance's `GET /api/attestation?nonce=<hex>`: `{ "document": "<base64 COSE_Sign1>",
 * "eventLog": PcrEvent[] }`. Parsing checks only the shape; the document's signature, and whether the log replays to
 * the document's PCRs, are for `verifyAttestationDocument` and `compareAttestation`.
 */

/** A parsed attestation response. */
export interface AttestationResponse {
  /** The attestation document's bytes (COSE_Sign1). */
  readonly document: Buffer;
  /** The PCR extends the service reports, oldest first. */
  readonly eventLog: PcrEvent[];
}

/** A response that is not shaped like the appliance's attestation response. */
export class MalformedAttestationResponseError extends Error {
  constructor(message: string) {
    super(`The attestation response is malformed: ${message}`);
    this.name = 'MalformedAttestationResponseError';
  }
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** C0 and C1 control characters and DEL (Unicode category Cc): escape sequences and line breaks on a terminal. */
const CONTROL_CHARACTERS = /\p{Cc}/gu;

/**
 * Text from the service (event descriptions, error bodies: nothing signs them) made safe to print: each control
 * character is shown as `\xNN`, so that escape sequences and line breaks cannot forge lines of a report, and the text
 * is cut after `maxLength` characters.
 */
export function printableText(text: string, maxLength: number): string {
  const escaped = text.replace(CONTROL_CHARACTERS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return escaped.length <= maxLength ? escaped : `${escaped.slice(0, maxLength)}… (${escaped.length - maxLength} more characters)`;
}

/** Checks the shape of a parsed JSON attestation response and decodes its document. */
export function parseAttestationResponse(body: unknown): AttestationResponse {
  const fail = (message: string): never => {
    throw new MalformedAttestationResponseError(message);
  };
  if (!isJsonObject(body)) return fail('expected a JSON object');
  const { document, eventLog } = body;
  if (typeof document !== 'string' || document.length % 4 !== 0 || !BASE64.test(document)) {
    fail('"document" must be the base64 of the attestation document');
  }
  if (!Array.isArray(eventLog)) fail('"eventLog" must be an array of PCR events');
  const events = (eventLog as unknown[]).map((event, i): PcrEvent => {
    const e = (typeof event === 'object' && event !== null ? event : {}) as Record<string, unknown>;
    if (!Number.isInteger(e.pcr) || (e.pcr as number) < 0 || (e.pcr as number) > HIGHEST_PCR) {
      fail(`eventLog[${i}].pcr must be a PCR index 0 to ${HIGHEST_PCR}`);
    }
    if (e.algorithm !== 'sha384') fail(`eventLog[${i}].algorithm must be "sha384"`);
    if (typeof e.digest !== 'string') fail(`eventLog[${i}].digest must be a string`);
    if (typeof e.description !== 'string' || e.description.length > MAX_EVENT_DESCRIPTION_LENGTH) {
      fail(`eventLog[${i}].description must be a string of at most ${MAX_EVENT_DESCRIPTION_LENGTH} characters`);
    }
    return { pcr: e.pcr as number, algorithm: 'sha384', digest: e.digest as string, description: e.description as string };
  });
  return { document: Buffer.from(document as string, 'base64'), eventLog: events };
}
