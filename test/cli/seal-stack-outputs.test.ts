import { GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Template } from 'aws-cdk-lib/assertions';
import { mockClient } from 'aws-sdk-client-mock';
import { mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { SealedInference } from '../../lib';
import { DEFAULT_MODEL_PREFIX } from '../../lib/shared/appliance-config';
import { IMAGE_A, testStack } from '../fixtures';
import { failure, runCaptured } from './capture';

const KEY_ARN = 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const OTHER_KEY_ARN = 'arn:aws:kms:eu-west-1:111111111111:key/9999abcd-12ab-34cd-56ef-1234567890ab';
const kms = mockClient(KMSClient);
const s3 = mockClient(S3Client);
const dir = mkdtempSync(path.join(tmpdir(), 'seal-stack-outputs-'));
const MODEL = path.join(dir, 'weights.gguf');
writeFileSync(MODEL, Buffer.from('a small model'));

/** The outputs `cdk deploy --outputs-file` would write for a deployed stack with `SealedInference` left at its defaults. */
function deployedOutputs(): Record<string, string> {
  const stack = testStack();
  new SealedInference(stack, 'Inference', { image: IMAGE_A, modelName: 'llama3' });
  const deployed = (id: string, value: unknown) =>
    typeof value === 'string' ? value : id.startsWith('InferenceKeyArn') ? KEY_ARN
      : id.startsWith('InferenceModelBucketName') ? 'inference-bucket' : 'resolved at deploy time';
  return Object.fromEntries(Object.entries(Template.fromStack(stack).toJSON().Outputs)
    .map(([id, output]) => [id, deployed(id, (output as { Value: unknown }).Value)]));
}

/** The four outputs of a deployment named `construct`, with CDK's hash suffix. */
const deployment = (construct: string, keyArn: string, bucket: string, prefix: string, name: string) => ({
  [`${construct}KeyArn1A2B3C4D`]: keyArn,
  [`${construct}ModelBucketName5E6F7A8B`]: bucket,
  [`${construct}ModelPrefix9C0D1E2F`]: prefix,
  [`${construct}ModelName3A4B5C6D`]: name,
});

let files = 0;
/** Writes `outputs` as an outputs file and returns its path. */
function outputsFile(outputs: unknown): string {
  const file = path.join(dir, `outputs-${++files}.json`);
  writeFileSync(file, JSON.stringify(outputs));
  return file;
}

const seal = (...args: string[]) => runCaptured(['seal', MODEL, '--region', 'eu-west-1', ...args]);
const uploadedKeys = () => s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input.Key);
const dataKeyRequest = () => kms.commandCalls(GenerateDataKeyCommand)[0].args[0].input;

beforeEach(() => {
  kms.reset();
  s3.reset();
  kms.on(GenerateDataKeyCommand).callsFake((input) => ({
    Plaintext: new Uint8Array(32).fill(1),
    CiphertextBlob: Buffer.from('wrapped key'),
    KeyId: input.KeyId,
  }));
  s3.on(PutObjectCommand).resolves({});
});

test("seals where a deployment of SealedInference at its defaults serves the model, from the file cdk deploy writes", async () => {
  const file = outputsFile({ Test: deployedOutputs() });
  const { code, stderr } = await seal('--stack-outputs', file);
  expect({ code, stderr }).toEqual({
    code: 0,
    stderr: `Sealing for Inference in stack Test, as ${file} says\nSealed llama3 (13 B) into s3://inference-bucket/models/\n`,
  });
  expect(dataKeyRequest()).toMatchObject({ KeyId: KEY_ARN, EncryptionContext: { 'sealed-inference:model': 'llama3' } });
  expect(s3.commandCalls(PutObjectCommand)[0].args[0].input.Bucket).toBe('inference-bucket');
  expect(uploadedKeys()).toEqual(['models/llama3.sealed', 'models/llama3.datakey.enc', 'models/llama3.manifest.json']);
}, 30_000);

test('seal without --prefix uploads where the construct lets the model owner upload by default', () => {
  const prefix = Object.entries(deployedOutputs()).find(([id]) => id.startsWith('InferenceModelPrefix'))?.[1];
  expect(prefix).toBe(DEFAULT_MODEL_PREFIX);
}, 30_000);

test("a ModelPrefix of '(bucket root)' seals into the bucket's root", async () => {
  const file = outputsFile({ App: deployment('Inference', KEY_ARN, 'b', '(bucket root)', 'llama3') });
  expect((await seal('--stack-outputs', file)).code).toBe(0);
  expect(uploadedKeys()).toEqual(['llama3.sealed', 'llama3.datakey.enc', 'llama3.manifest.json']);
});

test('--key, --bucket, --prefix and --name given override what the file says', async () => {
  const file = outputsFile({ App: deployment('Inference', KEY_ARN, 'b', 'models/', 'llama3') });
  const { code } = await seal('--stack-outputs', file, '--key', OTHER_KEY_ARN, '--bucket', 'other', '--prefix', 'staging/', '--name', 'llama3-test');
  expect(code).toBe(0);
  expect(dataKeyRequest().KeyId).toBe(OTHER_KEY_ARN);
  expect(s3.commandCalls(PutObjectCommand)[0].args[0].input).toMatchObject({ Bucket: 'other', Key: 'staging/llama3-test.sealed' });
});

describe('a file with several deployments says which to pick', () => {
  const twoStacks = { Prod: deployment('Inference', KEY_ARN, 'prod', 'models/', 'llama3'),
    Staging: deployment('Inference', OTHER_KEY_ARN, 'staging', 'models/', 'llama3'), Network: { VpcId: 'vpc-1' } };
  const twoModels = { App: { ...deployment('Llama', KEY_ARN, 'b', 'models/', 'llama3'), ...deployment('Mistral', OTHER_KEY_ARN, 'b', 'models/', 'mistral') } };

  test('several stacks: --stack picks one', async () => {
    const file = outputsFile(twoStacks);
    const ambiguous = await seal('--stack-outputs', file);
    expect({ code: ambiguous.code, stdout: ambiguous.stdout }).toEqual({ code: 1, stdout: '' });
    expect(ambiguous.stderr).toMatch(failure(/Stack outputs file .* has several stacks with sealed models \(Prod, Staging\): pick one with --stack/));
    expect((await seal('--stack-outputs', file, '--stack', 'Staging')).code).toBe(0);
    expect(dataKeyRequest().KeyId).toBe(OTHER_KEY_ARN);
  });

  test('several models in one stack: --name picks the one serving it', async () => {
    const file = outputsFile(twoModels);
    const ambiguous = await seal('--stack-outputs', file);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toMatch(failure(/Stack App in .* has several sealed models \(llama3 of Llama, mistral of Mistral\): pick one with --name <model>/));
    expect((await seal('--stack-outputs', file, '--name', 'mistral')).code).toBe(0);
    expect(dataKeyRequest()).toMatchObject({ KeyId: OTHER_KEY_ARN, EncryptionContext: { 'sealed-inference:model': 'mistral' } });
  });

  test.each([
    ['no deployment', { App: { VpcId: 'vpc-1', InferenceKeyArn: KEY_ARN } }, [],
      /Stack outputs file .* has no KeyArn, ModelBucketName, ModelPrefix, ModelName outputs: write it with cdk deploy --outputs-file from a stack with SealedInference/],
    ['a stack without one', twoStacks, ['--stack', 'Network'], /Stack outputs file .* has no stack Network with sealed-model outputs; it has Prod, Staging/],
    ['a file that is not JSON', 'not json', [], /Stack outputs file .* is not JSON/],
  ])('%s: exit code 1, nothing called', async (_name, outputs, extra, message) => {
    const file = outputsFile(outputs);
    if (typeof outputs === 'string') writeFileSync(file, outputs);
    const { code, stderr } = await seal('--stack-outputs', file, ...extra);
    expect(code).toBe(1);
    expect(stderr).toMatch(failure(message));
    expect(kms.calls()).toHaveLength(0);
  });
});

test('a missing outputs file is named', async () => {
  const missing = path.join(dir, 'no-outputs.json');
  const { code, stderr } = await seal('--stack-outputs', missing);
  expect(code).toBe(1);
  expect(stderr).toMatch(failure(new RegExp(`The stack outputs file ${missing} does not exist: check its path`)));
});
