import * as fs from 'fs';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { addComplianceChecks } from '../bin/compliance';
import { ConsumerStack } from '../bin/consumer-stack';
import { ModelOwnerStack } from '../bin/model-owner-stack';
import { sampleSettingsFromContext } from '../bin/sample-settings';
import cdkJson from '../cdk.json';
import { SealedInferenceFleet } from '../lib';
import { PACKS_CHECKING } from '../lib/private/compliance-acknowledgment';
import { IMAGE_A } from './fixtures';

/**
 * The rules each cdk-nag pack checks, read from the packs' sources: each pack names itself (`packName`) and applies its
 * rules as `rule: <module>.<RuleName>`, with `ruleSuffixOverride` when the rule id uses another name (AwsSolutions).
 */
function rulesByPack(): Map<string, Set<string>> {
  const packs = path.join(path.dirname(require.resolve('cdk-nag')), 'packs');
  const rules = new Map<string, Set<string>>();
  for (const file of fs.readdirSync(packs).filter((f) => f.endsWith('.js'))) {
    const source = fs.readFileSync(path.join(packs, file), 'utf8');
    const packName = /this\.packName = '([^']+)'/.exec(source)?.[1];
    if (!packName) throw new Error(`${file} names no pack`);
    const applied = source.split('this.applyRule(').slice(1).map((call) => {
      const suffix = /ruleSuffixOverride: '([^']+)'/.exec(call)?.[1] ?? /rule: \w+\.(\w+)/.exec(call)?.[1];
      if (!suffix) throw new Error(`${file}: a rule without a name`);
      return suffix;
    });
    rules.set(packName, new Set(applied));
  }
  return rules;
}

const RULES = rulesByPack();
const COMPLIANCE_PACKS = ['NIST.800.53.R5', 'HIPAA.Security', 'PCI.DSS.321'];

/** Every acknowledgment id written into a template's metadata. */
function acknowledgedIds(template: Template): string[] {
  type Acknowledged = { Metadata?: { cdk_nag?: { rules_to_suppress: Array<{ id: string }> } } };
  const resources = Object.values(template.toJSON().Resources) as Acknowledged[];
  return [...new Set(resources.flatMap((r) => r.Metadata?.cdk_nag?.rules_to_suppress ?? []).map((rule) => rule.id))];
}

/**
 * The ids that name no rule their pack checks. A cdk-nag id is `<pack>-<rule>`, with the finding in brackets for
 * rules that report several; ids of synth warnings and CloudFormation's validation carry a `:` namespace instead.
 */
function unknownRules(ids: string[]): string[] {
  return ids.filter((id) => {
    const [pack, rule] = [...RULES.keys()]
      .filter((name) => id.startsWith(`${name}-`))
      .map((name) => [name, id.slice(name.length + 1).replace(/\[.*\]$/, '')])[0] ?? [];
    return pack === undefined ? !id.includes(':') : !RULES.get(pack)!.has(rule);
  });
}

test("reads every pack's rules from cdk-nag", () => {
  expect([...RULES.keys()]).toEqual(expect.arrayContaining(['AwsSolutions', ...COMPLIANCE_PACKS]));
  expect(RULES.get('AwsSolutions')).toContain('IAM5');
  expect(RULES.get('PCI.DSS.321')).toContain('IAMNoInlinePolicy');
  expect(RULES.get('PCI.DSS.321')).not.toContain('LambdaDLQ');
  expect(RULES.get('HIPAA.Security')).toContain('LambdaDLQ');
});

test('acknowledges each rule in exactly the compliance packs that check it', () => {
  for (const [rule, packs] of Object.entries(PACKS_CHECKING)) {
    expect({ rule, packs: [...packs].sort() }).toEqual({ rule, packs: COMPLIANCE_PACKS.filter((p) => RULES.get(p)!.has(rule)).sort() });
  }
});

test('tells a misnamed or stale acknowledgment from a real one', () => {
  expect(unknownRules([
    'AwsSolutions-IAM5[Resource::*]',
    'PCI.DSS.321-IAMNoInlinePolicy',
    'CloudFormation-Validate::W9010',
    'sealed-inference:no-model-owner',
  ])).toEqual([]);
  expect(unknownRules(['PCI.DSS.321-LambdaDLQ', 'HIPAA.Security-NoSuchRule', 'PCI.DSS.3.2.1-IAMNoInlinePolicy'])).toEqual([
    'PCI.DSS.321-LambdaDLQ',
    'HIPAA.Security-NoSuchRule',
    'PCI.DSS.3.2.1-IAMNoInlinePolicy',
  ]);
});

describe.each([
  ['the sample app', (app: App): Stack[] => {
    const settings = sampleSettingsFromContext(app);
    return [new ModelOwnerStack(app, 'SealedInferenceModelOwner', settings), new ConsumerStack(app, 'SealedInferenceConsumer', settings)];
  }],
  ['a fleet', (app: App): Stack[] => {
    const stack = new Stack(app, 'Fleet');
    new SealedInferenceFleet(stack, 'Inference', { image: IMAGE_A, modelName: 'llama', servicePeers: [ec2.Peer.ipv4('10.9.0.0/16')] });
    return [stack];
  }],
])('%s', (_, build) => {
  test('passes all four packs, acknowledging only rules that their pack checks', () => {
    const app = new App({ context: cdkJson.context });
    const stacks = build(app);
    addComplianceChecks(app);
    expect(() => app.synth()).not.toThrow();
    const ids = stacks.flatMap((stack) => acknowledgedIds(Template.fromStack(stack)));
    expect(ids.filter((id) => /^(HIPAA\.Security|PCI\.DSS\.321)-/.test(id)).length).toBeGreaterThan(0);
    expect(unknownRules(ids)).toEqual([]);
  });
});
