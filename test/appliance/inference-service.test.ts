import { randomBytes } from 'crypto';
import * as https from 'https';
import * as tls from 'tls';
import type { ApplianceStatus } from '../../lib/appliance/appliance-status';
import {
  AttestationEvidence,
  InferenceService,
  MAX_CHAT_REQUEST_BYTES,
  startInferenceService,
} from '../../lib/appliance/inference-service';
import { OllamaClient } from '../../lib/appliance/ollama-client';
import { verifyAttestationDocument } from '../../lib/attestation';
import { MODEL_PCR, PcrEvent, extendPcr, replayPcrEvents } from '../../lib/attestation/pcr-event-log';
import { TestChain, buildTestAttestationDocument, createTestChain, testPcrs } from '../attestation/test-attestation';
import { loadTestModel, StubOllama } from './doubles/stub-ollama';
import { tlsFetch } from './doubles/tls-fetch';
import { createTlsIdentity, TlsIdentity } from '../../lib/appliance/tls-identity';

const SERVED = 'llama-sealed';
const MODEL = { name: SERVED, sha256: 'a'.repeat(64), sha384: 'b'.repeat(96) };
const READY: ApplianceStatus = { phase: 'ready', model: MODEL, since: '2026-11-27T07:00:00.000Z' };
const UNSEALING: ApplianceStatus = {
  phase: 'unsealing',
  progress: { bytes: 1024, total: 4096 },
  model: MODEL,
  since: '2026-11-27T06:59:00.000Z',
};
const EVENT_LOG: PcrEvent[] = [
  { pcr: MODEL_PCR, algorithm: 'sha384', digest: MODEL.sha384, description: `model ${SERVED} (SHA-384 of the plaintext GGUF)` },
];

let chain: TestChain;
let identity: TlsIdentity;
let stub: StubOllama;
let service: InferenceService;
let status: ApplianceStatus;
let logLines: string[];
let attestedNonces: Buffer[];
let attest: (nonce: Buffer) => Promise<AttestationEvidence>;

beforeAll(async () => {
  chain = await createTestChain();
  identity = await createTlsIdentity();
});

beforeEach(async () => {
  stub = await StubOllama.start();
  await loadTestModel(stub, SERVED);
  status = READY;
  logLines = [];
  attestedNonces = [];
  attest = async (nonce) => {
    attestedNonces.push(nonce);
    const pcrs = testPcrs();
    pcrs.set(MODEL_PCR, extendPcr(Buffer.alloc(48), Buffer.from(MODEL.sha384, 'hex')).toString('hex'));
    return { document: buildTestAttestationDocument({ chain, pcrs, nonce }), eventLog: EVENT_LOG };
  };
  service = await startInferenceService(
    {
      status: () => status,
      ollama: new OllamaClient(stub.url),
      attest: (nonce) => attest(nonce),
      log: (line) => logLines.push(line),
    },
    { host: '127.0.0.1', port: 0, tls: identity },
  );
});

afterEach(async () => {
  await service.close();
  await stub.stop();
});


function postChat(body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  return tlsFetch(`${service.url}/api/chat`, { method: 'POST', headers, body });
}

function chatsReceived(): number {
  return stub.calls.filter((call) => call.path === '/api/chat').length;
}

/** Resolves once the log has a line for every request answered so far (it is written when the response closes). */
async function logged(count: number): Promise<string[]> {
  const deadline = Date.now() + 2000;
  while (logLines.length < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  return logLines;
}

describe('status and page', () => {
  test('GET /api/status answers the pipeline status, uncached', async () => {
    status = UNSEALING;

    const response = await tlsFetch(`${service.url}/api/status`);

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(await response.json()).toEqual(UNSEALING);
  });

  test.each([
    ['/', 'text/html; charset=utf-8', '<!doctype html>'],
    ['/app.js', 'text/javascript; charset=utf-8', "'use strict';"],
    ['/app.css', 'text/css; charset=utf-8', ':root {'],
    ['/favicon.svg', 'image/svg+xml', '<svg xmlns="http://www.w3.org/2000/svg"'],
  ])('GET %s serves the embedded file as %s with strict headers', async (route, contentType, start) => {
    const response = await tlsFetch(`${service.url}${route}`);

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe(contentType);
    expect(await response.text()).toContain(start);
    expect(response.headers.get('content-security-policy')).toMatch(/^default-src 'self';.*frame-ancestors 'none'/);
    expect(response.headers.get('content-security-policy')).not.toContain('unsafe-inline');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('referrer-policy')).toBe('no-referrer');
  });

  test('the page loads only its own script and stylesheet, and nothing from another origin', async () => {
    const html = await (await tlsFetch(`${service.url}/`)).text();
    const script = await (await tlsFetch(`${service.url}/app.js`)).text();
    const style = await (await tlsFetch(`${service.url}/app.css`)).text();

    expect([...html.matchAll(/<script[^>]*>/g)].map((tag) => tag[0])).toEqual(['<script src="/app.js" defer>']);
    expect(html).toMatch(/<script src="\/app.js" defer><\/script>/);
    expect(html).toContain('<link rel="stylesheet" href="/app.css" />');
    expect(html).not.toMatch(/ on[a-z]+=|style=/);
    for (const text of [html, script, style]) expect(text).not.toMatch(/https?:\/\//);
  });

  test('unknown paths are 404 and wrong methods 405 with the allowed ones', async () => {
    const missing = await tlsFetch(`${service.url}/admin`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'No such resource: /admin' });

    const wrong = await tlsFetch(`${service.url}/api/status`, { method: 'DELETE' });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET, HEAD');

    const getChat = await tlsFetch(`${service.url}/api/chat`);
    expect(getChat.status).toBe(405);
    expect(getChat.headers.get('allow')).toBe('POST');
  });

  test('a request target that is no URL path is a 400, and the service keeps serving', async () => {
    const port = new URL(service.url).port;
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ port: Number(port), host: '127.0.0.1', rejectUnauthorized: false },
        () => socket.end('GET //[ HTTP/1.1\r\nHost: appliance\r\n\r\n'));
      let received = '';
      socket.on('data', (data) => (received += data.toString()));
      socket.on('end', () => resolve(received));
      socket.on('error', reject);
    });
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    expect(answer).toContain('Malformed request target');
    expect((await tlsFetch(`${service.url}/api/status`)).status).toBe(200);
    expect(await logged(2)).toEqual(expect.arrayContaining([expect.stringMatching(/^GET \(malformed target\) 400 /)]));
  });
});

describe('chat', () => {
  const question = { messages: [{ role: 'user', content: 'why is the sky blue?' }] };

  test('is refused with the status until the model is ready', async () => {
    status = UNSEALING;

    const response = await postChat(JSON.stringify(question));

    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ error: 'The model is not ready yet', status: UNSEALING });
    expect(chatsReceived()).toBe(0);
  });

  test('streams the served model answer as ndjson, chunk by chunk', async () => {
    stub.chunkDelayMs = 20;
    const conversation = {
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'hello' },
        { role: 'assistant', content: 'Hi.' },
        { role: 'user', content: 'why is the sky blue?' },
      ],
    };

    const response = await postChat(JSON.stringify(conversation));

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-ndjson; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-store');
    const reads: string[] = [];
    const decoder = new TextDecoder();
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) reads.push(decoder.decode(chunk));
    const lines = reads.join('').split('\n').filter(Boolean).map((line) => JSON.parse(line));
    expect(lines.map((line) => line.message.content).join('')).toBe(StubOllama.answerTo('why is the sky blue?'));
    expect(lines.at(-1)).toMatchObject({ done: true });
    expect(reads.length).toBeGreaterThan(2);
    expect(stub.calls.at(-1)).toEqual({
      method: 'POST',
      path: '/api/chat',
      body: { model: SERVED, messages: conversation.messages, stream: true },
    });
  });

  test('a client cannot choose the model or add parameters', async () => {
    const response = await postChat(JSON.stringify({ ...question, model: 'some-other-model' }));

    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: 'Unknown field "model": the body takes only "messages" (this appliance serves one model)',
    });
    expect(chatsReceived()).toBe(0);
  });

  test.each([
    ['{"messages": [', 'The body is not valid JSON'],
    ['[]', 'The body must be a JSON object: {"messages": [...]}'],
    ['{"messages": []}', '"messages" must be a non-empty array of {"role", "content"}'],
    ['{"messages": [{"role": "tool", "content": "x"}]}', 'messages[0].role must be "user", "assistant" or "system"'],
    ['{"messages": [{"role": "user", "content": 42}]}', 'messages[0].content must be a string'],
    ['{"messages": [{"role": "user", "content": "x", "images": []}]}', 'messages[0] has an unknown field "images"'],
    ['{"messages": ["x"]}', 'messages[0] must be an object {"role", "content"}'],
  ])('refuses the body %s', async (body, error) => {
    const response = await postChat(body);

    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error });
    expect(chatsReceived()).toBe(0);
  });

  test('refuses a body that is not declared as JSON', async () => {
    const response = await postChat(JSON.stringify(question), { 'content-type': 'text/plain' });

    expect(response.status).toBe(415);
    expect(chatsReceived()).toBe(0);
  });

  test(`refuses a body over ${MAX_CHAT_REQUEST_BYTES} bytes, declared or streamed`, async () => {
    const big = JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(MAX_CHAT_REQUEST_BYTES) }] });

    const declared = await postChat(big);
    expect(declared.status).toBe(413);
    expect(await declared.json()).toEqual({ error: `The request body exceeds ${MAX_CHAT_REQUEST_BYTES} bytes` });

    // Without a content-length, the limit applies while reading.
    const streamed = await rawPost('/api/chat', big, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    expect(streamed.status).toBe(413);
    expect(chatsReceived()).toBe(0);
  });

  test('a refusal from the inference server is a 502 with its reason', async () => {
    stub.fail('chat', { status: 500, error: 'llama runner process has terminated' });

    const response = await postChat(JSON.stringify(question));

    expect(response.status).toBe(502);
    expect(await response.json()).toEqual({
      error: 'The inference server did not answer: Ollama refused POST /api/chat (500): llama runner process has terminated',
    });
  });

  test('a client that goes away ends the upstream chat', async () => {
    stub.chunkDelayMs = 40;
    const response = await postChat(JSON.stringify({ messages: [{ role: 'user', content: 'a b c d e f g h' }] }));
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();

    await reader.cancel();

    await waitFor(() => stub.abortedChats === 1);
    const lines = await logged(1);
    expect(lines.at(-1)).toMatch(/^POST \/api\/chat 200 .* \(closed before the end\)$/);
  });

  test('the log has method, path, status, sizes and duration, never the prompt or the answer', async () => {
    const secret = 'my secret merger plan for ACME';
    const response = await postChat(JSON.stringify({ messages: [{ role: 'user', content: secret }] }));
    const answer = await response.text();
    await tlsFetch(`${service.url}/api/status`);
    await postChat(JSON.stringify({ messages: [{ role: 'user', content: secret }], model: 'x' }));

    const lines = await logged(3);
    expect(answer).toContain('merger');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^POST \/api\/chat 200 in=\d+B out=\d+B \d+ms$/);
    expect(lines[0]).toContain(`out=${Buffer.byteLength(answer)}B`);
    expect(lines[1]).toMatch(/^GET \/api\/status 200 in=0B out=\d+B \d+ms$/);
    expect(lines[2]).toMatch(/^POST \/api\/chat 400 in=\d+B out=\d+B \d+ms$/);
    for (const line of lines) expect(line).not.toMatch(/secret|merger|ACME|You said/);
  });
});

describe('attestation', () => {
  test.each([16, 64])('answers a signed document over a %i-byte nonce, given in either case, and the event log', async (size) => {
    const nonce = randomBytes(size);

    const response = await tlsFetch(`${service.url}/api/attestation?nonce=${nonce.toString('hex').toUpperCase()}`);

    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const body = (await response.json()) as { document: string; eventLog: PcrEvent[] };
    expect(Object.keys(body).sort()).toEqual(['document', 'eventLog']);
    expect(attestedNonces).toEqual([nonce]);
    const document = verifyAttestationDocument(Buffer.from(body.document, 'base64'), {
      expectedNonce: nonce,
      trustedRoots: [chain.root.certificate],
    });
    expect(body.eventLog).toEqual(EVENT_LOG);
    expect(replayPcrEvents(body.eventLog, MODEL_PCR)).toBe(document.pcrs.get(MODEL_PCR));
  });

  test.each([
    ['', 'Expected one nonce, got 0'],
    ['?nonce=', 'The nonce is 0 bytes'],
    [`?nonce=${'ab'.repeat(15)}`, 'The nonce is 15 bytes'],
    [`?nonce=${'ab'.repeat(65)}`, 'The nonce is 65 bytes'],
    [`?nonce=${'a'.repeat(33)}`, 'The nonce is not hex (an even number of digits 0-9, a-f)'],
    [`?nonce=${'zz'.repeat(16)}`, 'The nonce is not hex (an even number of digits 0-9, a-f)'],
    [`?nonce=${'ab'.repeat(16)}&nonce=${'cd'.repeat(16)}`, 'Expected one nonce, got 2'],
    [`?nonce=${'ab'.repeat(16)}&userData=x`, 'Unknown parameter "userData"'],
  ])('refuses the query "%s" with the reason', async (query, reason) => {
    const response = await tlsFetch(`${service.url}/api/attestation${query}`);

    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toBe(
      `${reason}; give one nonce of 16 to 64 bytes in hex: /api/attestation?nonce=<hex>`,
    );
    expect(attestedNonces).toEqual([]);
  });

  test('a failed attestation is a 500 with its reason', async () => {
    attest = async () => {
      throw new Error('nitro-tpm-attest exited with 1: TPM device busy');
    };

    const response = await tlsFetch(`${service.url}/api/attestation?nonce=${'ab'.repeat(16)}`);

    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ error: 'Attestation failed: nitro-tpm-attest exited with 1: TPM device busy' });
  });

  test('one attestation at a time: a second one meanwhile is asked to retry', async () => {
    let release: (() => void) | undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const inner = attest;
    let calls = 0;
    attest = async (nonce) => {
      if (++calls === 1) await held;
      return inner(nonce);
    };

    const first = tlsFetch(`${service.url}/api/attestation?nonce=${'ab'.repeat(16)}`);
    await waitFor(() => calls === 1);
    const second = await tlsFetch(`${service.url}/api/attestation?nonce=${'cd'.repeat(16)}`);
    release?.();

    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).toBe('1');
    expect((await first).status).toBe(200);
    const third = await tlsFetch(`${service.url}/api/attestation?nonce=${'ef'.repeat(16)}`);
    expect(third.status).toBe(200);
    expect(calls).toBe(2);
  });
});

/** A POST through node:http, to control framing headers that fetch sets itself. */
function rawPost(route: string, body: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = https.request(`${service.url}${route}`, { method: 'POST', headers, rejectUnauthorized: false }, (response) => {
      let text = '';
      response.on('data', (chunk) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
    });
    request.on('error', reject);
    // Several writes, so that the body arrives in pieces.
    for (let offset = 0; offset < body.length; offset += 8192) request.write(body.slice(offset, offset + 8192));
    request.end();
  });
}

async function waitFor(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
