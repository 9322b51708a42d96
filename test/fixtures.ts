import { App, Stack } from 'aws-cdk-lib';
import { AttestableImage, IAttestableImage } from '../lib';

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
  pcr7: hex384('57'),
});

/** A stack in a fixed account and Region. */
export function testStack(): Stack {
  return new Stack(new App(), 'Test', { env: { account: '111111111111', region: 'eu-west-1' } });
}
