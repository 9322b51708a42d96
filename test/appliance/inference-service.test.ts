import { randomBytes } from 'crypto';
import * as https from 'https';
import OpenAI from 'openai';
import * as tls from 'tls';
import type { ApplianceStatus } from '../../lib/appliance/appliance-status';
import {
  AttestationEvidence,
  InferenceService,
  InferenceServiceOptions,
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
const MODEL = { name: SERVED, sha256: 'a'.repeat(64), measurement: 'b'.repeat(96) };
const READY: ApplianceStatus = { phase: 'ready', model: MODEL, since: '2026-11-27T07:00:00.000Z' };
const UNSEALING: ApplianceStatus = {
  phase: 'unsealing',
  progress: { bytes: 1024, total: 4096 },
  model: MODEL,
  since: '2026-11-27T06:59:00.000Z',
};
const EVENT_LOG: PcrEvent[] = [
  { pcr: MODEL_PCR, algorithm: 'sha384', digest: MODEL.measurement, description: `model ${SERVED} (SHA-384 of the plaintext GGUF)` },
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
    pcrs.set(MODEL_PCR, extendPcr(Buffer.alloc(48), Buffer.from(MODEL.measurement, 'hex')).toString('hex'));
    return { document: buildTestAttestationDocument({ chain, pcrs, nonce }), eventLog: EVENT_LOG };
  };
  service = await startService();
});

/** The service over the stub, with `options` besides the defaults. */
function startService(options: Partial<InferenceServiceOptions> = {}): Promise<InferenceService> {
  return startInferenceService(
    {
      status: () => status,
      ollama: new OllamaClient(stub.url),
      attest: (nonce) => attest(nonce),
      log: (line) => logLines.push(line),
    },
    { host: '127.0.0.1', port: 0, tls: identity, ...options },
  );
}

/** Replaces the service with one given `options`. */
async function restartService(options: Partial<InferenceServiceOptions>): Promise<void> {
  await service.close();
  service = await startService(options);
}

afterEach(async () => {
  await service.close();
  await stub.stop();
});


function postChat(body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  return tlsFetch(`${service.url}/v1/chat/completions`, { method: 'POST', headers, body });
}

function chatsReceived(): number {
  return stub.calls.filter((call) => call.path === '/v1/chat/completions').length;
}

/** The data of each server-sent event in `text`. */
function sseData(text: string): string[] {
  return text.split('\n\n').filter(Boolean).map((event) => {
    expect(event).toMatch(/^data: /);
    return event.slice('data: '.length);
  });
}

/** An OpenAI error body. */
function openAiError(message: string, type: string, code: string | null) {
  return { error: { message, type, param: null, code } };
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

  test("GET /api/ready is a load balancer's health check: 200 only once the model is served", async () => {
    for (const current of [UNSEALING, { phase: 'failed', failedPhase: 'attesting', reason: 'refused', since: READY.since }, READY]) {
      status = current as ApplianceStatus;
      const response = await tlsFetch(`${service.url}/api/ready`);
      expect({ status: response.status, body: await response.json() }).toEqual(current.phase === 'ready'
        ? { status: 200, body: { ready: true, phase: 'ready' } }
        : { status: 503, body: { ready: false, phase: current.phase } });
    }
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

    const getChat = await tlsFetch(`${service.url}/v1/chat/completions`);
    expect(getChat.status).toBe(405);
    expect(getChat.headers.get('allow')).toBe('POST');
    expect(await getChat.json()).toEqual(openAiError('Method GET is not allowed here; use POST', 'invalid_request_error', 'method_not_allowed'));

    const gone = await tlsFetch(`${service.url}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(gone.status).toBe(404);

    const embeddings = await tlsFetch(`${service.url}/v1/embeddings`, { method: 'POST' });
    expect(embeddings.status).toBe(404);
    expect(await embeddings.json()).toEqual(openAiError('No such resource: /v1/embeddings', 'invalid_request_error', 'not_found'));
  });

  test('a request target that is no URL path is a 400, and the service keeps serving', async () => {
    const port = new URL(service.url).port;
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ port: Number(port), host: '127.0.0.1', rejectUnauthorized: false },
        () => socket.end('GET //[ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
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

describe('OpenAI-compatible chat', () => {
  const question = { messages: [{ role: 'user', content: 'why is the sky blue?' }] };

  test('is refused with 503, Retry-After and an OpenAI error until the model is ready', async () => {
    status = UNSEALING;

    const chat = await postChat(JSON.stringify(question));
    const models = await tlsFetch(`${service.url}/v1/models`);

    for (const response of [chat, models]) {
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('5');
      expect(await response.json()).toEqual(openAiError(
        'The model is not ready yet: the appliance is unsealing (GET /api/status follows it)', 'server_error', 'model_not_ready',
      ));
    }
    expect(chatsReceived()).toBe(0);
  });

  test('GET /v1/models lists the served model once ready', async () => {
    const response = await tlsFetch(`${service.url}/v1/models`);

    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      object: 'list',
      data: [{ id: SERVED, object: 'model', created: Date.parse(READY.since) / 1000, owned_by: 'sealed-inference' }],
    });
  });

  test("streams Ollama's server-sent events as they arrive, the served model forced and other fields passed on", async () => {
    stub.chunkDelayMs = 20;
    const request = {
      model: 'gpt-4o',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'hello' },
        { role: 'assistant', content: 'Hi.' },
        { role: 'user', content: 'why is the sky blue?' },
      ],
      stream: true,
      temperature: 0.2,
      max_tokens: 64,
      stream_options: { include_usage: true },
    };

    const response = await postChat(JSON.stringify(request));

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-store');
    const reads: string[] = [];
    const decoder = new TextDecoder();
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) reads.push(decoder.decode(chunk));
    const events = sseData(reads.join(''));
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((data) => JSON.parse(data));
    expect(chunks.map((chunk) => chunk.choices[0].delta.content).join('')).toBe(StubOllama.answerTo('why is the sky blue?'));
    expect(chunks[0]).toMatchObject({ object: 'chat.completion.chunk', model: SERVED, choices: [{ index: 0, finish_reason: null }] });
    expect(reads.length).toBeGreaterThan(2);
    expect(stub.calls.at(-1)).toEqual({ method: 'POST', path: '/v1/chat/completions', body: { ...request, model: SERVED } });
  });

  test('answers a chat.completion object when not streaming, a request without a model going to the served one', async () => {
    const response = await postChat(JSON.stringify(question));

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await response.json()).toMatchObject({
      object: 'chat.completion',
      model: SERVED,
      choices: [{ index: 0, message: { role: 'assistant', content: StubOllama.answerTo('why is the sky blue?') }, finish_reason: 'stop' }],
    });
    expect(stub.calls.at(-1)?.body).toEqual({ ...question, model: SERVED });
  });

  test('the official openai client chats with it, streamed and not', async () => {
    const client = new OpenAI({
      baseURL: `${service.url}/v1`,
      apiKey: 'not-used',
      maxRetries: 0,
      fetch: (url, init) => tlsFetch(String(url), {
        method: init?.method,
        headers: Object.fromEntries(new Headers(init?.headers).entries()),
        body: init?.body as string | undefined,
        signal: init?.signal ?? undefined,
      }),
    });

    const models = await client.models.list();
    expect(models.data.map((model) => model.id)).toEqual([SERVED]);
    const completion = await client.chat.completions.create({ model: 'anything', messages: [{ role: 'user', content: 'hi there' }] });
    expect(completion.choices[0].message.content).toBe(StubOllama.answerTo('hi there'));
    const stream = await client.chat.completions.create({
      model: SERVED,
      messages: [{ role: 'user', content: 'and streamed' }],
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe(StubOllama.answerTo('and streamed'));

    status = UNSEALING;
    await expect(client.chat.completions.create({ model: SERVED, messages: [{ role: 'user', content: 'x' }] }))
      .rejects.toMatchObject({ status: 503, code: 'model_not_ready' });
  });

  test.each([
    ['{"messages": [', 'The body is not valid JSON'],
    ['[]', 'The body must be a JSON object: {"messages": [...]}'],
    ['{"model": "x"}', '"messages" must be a non-empty array of {"role", "content"}'],
    ['{"messages": []}', '"messages" must be a non-empty array of {"role", "content"}'],
  ])('refuses the body %s with an OpenAI error', async (body, message) => {
    const response = await postChat(body);

    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { message: string; type: string } }).error).toMatchObject({
      message,
      type: 'invalid_request_error',
    });
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
    expect(await declared.json()).toEqual(openAiError(
      `The request body exceeds ${MAX_CHAT_REQUEST_BYTES} bytes`, 'invalid_request_error', 'request_too_large',
    ));

    // Without a content-length, the limit applies while reading.
    const streamed = await rawPost('/v1/chat/completions', big, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    expect(streamed.status).toBe(413);
    expect(chatsReceived()).toBe(0);
  });

  test("a request Ollama finds invalid is refused with its status and reason", async () => {
    stub.fail('chat', { status: 400, error: 'invalid message content type: image' });

    const response = await postChat(JSON.stringify(question));

    expect(response.status).toBe(400);
    expect(await response.json()).toEqual(openAiError(
      'The inference server refused the request: invalid message content type: image', 'invalid_request_error', 'invalid_request',
    ));
  });

  test("a failure of Ollama is a generic 502: its address and reason go to the log, not to the client", async () => {
    stub.fail('chat', { status: 500, error: 'llama runner process has terminated' });

    const response = await postChat(JSON.stringify(question));

    expect(response.status).toBe(502);
    const body = await response.text();
    expect(JSON.parse(body)).toEqual(openAiError(
      "The inference server did not answer; the appliance's log has the reason", 'server_error', 'inference_server_error',
    ));
    expect(body).not.toContain(stub.url.replace('http://', ''));
    expect(body).not.toContain('llama runner');
    expect(await logged(2)).toContain(
      'POST /v1/chat/completions: Ollama refused POST /v1/chat/completions (500): llama runner process has terminated',
    );
  });

  test('an unreachable Ollama is a generic 502 that does not name its address', async () => {
    const address = stub.url.replace('http://', '');
    await stub.stop();

    const response = await postChat(JSON.stringify(question));

    expect(response.status).toBe(502);
    expect(await response.text()).not.toContain(address);
    expect((await logged(2)).join('\n')).toContain(`to Ollama at http://${address} failed`);
    stub = await StubOllama.start();
  });

  test("Ollama's 503 (busy) is passed on as 503 with Retry-After, not as a 502", async () => {
    stub.fail('chat', { status: 503, error: 'server busy, please try again.  maximum pending requests exceeded' });

    const response = await postChat(JSON.stringify(question));

    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('5');
    expect(await response.json()).toEqual(openAiError(
      'The inference server is busy; retry in a moment', 'server_error', 'inference_server_busy',
    ));
  });

  test('a client that goes away ends the upstream chat', async () => {
    stub.chunkDelayMs = 40;
    const response = await postChat(JSON.stringify({ messages: [{ role: 'user', content: 'a b c d e f g h' }], stream: true }));
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();

    await reader.cancel();

    await waitFor(() => stub.abortedChats === 1);
    const lines = await logged(2);
    expect(lines).toContain('POST /v1/chat/completions: answer broken off: the client went away');
    expect(lines.find((line) => line.startsWith('POST /v1/chat/completions 200'))).toMatch(/\(closed before the end\)$/);
  });

  test('the log has method, path, status, sizes and duration, never the prompt or the answer', async () => {
    const secret = 'my secret merger plan for ACME';
    const response = await postChat(JSON.stringify({ messages: [{ role: 'user', content: secret }], stream: true }));
    const answer = await response.text();
    await tlsFetch(`${service.url}/api/status`);
    await postChat(`{"messages": [{"role": "user", "content": "${secret}"`);

    const lines = await logged(3);
    expect(answer).toContain('merger');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^POST \/v1\/chat\/completions 200 in=\d+B out=\d+B \d+ms$/);
    expect(lines[0]).toContain(`out=${Buffer.byteLength(answer)}B`);
    expect(lines[1]).toMatch(/^GET \/api\/status 200 in=0B out=\d+B \d+ms$/);
    expect(lines[2]).toMatch(/^POST \/v1\/chat\/completions 400 in=\d+B out=\d+B \d+ms$/);
    for (const line of lines) expect(line).not.toMatch(/secret|merger|ACME|You said/);
  });
});

describe('hostile clients', () => {
  test('a Host other than an IP address or a configured name is refused with 421 (DNS rebinding)', async () => {
    await restartService({ hostNames: ['appliance.example.com'] });
    const port = new URL(service.url).port;
    const withHost = (host: string, route = '/api/status') => tlsFetch(`${service.url}${route}`, { headers: { host } });

    for (const host of [`127.0.0.1:${port}`, '127.0.0.1', '203.0.113.7:3000', '[::1]:3000', 'appliance.example.com',
      `APPLIANCE.example.com.:${port}`]) {
      expect([host, (await withHost(host)).status]).toEqual([host, 200]);
    }
    const rebound = await withHost(`attacker.example:${port}`);
    expect(rebound.status).toBe(421);
    expect(await rebound.json()).toEqual({
      error: 'Host "attacker.example:' + port + '" does not name this appliance; use the appliance\'s IP address, ' +
        'or a host name listed in its configuration (hostNames)',
    });
    for (const host of ['localhost', 'sub.appliance.example.com', '127.0.0.1.attacker.example', '[attacker.example]']) {
      expect([host, (await withHost(host)).status]).toEqual([host, 421]);
    }
    const onApi = await withHost('attacker.example', '/v1/models');
    expect(onApi.status).toBe(421);
    expect(await onApi.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'misdirected_request' } });
    expect(await rawExchange('GET /api/status HTTP/1.0\r\n\r\n')).toMatch(/^HTTP\/1.1 421 .*\r\n[^]*no Host header/);
    expect(chatsReceived()).toBe(0);
  });

  test('chats beyond the limit in flight are refused with 503 and Retry-After, and accepted again after', async () => {
    await restartService({ maxChatsInFlight: 1 });
    stub.chunkDelayMs = 30;
    const long = JSON.stringify({ messages: [{ role: 'user', content: 'one two three four five six' }], stream: true });

    const first = await postChat(long);
    const second = await postChat(long);

    expect(first.status).toBe(200);
    expect(second.status).toBe(503);
    expect(second.headers.get('retry-after')).toBe('5');
    expect(await second.json()).toMatchObject({ error: { type: 'server_error', code: 'too_many_chats' } });
    await first.text();
    await waitFor(() => logLines.length >= 2);
    expect((await postChat(long)).status).toBe(200);
  });

  test('a client still sending a large body when refused, without Expect, reads the 413 and not a reset', async () => {
    const piece = Buffer.alloc(16 * 1024, 'x');
    const pieces = 256;
    const socket = await tlsConnect();
    const failure = new Promise<never>((_resolve, reject) => socket.on('error', reject));
    failure.catch(() => undefined);
    try {
      socket.write('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
        `Content-Length: ${piece.length * pieces}\r\n\r\n`);
      // As many clients do: the whole request first, at the pace of a network, then the answer.
      for (let i = 0; i < pieces; i++) {
        await Promise.race([failure, new Promise((resolve) => socket.write(piece, resolve))]);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      const statusLine = await Promise.race([failure, new Promise<string>((resolve) => {
        let received = '';
        socket.on('data', (data) => {
          received += data.toString();
          if (received.includes('\r\n')) resolve(received.split('\r\n')[0]);
        });
      })]);

      expect(statusLine).toBe('HTTP/1.1 413 Payload Too Large');
      expect(chatsReceived()).toBe(0);
    } finally {
      socket.destroy();
    }
  });

  test('an upload announced with Expect: 100-continue and too large is refused before it is sent', async () => {
    const answer = await rawExchange(
      'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
        `Content-Length: ${MAX_CHAT_REQUEST_BYTES + 1}\r\nExpect: 100-continue\r\n\r\n`,
    );

    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 413 Payload Too Large');
    expect(answer).not.toContain('100 Continue');
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
  });

  test('an upload announced with Expect: 100-continue within the limit is invited and answered', async () => {
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'continue' }] });
    const answer = await new Promise<{ continued: boolean; status: number }>((resolve, reject) => {
      let continued = false;
      const request = https.request(`${service.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), expect: '100-continue' },
        rejectUnauthorized: false,
      }, (response) => {
        response.resume();
        response.on('end', () => resolve({ continued, status: response.statusCode ?? 0 }));
      });
      request.on('continue', () => {
        continued = true;
        request.end(body);
      });
      request.on('error', reject);
    });

    expect(answer).toEqual({ continued: true, status: 200 });
  });

  test('a client sending its headers byte by byte is cut off soon after the headers timeout', async () => {
    await restartService({ timeouts: { headersMs: 300, requestMs: 600 } });
    const socket = await tlsConnect();
    const started = Date.now();
    const request = 'GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + 'x'.repeat(200);
    let sent = 0;
    const drip = setInterval(() => sent < request.length && socket.write(request[sent++]), 20);
    try {
      const closed = await new Promise<number>((resolve, reject) => {
        socket.on('close', () => resolve(Date.now() - started));
        socket.on('error', () => undefined);
        setTimeout(() => reject(new Error('still connected after 3 s')), 3000);
      });
      expect(closed).toBeGreaterThanOrEqual(300);
      expect(closed).toBeLessThan(1500);
    } finally {
      clearInterval(drip);
      socket.destroy();
    }
  });

  test('a client that stops reading a streamed answer is cut off after the write timeout, and Ollama with it', async () => {
    await restartService({ timeouts: { writeStallMs: 300 } });
    stub.answerRepeats = 200;
    const prompt = Array.from({ length: 500 }, (_, i) => `w${i}`).join(' ');
    const body = JSON.stringify({ messages: [{ role: 'user', content: prompt }], stream: true });
    const socket = await tlsConnect();
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    // Reads the start of the answer, then nothing more.
    const first = await new Promise<string>((resolve) => socket.once('data', (data) => resolve(data.toString())));
    socket.pause();
    try {
      expect(first.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
      await waitFor(() => stub.abortedChats === 1, 10_000);
      const lines = await logged(2);
      expect(lines).toContain('POST /v1/chat/completions: answer broken off: the client read nothing for 300 ms while the answer waited');
      expect(lines.find((line) => line.startsWith('POST /v1/chat/completions 200'))).toMatch(/\(closed before the end\)$/);
    } finally {
      socket.destroy();
    }
  }, 20_000);
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

  test("a failed attestation is a 500 with a generic reason; the tool's output goes to the log only", async () => {
    attest = async () => {
      throw new Error('nitro-tpm-attest exited with 1: TPM device busy at /dev/tpmrm0');
    };

    const response = await tlsFetch(`${service.url}/api/attestation?nonce=${'ab'.repeat(16)}`);

    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ error: "Attestation failed; the appliance's log has the reason" });
    expect(await logged(2)).toContain(
      'GET /api/attestation: attestation failed: nitro-tpm-attest exited with 1: TPM device busy at /dev/tpmrm0',
    );
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

/** A TLS connection to the service, as a client that checks no certificate. */
function tlsConnect(): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port: Number(new URL(service.url).port), host: '127.0.0.1', rejectUnauthorized: false },
      () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Sends `text` as is over TLS and answers everything received until the service closes the connection. */
async function rawExchange(text: string): Promise<string> {
  const socket = await tlsConnect();
  return new Promise((resolve, reject) => {
    let received = '';
    socket.on('data', (data) => (received += data.toString()));
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
    socket.write(text);
  });
}
