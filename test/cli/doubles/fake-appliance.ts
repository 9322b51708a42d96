import type { IncomingMessage, ServerResponse } from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { encodeChannelBinding } from '../../../lib/attestation/channel-binding';
import { createTlsIdentity, TlsIdentity } from '../../../lib/appliance/tls-identity';

/** What the fake answers: a status and a body (JSON-encoded unless a string), or no answer at all. */
export type FakeAnswer = { status?: number; body: unknown } | 'hang';

/** A request the fake received. */
export interface ReceivedRequest {
  readonly method: string;
  readonly url: URL;
  readonly host?: string;
  /** Which TLS connection it came over, numbered from 1 in the order they were accepted. */
  readonly connection: number;
  /** The parsed JSON body of a /v1 POST. */
  readonly body?: unknown;
}

/** The model every /v1 answer names, whatever the client asked for: the appliance serves one model. */
export const SERVED_MODEL = 'llama3:sealed';

/** The answer the fake gives to a conversation: what the last user message said. */
export function answerTo(messages: Array<{ role: string; content: string }>): string {
  return `You said: ${[...messages].reverse().find((message) => message.role === 'user')?.content ?? ''}`;
}

/** The chunks the fake streams an answer in: word by word, each with the space after it. */
export function wordChunks(text: string): string[] {
  return text.split(/(?<= )/);
}

/**
 * A local TLS 1.3 server standing in for the appliance: `GET /api/attestation?nonce=<hex>`, with a key pair and
 * self-signed certificate of its own, as the appliance makes them, and the OpenAI-compatible
 * `POST /v1/chat/completions` (SSE word chunks or one JSON completion of {@link answerTo}) and `GET /v1/models`,
 * and `GET /api/ready` (200, or 503 while {@link ready} is false) for a load balancer's health check.
 * `answer` receives the nonce of each attestation request and the channel binding of the fake's TLS key; every
 * request is recorded, with the connection it came over.
 */
export class FakeAppliance {
  public static async start(answer: (nonce: Buffer, binding: Buffer) => FakeAnswer): Promise<FakeAppliance> {
    const fake = new FakeAppliance(answer, await createTlsIdentity());
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  /** The URL of every request received. */
  public readonly requests: URL[] = [];
  /** Every request received, with its connection and, for /v1, its body. */
  public readonly received: ReceivedRequest[] = [];
  /** The user_data that binds documents to this fake's TLS key. */
  public readonly binding: Buffer;
  /** Awaited before each streamed chunk is written, by its index: lets a test hold a stream after a chunk. */
  public pace: (chunkIndex: number) => Promise<void> = async () => undefined;
  /** Whether `GET /api/ready` answers 200 (ready) or 503 (still unsealing, or failed), as the appliance does. */
  public ready = true;
  /** The status of each `GET /api/ready` answered, in order: what a load balancer's health check saw. */
  public readonly readinessAnswers: number[] = [];
  /** Answers one completion at a time, as a model served by Ollama does: the next waits for the one before. */
  public oneAtATime = false;
  private lastCompletion: Promise<void> = Promise.resolve();
  private readonly server: https.Server;
  private readonly connectionNumbers = new Map<Socket, number>();
  private connectionCount = 0;

  private constructor(public answer: (nonce: Buffer, binding: Buffer) => FakeAnswer, identity: TlsIdentity) {
    this.binding = encodeChannelBinding(identity.spkiSha256);
    this.server = https.createServer({ key: identity.key, cert: identity.cert, minVersion: 'TLSv1.3' }, (req, res) => {
      void this.handle(req, res).catch(() => res.destroy());
    });
    this.server.on('secureConnection', (socket) => {
      this.connectionNumbers.set(socket, ++this.connectionCount);
      socket.once('close', () => this.connectionNumbers.delete(socket));
    });
  }

  /** The /v1 requests received: prompts the fake saw. */
  public get v1Requests(): ReceivedRequest[] {
    return this.received.filter((request) => request.url.pathname.startsWith('/v1/'));
  }

  /** The requests received, health checks left out: what clients sent. */
  public get clientRequests(): ReceivedRequest[] {
    return this.received.filter((request) => request.url.pathname !== '/api/ready');
  }

  /** The attestation requests received. */
  public get attestationRequests(): ReceivedRequest[] {
    return this.received.filter((request) => request.url.pathname === '/api/attestation');
  }

  /** How many TLS connections are open now. */
  public get openConnections(): number {
    return this.connectionNumbers.size;
  }

  /** Closes every open connection from the server's side, as a restart or a keep-alive timeout would. */
  public dropConnections(): void {
    for (const socket of this.connectionNumbers.keys()) socket.destroy();
  }

  public get url(): string {
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  public async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://fake');
    const connection = this.connectionNumbers.get(req.socket) ?? 0;
    const body = req.method === 'POST' && url.pathname.startsWith('/v1/') ? JSON.parse(await readText(req)) : undefined;
    this.requests.push(url);
    this.received.push({ method: req.method ?? '', url, host: req.headers.host, connection, body });
    if (req.method === 'GET' && url.pathname === '/api/attestation') {
      const result = this.answer(Buffer.from(url.searchParams.get('nonce') ?? '', 'hex'), this.binding);
      if (result === 'hang') return;
      const text = typeof result.body === 'string' ? result.body : JSON.stringify(result.body);
      res.writeHead(result.status ?? 200, { 'content-type': 'application/json' }).end(text);
    } else if (req.method === 'GET' && url.pathname === '/api/ready') {
      const status = this.ready ? 200 : 503;
      this.readinessAnswers.push(status);
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ ready: this.ready }));
    } else if (req.method === 'GET' && url.pathname === '/v1/models') {
      sendJson(res, { object: 'list', data: [{ id: SERVED_MODEL, object: 'model', created: 1764547200, owned_by: 'sealed-inference' }] });
    } else if (req.method === 'POST' && url.pathname === '/v1/chat/completions') {
      const request = body as { stream?: boolean; messages: Array<{ role: string; content: string }> };
      if (!this.oneAtATime) return this.complete(request, res);
      const before = this.lastCompletion;
      const completion = before.then(() => this.complete(request, res));
      this.lastCompletion = completion.catch(() => undefined);
      await completion;
    } else {
      res.writeHead(404).end('not found');
    }
  }

  private async complete(request: { stream?: boolean; messages: Array<{ role: string; content: string }> }, res: ServerResponse) {
    const answer = answerTo(request.messages);
    const base = { id: 'chatcmpl-fake', created: 1764547200, model: SERVED_MODEL };
    if (!request.stream) {
      sendJson(res, {
        ...base, object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: wordChunks(answer).length, total_tokens: 1 + wordChunks(answer).length },
      });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const event = (data: unknown) => res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
    const chunks = wordChunks(answer);
    for (const [index, content] of chunks.entries()) {
      await this.pace(index);
      const delta = index === 0 ? { role: 'assistant', content } : { content };
      event({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: null }] });
    }
    event({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
    event('[DONE]');
    res.end();
  }
}

function sendJson(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

async function readText(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
