import { execFileSync } from 'node:child_process';
import { sealedModelObjects } from '../../lib/shared/appliance-config';
import { configurationDigest, configurationRecord, MeasuredConfiguration } from '../../lib/attestation/configuration-measurement';

const CONFIGURATION: MeasuredConfiguration = {
  region: 'eu-west-1',
  keyArn: 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab',
  bucket: 'sealed-models',
  objects: sealedModelObjects('models/', 'llama'),
  modelName: 'llama',
};

test('the record is the documented lines, so that its definition cannot drift', () => {
  expect(configurationRecord(CONFIGURATION)).toBe(
    'sealed-inference-configuration/1\n' +
      'region=eu-west-1\n' +
      'key=arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab\n' +
      'bucket=sealed-models\n' +
      'sealed=models/llama.sealed\n' +
      'data-key=models/llama.datakey.enc\n' +
      'manifest=models/llama.manifest.json\n' +
      'model=llama\n',
  );
});

test('its digest is what sha384sum computes over the record', () => {
  const shell = execFileSync('sha384sum', { input: configurationRecord(CONFIGURATION) }).toString().split(' ')[0];
  expect(configurationDigest(CONFIGURATION)).toBe(shell);
});

test('each field changes the digest', () => {
  const digests = new Set([
    CONFIGURATION,
    { ...CONFIGURATION, region: 'eu-central-1' },
    { ...CONFIGURATION, keyArn: CONFIGURATION.keyArn.replace('1234abcd', '9999abcd') },
    { ...CONFIGURATION, bucket: 'attacker-models' },
    { ...CONFIGURATION, objects: sealedModelObjects('other/', 'llama') },
    { ...CONFIGURATION, modelName: 'llama3' },
  ].map(configurationDigest));
  expect(digests.size).toBe(6);
});

test('a value with a line break, which could forge the next line, is refused', () => {
  expect(() => configurationRecord({ ...CONFIGURATION, bucket: 'sealed-models\nmodel=other' }))
    .toThrow("the configuration's bucket must be a string without control characters, got \"sealed-models\\nmodel=other\"");
});
