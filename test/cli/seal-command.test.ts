import { GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { mkdtempSync, readdirSync, unlinkSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { failure, runCaptured } from './capture';

const KEY_ARN = 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const kms = mockClient(KMSClient);
const s3 = mockClient(S3Client);
const dir = mkdtempSync(path.join(tmpdir(), 'seal-command-'));
const MODEL = path.join(dir, 'llama3.gguf');
writeFileSync(MODEL, Buffer.from('a small model'));
const KMS_ARGS = ['--key', 'alias/models', '--bucket', 'models-bucket', '--region', 'eu-west-1'];

beforeEach(() => {
  kms.reset();
  s3.reset();
  kms.on(GenerateDataKeyCommand).resolves({
    Plaintext: new Uint8Array(32).fill(1),
    CiphertextBlob: Buffer.from('wrapped key'),
    KeyId: KEY_ARN,
  });
  s3.on(PutObjectCommand).resolves({});
});

describe('sealing with KMS into S3', () => {
  test('generates a data key for the model, uploads the three objects, manifest last, and prints them', async () => {
    const { code, stdout, stderr } = await runCaptured(['seal', MODEL, ...KMS_ARGS, '--prefix', 'models/']);
    expect({ code, stderr }).toEqual({ code: 0, stderr: 'Sealed llama3 (13 B) into s3://models-bucket/models/\n' });
    const printed = JSON.parse(stdout);
    expect(printed.artifacts).toEqual({
      sealed: 's3://models-bucket/models/llama3.sealed',
      dataKey: 's3://models-bucket/models/llama3.datakey.enc',
      manifest: 's3://models-bucket/models/llama3.manifest.json',
    });
    expect(printed.manifest).toMatchObject({ modelName: 'llama3', plaintextSize: 13, keyArn: KEY_ARN });
    expect(kms.commandCalls(GenerateDataKeyCommand)[0].args[0].input).toMatchObject({
      KeyId: 'alias/models',
      EncryptionContext: { 'sealed-inference:model': 'llama3', 'sealed-inference:format': '2' },
    });
    const puts = s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input);
    expect(puts.map((p) => p.Key)).toEqual(['models/llama3.sealed', 'models/llama3.datakey.enc', 'models/llama3.manifest.json']);
    expect(puts[1].Body).toEqual(Buffer.from('wrapped key'));
    expect(JSON.parse(puts[2].Body as string)).toEqual(printed.manifest);
  });

  test('a key KMS refuses: exit code 1, one line saying what to check, nothing uploaded', async () => {
    kms.on(GenerateDataKeyCommand).rejects(Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' }));
    const { code, stdout, stderr } = await runCaptured(['seal', MODEL, ...KMS_ARGS, '--name', 'llama-3']);
    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    expect(stderr).toMatch(
      failure(/KMS refused to generate a data key with key alias\/models for model llama-3: .*model owner of the key/),
    );
    expect(s3.calls()).toHaveLength(0);
  });

  test('without --prefix, uploads under models/, where SealedInference lets the model owner upload', async () => {
    const { code, stderr } = await runCaptured(['seal', MODEL, ...KMS_ARGS]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: 'Sealed llama3 (13 B) into s3://models-bucket/models/\n' });
    const keys = s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input.Key);
    expect(keys).toEqual(['models/llama3.sealed', 'models/llama3.datakey.enc', 'models/llama3.manifest.json']);
  });

  test("an empty --prefix uploads into the bucket's root", async () => {
    expect((await runCaptured(['seal', MODEL, ...KMS_ARGS, '--prefix', ''])).code).toBe(0);
    expect(s3.commandCalls(PutObjectCommand)[0].args[0].input.Key).toBe('llama3.sealed');
  });

  test('an upload that fails: exit code 1 with the step that failed', async () => {
    s3.on(PutObjectCommand, { Key: 'models/llama3.sealed' }).rejects(Object.assign(new Error('Access Denied'), { name: 'AccessDenied' }));
    const { code, stderr } = await runCaptured(['seal', MODEL, ...KMS_ARGS]);
    expect(code).toBe(1);
    expect(stderr).toMatch(failure(/Failed uploading s3:\/\/models-bucket\/models\/llama3.sealed: Access Denied \(AccessDenied\)/));
    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(1);
  });
});

test('a model file that is missing or a directory is named, before KMS is called', async () => {
  const missing = await runCaptured(['seal', path.join(dir, 'llama4.gguf'), ...KMS_ARGS]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toMatch(failure(/The model file \S+llama4.gguf does not exist: check its path/));
  const directory = await runCaptured(['seal', dir, ...KMS_ARGS, '--name', 'llama3']);
  expect(directory.code).toBe(1);
  expect(directory.stderr).toMatch(failure(/The model file \S+ is a directory: name the file in it/));
  expect(kms.calls()).toHaveLength(0);
});

describe('usage errors: exit code 2, nothing called or written', () => {
  const out = path.join(dir, 'out');
  test.each([
    ['KMS and offline options together', ['--key', 'k', '--bucket', 'b', '--out', out, '--data-key-file', 'f'], /--key \(sealing with KMS into S3\) and --out\/--data-key-file \(sealing offline\) are mutually exclusive/],
    ['--region with offline options', ['--region', 'eu-west-1', '--out', out, '--data-key-file', 'f'], /--region \(sealing with KMS into S3\) and --out\/--data-key-file/],
    ['--out without a key file', ['--out', out], /sealing offline needs both --out <dir> and --data-key-file <file>/],
    ['--key without a bucket', ['--key', 'k'], /say where to seal to: --stack-outputs <file> or --key <kms-key> --bucket <bucket> \(KMS and S3\), or --out <dir> --data-key-file <file> \(offline\)/],
    ['nothing said', [], /say where to seal to/],
    ['a prefix without its slash', [...KMS_ARGS, '--prefix', 'models'], /Expected an empty prefix or one ending in '\/'/],
    ['a prefix with a leading slash', [...KMS_ARGS, '--prefix', '/models/'], /Expected an empty prefix or one ending in '\/'/],
    ['a bad name', [...KMS_ARGS, '--name', 'my model'], /Model name must be 1-128 characters/],
    ['a chunk size too large', [...KMS_ARGS, '--chunk-size', '65'], /Expected a chunk size in MiB, more than 0 and at most 64/],
    ['a chunk size of zero', [...KMS_ARGS, '--chunk-size', '0'], /Expected a chunk size in MiB/],
    ['--stack-outputs with offline options', ['--stack-outputs', 'o.json', '--out', out, '--data-key-file', 'f'],
      /--stack-outputs \(sealing with KMS into S3\) and --out\/--data-key-file \(sealing offline\) are mutually exclusive/],
    ['--stack without --stack-outputs', [...KMS_ARGS, '--stack', 'App'], /--stack needs --stack-outputs <file>/],
    ['--force when sealing into S3', [...KMS_ARGS, '--force'], /--force replaces files in --out: it is only for sealing offline/],
  ])('%s', async (_name, options, message) => {
    const { code, stdout, stderr } = await runCaptured(['seal', MODEL, ...options]);
    expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
    expect(stderr).toMatch(new RegExp(`^sealed-inference: .*${message.source}`));
    expect(kms.calls()).toHaveLength(0);
    expect(readdirSync(dir)).toEqual(['llama3.gguf']);
  });

  test('a file name that is no model name asks for --name', async () => {
    const odd = path.join(dir, 'my model.gguf');
    writeFileSync(odd, 'x');
    try {
      const { code, stderr } = await runCaptured(['seal', odd, ...KMS_ARGS]);
      expect(code).toBe(2);
      expect(stderr).toMatch(/^sealed-inference: Model name must be .*got "my model", from the file name: pass --name <name> \(add --help for usage\)\n/);
    } finally {
      unlinkSync(odd);
    }
  });
});

test('a Region is required before KMS is called', async () => {
  const saved = { AWS_REGION: process.env.AWS_REGION, AWS_CONFIG_FILE: process.env.AWS_CONFIG_FILE };
  delete process.env.AWS_REGION;
  process.env.AWS_CONFIG_FILE = '/nonexistent/aws-config';
  try {
    const { code, stderr } = await runCaptured(['seal', MODEL, '--key', 'k', '--bucket', 'b']);
    expect(code).toBe(1);
    expect(stderr).toMatch(failure(/No AWS Region to seal the model in: pass --region <region>/));
    expect(kms.calls()).toHaveLength(0);
  } finally {
    Object.assign(process.env, saved);
    if (saved.AWS_REGION === undefined) delete process.env.AWS_REGION;
    if (saved.AWS_CONFIG_FILE === undefined) delete process.env.AWS_CONFIG_FILE;
  }
});
