import { DescribeImagesCommand, EC2Client, EC2ServiceException } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import * as path from 'path';
import { handler, MAX_ATTEMPTS } from '../../lib/published-image/handler';
import type { OnEventRequest, OnEventResponse } from '../../lib/published-image/handler/types';
import { MEASUREMENT_TAGS } from '../../lib';
import { FakeEc2Answer, withFakeEc2 } from '../fake-ec2';
import { DIGEST, hex384, publishedImage } from '../fixtures';

const IMAGE_ID = 'ami-0123456789abcdef0';
const STACK_ID = 'arn:aws:cloudformation:eu-west-1:111111111111:stack/Test/00000000-0000-0000-0000-000000000000';

function request(type: OnEventRequest['RequestType'], props: Partial<OnEventRequest['ResourceProperties']> = {}): OnEventRequest {
  return {
    RequestType: type,
    StackId: STACK_ID,
    PhysicalResourceId: type === 'Create' ? undefined : IMAGE_ID,
    ResourceProperties: { ImageId: IMAGE_ID, SecureBoot: 'false', ...props },
  };
}

function ec2Error(name: string, message: string): EC2ServiceException {
  return new EC2ServiceException({ name, message, $fault: 'client', $metadata: {} });
}

describe('with a mocked EC2 client', () => {
  const ec2 = mockClient(EC2Client);
  beforeEach(() => ec2.reset());
  afterAll(() => ec2.restore());
  beforeAll(() => jest.spyOn(console, 'warn').mockImplementation(() => undefined));

  test.each(['Create', 'Update'] as const)('%s returns the measurements, keyed by the image id', async (type) => {
    ec2.on(DescribeImagesCommand, { ImageIds: [IMAGE_ID] }).resolves({ Images: [publishedImage()] });
    await expect(handler(request(type))).resolves.toEqual({
      PhysicalResourceId: IMAGE_ID,
      Data: {
        Pcr4: hex384('a4'),
        Pcr7: hex384('57'),
        Pcr12: hex384('00'),
        RecipeVersion: '1.2.0',
        MeasurementsSha256: DIGEST,
        Warnings: 'none',
      },
    });
    expect(ec2.commandCalls(DescribeImagesCommand)).toHaveLength(1);
  });

  test('returns only the values the image publishes, and its warnings (a Secure Boot image sealed to PCR7 alone)', async () => {
    const image = publishedImage(
      { ImdsSupport: 'v1.0' as never },
      { [MEASUREMENT_TAGS.pcr4]: 'omit', [MEASUREMENT_TAGS.pcr12]: 'omit', [MEASUREMENT_TAGS.recipeVersion]: 'omit' },
    );
    ec2.on(DescribeImagesCommand).resolves({ Images: [image] });
    const response = (await handler(request('Create', { SecureBoot: 'true', Pcr7Only: 'true' }))) as OnEventResponse;
    expect(response.Data).toEqual({
      Pcr7: hex384('57'),
      MeasurementsSha256: DIGEST,
      Warnings: expect.stringContaining('does not make IMDSv2 the default'),
    });
  });

  test('checks the expected digest', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [publishedImage()] });
    await expect(handler(request('Update', { ExpectedMeasurementsSha256: 'cd'.repeat(32) }))).rejects.toThrow(
      /not the expected cdcd/,
    );
    await expect(handler(request('Update', { ExpectedMeasurementsSha256: DIGEST }))).resolves.toBeDefined();
  });

  test("refuses an image owned by another account than the stack's, unless allowed", async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [publishedImage({ OwnerId: '222222222222' })] });
    await expect(handler(request('Create'))).rejects.toThrow(
      /Image ami-0123456789abcdef0 is owned by account 222222222222, not by 111111111111/,
    );
    await expect(handler(request('Create', { AllowedOwnerAccounts: ['222222222222'] }))).resolves.toBeDefined();
  });

  test.each([
    ['an image that is not available', { State: 'failed' as const }, /is failed, not available/],
    ['a non-UEFI image', { BootMode: 'legacy-bios' as const }, /not uefi/],
    ['an image without TPM', { TpmSupport: undefined }, /not v2.0/],
    ['an image without PCR12', { Tags: [{ Key: MEASUREMENT_TAGS.pcr4, Value: hex384('a4') }] }, /publishes no sealed-inference:pcr12/],
  ])('fails the deployment for %s', async (_name, overrides, message) => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [publishedImage(overrides)] });
    await expect(handler(request('Create'))).rejects.toThrow(message);
  });

  test('names an image that does not exist', async () => {
    ec2.on(DescribeImagesCommand).rejects(ec2Error('InvalidAMIID.NotFound', "The image id '[ami-0123456789abcdef0]' does not exist"));
    await expect(handler(request('Create'))).rejects.toThrow(
      /Image ami-0123456789abcdef0 was not found in this account and Region \(InvalidAMIID.NotFound\): check the image id/,
    );
  });

  test('names an image DescribeImages does not return', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    await expect(handler(request('Create'))).rejects.toThrow(/Image ami-0123456789abcdef0 was not found/);
  });

  test('reports any other EC2 error with the image id', async () => {
    ec2.on(DescribeImagesCommand).rejects(ec2Error('UnauthorizedOperation', 'You are not authorized'));
    await expect(handler(request('Create'))).rejects.toThrow(
      'Could not describe image ami-0123456789abcdef0: You are not authorized (UnauthorizedOperation)',
    );
  });

  test('refuses a malformed image id without calling EC2', async () => {
    await expect(handler(request('Create', { ImageId: 'ami-XYZ' }))).rejects.toThrow(/ImageId must be an AMI id/);
    expect(ec2.calls()).toHaveLength(0);
  });

  test('Delete changes nothing and calls nothing', async () => {
    await expect(handler(request('Delete'))).resolves.toEqual({ PhysicalResourceId: IMAGE_ID });
    expect(ec2.calls()).toHaveLength(0);
  });
});

/** Both the TypeScript handler and the artifact the construct deploys, against a local EC2 Query endpoint. */
const BUNDLE = path.join(__dirname, '../../assets/published-measurements-handler/index.js');
describe.each([
  ['the handler source', () => handler],
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  ['the bundled artifact', () => require(BUNDLE).handler as typeof handler],
])('%s, over the EC2 Query protocol', (_name, load) => {
  const run = (answers: FakeEc2Answer[], event = request('Create')) =>
    withFakeEc2(answers, () => load()(event).catch((error: Error) => error));

  test('reads the tags of the image it asked for', async () => {
    const { result, requests } = await run([{ images: [publishedImage()] }]);
    expect(result).toMatchObject({ PhysicalResourceId: IMAGE_ID, Data: { Pcr4: hex384('a4'), Pcr12: hex384('00') } });
    expect(requests.map((r) => [r.get('Action'), r.get('ImageId.1')])).toEqual([['DescribeImages', IMAGE_ID]]);
  });

  test('retries a throttled call, then succeeds', async () => {
    const throttled = { status: 503, code: 'RequestLimitExceeded', message: 'Request limit exceeded.' };
    const { result, requests } = await run([throttled, { images: [publishedImage()] }]);
    expect(result).toMatchObject({ Data: { Pcr4: hex384('a4') } });
    expect(requests).toHaveLength(2);
  });

  test('retries a transient server error, then succeeds', async () => {
    const unavailable = { status: 500, code: 'InternalError', message: 'An internal error has occurred' };
    const { result, requests } = await run([unavailable, unavailable, { images: [publishedImage()] }]);
    expect(result).toMatchObject({ Data: { Pcr12: hex384('00') } });
    expect(requests).toHaveLength(3);
  });

  test('gives up after its attempts with a message naming the image', async () => {
    const unavailable = { status: 503, code: 'Unavailable', message: 'The service is unavailable' };
    const { result, requests } = await run([unavailable]);
    expect(String(result)).toMatch(/Could not describe image ami-0123456789abcdef0: The service is unavailable/);
    expect(requests).toHaveLength(MAX_ATTEMPTS);
  }, 30_000);

  test('does not retry a missing image', async () => {
    const missing = { status: 400, code: 'InvalidAMIID.NotFound', message: 'The image id does not exist' };
    const { result, requests } = await run([missing]);
    expect(String(result)).toMatch(/Image ami-0123456789abcdef0 was not found in this account and Region/);
    expect(requests).toHaveLength(1);
  });
});
