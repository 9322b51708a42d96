import { CfnParameter, Token } from 'aws-cdk-lib';
import { AttestableImage } from '../lib';
import { hex384, testStack } from './fixtures';

test('pins normalised measurements', () => {
  const image = AttestableImage.fromMeasurements('ami-0123456789abcdef0', {
    pcr4: hex384('AB'),
    pcr12: hex384('00'),
  });
  expect(image.imageId).toBe('ami-0123456789abcdef0');
  expect(image.measurements.pcr4).toBe(hex384('ab'));
  expect(image.measurements.pcr12).toBe(hex384('00'));
  expect(image.measurements.pcr7).toBeUndefined();
});

test('accepts a Secure Boot image pinned by PCR4, PCR7 and PCR12', () => {
  const image = AttestableImage.fromMeasurements('ami-01234567', { pcr4: hex384('44'), pcr7: hex384('77'), pcr12: hex384('00') });
  expect(image.measurements).toEqual({ pcr4: hex384('44'), pcr7: hex384('77'), pcr12: hex384('00') });
});

test('pins PCR7 alone only when asked for, dropping any other value', () => {
  expect(() => AttestableImage.fromMeasurements('ami-01234567', { pcr7: hex384('77') })).toThrow(/pcr7Only/);
  const image = AttestableImage.fromMeasurements('ami-01234567', { pcr4: hex384('44'), pcr7: hex384('77') }, { pcr7Only: true });
  expect(image.measurements).toEqual({ pcr4: undefined, pcr7: hex384('77'), pcr12: undefined });
});

test.each(['ami-123', 'ami-0123456789ABCDEF0', 'i-0123456789abcdef0', '', 'ami-0123456789abcdef0 '])(
  'rejects the image id %j, naming it',
  (imageId) => {
    expect(() => AttestableImage.fromMeasurements(imageId, { pcr4: hex384('ab'), pcr12: hex384('00') })).toThrow(
      `Image id must look like ami-0123456789abcdef0, got ${JSON.stringify(imageId)}`,
    );
  },
);

test('rejects a malformed PCR value, naming the PCR, the image and the value', () => {
  expect(() =>
    AttestableImage.fromMeasurements('ami-0123456789abcdef0', { pcr4: 'deadbeef', pcr12: hex384('00') }),
  ).toThrow('PCR4 of ami-0123456789abcdef0 must be a SHA-384 value of 96 hex characters, got "deadbeef"');
});

test('rejects a standard-boot image without PCR12 (GHSA-xrv8-2pf5-f3q7)', () => {
  expect(() => AttestableImage.fromMeasurements('ami-0123456789abcdef0', { pcr4: hex384('ab') })).toThrow(
    /Image ami-0123456789abcdef0 is not pinned: missing pcr12/,
  );
});

test('rejects an image with no measurement at all', () => {
  expect(() => AttestableImage.fromMeasurements('ami-0123456789abcdef0', {})).toThrow(/missing pcr4 and pcr12/);
});

test('accepts Tokens for the id and the values, leaving them to deploy time', () => {
  const stack = testStack();
  const id = new CfnParameter(stack, 'ImageId', { type: 'AWS::EC2::Image::Id' }).valueAsString;
  const pcr4 = new CfnParameter(stack, 'Pcr4').valueAsString;
  const image = AttestableImage.fromMeasurements(id, { pcr4, pcr12: hex384('00') });
  expect(Token.isUnresolved(image.imageId)).toBe(true);
  expect(image.measurements.pcr4).toBe(pcr4);
});
