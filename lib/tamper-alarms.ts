import { Aws, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { serviceEncryptionKey } from './private/service-encryption-key';

/** Properties of {@link TamperAlarms}. */
export interface TamperAlarmsProps {
  /**
   * The ARN of the sealing key, whose changes are watched.
   *
   * @default - no key is watched: a key imported from another account is watched there, by its owner's alarms
   */
  readonly keyArn?: string;

  /** The ids of the images the key allows. */
  readonly imageIds: string[];

  /**
   * The attested instance, whose user data is watched.
   *
   * @default - no instance is watched (a fleet's instances come from its launch template)
   */
  readonly instanceId?: string;

  /**
   * The fleet's Auto Scaling group, whose launch template version, size and instances are watched.
   *
   * @default - no group is watched
   */
  readonly autoScalingGroupName?: string;

  /**
   * The ARN of an event bus in the model owner's account that receives every alarm as well. That bus's policy must
   * allow `events:PutEvents` from this account.
   *
   * @default - alarms go to the topic only
   */
  readonly modelOwnerEventBusArn?: string;
}

/** The CloudTrail management events of the key that change who can unseal, or whether anyone can. */
export const KEY_TAMPER_EVENTS = [
  'PutKeyPolicy', 'CreateGrant', 'DisableKey', 'ScheduleKeyDeletion', 'CancelKeyDeletion',
  'CreateAlias', 'DeleteAlias', 'UpdateAlias', 'ReplicateKey', 'UpdatePrimaryRegion',
];

/**
 * The Auto Scaling calls that change what a fleet's instances run (another launch template version, through an update
 * or an instance refresh), add an instance launched elsewhere, or remove the group.
 */
export const FLEET_TAMPER_EVENTS = ['UpdateAutoScalingGroup', 'StartInstanceRefresh', 'AttachInstances', 'DeleteAutoScalingGroup'];

/** The CloudFormation calls that change or remove the stack. */
export const STACK_TAMPER_EVENTS = ['UpdateStack', 'DeleteStack', 'ExecuteChangeSet'];

const CLOUDTRAIL_API_CALL = 'AWS API Call via CloudTrail';

/**
 * EventBridge rules on the CloudTrail management events that would change what a deployment is sealed to, or who
 * can see it: the key's policy, grants, state and aliases; the allowed images' tags, attributes and registration;
 * the instance's user data, or the fleet's group; and updates or deletion of the stack itself. Each match goes to a
 * KMS-encrypted SNS topic and, optionally, to the model owner's event bus in another account, so that the owner learns
 * of a change the key's administrators make. EventBridge receives CloudTrail management events without a trail.
 */
export class TamperAlarms extends Construct {
  /** The topic every alarm is published to; subscribe the people who must know. */
  public readonly topic: sns.Topic;

  /** The rules, one per kind of change. */
  public readonly rules: events.Rule[] = [];

  constructor(scope: Construct, id: string, props: TamperAlarmsProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Topic', { masterKey: topicKey(this), enforceSSL: true });
    const destinations: events.IRuleTarget[] = [new targets.SnsTopic(this.topic)];
    if (props.modelOwnerEventBusArn !== undefined) {
      destinations.push(new targets.EventBus(events.EventBus.fromEventBusArn(this, 'ModelOwnerBus', props.modelOwnerEventBusArn)));
    }
    const rule = (ruleId: string, description: string, source: string, detail: Record<string, unknown>) =>
      this.rules.push(new events.Rule(this, ruleId, {
        description,
        eventPattern: { source: [source], detailType: [CLOUDTRAIL_API_CALL], detail },
        targets: destinations,
      }));

    if (props.keyArn !== undefined) {
      rule('Key', 'The sealing key: policy, grants, state, aliases or Regions changed', 'aws.kms', {
        eventSource: ['kms.amazonaws.com'],
        eventName: KEY_TAMPER_EVENTS,
        resources: { ARN: [props.keyArn] },
      });
    }
    if (props.imageIds.length > 0) {
      rule('ImageTags', 'An allowed image: its tags (the published measurements) changed', 'aws.ec2', {
        eventSource: ['ec2.amazonaws.com'],
        eventName: ['CreateTags', 'DeleteTags'],
        requestParameters: { resourcesSet: { items: { resourceId: props.imageIds } } },
      });
      rule('Image', 'An allowed image: its attributes changed or it was deregistered', 'aws.ec2', {
        eventSource: ['ec2.amazonaws.com'],
        eventName: ['ModifyImageAttribute', 'DeregisterImage'],
        requestParameters: { imageId: props.imageIds },
      });
    }
    if (props.instanceId !== undefined) {
      rule('InstanceUserData', "The attested instance's user data changed", 'aws.ec2', {
        eventSource: ['ec2.amazonaws.com'],
        eventName: ['ModifyInstanceAttribute'],
        requestParameters: { instanceId: [props.instanceId], userData: [{ exists: true }] },
      });
    }
    if (props.autoScalingGroupName !== undefined) {
      rule('AutoScalingGroup', "The fleet's group: its launch template, size or instances changed", 'aws.autoscaling', {
        eventSource: ['autoscaling.amazonaws.com'],
        eventName: FLEET_TAMPER_EVENTS,
        requestParameters: { autoScalingGroupName: [props.autoScalingGroupName] },
      });
    }
    const stack = Stack.of(this);
    rule('Stack', 'The stack was updated or deleted', 'aws.cloudformation', {
      eventSource: ['cloudformation.amazonaws.com'],
      eventName: STACK_TAMPER_EVENTS,
      requestParameters: { stackName: [stack.stackName, stack.stackId] },
    });
  }
}

/** A key for the alarm topic: EventBridge may use it to publish this account's alarms. */
function topicKey(scope: Construct): kms.IKey {
  return serviceEncryptionKey(scope, 'TopicKey', 'Encrypts the tamper alarm topic of a sealed inference deployment',
    new iam.PolicyStatement({
      sid: 'EventBridgePublishesAlarms',
      principals: [new iam.ServicePrincipal('events.amazonaws.com')],
      actions: ['kms:GenerateDataKey*', 'kms:Decrypt'],
      resources: ['*'],
      conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
    }));
}
