import { Annotations, Lazy, RemovalPolicy, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { IAttestableImage } from './attestable-image';
import { KEY_MANAGEMENT_ACTIONS, KeyAdministration } from './key-administration';
import { nitroTpmPcrConditionKey, pinnedPcrs } from './measurements';
import { checkModelName, ENCRYPTION_CONTEXT_KEYS, MODEL_CONTEXT_KEY } from './model-identity';
import { warnIfSealedToPcr7Alone } from './pcr7-only-warning';

/** Properties of a {@link SealedModelKey}. */
export interface SealedModelKeyProps {
  /**
   * Images whose attested instances may unseal. Each image gets a statement of its own, so the measurements of
   * two images are never combined; list the current and the next image during an upgrade.
   *
   * @default - none; add them with `allowImage()`. A key with no allowed image unseals nothing.
   */
  readonly allowedImages?: IAttestableImage[];

  /**
   * Roles of the attested workload. They may decrypt only with an attestation document of an allowed image, and
   * may never manage the key. Roles in other accounts are allowed (their account must grant `kms:Decrypt` too).
   *
   * @default - none; add them with `allowUnseal()`
   */
  readonly unsealers?: iam.IRole[];

  /**
   * The model owner's principals: they may generate data keys to seal models, never decrypt. Principals in other
   * accounts are allowed.
   *
   * @default - none; add them with `allowSeal()`
   */
  readonly sealers?: iam.IPrincipal[];

  /**
   * Names of the models this key may seal and unseal, enforced on the encryption context of every request.
   *
   * @default - any model name; every request must still name its model, which binds each data key to one model
   */
  readonly modelNames?: string[];

  /**
   * Who manages the key.
   *
   * @default KeyAdministration.delegatedToAccount()
   */
  readonly administration?: KeyAdministration;

  /**
   * The VPC the unsealers run in, when they all run in one: a decrypt that does not arrive through a VPC endpoint
   * of that VPC (another VPC's, or the public KMS endpoint) is not allowed (`aws:SourceVpc`). The VPC rather than its
   * endpoint (`aws:SourceVpce`): the endpoint's policy names this key, and the two cannot name each other.
   *
   * @default - any network path; the attestation conditions still apply
   */
  readonly unsealVpcId?: string;

  /**
   * An alias for the key, without the `alias/` prefix.
   *
   * @default - no alias
   */
  readonly aliasName?: string;

  /**
   * The key's description.
   *
   * @default - a description naming the key's purpose
   */
  readonly description?: string;
}

/**
 * A symmetric KMS key whose data keys unwrap only inside an attested instance of an allowed image.
 *
 * The key policy is written out in full. It never contains the account-root `kms:*` statement, which delegates to
 * IAM and would let any identity policy bypass the attestation conditions; explicit Deny statements close the
 * remaining bypasses (unattested decrypt, re-encryption, grants, the workload managing its own key).
 */
export class SealedModelKey extends Construct {
  /** The key's ARN. */
  public readonly keyArn: string;

  /** The key's id. */
  public readonly keyId: string;

  /** The key's alias (`alias/...`), if one was requested. */
  public readonly aliasName?: string;

  private readonly images: IAttestableImage[] = [];
  private readonly unsealers: iam.IRole[] = [];
  private readonly sealers: iam.IPrincipal[] = [];
  private readonly modelNames?: string[];
  private readonly administration: KeyAdministration;
  private readonly unsealVpcId?: string;

  constructor(scope: Construct, id: string, props: SealedModelKeyProps = {}) {
    super(scope, id);
    this.modelNames = props.modelNames?.map((name) => (Token.isUnresolved(name) ? name : checkModelName(name)));
    if (this.modelNames?.length === 0) {
      throw new Error(`${this.node.path}: modelNames is empty, so no model could ever be sealed; omit it to allow any`);
    }
    this.administration = props.administration ?? KeyAdministration.delegatedToAccount();
    this.unsealVpcId = props.unsealVpcId;
    props.allowedImages?.forEach((image) => this.allowImage(image));
    props.unsealers?.forEach((role) => this.allowUnseal(role));
    props.sealers?.forEach((principal) => this.allowSeal(principal));

    const key = new kms.CfnKey(this, 'Resource', {
      description: props.description ?? 'Seals model weights to attested instances of allowed images',
      keySpec: 'SYMMETRIC_DEFAULT',
      keyUsage: 'ENCRYPT_DECRYPT',
      enableKeyRotation: true,
      pendingWindowInDays: 30,
      keyPolicy: Lazy.any({ produce: () => this.policyDocument().toJSON() }),
    });
    key.applyRemovalPolicy(RemovalPolicy.RETAIN);
    this.keyArn = key.attrArn;
    this.keyId = key.ref;

    if (props.aliasName !== undefined) {
      if (!Token.isUnresolved(props.aliasName) && !/^(?!aws\/|alias\/)[a-zA-Z0-9/_-]{1,250}$/.test(props.aliasName)) {
        throw new Error(
          `aliasName must be 1-250 letters, digits, '/', '_' or '-', without the 'alias/' prefix and not ` +
            `starting with 'aws/'; got ${JSON.stringify(props.aliasName)}`,
        );
      }
      this.aliasName = `alias/${props.aliasName}`;
      new kms.CfnAlias(this, 'Alias', { aliasName: this.aliasName, targetKeyId: key.ref });
    }

    if (this.administration.isRestricted) {
      Annotations.of(this).addInfo(
        'Key administration is restricted to named principals: include the role that deploys this stack, or ' +
          'CloudFormation cannot create the key or apply later policy changes.',
      );
    }
    this.node.addValidation({
      validate: () => {
        const errors: string[] = [];
        if (this.images.length === 0) errors.push('no allowed image: nothing could unseal; call allowImage()');
        if (this.unsealers.length === 0) errors.push('no unsealer role: nothing could unseal; call allowUnseal()');
        return errors;
      },
    });
  }

  /** Allows attested instances of `image` to unseal; one policy statement per image. */
  public allowImage(image: IAttestableImage): void {
    if (pinnedPcrs(image.measurements).length === 0) {
      throw new Error(`${this.node.path}: image ${image.imageId} has no measurements to seal to`);
    }
    warnIfSealedToPcr7Alone(this, image);
    this.images.push(image);
  }

  /** Allows `role` to unseal from an attested instance of an allowed image. The role may never manage the key. */
  public allowUnseal(role: iam.IRole): void {
    this.unsealers.push(role);
  }

  /** Allows `principal` (the model owner) to generate data keys for sealing. It may never decrypt. */
  public allowSeal(principal: iam.IPrincipal): void {
    this.sealers.push(principal);
  }

  private policyDocument(): iam.PolicyDocument {
    const document = new iam.PolicyDocument();
    const key = ['*'];

    document.addStatements(
      new iam.PolicyStatement({
        sid: 'KeyAdministrationWithoutUse',
        principals: this.administration._principals(this),
        actions: KEY_MANAGEMENT_ACTIONS,
        resources: key,
      }),
    );

    if (this.sealers.length > 0) {
      document.addStatements(
        new iam.PolicyStatement({
          sid: 'SealModelsWithNamedContext',
          principals: this.sealers,
          actions: ['kms:GenerateDataKey'],
          resources: key,
          conditions: this.encryptionContextConditions(),
        }),
        new iam.PolicyStatement({
          sid: 'SealersResolveKey',
          principals: this.sealers,
          actions: ['kms:DescribeKey'],
          resources: key,
        }),
      );
    }

    if (this.unsealers.length > 0) {
      this.images.forEach((image, i) => {
        const pcrs: Record<string, string> = {};
        for (const { index, value } of pinnedPcrs(image.measurements)) pcrs[nitroTpmPcrConditionKey(index)] = value;
        document.addStatements(
          new iam.PolicyStatement({
            sid: `UnsealOnlyOnAttestedImage${i + 1}`,
            principals: this.unsealers,
            actions: ['kms:Decrypt'],
            resources: key,
            conditions: { StringEqualsIgnoreCase: pcrs, ...this.unsealConditions() },
          }),
        );
      });
    }

    // A backstop that holds even if an Allow is added later: whatever a statement allows, a decrypt whose attestation
    // reports a PCR value no allowed image has is refused. A negated operator is true when its key is absent, so a
    // request without an attestation document (or without that PCR) is refused too. ReEncryptFrom never carries one.
    for (const { index, values } of this.pinnedValuesByPcr()) {
      document.addStatements(
        new iam.PolicyStatement({
          sid: `DenyDecryptUnlessPcr${index}OfAnAllowedImage`,
          effect: iam.Effect.DENY,
          principals: [new iam.AnyPrincipal()],
          actions: ['kms:Decrypt', 'kms:ReEncryptFrom'],
          resources: key,
          conditions: { StringNotEqualsIgnoreCase: { [nitroTpmPcrConditionKey(index)]: values } },
        }),
      );
    }
    document.addStatements(
      new iam.PolicyStatement({
        sid: 'DenyGrants',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['kms:CreateGrant'],
        resources: key,
      }),
    );
    if (this.unsealers.length > 0) {
      document.addStatements(
        new iam.PolicyStatement({
          sid: 'DenyWorkloadAnythingButUnseal',
          effect: iam.Effect.DENY,
          principals: this.unsealers,
          notActions: ['kms:Decrypt'],
          resources: key,
        }),
      );
    }
    return document;
  }

  /** Binds every request to a named model and to the keys of the sealed format's encryption context. */
  private encryptionContextConditions(): Record<string, Record<string, unknown>> {
    const modelKey = `kms:EncryptionContext:${MODEL_CONTEXT_KEY}`;
    return {
      ...(this.modelNames ? { StringEquals: { [modelKey]: this.modelNames } } : { Null: { [modelKey]: 'false' } }),
      'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': ENCRYPTION_CONTEXT_KEYS },
    };
  }

  /** The unseal statements' conditions besides the PCRs: the model's encryption context, and the VPC if named. */
  private unsealConditions(): Record<string, Record<string, unknown>> {
    const conditions = this.encryptionContextConditions();
    if (this.unsealVpcId === undefined) return conditions;
    return { ...conditions, StringEquals: { ...conditions.StringEquals, 'aws:SourceVpc': this.unsealVpcId } };
  }

  /** Every PCR an allowed image pins, with the values the allowed images give it (in index order, no repeats). */
  private pinnedValuesByPcr(): Array<{ index: number; values: string[] }> {
    const byIndex = new Map<number, string[]>();
    for (const image of this.images) {
      for (const { index, value } of pinnedPcrs(image.measurements)) {
        const values = byIndex.get(index) ?? [];
        if (!values.includes(value)) values.push(value);
        byIndex.set(index, values);
      }
    }
    return [...byIndex.entries()].sort(([a], [b]) => a - b).map(([index, values]) => ({ index, values }));
  }
}
