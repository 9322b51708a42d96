/**
 * The tamper alarms' rules, matched against CloudTrail records as EventBridge delivers them
 * (test/fixtures/cloudtrail/). The records follow the shapes AWS documents:
 * - KMS PutKeyPolicy: https://docs.aws.amazon.com/kms/latest/developerguide/ct-putkeypolicy.html
 * - EC2 CreateTags, ModifyInstanceAttribute: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/using-cloudtrail.html
 * - CloudFormation UpdateStack: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cfn-api-logging-cloudtrail.html
 * - Auto Scaling UpdateAutoScalingGroup: https://docs.aws.amazon.com/autoscaling/ec2/userguide/logging-using-cloudtrail.html
 * - the EventBridge envelope: https://docs.aws.amazon.com/eventbridge/latest/ref/events-structure.html
 * Each rule is shown a record it must match and the same record changed so that it must not.
 */
import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as fs from 'fs';
import * as path from 'path';
import { AttestableImage, SealedInference, SealedInferenceFleet, TamperAlarms } from '../lib';
import { matchesPattern } from './event-pattern-matcher';
import { hex384, testStack } from './fixtures';

const KEY_ARN = 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const IMAGE_ID = 'ami-0123456789abcdef0';
const INSTANCE_ID = 'i-0123456789abcdef0';
const GROUP_NAME = 'Test-FleetInstancesASG-0123ABCD';
const STACK_ARN = 'arn:aws:cloudformation:us-east-1:111122223333:stack/Test/5b2b9b10-0000-11ee-8a50-0a0b0c0d0e0f';

/** The parts of a CloudTrail record the tests change. */
interface CloudTrailEvent {
  detail: {
    eventName: string;
    resources: Array<{ ARN: string }>;
    requestParameters: Record<string, unknown> & { resourcesSet: { items: Array<{ resourceId: string }> } };
  };
}

const record = (name: string) =>
  JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures/cloudtrail', `${name}.json`), 'utf8')) as CloudTrailEvent;

function alarms(props: Partial<ConstructorParameters<typeof TamperAlarms>[2]> = {}) {
  const stack = new Stack(undefined, 'Test');
  new TamperAlarms(stack, 'Alarms', {
    keyArn: KEY_ARN, imageIds: [IMAGE_ID], instanceId: INSTANCE_ID, autoScalingGroupName: GROUP_NAME, ...props,
  });
  const template = Template.fromStack(stack);
  // The stack's ARN as CloudFormation resolves AWS::StackId once the stack exists.
  const patterns = Object.values(template.findResources('AWS::Events::Rule')).map((r) =>
    JSON.parse(JSON.stringify(r.Properties.EventPattern).replace('{"Ref":"AWS::StackId"}', JSON.stringify(STACK_ARN))));
  return { stack, template, matches: (event: unknown) => patterns.filter((p) => matchesPattern(p, event)).length };
}

describe('the rules, against CloudTrail records', () => {
  const { matches } = alarms();

  test('a key policy change on the sealing key alarms; one on another key does not', () => {
    const event = record('kms-put-key-policy');
    expect(matches(event)).toBe(1);
    event.detail.resources[0].ARN = 'arn:aws:kms:us-east-1:111122223333:key/0000abcd-0000-0000-0000-000000000000';
    expect(matches(event)).toBe(0);
  });

  test('a tag written on an allowed image alarms; one on another resource does not', () => {
    const event = record('ec2-create-tags');
    expect(matches(event)).toBe(1);
    event.detail.requestParameters.resourcesSet.items[0].resourceId = 'ami-0fedcba9876543210';
    expect(matches(event)).toBe(0);
  });

  test("a change of the instance's user data alarms; a change of another attribute does not", () => {
    const event = record('ec2-modify-instance-attribute-user-data');
    expect(matches(event)).toBe(1);
    delete event.detail.requestParameters.userData;
    event.detail.requestParameters.disableApiTermination = { value: true };
    expect(matches(event)).toBe(0);
  });

  test('an update of this stack alarms; one of another stack does not', () => {
    const event = record('cloudformation-update-stack');
    expect(matches(event)).toBe(1);
    event.detail.requestParameters.stackName = STACK_ARN;
    expect(matches(event)).toBe(1);
    event.detail.requestParameters.stackName = 'SomeoneElses';
    expect(matches(event)).toBe(0);
  });

  test("a change of the fleet's group alarms; one of another group, or a scaling of its capacity, does not", () => {
    const event = record('autoscaling-update-auto-scaling-group');
    expect(matches(event)).toBe(1);
    event.detail.eventName = 'SetDesiredCapacity';
    expect(matches(event)).toBe(0);
    event.detail.eventName = 'UpdateAutoScalingGroup';
    event.detail.requestParameters.autoScalingGroupName = 'someone-elses';
    expect(matches(event)).toBe(0);
  });

  test('a read-only call of the same service does not alarm', () => {
    const event = record('kms-put-key-policy');
    event.detail.eventName = 'GetKeyPolicy';
    expect(matches(event)).toBe(0);
  });
});

describe('the construct', () => {
  test('watches every key action that changes who can unseal', () => {
    const { template } = alarms();
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({
        source: ['aws.kms'],
        detail: Match.objectLike({
          eventName: [
            'PutKeyPolicy', 'CreateGrant', 'DisableKey', 'ScheduleKeyDeletion', 'CancelKeyDeletion',
            'CreateAlias', 'DeleteAlias', 'UpdateAlias', 'ReplicateKey', 'UpdatePrimaryRegion',
          ],
        }),
      }),
    });
  });

  test('publishes to a KMS-encrypted topic, and to the model owner\'s bus when given', () => {
    const bus = 'arn:aws:events:us-east-1:222222222222:event-bus/model-owner';
    const { template } = alarms({ modelOwnerEventBusArn: bus });
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    const rules = Object.values(template.findResources('AWS::Events::Rule'));
    for (const rule of rules) {
      const [topic, ownerBus] = rule.Properties.Targets;
      expect(topic.Arn).toEqual({ Ref: expect.stringMatching(/^AlarmsTopic/) });
      expect(ownerBus).toMatchObject({ Arn: bus, RoleArn: expect.anything() });
    }
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: [Match.objectLike({ Action: 'events:PutEvents', Resource: bus })] },
    });
  });
});

test('both patterns wire the alarms in by default', () => {
  const image = AttestableImage.fromMeasurements(IMAGE_ID, { pcr4: hex384('a4'), pcr12: hex384('00') });
  const single = testStack();
  new SealedInference(single, 'Inference', { image, modelName: 'llama' });
  Template.fromStack(single).resourceCountIs('AWS::Events::Rule', 5);
  const fleet = testStack();
  new SealedInferenceFleet(fleet, 'Fleet', { image, modelName: 'llama' });
  Template.fromStack(fleet).resourceCountIs('AWS::Events::Rule', 5);
  Template.fromStack(fleet).hasResourceProperties('AWS::Events::Rule', {
    EventPattern: Match.objectLike({ detail: Match.objectLike({ requestParameters: { autoScalingGroupName: [{ Ref: Match.stringLikeRegexp('^FleetInstances') }] } }) }),
  });
});
