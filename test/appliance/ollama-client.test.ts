import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import { tmpdir } from 'os';
import * as path from 'path';
import type { Readable } from 'stream';
import { OllamaClient, OllamaError } from '../../lib/appliance/ollama-client';
import { StubOllama } from './doubles/stub-ollama';

let stub: StubOllama;
let client: OllamaClient;
let dir: string;

beforeEach(async () => {
  stub = await StubOllama.start();
  client = new OllamaClient(stub.url);
  dir = fs.mkdtempSync(path.join(tmpdir(), 'ollama-client-'));
});

afterEach(async () => {
  await stub.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Random model bytes and their SHA-256. */
function modelBytes(size = 200_000): { bytes: Buffer; sha256: string } {
  const bytes = randomBytes(size);
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Uploads `bytes` a piece at a time, as the unsealer hands its chunks over, and commits. */
async function upload(target: OllamaClient, sha256: string, bytes: Buffer, pieceSize = 64 * 1024): Promise<void> {
  const sink = target.uploadBlob(sha256, bytes.length);
  for (let offset = 0; offset < bytes.length; offset += pieceSize) {
    await sink.write(Buffer.from(bytes.subarray(offset, offset + pieceSize)));
  }
  await sink.commit();
}

/** The data of each server-sent event of a streamed answer, `[DONE]` included as is. */
async function events(stream: Readable): Promise<string[]> {
  let text = '';
  for await (const chunk of stream) text += chunk;
  return text.split('\n\n').filter(Boolean).map((event) => event.replace(/^data: /, ''));
}

test.each(['http://127.0.0.1:11434', 'http://127.0.0.2:11434', 'http://localhost:11434', 'http://[::1]:11434/'])(
  'accepts the loopback base URL %s',
  (url) => {
    expect(() => new OllamaClient(url)).not.toThrow();
  },
);

test.each([
  'http://10.0.0.5:11434',
  'http://ollama.example.com:11434',
  'https://127.0.0.1:11434',
  'http://127.0.0.1:11434/prefix',
  'http://user:pass@127.0.0.1:11434',
  'http://[::2]:11434',
  'not a url',
])('refuses the base URL %s', (url) => {
  expect(() => new OllamaClient(url)).toThrow(/Ollama base URL/);
});

test('uploads a blob as it is written, which Ollama stores once committed and verified by digest', async () => {
  const { bytes, sha256 } = modelBytes();

  await upload(client, sha256, bytes);

  expect(stub.blobs.get(`sha256:${sha256}`)).toBe(200_000);
  expect(stub.calls.map((call) => `${call.method} ${call.path}`)).toEqual([`POST /api/blobs/sha256:${sha256}`]);
});

test("a blob whose bytes do not match its digest is refused at the commit with Ollama's reason", async () => {
  const { bytes } = modelBytes();
  const other = createHash('sha256').update('other bytes').digest('hex');

  const attempt = upload(client, other, bytes);

  await expect(attempt).rejects.toThrow(OllamaError);
  await expect(attempt).rejects.toThrow(`Ollama refused POST /api/blobs/sha256:${other} (400): digest mismatch`);
  expect(stub.blobs.size).toBe(0);
});

test('an upload broken off midway leaves Ollama nothing', async () => {
  const { bytes, sha256 } = modelBytes();
  const sink = client.uploadBlob(sha256, bytes.length);
  await sink.write(bytes.subarray(0, 100_000));

  await sink.abort();

  await waitFor(() => stub.calls.length === 1);
  await new Promise((resolve) => setTimeout(resolve, 50));
  expect(stub.blobs.size).toBe(0);
});

test('refuses a digest that is not lowercase hex SHA-256 before sending anything', () => {
  expect(() => client.uploadBlob('ABC', 1)).toThrow('Blob digest must be a lowercase hex SHA-256');
  expect(() => client.uploadBlob('a'.repeat(64).toUpperCase(), 1)).toThrow('lowercase hex SHA-256');
  expect(stub.calls).toEqual([]);
});

test('creates a model from an uploaded blob, asking for one answer rather than a stream', async () => {
  const { bytes, sha256 } = modelBytes();
  await upload(client, sha256, bytes);

  await client.createModel('llama-sealed', sha256, 'model.gguf');

  expect(stub.models.get('llama-sealed')).toEqual({ 'model.gguf': `sha256:${sha256}` });
  expect(await (await fetch(`${stub.url}/api/tags`)).json()).toEqual({
    models: [{ name: 'llama-sealed', model: 'llama-sealed' }],
  });
  expect(stub.calls.find((call) => call.path === '/api/create')).toEqual({
    method: 'POST',
    path: '/api/create',
    body: { model: 'llama-sealed', files: { 'model.gguf': `sha256:${sha256}` }, stream: false },
  });
});

test("a refused create fails with Ollama's reason", async () => {
  const sha256 = 'b'.repeat(64);

  await expect(client.createModel('llama-sealed', sha256, 'model.gguf')).rejects.toThrow(
    `Ollama refused POST /api/create (400): blob sha256:${sha256} not found`,
  );
  expect(stub.models.size).toBe(0);
});

test('refuses a file name with a path before sending anything', async () => {
  await expect(client.createModel('m', 'c'.repeat(64), '../model.gguf')).rejects.toThrow('plain file name');
  expect(stub.calls).toEqual([]);
});

test("streams a chat completion as server-sent events from Ollama's OpenAI-compatible API, the body as given", async () => {
  const { bytes, sha256 } = modelBytes();
  await upload(client, sha256, bytes);
  await client.createModel('llama-sealed', sha256, 'model.gguf');
  const body = JSON.stringify({
    model: 'llama-sealed',
    messages: [{ role: 'user', content: 'why is the sky blue?' }],
    stream: true,
    temperature: 0.2,
  });

  const answer = await events(await client.chatCompletions(body, new AbortController().signal));

  expect(answer.at(-1)).toBe('[DONE]');
  const chunks = answer.slice(0, -1).map((data) => JSON.parse(data));
  expect(chunks.map((chunk) => chunk.choices[0].delta.content).join('')).toBe(StubOllama.answerTo('why is the sky blue?'));
  expect(chunks.length).toBeGreaterThan(2);
  expect(chunks.at(-1)).toMatchObject({ object: 'chat.completion.chunk', choices: [{ finish_reason: 'stop' }] });
  expect(stub.calls.at(-1)).toEqual({ method: 'POST', path: '/v1/chat/completions', body: JSON.parse(body) });
});

test("a refused chat fails with Ollama's status and its reason, from the OpenAI error shape", async () => {
  const chat = client.chatCompletions(JSON.stringify({ model: 'missing', messages: [] }), new AbortController().signal);

  await expect(chat).rejects.toThrow('Ollama refused POST /v1/chat/completions (404): model "missing" not found');
  await expect(chat).rejects.toMatchObject({ status: 404, reason: 'model "missing" not found, try pulling it first' });
});

test('aborting a chat ends the upstream request', async () => {
  const { bytes, sha256 } = modelBytes(1000);
  await upload(client, sha256, bytes);
  await client.createModel('m', sha256, 'model.gguf');
  stub.chunkDelayMs = 50;
  const controller = new AbortController();
  const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'a b c d e f' }], stream: true });

  const stream = await client.chatCompletions(body, controller.signal);
  controller.abort();

  await expect(events(stream)).rejects.toThrow();
  await waitFor(() => stub.abortedChats === 1);
});

test('an unreachable Ollama is reported with its address', async () => {
  const url = stub.url;
  await stub.stop();

  await expect(client.createModel('m', 'd'.repeat(64), 'model.gguf')).rejects.toThrow(
    `POST /api/create to Ollama at ${url} failed: connect ECONNREFUSED`,
  );
  stub = await StubOllama.start();
});

async function waitFor(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** An HTTP server on the loopback that handles every request with `handle`. */
async function rawServer(handle: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

test('an upload Ollama cuts off midway fails on the next write, naming the request', async () => {
  const server = await rawServer((request) => request.once('data', () => request.socket.destroy()));
  try {
    const { bytes, sha256 } = modelBytes(16 * 1024 * 1024);
    await expect(upload(new OllamaClient(server.url), sha256, bytes)).rejects.toThrow(/POST \/api\/blobs\/sha256:.* failed/);
  } finally {
    await server.close();
  }
});

test('an Ollama that says nothing is given up on after the timeout', async () => {
  const server = await rawServer(() => undefined);
  try {
    const client = new OllamaClient(server.url, { requestMs: 200, createMs: 200 });
    const sink = client.uploadBlob('a'.repeat(64), 10);
    await sink.write(Buffer.alloc(10));
    await expect(sink.commit()).rejects.toThrow(/no answer for 0 s/);
    await expect(client.createModel('llama', 'a'.repeat(64), 'llama.gguf')).rejects.toThrow(/no answer/);
  } finally {
    await server.close();
  }
});
