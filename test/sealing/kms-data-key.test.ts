import { GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { generateDataKey } from '../../lib/sealing/kms-data-key';

const KEY_ARN = 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const kms = mockClient(KMSClient);
const client = new KMSClient({ region: 'eu-west-1' });

beforeEach(() => kms.reset());

test('asks for an AES-256 key bound to the model, and returns it with the wrapped key and the key ARN', async () => {
  kms.on(GenerateDataKeyCommand).resolves({
    Plaintext: new Uint8Array(32).fill(7),
    CiphertextBlob: new Uint8Array([1, 2, 3]),
    KeyId: KEY_ARN,
  });
  const key = await generateDataKey(client, 'alias/models', 'llama3');
  expect(key).toEqual({ plaintext: Buffer.alloc(32, 7), ciphertextBlob: Buffer.from([1, 2, 3]), keyArn: KEY_ARN });
  expect(kms.commandCalls(GenerateDataKeyCommand).map((c) => c.args[0].input)).toEqual([
    {
      KeyId: 'alias/models',
      KeySpec: 'AES_256',
      EncryptionContext: { 'sealed-inference:model': 'llama3', 'sealed-inference:format': '2' },
    },
  ]);
});

test.each([
  [
    'AccessDeniedException',
    /^KMS refused to generate a data key with key alias\/models for model llama3: .* \(AccessDeniedException\)\. Your principal may need to be a model owner of the key, and the key policy must allow the model name llama3$/,
  ],
  ['NotFoundException', /^KMS key alias\/models was not found: .* \(NotFoundException\)\. Check the key id, ARN or alias/],
  ['DisabledException', /^KMS key alias\/models cannot be used now: .*Check that it is enabled/],
  ['ThrottlingException', /^Could not generate a data key with KMS key alias\/models: .* \(ThrottlingException\)$/],
])('explains %s', async (name, message) => {
  kms.on(GenerateDataKeyCommand).rejects(Object.assign(new Error('refused'), { name }));
  await expect(generateDataKey(client, 'alias/models', 'llama3')).rejects.toThrow(message);
});

test('refuses an answer without a 32-byte key', async () => {
  kms.on(GenerateDataKeyCommand).resolves({ Plaintext: new Uint8Array(16), CiphertextBlob: new Uint8Array(1), KeyId: KEY_ARN });
  await expect(generateDataKey(client, 'alias/models', 'llama3')).rejects.toThrow(/incomplete answer/);
});

test('refuses a bad model name before calling KMS', async () => {
  await expect(generateDataKey(client, 'alias/models', '../x')).rejects.toThrow(/Model name must be/);
  expect(kms.calls()).toHaveLength(0);
});
