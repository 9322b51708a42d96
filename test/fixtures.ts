import type { Image } from '@aws-sdk/client-ec2';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AttestableImage, IAttestableImage, MEASUREMENT_TAGS } from '../lib';

/** A SHA-384 hex value made of one repeated byte, e.g. hex384('a4'). */
export function hex384(byte: string): string {
  return byte.repeat(48);
}

export const IMAGE_A: IAttestableImage = AttestableImage.fromMeasurements('ami-0123456789abcdef0', {
  pcr4: hex384('a4'),
  pcr12: hex384('0c'),
});

export const IMAGE_B: IAttestableImage = AttestableImage.fromMeasurements('ami-0fedcba9876543210', {
  pcr4: hex384('b4'),
  pcr12: hex384('00'),
});

export const SECURE_BOOT_IMAGE: IAttestableImage = AttestableImage.fromMeasurements('ami-0aaaaaaaaaaaaaaaa', {
  pcr4: hex384('a4'),
  pcr7: hex384('57'),
  pcr12: hex384('00'),
});

/** A Secure Boot image sealed to PCR7 alone, which has to be asked for. */
export const PCR7_ONLY_IMAGE: IAttestableImage = AttestableImage.fromMeasurements(
  'ami-0bbbbbbbbbbbbbbbb',
  { pcr7: hex384('57') },
  { pcr7Only: true },
);

/** A stack in a fixed account and Region. */
export function testStack(): Stack {
  return new Stack(new App(), 'Test', { env: { account: '111111111111', region: 'eu-west-1' } });
}

/** The SHA-256 the published image's digest tag carries. */
export const DIGEST = 'ab'.repeat(32);

/**
 * An available UEFI/TPM 2.0/IMDSv2 image publishing every measurement tag, as DescribeImages returns it.
 * A tag set to 'omit' is left out.
 */
export function publishedImage(overrides: Partial<Image> = {}, tags: Record<string, string> = {}): Image {
  const all: Record<string, string> = {
    [MEASUREMENT_TAGS.pcr4]: hex384('A4'),
    [MEASUREMENT_TAGS.pcr7]: hex384('57'),
    [MEASUREMENT_TAGS.pcr12]: hex384('00'),
    [MEASUREMENT_TAGS.recipeVersion]: '1.2.0',
    [MEASUREMENT_TAGS.measurementsSha256]: DIGEST,
    Name: 'inference',
    ...tags,
  };
  return {
    ImageId: 'ami-0123456789abcdef0',
    OwnerId: '111111111111',
    State: 'available',
    BootMode: 'uefi',
    TpmSupport: 'v2.0',
    ImdsSupport: 'v2.0',
    Tags: Object.entries(all)
      .filter(([, value]) => value !== 'omit')
      .map(([Key, Value]) => ({ Key, Value })),
    ...overrides,
  };
}

/** The sealing key of a pattern's template, which holds other keys too (the flow logs' and the DNS query logs'). */
export function sealingKeys(template: Template): ReturnType<Template['findResources']> {
  return template.findResources('AWS::KMS::Key', {
    Properties: { Description: Match.stringLikeRegexp('^Seals model weights') },
  });
}

/**
 * Expects the one log group whose logical id starts with `logGroup` to be encrypted with the KMS key whose logical id
 * starts with `key`, and that key to let CloudWatch Logs use it only for the test account's log groups in its Region.
 */
export function expectLogGroupEncrypted(template: Template, logGroup: string, key: string): void {
  const groups = Object.entries(template.findResources('AWS::Logs::LogGroup')).filter(([id]) => id.startsWith(logGroup));
  expect(groups).toHaveLength(1);
  const keyId = groups[0][1].Properties.KmsKeyId['Fn::GetAtt'][0] as string;
  expect(keyId.startsWith(key)).toBe(true);
  const statements = template.toJSON().Resources[keyId].Properties.KeyPolicy.Statement as Array<{ Sid: string }>;
  expect(statements.find((s) => s.Sid === 'CloudWatchLogsEncryptsThisAccountsLogGroups')).toEqual({
    Sid: 'CloudWatchLogsEncryptsThisAccountsLogGroups',
    Effect: 'Allow',
    Principal: { Service: { 'Fn::Join': ['', ['logs.', { Ref: 'AWS::Region' }, '.amazonaws.com']] } },
    Action: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
    Resource: '*',
    Condition: {
      ArnLike: {
        'kms:EncryptionContext:aws:logs:arn': {
          'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':logs:eu-west-1:111111111111:log-group:*']],
        },
      },
    },
  });
}
