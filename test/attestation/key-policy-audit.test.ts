import { auditKeyPolicy, ExpectedImage, KeyPolicyFindingKind, MalformedKeyPolicyError } from '../../lib/attestation';
import { InvalidMeasurementError } from '../../lib/shared/measurements';
import { POLICY_ACCOUNT, synthesizedKeyPolicy } from './synthesized-key-policy';

const hex = (byte: string) => byte.repeat(48);
const IMAGE_A = { imageId: 'ami-0aaaaaaaaaaaaaaaa', pcr4: hex('a4'), pcr12: hex('00') };
const IMAGE_B = { imageId: 'ami-0bbbbbbbbbbbbbbbb', pcr4: hex('b4'), pcr12: hex('00') };
const IMAGE_C: ExpectedImage = { imageId: 'ami-0cccccccccccccccc', pcr7: hex('57') };
const WORKLOAD = `arn:aws:iam::${POLICY_ACCOUNT}:role/inference`;

type Statement = Record<string, unknown>;
interface Policy { Version: string; Statement: Statement[] }

let sealedToAB: string;
beforeAll(() => {
  sealedToAB = synthesizedKeyPolicy([IMAGE_A, IMAGE_B]);
});

/** The synthesized policy with `change` applied to its statements. */
function edited(change: (statements: Statement[]) => Statement[]): Policy {
  const policy = JSON.parse(sealedToAB) as Policy;
  return { ...policy, Statement: change(policy.Statement) };
}

const gate = (pcrs: Record<string, string | string[]>, operator = 'StringEqualsIgnoreCase') => ({
  [operator]: Object.fromEntries(Object.entries(pcrs).map(([pcr, v]) => [`kms:RecipientAttestation:NitroTPM${pcr}`, v])),
});
const allow = (extra: Statement): Statement => ({ Effect: 'Allow', Principal: { AWS: WORKLOAD }, Resource: '*', ...extra });
const kinds = (policy: string | object, images: ExpectedImage[] = [IMAGE_A, IMAGE_B]) =>
  auditKeyPolicy(policy, images).findings.map((f) => [f.kind, f.statement]);

describe("this project's own key policy", () => {
  test('is sealed to exactly its images, one statement each', () => {
    const audit = auditKeyPolicy(sealedToAB, [IMAGE_A, IMAGE_B]);
    expect(audit).toEqual({
      sealed: true,
      findings: [],
      admitted: [
        { statement: 'UnsealOnlyOnAttestedImage1', principals: WORKLOAD, combinations: 1, images: [[{ index: 4, value: hex('a4') }, { index: 12, value: hex('00') }]] },
        { statement: 'UnsealOnlyOnAttestedImage2', principals: WORKLOAD, combinations: 1, images: [[{ index: 4, value: hex('b4') }, { index: 12, value: hex('00') }]] },
      ],
    });
  });

  test('against fewer expected images, the other image is an extra image', () => {
    const audit = auditKeyPolicy(sealedToAB, [IMAGE_A]);
    expect(audit.sealed).toBe(false);
    expect(audit.findings).toEqual([{
      kind: KeyPolicyFindingKind.EXTRA_IMAGE,
      statement: 'UnsealOnlyOnAttestedImage2',
      message: `UnsealOnlyOnAttestedImage2 admits PCR4=${hex('b4')} PCR12=${hex('00')}, which is no expected image`,
    }]);
  });

  test('against more expected images, the one it lacks is missing', () => {
    expect(auditKeyPolicy(sealedToAB, [IMAGE_A, IMAGE_B, IMAGE_C]).findings).toEqual([{
      kind: KeyPolicyFindingKind.MISSING_IMAGE,
      message: `no statement admits ami-0cccccccccccccccc (PCR7=${hex('57')})`,
    }]);
  });
});

describe('ungated decryption', () => {
  test.each([
    ['the account-root kms:* statement', allow({ Principal: { AWS: `arn:aws:iam::${POLICY_ACCOUNT}:root` }, Action: 'kms:*' })],
    ['kms:Decrypt*', allow({ Action: ['kms:Encrypt', 'kms:Decrypt*'] })],
    ['*', allow({ Action: '*' })],
    ['a ? wildcard, in another case', allow({ Action: 'KMS:de?rypt' })],
    ['NotAction that leaves Decrypt', allow({ NotAction: ['kms:Encrypt', 'kms:PutKeyPolicy'] })],
    ['kms:ReEncryptFrom', allow({ Action: 'kms:ReEncrypt*' })],
    ['a StringEqualsIfExists condition, which an absent key passes', allow({ Action: 'kms:Decrypt', Condition: gate({ PCR4: hex('a4'), PCR12: hex('00') }, 'StringEqualsIfExists') })],
    ['a ForAllValues condition, which an absent key passes', allow({ Action: 'kms:Decrypt', Condition: gate({ PCR4: hex('a4') }, 'ForAllValues:StringEquals') })],
    ['Nitro Enclaves PCR keys, not NitroTPM', allow({ Action: 'kms:Decrypt', Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:PCR4': hex('a4') } } })],
    ['only a presence check', allow({ Action: 'kms:Decrypt', Condition: { Null: { 'kms:RecipientAttestation:NitroTPMPCR4': 'false' } } })],
    ['PCR04 and PCR012, which are no condition keys', allow({ Action: 'kms:Decrypt', Condition: gate({ PCR04: hex('a4'), PCR012: hex('00') }) })],
    ['PCR24 and PCR99, which NitroTPM does not have', allow({ Action: 'kms:Decrypt', Condition: gate({ PCR24: hex('a4'), PCR99: hex('00') }) })],
  ])('%s is an ungated decrypt', (_name, statement) => {
    const policy = edited((s) => [...s, { Sid: 'Widened', ...statement }]);
    expect(kinds(policy)).toEqual([[KeyPolicyFindingKind.UNGATED_DECRYPT, 'Widened']]);
  });

  test('the finding names the statement, its principal and action; a statement without Sid is named by position', () => {
    const policy = edited((s) => [...s, allow({ Action: 'kms:Decrypt' })]);
    const [finding] = auditKeyPolicy(policy, [IMAGE_A, IMAGE_B]).findings;
    expect(finding.message).toBe(
      `#${policy.Statement.length} allows kms:Decrypt to ${WORKLOAD} without a StringEquals(IgnoreCase) condition on kms:RecipientAttestation:NitroTPMPCR<N>`,
    );
  });

  test('a NotAction that excludes Decrypt and ReEncryptFrom, and other actions, are no decrypt', () => {
    const policy = edited((s) => [...s,
      allow({ NotAction: ['kms:Decrypt', 'kms:ReEncrypt*', 'kms:CreateGrant'] }), allow({ Action: ['kms:Encrypt', 'kms:DescribeKey'] })]);
    expect(kinds(policy)).toEqual([]);
  });
});

describe('what gated statements admit', () => {
  test('two values per PCR in one statement admit the cross-combinations', () => {
    const policy = edited((s) => [
      ...s.filter((st) => !String(st.Sid).startsWith('UnsealOnly')),
      allow({ Sid: 'BothImages', Action: 'kms:Decrypt', Condition: gate({ PCR4: [hex('a4'), hex('b4')], PCR12: [hex('00'), hex('0c')] }) }),
    ]);
    const audit = auditKeyPolicy(policy, [IMAGE_A, IMAGE_B]);
    expect(audit.findings.map((f) => f.kind)).toEqual([
      KeyPolicyFindingKind.CROSS_COMBINATION, KeyPolicyFindingKind.EXTRA_IMAGE, KeyPolicyFindingKind.EXTRA_IMAGE,
    ]);
    expect(audit.findings[0].message).toBe(
      'BothImages lists 2 values for PCR4 and 2 values for PCR12, which are OR-ed: it admits every combination; write one statement per image',
    );
    expect(audit.findings.slice(1).map((f) => f.message)).toEqual([
      `BothImages admits PCR4=${hex('a4')} PCR12=${hex('0c')}, which is no expected image`,
      `BothImages admits PCR4=${hex('b4')} PCR12=${hex('0c')}, which is no expected image`,
    ]);
    expect(audit.admitted[0].images).toHaveLength(4);
  });

  describe('many values: counted, not enumerated', () => {
    const values = (count: number, ...expected: string[]) =>
      [...expected, ...Array.from({ length: count - expected.length }, (_, i) => (i + 0x100).toString(16).padStart(96, 'f'))];
    const sealedBy = (statement: Statement) =>
      edited((s) => [...s.filter((st) => !String(st.Sid).startsWith('UnsealOnly')), allow({ Sid: 'Many', Action: 'kms:Decrypt', ...statement })]);

    test('20 combinations, 2 of them expected: one finding counts the 18 others; no expected image is missing', () => {
      const audit = auditKeyPolicy(sealedBy({ Condition: gate({ PCR4: values(5, hex('a4'), hex('b4')), PCR12: values(4, hex('00')) }) }),
        [IMAGE_A, IMAGE_B]);
      expect(audit.findings).toEqual([
        expect.objectContaining({ kind: KeyPolicyFindingKind.CROSS_COMBINATION, statement: 'Many' }),
        {
          kind: KeyPolicyFindingKind.EXTRA_IMAGE, statement: 'Many',
          message: 'Many admits 20 combinations of PCR values, too many to list; 18 of them are no expected image',
        },
      ]);
      expect(audit.admitted).toEqual([{ statement: 'Many', principals: WORKLOAD, combinations: 20, images: [] }]);
    });

    test('150 values for each of PCR4 and PCR12: two findings, not 22,500', () => {
      const audit = auditKeyPolicy(sealedBy({ Condition: gate({ PCR4: values(150, hex('a4'), hex('b4')), PCR12: values(150, hex('00')) }) }),
        [IMAGE_A, IMAGE_B]);
      expect(audit.findings.map((f) => f.kind)).toEqual([KeyPolicyFindingKind.CROSS_COMBINATION, KeyPolicyFindingKind.EXTRA_IMAGE]);
      expect(audit.findings[1].message).toBe('Many admits 22500 combinations of PCR values, too many to list; 22498 of them are no expected image');
    });

    test('50 values for each of six PCRs (15,625,000,000 combinations) are audited at once', () => {
      const pcrs = Object.fromEntries([0, 1, 2, 3, 4, 12].map((pcr) => [`PCR${pcr}`, values(50, ...(pcr === 4 ? [hex('a4')] : pcr === 12 ? [hex('00')] : []))]));
      const started = Date.now();
      const audit = auditKeyPolicy(sealedBy({ Condition: gate(pcrs) }), [IMAGE_A]);
      expect(Date.now() - started).toBeLessThan(1000);
      expect(audit.findings.map((f) => f.kind)).toEqual([KeyPolicyFindingKind.CROSS_COMBINATION, KeyPolicyFindingKind.EXTRA_IMAGE]);
      expect(audit.findings[1].message).toBe(
        `Many admits ${50 ** 6} combinations of PCR values, too many to list; ${50 ** 6 - 50 ** 4} of them are no expected image`);
    });

    test('combinations that all admit an expected image are no extra image, however many', () => {
      const audit = auditKeyPolicy(sealedBy({ Condition: gate({ PCR7: hex('57'), PCR4: values(20) }) }), [IMAGE_C]);
      expect(audit.findings.map((f) => f.kind)).toEqual([KeyPolicyFindingKind.CROSS_COMBINATION]);
    });
  });

  test('a statement pinning PCR4 alone admits any command line: an extra image, and the expected one is missing', () => {
    const policy = edited((s) => [
      ...s.filter((st) => st.Sid !== 'UnsealOnlyOnAttestedImage1'),
      allow({ Sid: 'Pcr4Only', Action: 'kms:Decrypt', Condition: gate({ PCR4: hex('A4') }) }),
    ]);
    expect(kinds(policy)).toEqual([
      [KeyPolicyFindingKind.EXTRA_IMAGE, 'Pcr4Only'], [KeyPolicyFindingKind.MISSING_IMAGE, undefined],
    ]);
  });

  test('a statement pinning more PCRs than the image still admits only that image', () => {
    const policy = edited((s) => s.map((st) => st.Sid === 'UnsealOnlyOnAttestedImage1'
      ? { ...st, Condition: { ...(st.Condition as object), ...gate({ PCR0: hex('0f'), PCR4: hex('a4'), PCR12: hex('00') }) } }
      : st));
    expect(kinds(policy)).toEqual([]);
  });

  test('StringEquals admits only lower-case values, which is how KMS reports PCRs', () => {
    const policy = edited((s) => s.map((st) => st.Sid === 'UnsealOnlyOnAttestedImage2'
      ? { ...st, Condition: gate({ PCR4: hex('B4'), PCR12: hex('00') }, 'StringEquals') }
      : st));
    expect(kinds(policy)).toEqual([[KeyPolicyFindingKind.MISSING_IMAGE, undefined]]);
  });

  test.each([
    ['Principal *', { Principal: '*' }],
    ['Principal AWS *', { Principal: { AWS: ['*'] } }],
    ['NotPrincipal', { Principal: undefined, NotPrincipal: { AWS: WORKLOAD } }],
  ])('a gated statement for any principal (%s) is reported: the image run in any account decrypts', (_name, principal) => {
    const policy = edited((s) => s.map((st) => st.Sid === 'UnsealOnlyOnAttestedImage1' ? { ...st, ...principal } : st));
    expect(kinds(policy)).toEqual([[KeyPolicyFindingKind.ANY_PRINCIPAL, 'UnsealOnlyOnAttestedImage1']]);
  });
});

describe('grants', () => {
  const createGrant = allow({ Sid: 'Grants', Principal: { AWS: `arn:aws:iam::${POLICY_ACCOUNT}:root` }, Action: 'kms:CreateGrant' });

  test('an Allow of CreateGrant is closed by the unconditional DenyGrants', () => {
    expect(kinds(edited((s) => [...s, createGrant]))).toEqual([]);
  });

  test('without DenyGrants, or with a conditional one, it is a grant path', () => {
    expect(kinds(edited((s) => [...s.filter((st) => st.Sid !== 'DenyGrants'), createGrant])))
      .toEqual([[KeyPolicyFindingKind.GRANT_PATH, 'Grants']]);
    const allButOne = edited((s) => [...s.map((st) => st.Sid === 'DenyGrants'
      ? { Sid: st.Sid, Effect: 'Deny', NotPrincipal: { AWS: WORKLOAD }, Action: st.Action, Resource: '*' } : st), createGrant]);
    expect(kinds(allButOne)).toEqual([[KeyPolicyFindingKind.GRANT_PATH, 'Grants']]);
    const conditional = edited((s) => [...s.map((st) => st.Sid === 'DenyGrants'
      ? { ...st, Condition: { Bool: { 'kms:GrantIsForAWSResource': 'false' } } } : st), createGrant]);
    expect(kinds(conditional)).toEqual([[KeyPolicyFindingKind.GRANT_PATH, 'Grants']]);
  });
});

describe('which Deny closes grants', () => {
  const KEY = `arn:aws:kms:eu-west-1:${POLICY_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
  const OTHER_KEY = `arn:aws:kms:eu-west-1:${POLICY_ACCOUNT}:key/ffffffff-12ab-34cd-56ef-1234567890ab`;
  const createGrant = allow({ Sid: 'Grants', Principal: { AWS: `arn:aws:iam::${POLICY_ACCOUNT}:root` }, Action: 'kms:CreateGrant' });
  /** The synthesized policy, its DenyGrants given `resource` instead of `Resource: "*"`, and an Allow of CreateGrant. */
  const withDenyGrants = (resource: Statement) => edited((s) => [...s.map((st) =>
    st.Sid === 'DenyGrants' ? { ...st, Resource: undefined, ...resource } : st), createGrant]);
  const grantKinds = (policy: object, keyArn?: string) => auditKeyPolicy(policy, [IMAGE_A, IMAGE_B], { keyArn }).findings.map((f) => f.kind);

  test.each([
    ['Resource "*"', { Resource: '*' }, undefined],
    ['no Resource', {}, undefined],
    ["Resource the key's ARN, when the audit knows it", { Resource: [KEY] }, KEY],
  ])('a Deny with %s closes them', (_name, resource, keyArn) => {
    expect(grantKinds(withDenyGrants(resource), keyArn)).toEqual([]);
  });

  test.each([
    ['NotResource "*", which covers nothing', { NotResource: '*' }, KEY],
    ['NotResource naming another key', { NotResource: OTHER_KEY }, KEY],
    ['Resource naming another key', { Resource: OTHER_KEY }, KEY],
    ['Resource naming a key, when the audit does not know which key it audits', { Resource: KEY }, undefined],
  ])('a Deny with %s does not', (_name, resource, keyArn) => {
    expect(grantKinds(withDenyGrants(resource), keyArn)).toEqual([KeyPolicyFindingKind.GRANT_PATH]);
  });
});

describe('malformed policies', () => {
  test.each([
    ['not JSON', '{', /The key policy is malformed: not JSON/],
    ['no statements', '{"Version":"2012-10-17"}', /The key policy is malformed: it has no Statement/],
    ['a statement without effect', '{"Statement":[{"Action":"kms:Decrypt"}]}', /statement #1 has no Effect Allow or Deny/],
  ])('%s', (_name, policy, message) => {
    expect(() => auditKeyPolicy(policy, [IMAGE_A])).toThrow(MalformedKeyPolicyError);
    expect(() => auditKeyPolicy(policy, [IMAGE_A])).toThrow(message);
  });

  test.each([
    ['pins nothing', {}, /expected image image 2 is not pinned: missing pcr4 and pcr12/],
    ['pins PCR4 alone', { pcr4: hex('b4') }, /expected image image 2 is not pinned: missing pcr12/],
  ])('an expected image that %s is refused, rather than admitting every statement', (_name, image, message) => {
    expect(() => auditKeyPolicy(sealedToAB, [IMAGE_A, image])).toThrow(InvalidMeasurementError);
    expect(() => auditKeyPolicy(sealedToAB, [IMAGE_A, image])).toThrow(message);
  });

  test('a single statement object is a statement list of one', () => {
    const statement = allow({ Sid: 'Only', Action: 'kms:Decrypt', Condition: gate({ PCR7: hex('57') }) });
    expect(auditKeyPolicy({ Statement: statement }, [IMAGE_C]).sealed).toBe(true);
  });
});
