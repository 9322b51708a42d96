import { PcrValue, pinnedPcrs } from '../shared/measurements';
import { checkExpectedImages, describePcrs, ExpectedImage, expectedImageName } from './attestation-expectations';

/**
 * Auditing a live KMS key policy (as `GetKeyPolicy` returns it): is the key still sealed to exactly the expected
 * images? Runtime code: no AWS SDK or CDK dependency.
 *
 * Every Allow statement whose actions (or NotAction) include `kms:Decrypt` or `kms:ReEncryptFrom` must be gated by
 * `StringEquals` or `StringEqualsIgnoreCase` conditions on `kms:RecipientAttestation:NitroTPMPCR<N>`; the images
 * each gated statement admits (the combinations of its values: several values for one key are OR-ed) must be
 * expected images, and every expected image must be admitted. An Allow is taken to apply to the key whatever its
 * `Resource`, erring towards a finding; a Deny counts only when it surely covers the key (see {@link KeyPolicyAuditOptions}).
 */

/** Kinds of {@link KeyPolicyFinding}. */
export enum KeyPolicyFindingKind {
  /** An Allow of decryption that no NitroTPM PCR condition gates: any caller it names decrypts anywhere. */
  UNGATED_DECRYPT = 'ungated-decrypt',
  /** A gated statement admits PCR values that are no expected image, or fewer PCRs than an expected image pins. */
  EXTRA_IMAGE = 'extra-image',
  /** An expected image that no statement admits: its instances cannot unseal. */
  MISSING_IMAGE = 'missing-image',
  /** A statement lists several values for a PCR, so it admits their combinations: boot chains nobody measured. */
  CROSS_COMBINATION = 'cross-combination',
  /**
   * An Allow of `kms:CreateGrant` while no Deny of it to every principal, without condition, covers the key: a grant
   * bypasses the policy's conditions.
   */
  GRANT_PATH = 'grant-path',
  /** An Allow of decryption to any principal (`*`): whoever runs an admitted image in any account decrypts. */
  ANY_PRINCIPAL = 'any-principal',
}

/** One way the key is not sealed as expected. */
export interface KeyPolicyFinding {
  readonly kind: KeyPolicyFindingKind;
  /** The statement's Sid, or its position `#1`, `#2`, ... */
  readonly statement?: string;
  readonly message: string;
}

/** The PCR values one gated statement admits. */
export interface AdmittedImages {
  readonly statement: string;
  readonly principals: string;
  /** How many combinations of PCR values the statement admits: the product of its value counts. */
  readonly combinations: number;
  /** The combinations, one entry each; empty when there are more than {@link MAX_LISTED_COMBINATIONS}. */
  readonly images: PcrValue[][];
}

/** Options of {@link auditKeyPolicy}. */
export interface KeyPolicyAuditOptions {
  /**
   * The ARN of the audited key. A Deny closes grants only if it covers the key: no `NotResource`, and a `Resource`
   * that is absent, `*` or this ARN.
   *
   * @default - unknown: only a Deny whose `Resource` is absent or `*` covers the key
   */
  readonly keyArn?: string;
}

/**
 * The most combinations of one statement that are enumerated and reported one by one; beyond, they are only counted:
 * a 32 KB policy holds some 300 PCR values, whose combinations could number billions.
 */
export const MAX_LISTED_COMBINATIONS = 16;

/** The outcome of {@link auditKeyPolicy}. */
export interface KeyPolicyAudit {
  /** True when there is no finding: the key decrypts only for the expected images. */
  readonly sealed: boolean;
  readonly findings: KeyPolicyFinding[];
  /** What each gated statement admits. */
  readonly admitted: AdmittedImages[];
}

/** A key policy that is not a policy document. */
export class MalformedKeyPolicyError extends Error {
  constructor(message: string) {
    super(`The key policy is malformed: ${message}`);
    this.name = 'MalformedKeyPolicyError';
  }
}

type Statement = Record<string, unknown>;

const DECRYPT = 'kms:Decrypt';
const REENCRYPT_FROM = 'kms:ReEncryptFrom';
const CREATE_GRANT = 'kms:CreateGrant';
/** Operators that require the key to be present and equal to a listed value. `…IfExists` and `ForAllValues:` pass when it is absent. */
const GATING_OPERATORS: Record<string, 'exact' | 'ignore-case'> = {
  StringEquals: 'exact',
  StringEqualsIgnoreCase: 'ignore-case',
};
/** NitroTPM has PCRs 0 to 23; `PCR04` or `PCR24` is no condition key KMS sets, so it gates nothing. */
const PCR_CONDITION_KEY = /^kms:RecipientAttestation:NitroTPMPCR([0-9]|1[0-9]|2[0-3])$/i;

/**
 * Audits `policy` (the JSON text `GetKeyPolicy` returns, or its parsed object) against the expected images.
 *
 * @throws MalformedKeyPolicyError when the policy has no statement list or a statement without Effect
 * @throws InvalidMeasurementError when an expected image does not pin an image ({@link checkExpectedImages})
 */
export function auditKeyPolicy(
  policy: string | object,
  expectedImages: readonly ExpectedImage[],
  options: KeyPolicyAuditOptions = {},
): KeyPolicyAudit {
  checkExpectedImages(expectedImages);
  const statements = parseStatements(policy);
  const findings: KeyPolicyFinding[] = [];
  const admitted: AdmittedImages[] = [];
  const gatedPins: Array<Map<number, string[]>> = [];
  const grantsDenied = statements.some(
    (s) => s.Effect === 'Deny' && s.Condition === undefined && isAnyPrincipal(s) && allowsAction(s, CREATE_GRANT)
      && coversKey(s, options.keyArn),
  );

  statements.forEach((s, i) => {
    if (s.Effect !== 'Allow') return;
    const statement = typeof s.Sid === 'string' && s.Sid !== '' ? s.Sid : `#${i + 1}`;
    const decrypts = allowsAction(s, DECRYPT);
    const reencrypts = allowsAction(s, REENCRYPT_FROM);
    if (allowsAction(s, CREATE_GRANT) && !grantsDenied) {
      findings.push({
        kind: KeyPolicyFindingKind.GRANT_PATH,
        statement,
        message: `${statement} allows ${CREATE_GRANT} to ${principals(s)}, and no Deny of it to every principal, without condition, covers the key: a grant decrypts without the policy's conditions`,
      });
    }
    if (!decrypts && !reencrypts) return;
    const action = decrypts ? DECRYPT : REENCRYPT_FROM;
    if (isAnyPrincipal(s) || s.NotPrincipal !== undefined) {
      findings.push({
        kind: KeyPolicyFindingKind.ANY_PRINCIPAL,
        statement,
        message: `${statement} allows ${action} to any principal: whoever runs an admitted image, in any account, decrypts`,
      });
    }
    const pins = pcrPins(s);
    if (pins.size === 0) {
      findings.push({
        kind: KeyPolicyFindingKind.UNGATED_DECRYPT,
        statement,
        message: `${statement} allows ${action} to ${principals(s)} without a StringEquals(IgnoreCase) condition on kms:RecipientAttestation:NitroTPMPCR<N>`,
      });
      return;
    }
    // ReEncrypt cannot carry an attestation document, so a gated ReEncryptFrom admits nothing.
    if (!decrypts) return;

    const several = [...pins].filter(([, values]) => values.length > 1);
    if (several.length > 0) {
      findings.push({
        kind: KeyPolicyFindingKind.CROSS_COMBINATION,
        statement,
        message: `${statement} lists ${several.map(([index, values]) => `${values.length} values for PCR${index}`).join(' and ')}, which are OR-ed: it admits every combination; write one statement per image`,
      });
    }
    const count = [...pins.values()].reduce((product, values) => product * values.length, 1);
    const listed = count <= MAX_LISTED_COMBINATIONS;
    const images = listed ? combinations(pins) : [];
    admitted.push({ statement, principals: principals(s), combinations: count, images });
    gatedPins.push(pins);
    if (listed) {
      for (const image of images) {
        if (!expectedImages.some((expected) => admits(image, expected))) {
          findings.push({
            kind: KeyPolicyFindingKind.EXTRA_IMAGE,
            statement,
            message: `${statement} admits ${describePcrs(image)}, which is no expected image`,
          });
        }
      }
      return;
    }
    const extra = countUnexpectedCombinations(pins, expectedImages);
    if (extra > 0) {
      findings.push({
        kind: KeyPolicyFindingKind.EXTRA_IMAGE,
        statement,
        message: `${statement} admits ${count} combinations of PCR values, too many to list; ${extra} of them are no expected image`,
      });
    }
  });

  expectedImages.forEach((expected, i) => {
    if (!gatedPins.some((pins) => pinsAdmit(pins, expected))) {
      findings.push({
        kind: KeyPolicyFindingKind.MISSING_IMAGE,
        message: `no statement admits ${expectedImageName(expected, i)} (${describePcrs(pinnedPcrs(expected))})`,
      });
    }
  });
  return { sealed: findings.length === 0, findings, admitted };
}

function parseStatements(policy: string | object): Statement[] {
  let document: unknown = policy;
  if (typeof policy === 'string') {
    try {
      document = JSON.parse(policy);
    } catch (error) {
      throw new MalformedKeyPolicyError(`not JSON (${(error as Error).message})`);
    }
  }
  const raw = (document as { Statement?: unknown } | null)?.Statement;
  const statements = Array.isArray(raw) ? raw : raw === undefined ? undefined : [raw];
  if (statements === undefined) throw new MalformedKeyPolicyError('it has no Statement');
  statements.forEach((s, i) => {
    if (typeof s !== 'object' || s === null || (s.Effect !== 'Allow' && s.Effect !== 'Deny')) {
      throw new MalformedKeyPolicyError(`statement #${i + 1} has no Effect Allow or Deny`);
    }
  });
  return statements as Statement[];
}

function asList(value: unknown): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}

/** IAM action matching: case-insensitive, `*` any run of characters, `?` one character. */
function actionMatches(pattern: string, action: string): boolean {
  const regex = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${regex}$`, 'i').test(action);
}

function allowsAction(s: Statement, action: string): boolean {
  if (s.NotAction !== undefined) return !asList(s.NotAction).some((p) => actionMatches(p, action));
  return asList(s.Action).some((p) => actionMatches(p, action));
}

/** Whether a Deny surely applies to the key: no `NotResource`, and `Resource` absent, `*` or the key's ARN. */
function coversKey(s: Statement, keyArn: string | undefined): boolean {
  if (s.NotResource !== undefined) return false;
  return s.Resource === undefined || asList(s.Resource).some((resource) => resource === '*' || resource === keyArn);
}

/** Principal `*` or `{ "AWS": "*" }`: everyone. */
function isAnyPrincipal(s: Statement): boolean {
  if (s.Principal === '*') return true;
  const aws = (s.Principal as Record<string, unknown> | undefined)?.AWS;
  return asList(aws).includes('*');
}

function principals(s: Statement): string {
  if (s.NotPrincipal !== undefined) return `every principal but ${JSON.stringify(s.NotPrincipal)}`;
  if (typeof s.Principal === 'string') return s.Principal;
  const values = Object.values((s.Principal ?? {}) as Record<string, unknown>).flatMap(asList);
  return values.length === 0 ? '(no principal)' : values.join(', ');
}

/**
 * The values a statement's gating conditions admit for each PCR, lower case. Two gating operators on one PCR are
 * AND-ed; `StringEquals` admits only lower-case values, as KMS reports PCRs in lower case.
 */
function pcrPins(s: Statement): Map<number, string[]> {
  const pins = new Map<number, string[]>();
  const condition = (s.Condition ?? {}) as Record<string, Record<string, unknown>>;
  for (const [operator, block] of Object.entries(condition)) {
    const mode = GATING_OPERATORS[operator];
    if (mode === undefined || typeof block !== 'object' || block === null) continue;
    for (const [key, value] of Object.entries(block)) {
      const index = PCR_CONDITION_KEY.exec(key)?.[1];
      if (index === undefined) continue;
      const values = asList(value)
        .filter((v) => mode === 'ignore-case' || v === v.toLowerCase())
        .map((v) => v.toLowerCase());
      const previous = pins.get(Number(index));
      pins.set(Number(index), previous === undefined ? [...new Set(values)] : previous.filter((v) => values.includes(v)));
    }
  }
  return pins;
}

function combinations(pins: Map<number, string[]>): PcrValue[][] {
  let result: PcrValue[][] = [[]];
  for (const [index, values] of [...pins].sort(([a], [b]) => a - b)) {
    result = result.flatMap((partial) => values.map((value) => [...partial, { index, value }]));
  }
  return result;
}

/**
 * How many of the combinations `pins` admits are no expected image, without enumerating them: at each PCR, the values
 * no expected image pins there are interchangeable, so they are enumerated as one class weighing their number. The
 * classes number at most (expected images + 1) for each of PCR4, PCR7 and PCR12, and one for every other PCR.
 */
function countUnexpectedCombinations(pins: Map<number, string[]>, expectedImages: readonly ExpectedImage[]): number {
  type Class = { value?: string; weight: number };
  let partials: Array<{ image: PcrValue[]; weight: number }> = [{ image: [], weight: 1 }];
  for (const [index, values] of pins) {
    const pinnedHere = new Set(expectedImages.flatMap((expected) =>
      pinnedPcrs(expected).filter((pin) => pin.index === index).map((pin) => pin.value.toLowerCase())));
    const named: Class[] = values.filter((value) => pinnedHere.has(value)).map((value) => ({ value, weight: 1 }));
    const others = values.length - named.length;
    const classes = others > 0 ? [...named, { weight: others }] : named;
    partials = partials.flatMap(({ image, weight }) => classes.map((c) => ({
      image: c.value === undefined ? image : [...image, { index, value: c.value }],
      weight: weight * c.weight,
    })));
  }
  return partials
    .filter(({ image }) => !expectedImages.some((expected) => admits(image, expected)))
    .reduce((sum, { weight }) => sum + weight, 0);
}

/** Whether a statement with these pins admits `expected`: some combination of its values pins all `expected` pins. */
function pinsAdmit(pins: Map<number, string[]>, expected: ExpectedImage): boolean {
  return pinnedPcrs(expected).every(({ index, value }) => pins.get(index)?.includes(value.toLowerCase()) === true);
}

/** Whether admitted PCR values pin at least everything `expected` pins, with its values. */
function admits(image: PcrValue[], expected: ExpectedImage): boolean {
  return pinnedPcrs(expected).every(({ index, value }) =>
    image.some((pin) => pin.index === index && pin.value === value.toLowerCase()),
  );
}
