import { MetadataService } from '@aws-sdk/ec2-metadata-service';
import { parseApplianceConfig, readApplianceConfig } from '../../lib/appliance/user-data';
import { FakeImds, startFakeImds } from './doubles/fake-imds';

const KEY_ARN = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';

const VALID_CONFIG = {
  configVersion: 1,
  region: 'eu-west-1',
  bucket: 'sealed-models-111122223333',
  objects: {
    sealed: 'models/llama.sealed',
    dataKey: 'models/llama.datakey.enc',
    manifest: 'models/llama.manifest.json',
  },
  keyArn: KEY_ARN,
  modelName: 'llama',
  servicePort: 3000,
};

const withChange = (change: Record<string, unknown>) => JSON.stringify({ ...VALID_CONFIG, ...change });

describe('parseApplianceConfig', () => {
  test('accepts the configuration the construct writes', () => {
    expect(parseApplianceConfig(JSON.stringify(VALID_CONFIG))).toEqual(VALID_CONFIG);
  });

  test('accepts a multi-Region key and the objects in any order', () => {
    const keyArn = 'arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab';
    const objects = { manifest: 'models/llama.manifest.json', sealed: 'models/llama.sealed', dataKey: 'models/llama.datakey.enc' };
    expect(parseApplianceConfig(withChange({ keyArn, objects }))).toMatchObject({ keyArn, objects: VALID_CONFIG.objects });
  });

  test('accepts models at the top of the bucket', () => {
    const objects = { sealed: 'llama.sealed', dataKey: 'llama.datakey.enc', manifest: 'llama.manifest.json' };
    expect(parseApplianceConfig(withChange({ objects })).objects).toEqual(objects);
  });

  test('accepts host names, in lower case', () => {
    expect(parseApplianceConfig(withChange({ hostNames: ['chat.example.com', 'Appliance-1.internal'] })).hostNames)
      .toEqual(['chat.example.com', 'appliance-1.internal']);
  });

  test.each([
    ['an empty list', []],
    ['a string', 'chat.example.com'],
    ['an IPv4 address', ['10.0.0.5']],
    ['an IPv6 address', ['::1']],
    ['a name with a port', ['chat.example.com:3000']],
    ['a trailing dot', ['chat.example.com.']],
    ['a wildcard', ['*.example.com']],
    ['a URL', ['https://chat.example.com']],
    ['a label over 63 characters', [`${'a'.repeat(64)}.example.com`]],
    ['a label starting with a hyphen', ['-chat.example.com']],
    ['a number', [42]],
  ])('refuses hostNames that are %s', (_what, hostNames) => {
    expect(() => parseApplianceConfig(withChange({ hostNames }))).toThrow(/hostNames(\[0\])? must be/);
  });

  test.each([
    ['not JSON', '{', /it is not JSON/],
    ['an array', '[]', /not a JSON object/],
    ['an unknown field', withChange({ debug: true }), /unknown fields debug/],
    ['another version', withChange({ configVersion: 2 }), /configVersion 2 is not supported/],
    ['a bad Region', withChange({ region: 'moon-1' }), /region must be an AWS Region/],
    ['a bad bucket', withChange({ bucket: 'Bad_Bucket' }), /bucket must be an S3 bucket name/],
    ['an alias for the key', withChange({ keyArn: 'alias/models' }), /keyArn must be the ARN of a KMS key/],
    ['a key in another Region', withChange({ keyArn: KEY_ARN.replace('eu-west-1', 'us-east-1') }), /another Region/],
    ['a bad model name', withChange({ modelName: '../etc' }), /Model name must be/],
    ['a bad port', withChange({ servicePort: 70000 }), /servicePort must be a TCP port/],
    ['objects of another model', withChange({ objects: { ...VALID_CONFIG.objects, dataKey: 'models/other.datakey.enc' } }),
      /objects must be the artifacts of model llama/],
    ['an extra object', withChange({ objects: { ...VALID_CONFIG.objects, extra: 'models/llama.bin' } }),
      /objects must be the artifacts/],
    ['a path escaping the prefix', withChange({
      objects: { sealed: '../llama.sealed', dataKey: '../llama.datakey.enc', manifest: '../llama.manifest.json' },
    }), /objects must be the artifacts/],
  ])('refuses %s', (_what, text, message) => {
    expect(() => parseApplianceConfig(text)).toThrow(message);
  });
});

describe('readApplianceConfig over IMDSv2', () => {
  let imds: FakeImds;
  beforeEach(async () => (imds = await startFakeImds(JSON.stringify(VALID_CONFIG))));
  afterEach(() => imds.close());

  const metadata = () =>
    new MetadataService({ endpoint: imds.endpoint, ec2MetadataV1Disabled: true, retries: 0, httpOptions: { timeout: 2000 } });

  test('reads the user data with a session token', async () => {
    await expect(readApplianceConfig(metadata())).resolves.toEqual(VALID_CONFIG);
    expect(imds.refused).toBe(0);
  });

  test('says so when the instance has no user data', async () => {
    imds.userData = undefined;
    await expect(readApplianceConfig(metadata())).rejects.toThrow(/instance has no user data/);
  });
});
