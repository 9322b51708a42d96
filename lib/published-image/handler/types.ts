/**
 * The contract between the published-measurements custom resource and its handler. No imports: the construct and
 * the bundled handler both use it.
 */

/** The custom resource's properties, as CloudFormation passes them (every scalar a string). */
export interface PublishedMeasurementsProperties {
  readonly ImageId: string;
  /** 'true' for a Secure Boot image. */
  readonly SecureBoot: string;
  /** 'true' for a Secure Boot image sealed to PCR7 alone; absent before the property existed. */
  readonly Pcr7Only?: string;
  readonly ExpectedMeasurementsSha256?: string;
  /** Accounts besides the stack's own whose images may be read. */
  readonly AllowedOwnerAccounts?: string[];
}

/** The custom resource's attributes. A PCR is present only when the image publishes it. */
export interface PublishedMeasurementsAttributes {
  readonly Pcr4?: string;
  readonly Pcr7?: string;
  readonly Pcr12?: string;
  readonly RecipeVersion?: string;
  readonly MeasurementsSha256?: string;
  /** Warnings joined with '; ', or 'none' (a stack output may not be empty). */
  readonly Warnings: string;
}

/** The subset of the Provider framework's onEvent request the handler reads. */
export interface OnEventRequest {
  readonly RequestType: 'Create' | 'Update' | 'Delete';
  readonly StackId: string;
  readonly PhysicalResourceId?: string;
  readonly ResourceProperties: PublishedMeasurementsProperties & { readonly ServiceToken?: string };
}

export interface OnEventResponse {
  readonly PhysicalResourceId?: string;
  readonly Data?: PublishedMeasurementsAttributes;
}
