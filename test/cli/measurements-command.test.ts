import { MEASUREMENT_TAGS } from '../../lib';
import { FakeEc2Answer, withFakeEc2 } from '../fake-ec2';
import { DIGEST, hex384, publishedImage } from '../fixtures';
import { failure, runCaptured } from './capture';

const IMAGE_ID = 'ami-0123456789abcdef0';
const OWNER = '111111111111';

/** Runs the CLI in this process against a fake EC2 answering `answers`, capturing its output. */
async function run(
  args: string[],
  answers: FakeEc2Answer[] = [{ images: [publishedImage()] }],
  env: Record<string, string | undefined> = {},
) {
  const { result, requests } = await withFakeEc2(answers, () => runCaptured(args), env);
  return { ...result, requests };
}

describe('success', () => {
  test('prints the PCR4 and PCR12 of a standard-boot image as JSON, and notes on stderr', async () => {
    const { code, stdout, stderr, requests } = await run(['measurements', IMAGE_ID]);
    expect(code).toBe(0);
    expect(stdout).toBe(
      '{\n' +
        `  "imageId": "${IMAGE_ID}",\n` +
        `  "pcr4": "${hex384('a4')}",\n` +
        `  "pcr12": "${hex384('00')}"\n` +
        '}\n',
    );
    expect(stderr).toBe(
      `Image ${IMAGE_ID}, owned by account ${OWNER}\n` +
        'Recipe version: 1.2.0\n' +
        `pcr_measurements.json SHA-256: ${DIGEST} (not checked)\n` +
        "warning: the image's owner was not checked. Account 111111111111 controls its tags, and so these " +
        'measurements: if you trust it, pass --owner 111111111111\n',
    );
    expect(requests.map((r) => [r.get('Action'), r.get('ImageId.1')])).toEqual([['DescribeImages', IMAGE_ID]]);
  });

  test('prints PCR4, PCR7 and PCR12 of a Secure Boot image', async () => {
    const { code, stdout } = await run(['measurements', IMAGE_ID, '--secure-boot']);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toStrictEqual({ imageId: IMAGE_ID, pcr4: hex384('a4'), pcr7: hex384('57'), pcr12: hex384('00') });
  });

  test('checks the owner and the digest when asked, and then has nothing to warn about', async () => {
    const args = ['measurements', IMAGE_ID, '--owner', '222222222222', '--owner', OWNER, '--expect-sha256', DIGEST];
    const { code, stdout, stderr } = await run(args);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toStrictEqual({ imageId: IMAGE_ID, pcr4: hex384('a4'), pcr12: hex384('00') });
    expect(stderr).toContain(`pcr_measurements.json SHA-256: ${DIGEST} (as expected)\n`);
    expect(stderr).not.toContain('warning');
  });

  test("passes the reader's warnings on to stderr", async () => {
    const { code, stderr } = await run(['measurements', IMAGE_ID, '--owner', OWNER], [
      { images: [publishedImage({ ImdsSupport: undefined }, { [MEASUREMENT_TAGS.recipeVersion]: 'omit' })] },
    ]);
    expect(code).toBe(0);
    expect(stderr).toContain('Recipe version: (not published)\n');
    expect(stderr).toMatch(/^warning: Image ami-0123456789abcdef0 does not make IMDSv2 the default/m);
  });

  test('retries a throttled call, then succeeds', async () => {
    const throttled = { status: 503, code: 'RequestLimitExceeded', message: 'Request limit exceeded.' };
    const { code, stdout, requests } = await run(['measurements', IMAGE_ID], [throttled, { images: [publishedImage()] }]);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ pcr4: hex384('a4') });
    expect(requests).toHaveLength(2);
  });

  test('takes the Region from --region when the environment has none', async () => {
    const { code } = await run(['measurements', IMAGE_ID, '--region', 'eu-central-1'], undefined, {
      AWS_REGION: undefined,
      AWS_CONFIG_FILE: '/nonexistent/aws-config',
    });
    expect(code).toBe(0);
  });
});

describe('refusals and failures: exit code 1, one line on stderr, nothing on stdout', () => {
  test.each([
    [
      'a non-UEFI image',
      [],
      { images: [publishedImage({ BootMode: 'legacy-bios' })] },
      /Image ami-0123456789abcdef0 has boot mode legacy-bios, not uefi: NitroTPM attestation needs an image/,
    ],
    [
      'a standard-boot image without PCR12',
      [],
      { images: [publishedImage({}, { [MEASUREMENT_TAGS.pcr12]: 'omit' })] },
      /Image ami-0123456789abcdef0 publishes no sealed-inference:pcr12: an image is sealed to PCR4 and PCR12/,
    ],
    [
      'a malformed PCR tag',
      [],
      { images: [publishedImage({}, { [MEASUREMENT_TAGS.pcr4]: 'a4' })] },
      /PCR4 of Image ami-0123456789abcdef0 \(tag sealed-inference:pcr4\) must be a SHA-384 value of 96 hex characters, got "a4"/,
    ],
    [
      'a digest other than the expected one',
      ['--expect-sha256', 'CD'.repeat(32)],
      { images: [publishedImage()] },
      /Image ami-0123456789abcdef0 publishes measurements from a pcr_measurements.json with SHA-256 abab[0-9a-f]+, not the expected cdcd/,
    ],
    [
      'an image of another owner',
      ['--owner', '222222222222'],
      { images: [publishedImage()] },
      /Image ami-0123456789abcdef0 is owned by account 111111111111, not by 222222222222: its tags are controlled/,
    ],
    [
      'an image that does not exist',
      [],
      { status: 400, code: 'InvalidAMIID.NotFound', message: "The image id '[ami-0123456789abcdef0]' does not exist" },
      /Image ami-0123456789abcdef0 was not found in this account and Region \(InvalidAMIID.NotFound\): check the image id/,
    ],
    [
      'an image DescribeImages does not return',
      [],
      { images: [] },
      /Image ami-0123456789abcdef0 was not found in this account and Region: check the image id/,
    ],
    [
      'a call EC2 refuses',
      [],
      { status: 403, code: 'UnauthorizedOperation', message: 'You are not authorized to perform this operation.' },
      /Could not describe image ami-0123456789abcdef0: You are not authorized to perform this operation. \(UnauthorizedOperation\)/,
    ],
  ] as Array<[string, string[], FakeEc2Answer, RegExp]>)('%s', async (_name, options, answer, message) => {
    const { code, stdout, stderr } = await run(['measurements', IMAGE_ID, ...options], [answer]);
    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    expect(stderr).toMatch(failure(message));
  });

  test('says how to set a Region when there is none, without calling EC2', async () => {
    const { code, stdout, stderr, requests } = await run(['measurements', IMAGE_ID], undefined, {
      AWS_REGION: undefined,
      AWS_CONFIG_FILE: '/nonexistent/aws-config',
    });
    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    expect(stderr).toBe(
      'sealed-inference: No AWS Region to read the image in: pass --region <region>, or set AWS_REGION or a region ' +
        'in your AWS profile (aws configure set region <region>)\n',
    );
    expect(requests).toHaveLength(0);
  });
});

describe('usage errors: exit code 2, without calling EC2', () => {
  test.each([
    ['a missing image id', ['measurements'], /^sealed-inference: missing required argument 'ami-id' \(add --help for usage\)\n/],
    ['an unknown option', ['measurements', IMAGE_ID, '--pcr9'], /^sealed-inference: unknown option '--pcr9' \(add --help for usage\)\n/],
    ['an unknown command', ['measure', IMAGE_ID], /^sealed-inference: unknown command 'measure' \(add --help for usage\)\n/],
    ['a malformed image id', ['measurements', 'ami-XYZ'], /^sealed-inference: command-argument value 'ami-XYZ' is invalid for argument 'ami-id'. Expected an AMI id/],
    ['a malformed digest', ['measurements', IMAGE_ID, '--expect-sha256', 'abc'], /invalid. Expected a SHA-256: 64 hex characters. \(add --help for usage\)\n/],
    ['a malformed account', ['measurements', IMAGE_ID, '--owner', '1234'], /invalid. Expected an AWS account id: 12 digits. \(add --help for usage\)\n/],
    ['no command', [], /^Usage: sealed-inference /],
  ])('%s', async (_name, args, message) => {
    const { code, stdout, stderr, requests } = await run(args);
    expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
    expect(stderr).toMatch(message);
    expect(requests).toHaveLength(0);
  });

  test('--help prints the usage to stdout and succeeds', async () => {
    const { code, stdout, stderr } = await run(['measurements', '--help']);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toMatch(/^Usage: sealed-inference measurements \[options\] <ami-id>\n/);
    expect(stdout).toContain('--expect-sha256 <hex>');
  });
});
