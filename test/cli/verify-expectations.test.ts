import { InvalidExpectationError, readMeasurementsFile, readStackOutputs } from '../../lib/cli/verify-expectations';

const hex = (byte: string) => byte.repeat(48);

describe('measurements files', () => {
  test('one image as sealed-inference measurements prints it, or several; values in lower case', () => {
    expect(readMeasurementsFile(JSON.stringify({ imageId: 'ami-0123456789abcdef0', pcr4: hex('A4'), pcr12: hex('00') }), 'm.json'))
      .toEqual([{ imageId: 'ami-0123456789abcdef0', pcr4: hex('a4'), pcr7: undefined, pcr12: hex('00') }]);
    expect(readMeasurementsFile(JSON.stringify([{ pcr7: hex('57') }, { pcr4: hex('b4'), pcr12: hex('00') }]), 'm.json')).toHaveLength(2);
  });

  test.each([
    ['not JSON', '{', /Measurements file m.json is not JSON/],
    ['an empty list', '[]', /Measurements file m.json lists no image/],
    ['a list of strings', '["ami-0123456789abcdef0"]', /image 1 of m.json must be an object/],
    ['a number', `{"pcr7": 57}`, /image 1 of m.json: pcr7 must be a string/],
    ['a short PCR', `{"pcr7": "57"}`, /PCR7 of image 1 of m.json must be a SHA-384 value of 96 hex characters/],
    ['a bad image id', `{"imageId": "ami-x", "pcr7": "${hex('57')}"}`, /imageId "ami-x" is not an AMI id/],
    ['PCR4 alone', `{"pcr4": "${hex('a4')}"}`, /image 1 of m.json is not pinned: missing pcr12/],
  ])('refuses %s', (_name, text, message) => {
    expect(() => readMeasurementsFile(text, 'm.json')).toThrow(InvalidExpectationError);
    expect(() => readMeasurementsFile(text, 'm.json')).toThrow(message);
  });
});

describe('stack outputs files', () => {
  test('reads the allowed images in order, with or without CDK hash suffixes', () => {
    const outputs = {
      App: {
        XAllowedImage2Pcr7: hex('57'),
        XAllowedImage1IdDEADBEEF: 'ami-0123456789abcdef0', XAllowedImage1Pcr4DEADBEEF: hex('a4'), XAllowedImage1Pcr12DEADBEEF: hex('00'),
        XAllowedImage1Warnings: 'none', XServiceUrl: 'http://10.0.0.1:3000',
      },
    };
    expect(readStackOutputs(JSON.stringify(outputs), 'o.json')).toEqual([
      { imageId: 'ami-0123456789abcdef0', pcr4: hex('a4'), pcr7: undefined, pcr12: hex('00') },
      { imageId: undefined, pcr4: undefined, pcr7: hex('57'), pcr12: undefined },
    ]);
  });

  test.each([
    ['a list', '[]', undefined, /must map stack names to their outputs/],
    ['no allowed images', '{"S": {"VpcId": "vpc-1"}}', undefined, /has no AllowedImage<N>Pcr<M> outputs: write it with cdk deploy --outputs-file/],
    ['an unknown stack', `{"S": {"AllowedImage1Pcr7": "${hex('57')}"}}`, 'T', /has no stack T with AllowedImage outputs; it has S/],
    ['two constructs in one stack', `{"S": {"AAllowedImage1Pcr7": "${hex('57')}", "BAllowedImage1Pcr7": "${hex('57')}"}}`, undefined,
      /Stack S in o.json has allowed images of several constructs \(A, B\)/],
    ['a value that is not a string', '{"S": {"AllowedImage1Pcr7": 1}}', undefined, /Output AllowedImage1Pcr7 of stack S must be a string/],
    ['an image pinned by PCR4 alone', `{"S": {"AllowedImage1Pcr4": "${hex('a4')}"}}`, undefined, /allowed image 1 of stack S is not pinned/],
  ])('refuses %s', (_name, text, stack, message) => {
    expect(() => readStackOutputs(text, 'o.json', stack)).toThrow(message);
  });
});
