import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCommandInput,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { randomBytes } from 'crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { Readable } from 'stream';
import { sealedModelObjects } from '../../lib/shared/appliance-config';
import { parseManifest } from '../../lib/sealing/manifest';
import { MIN_PART_SIZE, partSizeFor, sealToS3, SealToS3Options } from '../../lib/sealing/s3-upload';
import { unseal } from '../../lib/sealing/unseal';

const MiB = 1024 * 1024;
/** The smallest part S3 (and lib-storage) allows, so that a test model of a few MiB has several parts. */
const PART = 5 * MiB;
const KEY = randomBytes(32);
const BUCKET = 'models-bucket';
const OBJECTS = sealedModelObjects('models/', 'llama');
const KEY_ARN = 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab';

const s3 = mockClient(S3Client);
const client = new S3Client({ region: 'eu-west-1' });
const dir = mkdtempSync(path.join(tmpdir(), 's3-upload-'));

/** A model file of `size` random bytes. */
function model(size: number): { file: string; plaintext: Buffer } {
  const plaintext = randomBytes(size);
  const file = path.join(dir, `model-${size}.gguf`);
  writeFileSync(file, plaintext);
  return { file, plaintext };
}

function options(overrides: Partial<SealToS3Options> = {}): SealToS3Options {
  return {
    client,
    bucket: BUCKET,
    objects: OBJECTS,
    modelName: 'llama',
    dataKey: KEY,
    wrappedDataKey: Buffer.from('wrapped'),
    keyArn: KEY_ARN,
    partSize: PART,
    chunkSize: MiB,
    ...overrides,
  };
}

/** Which S3 operations were called, in order, with their object keys. */
const calls = () => s3.calls().map((c) => `${c.args[0].constructor.name.replace(/Command$/, '')} ${(c.args[0].input as { Key?: string }).Key}`);

function acceptMultipart() {
  s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'upload-1' });
  s3.on(UploadPartCommand).callsFake(async (input: UploadPartCommandInput) => ({ ETag: `"etag-${input.PartNumber}"` }));
  s3.on(CompleteMultipartUploadCommand).resolves({});
  s3.on(AbortMultipartUploadCommand).resolves({});
  s3.on(PutObjectCommand).resolves({});
  s3.on(DeleteObjectCommand).resolves({});
}

beforeEach(() => {
  s3.reset();
  acceptMultipart();
});

test('streams the sealed model in parts, then writes the wrapped data key, then the manifest', async () => {
  const { file, plaintext } = model(12 * MiB + 123);
  const progress: number[] = [];
  const manifest = await sealToS3(file, options({ onProgress: (bytes, total) => progress.push(bytes / total) }));

  expect(calls()).toEqual([
    'CreateMultipartUpload models/llama.sealed',
    'UploadPart models/llama.sealed',
    'UploadPart models/llama.sealed',
    'UploadPart models/llama.sealed',
    'CompleteMultipartUpload models/llama.sealed',
    'PutObject models/llama.datakey.enc',
    'PutObject models/llama.manifest.json',
  ]);
  const parts = s3
    .commandCalls(UploadPartCommand)
    .map((c) => c.args[0].input)
    .sort((a, b) => a.PartNumber! - b.PartNumber!);
  expect(parts.map((p) => (p.Body as Buffer).length)).toEqual([PART, PART, manifest.sealedSize - 2 * PART]);
  expect(s3.commandCalls(CompleteMultipartUploadCommand)[0].args[0].input.MultipartUpload?.Parts).toEqual([
    { PartNumber: 1, ETag: '"etag-1"' },
    { PartNumber: 2, ETag: '"etag-2"' },
    { PartNumber: 3, ETag: '"etag-3"' },
  ]);

  // The parts, put together, unseal to the model under the manifest written.
  const [dataKey, written] = s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input);
  expect(dataKey.Body).toEqual(Buffer.from('wrapped'));
  expect(parseManifest(written.Body as string)).toEqual(manifest);
  expect(manifest).toMatchObject({ modelName: 'llama', plaintextSize: plaintext.length, keyArn: KEY_ARN });
  const unsealed = path.join(dir, 'unsealed.gguf');
  await unseal(Readable.from(parts.map((p) => p.Body as Buffer)), unsealed, { dataKey: KEY, manifest });
  expect(readFileSync(unsealed).equals(plaintext)).toBe(true);
  expect(progress.at(-1)).toBe(1);
});

test('a part that fails aborts the multipart upload at once; no data key or manifest is written', async () => {
  const { file } = model(40 * MiB);
  s3.on(UploadPartCommand).callsFake(async (input: UploadPartCommandInput) => {
    if (input.PartNumber === 2) throw Object.assign(new Error('We encountered an internal error.'), { name: 'InternalError' });
    return { ETag: `"etag-${input.PartNumber}"` };
  });

  await expect(sealToS3(file, options({ queueSize: 2 }))).rejects.toThrow(
    /^Failed uploading s3:\/\/models-bucket\/models\/llama.sealed: We encountered an internal error. \(InternalError\); the multipart upload was aborted, so the model is not published$/,
  );
  expect(s3.commandCalls(AbortMultipartUploadCommand).map((c) => c.args[0].input)).toEqual([
    { Bucket: BUCKET, Key: OBJECTS.sealed, UploadId: 'upload-1' },
  ]);
  expect(s3.commandCalls(CompleteMultipartUploadCommand)).toHaveLength(0);
  expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
  // The other uploader did not go on with the remaining parts of the 8.
  expect(s3.commandCalls(UploadPartCommand).length).toBeLessThanOrEqual(4);
});

test('a multipart upload that cannot start fails without waiting for the whole model', async () => {
  const { file } = model(12 * MiB);
  s3.on(CreateMultipartUploadCommand).rejects(Object.assign(new Error('Access Denied'), { name: 'AccessDenied' }));
  await expect(sealToS3(file, options())).rejects.toThrow(/^Failed uploading s3:\/\/models-bucket\/models\/llama.sealed: Access Denied \(AccessDenied\)/);
  expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
});

test('a sealing failure midway aborts the multipart upload', async () => {
  const { file } = model(20 * MiB);
  const onProgress = (bytes: number) => {
    if (bytes > 14 * MiB) throw new Error('interrupted');
  };
  await expect(sealToS3(file, options({ onProgress }))).rejects.toThrow(
    /^Failed sealing into s3:\/\/models-bucket\/models\/llama.sealed: interrupted; the multipart upload was aborted/,
  );
  expect(s3.commandCalls(UploadPartCommand).length).toBeGreaterThan(0);
  expect(s3.commandCalls(AbortMultipartUploadCommand)).toHaveLength(1);
  expect(s3.commandCalls(CompleteMultipartUploadCommand)).toHaveLength(0);
  expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
});

test('a stop signal midway aborts the multipart upload, with parts still uploading, and writes no manifest', async () => {
  const { file } = model(20 * MiB);
  const controller = new AbortController();
  const reason = new Error('interrupted by SIGINT');
  // The signal comes while parts are in flight: they are stopped too.
  s3.on(UploadPartCommand).callsFake(async (input: UploadPartCommandInput) => {
    controller.abort(reason);
    await new Promise((resolve) => setTimeout(resolve, 50));
    return { ETag: `"etag-${input.PartNumber}"` };
  });
  await expect(sealToS3(file, options({ signal: controller.signal }))).rejects.toThrow(
    /^Failed (sealing into|uploading) s3:\/\/models-bucket\/models\/llama.sealed: interrupted by SIGINT; the multipart upload was aborted, so the model is not published$/,
  );
  expect(s3.commandCalls(AbortMultipartUploadCommand)).toHaveLength(1);
  expect(s3.commandCalls(CompleteMultipartUploadCommand)).toHaveLength(0);
  expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
});

test('a manifest that cannot be written is not left from an earlier sealing', async () => {
  const { file } = model(1000);
  s3.on(PutObjectCommand, { Key: OBJECTS.manifest }).rejects(Object.assign(new Error('Slow Down'), { name: 'SlowDown' }));
  await expect(sealToS3(file, options())).rejects.toThrow(
    /^Failed writing s3:\/\/models-bucket\/models\/llama.manifest.json: Slow Down \(SlowDown\); no manifest is left at s3:\/\/models-bucket\/models\/llama.manifest.json, so the model is not published$/,
  );
  expect(calls()).toEqual([
    'PutObject models/llama.sealed',
    'PutObject models/llama.datakey.enc',
    'PutObject models/llama.manifest.json',
    'DeleteObject models/llama.manifest.json',
  ]);
});

test('parts grow with the model so that it fits in 10,000 parts', () => {
  expect(partSizeFor(0)).toBe(MIN_PART_SIZE);
  expect(partSizeFor(50 * 1024 * MiB)).toBe(MIN_PART_SIZE);
  const huge = 400 * 1024 * MiB;
  expect(partSizeFor(huge) % MiB).toBe(0);
  expect(Math.ceil((huge * 1.001) / partSizeFor(huge))).toBeLessThan(10_000);
});
