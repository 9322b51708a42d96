import { Annotations, Arn, ArnFormat, IResource, Lazy, RemovalPolicy, Resource, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { IAttestableImage } from './attestable-image';
import { KeyAdministration } from './key-administration';
import { OwnerPolicyRequests } from './private/owner-policy-request';
import { DESCRIBE_KEY_ACTIONS, SEAL_ACTIONS, UNSEAL_ACTIONS } from './private/permissions';
import { warnIfSealedToPcr7Alone } from './private/pcr7-only-warning';
import { KMS_KEY_ARN_PATTERN } from './shared/appliance-config';
import { nitroTpmPcrConditionKey, pinnedPcrs } from './shared/measurements';
import { checkModelName, ENCRYPTION_CONTEXT_KEYS, MODEL_CONTEXT_KEY } from './shared/model-identity';

/**
 * A key that seals model weights to attested instances: one this stack creates ({@link SealedModelKey}) or an
 * existing one, e.g. in the model owner's account, imported with `SealedModelKey.fromKeyArn()`.
 */
export interface ISealedModelKey extends IResource {
  /** The key's ARN. */
  readonly keyArn: string;

  /** The key's id. */
  readonly keyId: string;

  /**
   * Lets `grantee` unseal on an attested instance of `image` (of any image the key allows when omitted): the key
   * policy names it and allows the image, and its identity policy allows `kms:Decrypt` on the key. The key policy of
   * an imported key cannot change from this stack: synth then warns (`sealed-inference:imported-key-policy`) with
   * the statement the key's owner must add.
   */
  grantUnseal(grantee: iam.IGrantable, image?: IAttestableImage): iam.Grant;

  /**
   * Lets `grantee` (the model owner) generate data keys for sealing; it may never decrypt. Writes the key policy
   * and the identity policy, or, for an imported key, the identity policy and a synth warning with the statements
   * the key's owner must add.
   */
  grantSeal(grantee: iam.IGrantable): iam.Grant;
}

/** What identifies an existing sealed model key, for {@link SealedModelKey.fromSealedModelKeyAttributes}. */
export interface SealedModelKeyAttributes {
  /** The key's ARN (not an alias): `arn:aws:kms:<region>:<account>:key/<id>`. */
  readonly keyArn: string;

  /**
   * Names of the models the key allows, as in its owner's `modelNames`: the statements the owner is asked to add
   * name them.
   *
   * @default - any model name
   */
  readonly modelNames?: string[];
}

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
   * @default - none; add them with `grantUnseal()`
   */
  readonly unsealers?: iam.IRole[];

  /**
   * The model owner's principals: they may generate data keys to seal models, never decrypt. Principals in other
   * accounts are allowed.
   *
   * @default - none; add them with `grantSeal()`
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
   * @default KeyAdministration.throughDeployments(): the stack's CloudFormation execution role only
   */
  readonly keyAdministration?: KeyAdministration;

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
export class SealedModelKey extends Resource implements ISealedModelKey {
  /** An existing sealed model key, possibly in another account, by its ARN. */
  public static fromKeyArn(scope: Construct, id: string, keyArn: string): ISealedModelKey {
    return SealedModelKey.fromSealedModelKeyAttributes(scope, id, { keyArn });
  }

  /** An existing sealed model key, possibly in another account, with what its policy allows. */
  public static fromSealedModelKeyAttributes(
    scope: Construct,
    id: string,
    attributes: SealedModelKeyAttributes,
  ): ISealedModelKey {
    const { keyArn } = attributes;
    if (!Token.isUnresolved(keyArn) && !KMS_KEY_ARN_PATTERN.test(keyArn)) {
      throw new Error(
        `${id}: keyArn must be a KMS key ARN, arn:aws:kms:<region>:<account>:key/<id> (not an alias); ` +
          `got ${JSON.stringify(keyArn)}`,
      );
    }
    return new ImportedSealedModelKey(scope, id, attributes);
  }

  /** The key's ARN. */
  public readonly keyArn: string;

  /** The key's id. */
  public readonly keyId: string;

  /** The key's alias (`alias/...`), if one was requested. */
  public readonly aliasName?: string;

  private readonly images: IAttestableImage[] = [];
  private readonly unsealers: iam.IPrincipal[] = [];
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
    this.administration = props.keyAdministration ?? KeyAdministration.throughDeployments();
    this.unsealVpcId = props.unsealVpcId;
    props.allowedImages?.forEach((image) => this.allowImage(image));
    this.unsealers.push(...(props.unsealers ?? []));
    this.sealers.push(...(props.sealers ?? []));

    const key = new kms.CfnKey(this, 'Resource', {
      description: props.description ?? 'Seals model weights to attested instances of allowed images',
      keySpec: 'SYMMETRIC_DEFAULT',
      keyUsage: 'ENCRYPT_DECRYPT',
      enableKeyRotation: true,
      pendingWindowInDays: 30,
      // KMS refuses a policy that nobody may change unless told that this is meant.
      bypassPolicyLockoutSafetyCheck: this.administration.policyIsMutable ? undefined : true,
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

    if (this.administration.managedBy === 'named') {
      Annotations.of(this).addInfo(
        'Key administration is restricted to named principals: include the role that deploys this stack, or ' +
          'CloudFormation cannot create the key or apply later policy changes.',
      );
    }
    if (this.administration.managedBy === 'account') {
      Annotations.of(this).addWarningV2(
        'sealed-inference:key-administration-delegated',
        "Key administration is delegated to the account's IAM: any principal of the account allowed " +
          'kms:PutKeyPolicy can rewrite the key policy, then unseal the model. Prefer the default ' +
          'KeyAdministration.throughDeployments() or immutablePolicy().',
      );
    }
    this.node.addValidation({
      validate: () => {
        const errors: string[] = [];
        if (this.images.length === 0) errors.push('no allowed image: nothing could unseal; call allowImage()');
        if (this.unsealers.length === 0) errors.push('no unsealer role: nothing could unseal; call grantUnseal()');
        return errors;
      },
    });
  }

  /** Allows attested instances of `image` to unseal; one policy statement per image, added once. */
  public allowImage(image: IAttestableImage): void {
    if (pinnedPcrs(image.measurements).length === 0) {
      throw new Error(`${this.node.path}: image ${image.imageId} has no measurements to seal to`);
    }
    if (this.images.some((allowed) => sameImage(allowed, image))) return;
    warnIfSealedToPcr7Alone(this, image);
    this.images.push(image);
  }

  public grantUnseal(grantee: iam.IGrantable, image?: IAttestableImage): iam.Grant {
    if (image) this.allowImage(image);
    this.unsealers.push(grantee.grantPrincipal);
    // The key policy gates decrypt; the identity policy is needed too when the grantee is in another account.
    return iam.Grant.addToPrincipal({ grantee, actions: UNSEAL_ACTIONS, resourceArns: [this.keyArn] });
  }

  public grantSeal(grantee: iam.IGrantable): iam.Grant {
    this.sealers.push(grantee.grantPrincipal);
    return iam.Grant.addToPrincipal({ grantee, actions: [...SEAL_ACTIONS, ...DESCRIBE_KEY_ACTIONS], resourceArns: [this.keyArn] });
  }

  private policyDocument(): iam.PolicyDocument {
    const document = new iam.PolicyDocument();
    const key = ['*'];

    document.addStatements(
      new iam.PolicyStatement({
        sid: 'KeyAdministrationWithoutUse',
        principals: this.administration._principals(this),
        actions: this.administration._actions(),
        resources: key,
      }),
    );

    if (this.sealers.length > 0) document.addStatements(...sealStatements(this.sealers, this.modelNames));

    if (this.unsealers.length > 0) {
      this.images.forEach((image, i) => {
        document.addStatements(attestedUnsealStatement(i + 1, this.unsealers, image, this.modelNames, this.unsealVpcId));
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

/** The owner's statements: generate data keys for named models, and resolve the key. */
function sealStatements(sealers: iam.IPrincipal[], modelNames?: string[]): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'SealModelsWithNamedContext',
      principals: sealers,
      actions: SEAL_ACTIONS,
      resources: ['*'],
      conditions: encryptionContextConditions(modelNames),
    }),
    new iam.PolicyStatement({
      sid: 'SealersResolveKey',
      principals: sealers,
      actions: DESCRIBE_KEY_ACTIONS,
      resources: ['*'],
    }),
  ];
}

/** The statement that lets `unsealers` decrypt only with an attestation document of `image`: its PCRs, all of them. */
function attestedUnsealStatement(
  number: number,
  unsealers: iam.IPrincipal[],
  image: IAttestableImage,
  modelNames?: string[],
  sourceVpcId?: string,
): iam.PolicyStatement {
  const pcrs: Record<string, string> = {};
  for (const { index, value } of pinnedPcrs(image.measurements)) pcrs[nitroTpmPcrConditionKey(index)] = value;
  const conditions = encryptionContextConditions(modelNames);
  // Where the key serves one VPC, an attestation replayed from anywhere else is refused too.
  if (sourceVpcId !== undefined) conditions.StringEquals = { ...conditions.StringEquals, 'aws:SourceVpc': sourceVpcId };
  return new iam.PolicyStatement({
    sid: `UnsealOnlyOnAttestedImage${number}`,
    principals: unsealers,
    actions: UNSEAL_ACTIONS,
    resources: ['*'],
    conditions: { StringEqualsIgnoreCase: pcrs, ...conditions },
  });
}

/** Binds every request to a named model and to the keys of the sealed format's encryption context. */
function encryptionContextConditions(modelNames?: string[]): Record<string, Record<string, unknown>> {
  const modelKey = `kms:EncryptionContext:${MODEL_CONTEXT_KEY}`;
  return {
    ...(modelNames ? { StringEquals: { [modelKey]: modelNames } } : { Null: { [modelKey]: 'false' } }),
    'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': ENCRYPTION_CONTEXT_KEYS },
  };
}

/** Two descriptions of one image: the same id and the same pinned values. */
function sameImage(a: IAttestableImage, b: IAttestableImage): boolean {
  const values = (image: IAttestableImage) => JSON.stringify([image.imageId, pinnedPcrs(image.measurements)]);
  return a === b || values(a) === values(b);
}

/**
 * A sealed model key that exists outside this stack, e.g. in the model owner's account. Its policy cannot change
 * from here: grants write identity policies only, and synth says which statements the owner must add.
 */
class ImportedSealedModelKey extends Resource implements ISealedModelKey {
  public readonly keyArn: string;
  public readonly keyId: string;
  private readonly modelNames?: string[];
  private readonly ownerRequests: OwnerPolicyRequests;

  constructor(scope: Construct, id: string, attributes: SealedModelKeyAttributes) {
    super(scope, id, { environmentFromArn: attributes.keyArn });
    this.keyArn = attributes.keyArn;
    this.keyId = Arn.split(attributes.keyArn, ArnFormat.SLASH_RESOURCE_NAME).resourceName ?? '';
    this.modelNames = attributes.modelNames?.map((name) => (Token.isUnresolved(name) ? name : checkModelName(name)));
    this.ownerRequests = new OwnerPolicyRequests(this, {
      kind: 'key',
      name: this.keyArn,
      warningId: 'sealed-inference:imported-key-policy',
      remedy: "A SealedModelKey in the owner's stack writes them when given the same unsealers, images and model names.",
    });
  }

  public grantUnseal(grantee: iam.IGrantable, image?: IAttestableImage): iam.Grant {
    const images = image ? [image] : [];
    const statements = images.map((allowed, i) => attestedUnsealStatement(i + 1, [grantee.grantPrincipal], allowed, this.modelNames));
    this.ownerRequests.ask(`unseal for ${grantee.grantPrincipal}`, statements, image ? '' : ' one statement like it per image, with its PCRs;');
    return iam.Grant.addToPrincipal({ grantee, actions: UNSEAL_ACTIONS, resourceArns: [this.keyArn] });
  }

  public grantSeal(grantee: iam.IGrantable): iam.Grant {
    this.ownerRequests.ask(`seal for ${grantee.grantPrincipal}`, sealStatements([grantee.grantPrincipal], this.modelNames));
    return iam.Grant.addToPrincipal({ grantee, actions: [...SEAL_ACTIONS, ...DESCRIBE_KEY_ACTIONS], resourceArns: [this.keyArn] });
  }
}
