import { S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';

/**
 * A local S3 endpoint for path-style HEAD and GET (with Range and If-Match) and single-request PUT, speaking S3's
 * REST protocol so that the real S3 client is exercised. Faults can be injected: errors, answers cut off midway, slow
 * answers.
 */
export interface FakeS3 {
  readonly endpoint: string;
  /** A real S3 client pointed at this endpoint. */
  client(): S3Client;
  put(bucket: string, key: string, body: Buffer): void;
  /** A copy of a stored object's bytes. */
  get(bucket: string, key: string): Buffer;
  /** The next `count` GETs answer `status` with an S3 error document. */
  failGets(count: number, status: number, code: string): void;
  /** The next `count` GETs send half their body, then drop the connection. */
  cutGets(count: number): void;
  /** Every GET after the first `after` waits `ms` before answering. */
  delayGets(ms: number, after?: number): void;
  /** GET requests seen, as `key range`. */
  readonly gets: string[];
  close(): Promise<void>;
}

interface StoredObject {
  readonly body: Buffer;
  readonly etag: string;
}

/**
 * How the fake answers a missing object. S3 answers 404 only to a caller allowed `s3:ListBucket` on the bucket, and
 * 403 AccessDenied to one that is not: the default, as for a role allowed only `s3:GetObject`.
 */
export interface FakeS3Options {
  /** @default 403 */
  readonly missingObjectStatus?: 403 | 404;
}

const stored = (body: Buffer): StoredObject => ({ body, etag: `"${createHash('md5').update(body).digest('hex')}"` });

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The object's bytes from a PUT body: as sent, or decoded from `aws-chunked`, the framing the SDK uses to stream a
 * body with a trailing checksum (`<hex size>[;extensions]\r\n<data>\r\n`, …, a zero-size chunk, then trailers).
 */
function decodeContentEncoding(request: IncomingMessage, body: Buffer): Buffer {
  if (!String(request.headers['content-encoding'] ?? '').includes('aws-chunked')) return body;
  const data: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', at);
    const size = parseInt(body.subarray(at, lineEnd).toString('latin1').split(';')[0], 16);
    if (!Number.isInteger(size) || lineEnd < 0) throw new Error('malformed aws-chunked body');
    if (size === 0) return Buffer.concat(data);
    data.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

export async function startFakeS3(options: FakeS3Options = {}): Promise<FakeS3> {
  const missing = options.missingObjectStatus === 404 ? { status: 404, code: 'NoSuchKey' } : { status: 403, code: 'AccessDenied' };
  const objects = new Map<string, StoredObject>();
  const gets: string[] = [];
  let failures: { count: number; status: number; code: string } = { count: 0, status: 500, code: '' };
  let cuts = 0;
  let delay = { ms: 0, after: 0 };

  const error = (response: ServerResponse, status: number, code: string) => {
    response.writeHead(status, { 'Content-Type': 'application/xml' });
    response.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message></Error>`);
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const [, bucket, ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    const object = objects.get(`${bucket}/${key}`);
    if (request.method === 'PUT') {
      const body = decodeContentEncoding(request, await readBody(request));
      objects.set(`${bucket}/${key}`, stored(body));
      response.writeHead(200, { ETag: stored(body).etag });
      return void response.end();
    }
    if (request.method !== 'HEAD' && request.method !== 'GET') return error(response, 405, 'MethodNotAllowed');
    if (!object) {
      if (request.method === 'HEAD') return void response.writeHead(missing.status).end();
      return error(response, missing.status, missing.code);
    }
    if (request.method === 'HEAD') {
      response.writeHead(200, { 'Content-Length': object.body.length, ETag: object.etag });
      return void response.end();
    }
    const range = request.headers.range ?? '';
    gets.push(`${key} ${range}`);
    if (delay.ms && gets.length > delay.after) await new Promise((resolve) => setTimeout(resolve, delay.ms));
    if (failures.count > 0) {
      failures.count--;
      return error(response, failures.status, failures.code);
    }
    if (request.headers['if-match'] && request.headers['if-match'] !== object.etag) {
      return error(response, 412, 'PreconditionFailed');
    }
    const match = /^bytes=(\d+)-(\d+)$/.exec(range);
    const start = match ? Number(match[1]) : 0;
    const end = match ? Math.min(Number(match[2]), object.body.length - 1) : object.body.length - 1;
    const body = object.body.subarray(start, end + 1);
    response.writeHead(match ? 206 : 200, {
      'Content-Length': body.length,
      ETag: object.etag,
      ...(match ? { 'Content-Range': `bytes ${start}-${end}/${object.body.length}` } : {}),
    });
    if (cuts > 0) {
      cuts--;
      response.write(body.subarray(0, body.length >> 1), () => request.socket.destroy());
      return;
    }
    response.end(body);
  };

  const server: Server = createServer((request, response) => void handle(request, response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    endpoint,
    client: () =>
      new S3Client({
        endpoint,
        region: 'eu-west-1',
        forcePathStyle: true,
        credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' },
        maxAttempts: 1,
      }),
    put: (bucket, key, body) => objects.set(`${bucket}/${key}`, stored(body)),
    get: (bucket, key) => Buffer.from(objects.get(`${bucket}/${key}`)!.body),
    failGets: (count, status, code) => (failures = { count, status, code }),
    cutGets: (count) => (cuts = count),
    delayGets: (ms, after = 0) => (delay = { ms, after }),
    gets,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
