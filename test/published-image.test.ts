import { App, Stack } from 'aws-cdk-lib';
import { addComplianceChecks } from '../bin/compliance';
import { AttestableImage, SealedInference } from '../lib';
import { IMAGE_A } from './fixtures';

test('synthesizes with the cdk-nag packs and no unacknowledged finding', () => {
  const app = new App();
  const stack = new Stack(app, 'Reader', { env: { account: '111111111111', region: 'eu-west-1' } });
  new SealedInference(stack, 'Inference', {
    image: AttestableImage.fromPublishedMeasurements(stack, 'Image', { imageId: 'ami-0123456789abcdef0' }),
    additionalAllowedImages: [IMAGE_A],
    modelName: 'llama',
  });
  addComplianceChecks(app);
  expect(() => app.synth()).not.toThrow();
});
