import { CfnOutput, Stack } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { IAttestableImage } from '../attestable-image';
import { pinnedPcrs } from '../shared/measurements';
import { IModelBucket } from '../model-bucket';
import { PublishedImageMeasurements } from '../published-image';
import { ISealedModelKey } from '../sealed-model-key';

/** Where a sealed model is stored, and the key that seals it. */
export interface SealedModelLocation {
  readonly key: ISealedModelKey;
  readonly modelBucket: IModelBucket;
  readonly modelName: string;
  readonly modelPrefix: string;
}

/** What a deployment of a sealed model shows its reviewer and its clients. */
export interface ReviewerOutputsOptions extends SealedModelLocation {
  /** The images the key unseals for; the first is the one the workload runs. */
  readonly allowedImages: IAttestableImage[];
  /** What runs the first image, e.g. 'the instance'. */
  readonly workload: string;
  /** The https:// URL clients reach the inference service at. */
  readonly serviceUrl: string;
}

/**
 * Stack outputs a reviewer compares with the image build and the model owner's records (the allowed images and
 * their PCRs, the key, the bucket, the model), and the commands a client runs to check what it talks to. The
 * `sealed-inference` CLI reads the `AllowedImage<N>…` outputs as its expectations.
 */
export function addReviewerOutputs(scope: Construct, options: ReviewerOutputsOptions): void {
  const output = (id: string, value: string, description: string) => new CfnOutput(scope, id, { value, description });
  const { allowedImages, modelBucket, modelName, modelPrefix, serviceUrl } = options;
  output('ImageId', allowedImages[0].imageId, `The attestable image ${options.workload} runs`);
  addAllowedImageOutputs(scope, allowedImages);
  addSealedModelOutputs(scope, options, `The sealed model ${options.workload} serves`);
  output('ServiceUrl', serviceUrl, 'The inference service (chat page and API), over TLS bound to its attestation');
  const manifest = `${modelPrefix}${modelName}.manifest.json`;
  output('ModelManifestUri', `s3://${modelBucket.bucket.bucketName}/${manifest}`,
    "The model's manifest: download it for verify --model and gateway --model");
  // What a client runs to check what it talks to, with this deployment's outputs as its expectations.
  const expectations = `--stack-outputs outputs.json --stack ${Stack.of(scope).stackName} --model ${modelName}.manifest.json`;
  output('VerifyCommand', `npx sealed-inference verify ${serviceUrl} ${expectations}`,
    'Proves which image and model serve the URL (outputs.json: cdk deploy --outputs-file; the manifest from ModelManifestUri)');
  output('GatewayCommand', `npx sealed-inference gateway ${serviceUrl} ${expectations}`,
    'A local OpenAI-compatible endpoint that forwards only to an instance it verified');
}

/**
 * The `KeyArn`, `ModelBucketName`, `ModelPrefix` and `ModelName` outputs: what `sealed-inference seal --stack-outputs`
 * seals with and `verify --stack-outputs` measures the configuration from. The bucket root is written out, as an
 * output cannot be empty.
 */
export function addSealedModelOutputs(scope: Construct, location: SealedModelLocation, modelDescription: string): void {
  const output = (id: string, value: string, description: string) => new CfnOutput(scope, id, { value, description });
  output('KeyArn', location.key.keyArn, 'The sealing key');
  output('ModelBucketName', location.modelBucket.bucket.bucketName, 'The bucket for the sealed model');
  output('ModelPrefix', location.modelPrefix || '(bucket root)', 'Where the sealed model is stored in the bucket');
  output('ModelName', location.modelName, modelDescription);
}

/** The `AllowedImage<N>…` outputs: each image the key unseals for, its pinned PCRs and what its reader noticed. */
export function addAllowedImageOutputs(scope: Construct, allowedImages: IAttestableImage[]): void {
  const output = (id: string, value: string, description: string) => new CfnOutput(scope, id, { value, description });
  allowedImages.forEach((image, i) => {
    output(`AllowedImage${i + 1}Id`, image.imageId, `Image ${i + 1} the key unseals for`);
    for (const { index, value } of pinnedPcrs(image.measurements)) {
      output(`AllowedImage${i + 1}Pcr${index}`, value, `PCR${index} the key requires of image ${i + 1}`);
    }
    if (image instanceof PublishedImageMeasurements) {
      output(`AllowedImage${i + 1}Warnings`, image.warnings, `What the deploy-time reader noticed about image ${i + 1}`);
    }
  });
}
