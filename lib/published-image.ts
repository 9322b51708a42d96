import { CustomResource, Duration, Stack, Token, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import type { IAttestableImage } from './attestable-image';
import { bundledHandlerDir } from './private/bundled-handler';
import { acknowledgeCompliance } from './private/compliance-acknowledgment';
import { acknowledgeDeployTimeFunctions } from './private/deploy-time-function-acknowledgment';
import type { PublishedMeasurementsProperties } from './published-image/handler/types';
import { PcrMeasurements, SHA256_HEX } from './shared/measurements';

/** Properties of {@link PublishedImageMeasurements}. */
export interface PublishedImageMeasurementsProps {
  /** The AMI id, e.g. `ami-0123456789abcdef0`. */
  readonly imageId: string;

  /**
   * Whether the image boots with UEFI Secure Boot: then the key is sealed to its PCR4, PCR7 and PCR12, otherwise to
   * PCR4 and PCR12.
   *
   * @default false
   */
  readonly secureBoot?: boolean;

  /**
   * Seal a Secure Boot image to PCR7 alone (only with `secureBoot`). Every image signed under the same Secure Boot
   * keys then unseals, whatever its kernel and command line; synthesis warns (`sealed-inference:pcr7-only`).
   *
   * @default false
   */
  readonly pcr7Only?: boolean;

  /**
   * The SHA-256 (hex) of the image build's `pcr_measurements.json`. When given, the deployment fails unless the
   * image's `sealed-inference:measurements-sha256` tag matches it.
   *
   * @default - not checked
   */
  readonly expectedMeasurementsSha256?: string;

  /**
   * Accounts other than the stack's own whose images may be read. Whoever can tag an image controls the
   * measurements read from it, so by default only images owned by the stack's account are accepted.
   *
   * @default - only images owned by the stack's account
   */
  readonly allowedOwnerAccounts?: string[];
}

const PROVIDER_ID = 'SealedInferencePublishedMeasurementsProvider';
const HANDLER_ASSET = 'published-measurements-handler';

/**
 * An attestable image whose measurements are read at deploy time from the tags the image's build published on it
 * (see `MEASUREMENT_TAGS`), by a custom resource calling `ec2:DescribeImages`.
 *
 * The measurement values are the custom resource's attributes. A key policy that uses them references the custom
 * resource with `Fn::GetAtt`, so CloudFormation reads the image before it creates or changes the key policy: an
 * image that is unavailable, not UEFI with TPM 2.0, owned by another account, or without well-formed measurement
 * tags fails the deployment before the policy changes.
 */
export class PublishedImageMeasurements extends Construct implements IAttestableImage {
  public readonly imageId: string;
  public readonly measurements: PcrMeasurements;

  /** Warnings of the reader, joined with '; ' ('none' when none), e.g. an image that does not default to IMDSv2. */
  public readonly warnings: string;

  /** The custom resource that reads the image. */
  public readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: PublishedImageMeasurementsProps) {
    super(scope, id);
    const expected = props.expectedMeasurementsSha256;
    if (expected !== undefined && !Token.isUnresolved(expected) && !SHA256_HEX.test(expected)) {
      throw new Error(
        `expectedMeasurementsSha256 must be the SHA-256 of pcr_measurements.json, 64 hex characters; got ` +
          JSON.stringify(expected),
      );
    }
    for (const account of props.allowedOwnerAccounts ?? []) {
      if (!Token.isUnresolved(account) && !/^\d{12}$/.test(account)) {
        throw new Error(`allowedOwnerAccounts must hold 12-digit account ids, got ${JSON.stringify(account)}`);
      }
    }
    if (props.pcr7Only && !props.secureBoot) {
      throw new Error(`${this.node.path}: pcr7Only applies to a Secure Boot image; set secureBoot too, or drop pcr7Only`);
    }
    const provider = PublishedMeasurementsProvider.of(this);
    const properties: PublishedMeasurementsProperties = {
      ImageId: props.imageId,
      SecureBoot: String(props.secureBoot ?? false),
      Pcr7Only: String(props.pcr7Only ?? false),
      // A Token (e.g. a parameter) must reach the template intact; the handler compares case-insensitively anyway.
      ExpectedMeasurementsSha256: expected && !Token.isUnresolved(expected) ? expected.toLowerCase() : expected,
      AllowedOwnerAccounts: props.allowedOwnerAccounts,
    };
    this.resource = new CustomResource(this, 'Resource', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::PublishedImageMeasurements',
      properties: { ...properties },
    });
    this.resource.node.addDependency(provider.policy);

    this.imageId = props.imageId;
    const pcr7 = props.secureBoot ? this.resource.getAttString('Pcr7') : undefined;
    this.measurements = props.pcr7Only
      ? { pcr7 }
      : { pcr4: this.resource.getAttString('Pcr4'), pcr7, pcr12: this.resource.getAttString('Pcr12') };
    this.warnings = this.resource.getAttString('Warnings');
  }
}

/** The stack's one provider for {@link PublishedImageMeasurements}: the reader Lambda, its policy and the framework. */
class PublishedMeasurementsProvider extends Construct {
  public static of(scope: Construct): PublishedMeasurementsProvider {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(PROVIDER_ID) as PublishedMeasurementsProvider | undefined;
    return existing ?? new PublishedMeasurementsProvider(stack, PROVIDER_ID);
  }

  public readonly serviceToken: string;
  public readonly policy: iam.Policy;

  private constructor(scope: Construct, id: string) {
    super(scope, id);
    const onEvent = new lambda.Function(this, 'Reader', {
      description: 'Reads the measurements an attestable image publishes in its tags (ec2:DescribeImages)',
      runtime: lambda.Runtime.NODEJS_24_X, // the bundle targets Node.js 22, which 24 runs
      handler: 'index.handler',
      code: lambda.Code.fromAsset(bundledHandlerDir(HANDLER_ASSET)),
      timeout: Duration.minutes(1), // room for the SDK's retries of throttled calls
    });
    this.policy = new iam.Policy(this, 'DescribeImages', {
      statements: [new iam.PolicyStatement({ actions: ['ec2:DescribeImages'], resources: ['*'] })],
      roles: [onEvent.role!],
    });
    const provider = new cr.Provider(this, 'Provider', { onEventHandler: onEvent });
    this.serviceToken = provider.serviceToken;

    Validations.of(this.policy).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'ec2:DescribeImages supports no resource-level permissions; it is the only action the policy grants.',
    });
    acknowledgeCompliance(this.policy, {
      rule: 'IAMNoInlinePolicy',
      reason: 'The describe-only policy is attached to the reader role alone, kept apart so it can be reviewed.',
    });
    Validations.of(provider).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::<SealedInferencePublishedMeasurementsProviderReader8446F282.Arn>:*]',
      reason: "The CDK Provider framework may invoke only the reader function's versions; nothing else.",
    });
    acknowledgeCompliance(provider, {
      rule: 'IAMNoInlinePolicy',
      reason: 'The CDK Provider framework role may only invoke the reader function; the policy is attached nowhere else.',
    });
    acknowledgeDeployTimeFunctions(this, 'the reader and the framework function');
  }
}
