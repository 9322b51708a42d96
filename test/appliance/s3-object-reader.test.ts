import { randomBytes } from 'node:crypto';
import { readS3Object } from '../../lib/appliance/s3-object-reader';
import { RetryPolicy } from '../../lib/appliance/retry';
import { FakeS3, startFakeS3 } from './doubles/fake-s3';

const QUICK_RETRIES: RetryPolicy = { attempts: 4, baseDelayMs: 5, maxDelayMs: 20 };

async function collect(parts: AsyncIterable<Buffer>): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const part of parts) pieces.push(part);
  return Buffer.concat(pieces);
}

describe('readS3Object', () => {
  let s3: FakeS3;
  const body = randomBytes(5 * 1024 + 17);

  beforeEach(async () => {
    s3 = await startFakeS3();
    s3.put('models', 'm/llama.sealed', body);
  });
  afterEach(() => s3.close());

  const read = (overrides = {}) =>
    readS3Object({ s3: s3.client(), bucket: 'models', key: 'm/llama.sealed', partSize: 1024, concurrency: 3,
      retry: QUICK_RETRIES, ...overrides });

  test('yields the whole object in order from parallel ranged GETs', async () => {
    const object = await read();
    expect(object.size).toBe(body.length);
    expect((await collect(object.parts)).equals(body)).toBe(true);
    expect(s3.gets).toHaveLength(6);
    expect(s3.gets[5]).toBe(`m/llama.sealed bytes=5120-${body.length - 1}`);
  });

  test('an empty object yields nothing', async () => {
    s3.put('models', 'm/llama.sealed', Buffer.alloc(0));
    expect((await collect((await read()).parts)).length).toBe(0);
  });

  test('retries a part that fails with a 5xx or is cut off midway, and reports each retry', async () => {
    const retries: string[] = [];
    s3.failGets(2, 503, 'SlowDown');
    const object = await read({ onRetry: (attempt: number) => retries.push(`retry after ${attempt}`) });
    s3.cutGets(1);
    expect((await collect(object.parts)).equals(body)).toBe(true);
    expect(retries.length).toBeGreaterThanOrEqual(3);
  });

  test('tolerates slow answers with parts still arriving in order', async () => {
    s3.delayGets(30);
    expect((await collect((await read()).parts)).equals(body)).toBe(true);
  });

  test('gives up after the policy\'s attempts on a persistent 5xx', async () => {
    s3.failGets(100, 500, 'InternalError');
    await expect(collect((await read()).parts)).rejects.toThrow(/InternalError/);
  });

  test('fails at once, without retrying, when access is denied', async () => {
    s3.failGets(1, 403, 'AccessDenied');
    await expect(collect((await read()).parts)).rejects.toThrow(/access to s3:\/\/models\/m\/llama.sealed denied/);
    expect(s3.gets.length).toBeLessThanOrEqual(3);
  });

  test('refuses an object replaced while it is read', async () => {
    const object = await read({ concurrency: 1 });
    const iterator = object.parts[Symbol.asyncIterator]();
    await iterator.next();
    s3.put('models', 'm/llama.sealed', randomBytes(body.length));
    await expect(iterator.next()).rejects.toThrow(/was replaced while it was being read/);
  });

  test('a consumer that stops early stops the parts in flight', async () => {
    s3.delayGets(2000, 1);
    const object = await read({ concurrency: 3 });
    const iterator = object.parts[Symbol.asyncIterator]();
    await iterator.next();
    const started = Date.now();
    await iterator.return!(undefined);
    // Parts 2 and 3 were in flight, each due in two seconds.
    expect(Date.now() - started).toBeLessThan(500);
  });

  test('says which object is missing, or could not be read, with the status S3 answered', async () => {
    await expect(read({ key: 'm/absent.sealed' })).rejects.toMatchObject({
      message: expect.stringContaining('access to s3://models/m/absent.sealed denied'), httpStatus: 403,
    });
    await s3.close();
    s3 = await startFakeS3({ missingObjectStatus: 404 });
    await expect(read({ key: 'm/absent.sealed' })).rejects.toMatchObject({
      message: expect.stringContaining('s3://models/m/absent.sealed does not exist'), httpStatus: 404,
    });
  });
});
