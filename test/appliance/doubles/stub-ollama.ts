import { createHash, randomBytes } from 'crypto';
import { OllamaClient } from '../../../lib/appliance/ollama-client';
import * as http from 'http';
import type { AddressInfo } from 'net';

/** One request the stub received, with its JSON body when it had one (blob uploads are not recorded as bodies). */
export interface StubOllamaCall {
  readonly method: string;
  readonly path: string;
  readonly body?: unknown;
}

/** A refusal the stub is told to answer with, as Ollama does: an HTTP status and `{"error": message}`. */
export interface StubOllamaFailure {
  readonly status: number;
  readonly error: string;
}

/** The routes a failure can be set for; `chat` and `models` are the OpenAI-compatible `/v1` ones. */
export type StubOllamaRoute = 'blobs' | 'create' | 'chat' | 'models' | 'tags';

/** The body of an OpenAI chat completion request, as far as the stub reads it. */
interface ChatCompletionRequest {
  model?: string;
  messages?: Array<{ role: string; content: string }>;
  stream?: boolean;
}

/**
 * A local HTTP server speaking the part of Ollama's API the appliance uses: `HEAD`/`POST /api/blobs/sha256:<d>`
 * (verifying the SHA-256 of the upload, 400 on a mismatch; 200 without reading it for a blob it holds),
 * `POST /api/create` from uploaded blobs, `GET /api/tags`,
 * and Ollama's OpenAI-compatible `POST /v1/chat/completions` (a `chat.completion`, or with `"stream": true`
 * `chat.completion.chunk` server-sent events ending in `data: [DONE]`) and `GET /v1/models`, with errors in OpenAI's
 * shape as Ollama sends them. Its answer to a chat is `You said: <last user message>`, in word chunks.
 */
export class StubOllama {
  public static async start(): Promise<StubOllama> {
    const stub = new StubOllama();
    await new Promise<void>((resolve) => stub.server.listen(0, '127.0.0.1', resolve));
    return stub;
  }

  /** Every request received, in order. */
  public readonly calls: StubOllamaCall[] = [];
  /** Sizes of the stored blobs, by digest (`sha256:<hex>`). */
  public readonly blobs = new Map<string, number>();
  /** The created models and their files (`file name → sha256:<hex>`). */
  public readonly models = new Map<string, Record<string, string>>();
  /** How many chat streams the client closed before the last chunk. */
  public abortedChats = 0;
  /** Pause before each streamed chat chunk. */
  public chunkDelayMs = 0;
  /** How many times a streamed answer repeats its words: a long answer without a long prompt. */
  public answerRepeats = 1;

  private readonly failures = new Map<StubOllamaRoute, StubOllamaFailure>();
  private readonly server: http.Server;

  private constructor() {
    this.server = http.createServer((request, response) => {
      this.handle(request, response).catch((error: Error) => {
        if (!response.headersSent) answer(response, 500, { error: error.message });
        else response.destroy();
      });
    });
  }

  /** `http://127.0.0.1:<port>`. */
  public get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Answers every later request to `route` with this refusal, until {@link succeed}. */
  public fail(route: StubOllamaRoute, failure: StubOllamaFailure): void {
    this.failures.set(route, failure);
  }

  public succeed(route: StubOllamaRoute): void {
    this.failures.delete(route);
  }

  /** The answer the stub streams for a conversation whose last user message is `prompt`. */
  public static answerTo(prompt: string): string {
    return `You said: ${prompt}`;
  }

  public async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const path = new URL(request.url ?? '/', 'http://stub').pathname;
    const method = request.method ?? '';
    const blob = /^\/api\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path);

    if (blob && method === 'HEAD') {
      this.calls.push({ method, path });
      if (this.refuse('blobs', response)) return;
      answer(response, this.blobs.has(blob[1]) ? 200 : 404);
    } else if (blob && method === 'POST') {
      this.calls.push({ method, path });
      if (this.refuse('blobs', response)) {
        request.resume();
        return;
      }
      if (this.blobs.has(blob[1])) {
        // As Ollama: a blob it already holds is answered 200 without reading the upload.
        request.resume();
        answer(response, 200);
        return;
      }
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of request as AsyncIterable<Buffer>) {
        hash.update(chunk);
        size += chunk.length;
      }
      const received = `sha256:${hash.digest('hex')}`;
      if (received !== blob[1]) {
        answer(response, 400, { error: `digest mismatch, expected "${blob[1]}", got "${received}"` });
        return;
      }
      this.blobs.set(received, size);
      answer(response, 201);
    } else if (path === '/api/create' && method === 'POST') {
      const body = await readJson(request);
      this.calls.push({ method, path, body });
      if (this.refuse('create', response)) return;
      this.create(body as { model?: string; files?: Record<string, string>; stream?: boolean }, response);
    } else if (path === '/v1/chat/completions' && method === 'POST') {
      const body = await readJson(request);
      this.calls.push({ method, path, body });
      if (this.refuseInOpenAiShape('chat', response)) return;
      await this.chatCompletion(body as ChatCompletionRequest, response);
    } else if (path === '/v1/models' && method === 'GET') {
      this.calls.push({ method, path });
      if (this.refuseInOpenAiShape('models', response)) return;
      const data = [...this.models.keys()].map((id) => ({ id, object: 'model', created: CREATED, owned_by: 'library' }));
      answer(response, 200, { object: 'list', data });
    } else if (path === '/api/tags' && method === 'GET') {
      this.calls.push({ method, path });
      if (this.refuse('tags', response)) return;
      answer(response, 200, { models: [...this.models.keys()].map((name) => ({ name, model: name })) });
    } else {
      this.calls.push({ method, path });
      answer(response, 404, { error: `no route ${method} ${path}` });
    }
  }

  private refuse(route: StubOllamaRoute, response: http.ServerResponse): boolean {
    const failure = this.failures.get(route);
    if (failure) answer(response, failure.status, { error: failure.error });
    return failure !== undefined;
  }

  /** As Ollama's OpenAI middleware answers a failure: `{"error": {"message", "type", "param", "code"}}`. */
  private refuseInOpenAiShape(route: StubOllamaRoute, response: http.ServerResponse): boolean {
    const failure = this.failures.get(route);
    if (failure) answer(response, failure.status, openAiError(failure.status, failure.error));
    return failure !== undefined;
  }

  private create(body: { model?: string; files?: Record<string, string>; stream?: boolean }, response: http.ServerResponse) {
    if (!body.model || !body.files || Object.keys(body.files).length === 0) {
      answer(response, 400, { error: 'neither from or files was specified' });
      return;
    }
    const missing = Object.values(body.files).find((digest) => !this.blobs.has(digest));
    if (missing) {
      answer(response, 400, { error: `blob ${missing} not found` });
      return;
    }
    this.models.set(body.model, body.files);
    if (body.stream === false) {
      answer(response, 200, { status: 'success' });
    } else {
      response.writeHead(200, { 'content-type': 'application/x-ndjson' });
      response.end(['parsing GGUF', 'writing manifest', 'success'].map((status) => `${JSON.stringify({ status })}\n`).join(''));
    }
  }

  private async chatCompletion(body: ChatCompletionRequest, response: http.ServerResponse): Promise<void> {
    if (!body.model || !this.models.has(body.model)) {
      answer(response, 404, openAiError(404, `model "${body.model}" not found, try pulling it first`));
      return;
    }
    const prompt = [...(body.messages ?? [])].reverse().find((message) => message.role === 'user')?.content ?? '';
    const text = StubOllama.answerTo(prompt);
    const id = `chatcmpl-${Math.floor(Math.random() * 999)}`;
    const common = { id, created: CREATED, model: body.model, system_fingerprint: 'fp_ollama' };
    if (body.stream !== true) {
      answer(response, 200, {
        ...common,
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
        usage: { prompt_tokens: prompt.split(' ').length, completion_tokens: text.split(' ').length, total_tokens: 0 },
      });
      return;
    }
    const words = Array.from({ length: this.answerRepeats }, () => text.split(/(?<= )/)).flat();
    let closed = false;
    response.on('close', () => (closed = !response.writableFinished));
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    const event = (delta: Record<string, string>, finishReason: string | null) =>
      `data: ${JSON.stringify({ ...common, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finishReason }] })}\n\n`;
    for (const word of words) {
      if (this.chunkDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.chunkDelayMs));
      if (closed) {
        this.abortedChats++;
        return;
      }
      // As a server does: wait for the client to read before writing more.
      if (!response.write(event({ role: 'assistant', content: word }, null))) await drainedOrClosed(response);
    }
    if (closed) {
      this.abortedChats++;
      return;
    }
    response.end(`${event({ role: 'assistant', content: '' }, 'stop')}data: [DONE]\n\n`);
  }
}

/** The `created` time of the stub's answers and models (unix seconds). */
const CREATED = 1_764_000_000;

/** Ollama's OpenAI error body: its type follows the status. */
function openAiError(status: number, message: string) {
  const type = status === 400 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : 'api_error';
  return { error: { message, type, param: null, code: null } };
}

function drainedOrClosed(response: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      response.off('drain', done);
      response.off('close', done);
      resolve();
    };
    response.once('drain', done);
    response.once('close', done);
  });
}

function answer(response: http.ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    response.writeHead(status).end();
    return;
  }
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
}

async function readJson(request: http.IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of request as AsyncIterable<Buffer>) text += chunk.toString('utf8');
  return JSON.parse(text);
}

/** Uploads a small model and creates `name` from it in the stub, as the boot pipeline does in Ollama. */
export async function loadTestModel(ollama: StubOllama, name: string): Promise<void> {
  const bytes = randomBytes(1000);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const client = new OllamaClient(ollama.url);
  const upload = client.uploadBlob(sha256, bytes.length);
  await upload.write(bytes);
  await upload.commit();
  await client.createModel(name, sha256, 'model.gguf');
}
