import * as http from 'http';
import * as https from 'https';
import type { AddressInfo } from 'net';
import type { Readable } from 'stream';
import { pipeline } from 'stream/promises';
import type { PcrEvent } from '../attestation/pcr-event-log';
import { isJsonObject } from '../json-object';
import type { ApplianceStatus } from './appliance-status';
import type { OllamaChat, OllamaChatMessage } from './ollama-client';
import { UI_ASSETS } from './ui-assets';

/** What `GET /api/attestation` answers with: a fresh attestation document over the nonce, and how PCR15 was built. */
export interface AttestationEvidence {
  /** The COSE_Sign1 NitroTPM attestation document carrying the verifier's nonce. */
  readonly document: Buffer;
  /** The extends of the application PCRs (PCR15: the model), for a verifier to replay. */
  readonly eventLog: readonly PcrEvent[];
}

/** What the port-3000 service is given by the boot pipeline. */
export interface InferenceServiceDependencies {
  /** The boot pipeline's status, read on each request. */
  status(): ApplianceStatus;
  /** The local Ollama. */
  readonly ollama: OllamaChat;
  /** Produces an attestation document over `nonce`. Called for one request at a time. */
  attest(nonce: Buffer): Promise<AttestationEvidence>;
  /** Receives one line per request: method, path, status, byte counts, duration. Never prompts or answers. */
  log(line: string): void;
}

/** Where the service listens. */
export interface InferenceServiceOptions {
  /** e.g. `0.0.0.0` on the instance, `127.0.0.1` in tests. */
  readonly host: string;
  /** e.g. 3000; 0 picks a free port. */
  readonly port: number;
  /** The TLS key and certificate (PEM) the service answers with: TLS 1.3 only, no plaintext HTTP. */
  readonly tls: { readonly key: string; readonly cert: string };
}

/** A listening service. */
export interface InferenceService {
  /** `https://<host>:<port>` as bound. */
  readonly url: string;
  readonly port: number;
  /** Stops listening and ends open connections, including chats in progress. */
  close(): Promise<void>;
}

/** The largest chat request accepted: a conversation of text, not a document store. */
export const MAX_CHAT_REQUEST_BYTES = 64 * 1024;
/** Nonce sizes accepted, in bytes (the attestation document's nonce field). */
export const MIN_NONCE_BYTES = 16;
export const MAX_NONCE_BYTES = 64;

/**
 * Every answer forbids framing, sniffing, referrers and caching; the page may load only its own script and
 * stylesheet, and no inline script.
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
};

/** Time to receive a request's headers, and all of it. */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** A connection silent this long is closed; a chat answer waiting for a model to load stays under it. */
const IDLE_TIMEOUT_MS = 5 * 60_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

const CHAT_ROLES: ReadonlySet<string> = new Set(['user', 'assistant', 'system']);
const NONCE_HEX = /^[0-9a-fA-F]*$/;

/** A request refused with a status and a one-line reason for the client. */
class Refusal extends Error {
  constructor(
    public readonly status: number,
    message: string,
    public readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/** Byte counts of one request, for its log line. */
interface Exchange {
  bytesIn: number;
  bytesOut: number;
}

/**
 * Starts the appliance's port-3000 service: the chat page (`GET /`, `/app.js`, `/app.css`), `GET /api/status`,
 * `POST /api/chat` (streamed ndjson from the served model, once ready) and `GET /api/attestation?nonce=<hex>`.
 * Resolves once listening.
 */
export async function startInferenceService(
  dependencies: InferenceServiceDependencies,
  options: InferenceServiceOptions,
): Promise<InferenceService> {
  const server = https.createServer(
    {
      key: options.tls.key,
      cert: options.tls.cert,
      minVersion: 'TLSv1.3',
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    },
    requestHandler(dependencies),
  );
  server.setTimeout(IDLE_TIMEOUT_MS);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `https://${host}:${address.port}`,
    port: address.port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function requestHandler(dependencies: InferenceServiceDependencies): http.RequestListener {
  const attestation = { inProgress: false };
  return (request, response) => {
    const started = process.hrtime.bigint();
    const exchange: Exchange = { bytesIn: 0, bytesOut: 0 };
    const method = request.method ?? '';
    const url = requestTarget(request);
    const path = url?.pathname ?? '(malformed target)';
    response.on('close', () => {
      const ms = Number((process.hrtime.bigint() - started) / 1_000_000n);
      const ended = response.writableFinished ? '' : ' (closed before the end)';
      const sizes = `in=${exchange.bytesIn}B out=${exchange.bytesOut}B`;
      dependencies.log(`${method} ${path.slice(0, 200)} ${response.statusCode} ${sizes} ${ms}ms${ended}`);
    });
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) response.setHeader(name, value);

    const answered = url === undefined
      ? Promise.reject(new Refusal(400, 'Malformed request target: send a path such as /api/status'))
      : route(dependencies, attestation, url, request, response, exchange);
    answered.catch((error: unknown) => {
      if (response.headersSent) {
        response.destroy();
      } else if (error instanceof Refusal) {
        sendJson(request, response, exchange, error.status, { error: error.message }, error.headers);
      } else {
        sendJson(request, response, exchange, 500, { error: 'Internal error' });
      }
    });
  };
}

/** The request's target as a URL, or undefined when it is none (`//[`): parsing it must not throw in the listener. */
function requestTarget(request: http.IncomingMessage): URL | undefined {
  try {
    return new URL(request.url ?? '/', 'http://appliance');
  } catch {
    return undefined;
  }
}

async function route(
  dependencies: InferenceServiceDependencies,
  attestation: { inProgress: boolean },
  url: URL,
  request: http.IncomingMessage,
  response: http.ServerResponse,
  exchange: Exchange,
): Promise<void> {
  const asset = UI_ASSETS.get(url.pathname);
  if (asset) {
    allow(request, ['GET', 'HEAD']);
    send(request, response, exchange, 200, asset.contentType, asset.body);
  } else if (url.pathname === '/api/status') {
    allow(request, ['GET', 'HEAD']);
    sendJson(request, response, exchange, 200, dependencies.status());
  } else if (url.pathname === '/api/chat') {
    allow(request, ['POST']);
    await chat(dependencies, request, response, exchange);
  } else if (url.pathname === '/api/attestation') {
    allow(request, ['GET']);
    await attest(dependencies, attestation, url, request, response, exchange);
  } else {
    throw new Refusal(404, `No such resource: ${url.pathname.slice(0, 200)}`);
  }
}

function allow(request: http.IncomingMessage, methods: string[]): void {
  if (!methods.includes(request.method ?? '')) {
    throw new Refusal(405, `Method ${request.method} is not allowed here; use ${methods.join(' or ')}`, {
      allow: methods.join(', '),
    });
  }
}

async function chat(
  dependencies: InferenceServiceDependencies,
  request: http.IncomingMessage,
  response: http.ServerResponse,
  exchange: Exchange,
): Promise<void> {
  const status = dependencies.status();
  // Once ready, the status names the model Ollama serves; chats always go to it.
  const model = status.phase === 'ready' ? status.model?.name : undefined;
  if (model === undefined) {
    request.resume();
    sendJson(request, response, exchange, 503, { error: 'The model is not ready yet', status }, { 'retry-after': '5' });
    return;
  }
  const contentType = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (contentType !== 'application/json') {
    throw new Refusal(415, 'Send the chat as JSON with content-type application/json');
  }
  const messages = parseChatRequest(await readBody(request, exchange, MAX_CHAT_REQUEST_BYTES));

  const upstreamAbort = new AbortController();
  response.on('close', () => {
    if (!response.writableFinished) upstreamAbort.abort();
  });
  let answer: Readable;
  try {
    answer = await dependencies.ollama.chat({ model, messages }, upstreamAbort.signal);
  } catch (error) {
    if (upstreamAbort.signal.aborted) return;
    throw new Refusal(502, `The inference server did not answer: ${(error as Error).message}`);
  }
  response.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8' });
  await pipeline(
    answer,
    async function* count(chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        exchange.bytesOut += chunk.length;
        yield chunk;
      }
    },
    response,
  ).catch(() => {
    // The client left, or Ollama broke off: pipeline has closed both ends, and the log line says it ended early.
  });
}

/** The conversation of a chat request: `{"messages": [{"role", "content"}, …]}` and nothing else. */
function parseChatRequest(body: string): OllamaChatMessage[] {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new Refusal(400, 'The body is not valid JSON');
  }
  if (!isJsonObject(value)) throw new Refusal(400, 'The body must be a JSON object: {"messages": [...]}');
  const unknown = Object.keys(value).find((key) => key !== 'messages');
  if (unknown !== undefined) {
    throw new Refusal(
      400,
      `Unknown field ${JSON.stringify(unknown)}: the body takes only "messages" (this appliance serves one model)`,
    );
  }
  const messages = value.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new Refusal(400, '"messages" must be a non-empty array of {"role", "content"}');
  }
  return messages.map((message: unknown, index) => {
    const where = `messages[${index}]`;
    if (!isJsonObject(message)) throw new Refusal(400, `${where} must be an object {"role", "content"}`);
    const extra = Object.keys(message).find((key) => key !== 'role' && key !== 'content');
    if (extra !== undefined) throw new Refusal(400, `${where} has an unknown field ${JSON.stringify(extra)}`);
    if (typeof message.role !== 'string' || !CHAT_ROLES.has(message.role)) {
      throw new Refusal(400, `${where}.role must be "user", "assistant" or "system"`);
    }
    if (typeof message.content !== 'string') throw new Refusal(400, `${where}.content must be a string`);
    return { role: message.role as OllamaChatMessage['role'], content: message.content };
  });
}

async function attest(
  dependencies: InferenceServiceDependencies,
  attestation: { inProgress: boolean },
  url: URL,
  request: http.IncomingMessage,
  response: http.ServerResponse,
  exchange: Exchange,
): Promise<void> {
  const nonce = parseNonce(url.searchParams);
  if (attestation.inProgress) {
    throw new Refusal(429, 'An attestation is in progress; retry in a moment', { 'retry-after': '1' });
  }
  attestation.inProgress = true;
  let evidence: AttestationEvidence;
  try {
    evidence = await dependencies.attest(nonce);
  } catch (error) {
    throw new Refusal(500, `Attestation failed: ${(error as Error).message}`);
  } finally {
    attestation.inProgress = false;
  }
  sendJson(request, response, exchange, 200, {
    document: evidence.document.toString('base64'),
    eventLog: evidence.eventLog,
  });
}

function parseNonce(query: URLSearchParams): Buffer {
  const usage = `give one nonce of ${MIN_NONCE_BYTES} to ${MAX_NONCE_BYTES} bytes in hex: /api/attestation?nonce=<hex>`;
  const unknown = [...query.keys()].find((key) => key !== 'nonce');
  if (unknown !== undefined) {
    throw new Refusal(400, `Unknown parameter ${JSON.stringify(unknown.slice(0, 50))}; ${usage}`);
  }
  const nonces = query.getAll('nonce');
  if (nonces.length !== 1) throw new Refusal(400, `Expected one nonce, got ${nonces.length}; ${usage}`);
  const hex = nonces[0];
  if (!NONCE_HEX.test(hex) || hex.length % 2 !== 0) {
    throw new Refusal(400, `The nonce is not hex (an even number of digits 0-9, a-f); ${usage}`);
  }
  const bytes = hex.length / 2;
  if (bytes < MIN_NONCE_BYTES || bytes > MAX_NONCE_BYTES) {
    throw new Refusal(400, `The nonce is ${bytes} bytes; ${usage}`);
  }
  return Buffer.from(hex, 'hex');
}

/**
 * Reads a request body as UTF-8, refusing one larger than `limit` bytes with 413 before or while reading it. The rest
 * of a refused body is drained, not kept, so that the client reads the refusal rather than a reset connection.
 */
function readBody(request: http.IncomingMessage, exchange: Exchange, limit: number): Promise<string> {
  const tooLarge = new Refusal(413, `The request body exceeds ${limit} bytes`, { connection: 'close' });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const refuse = () => {
      request.off('data', collect);
      request.off('end', finish);
      request.resume();
      reject(tooLarge);
    };
    const collect = (chunk: Buffer) => {
      exchange.bytesIn += chunk.length;
      if (exchange.bytesIn > limit) refuse();
      else chunks.push(chunk);
    };
    const finish = () => resolve(Buffer.concat(chunks).toString('utf8'));
    request.once('error', reject);
    request.once('close', () => {
      if (!request.complete) reject(new Refusal(400, 'The request ended before its body'));
    });
    if (Number(request.headers['content-length'] ?? 0) > limit) return refuse();
    request.on('data', collect);
    request.once('end', finish);
  });
}

function sendJson(
  request: http.IncomingMessage,
  response: http.ServerResponse,
  exchange: Exchange,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  send(request, response, exchange, status, 'application/json; charset=utf-8', JSON.stringify(body), headers);
}

function send(
  request: http.IncomingMessage,
  response: http.ServerResponse,
  exchange: Exchange,
  status: number,
  contentType: string,
  body: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  const bytes = Buffer.from(body, 'utf8');
  response.writeHead(status, { ...headers, 'content-type': contentType, 'content-length': bytes.length });
  // Node sends no body to HEAD requests.
  if (request.method !== 'HEAD') exchange.bytesOut += bytes.length;
  response.end(bytes);
}
