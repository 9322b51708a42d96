import * as http from 'http';
import * as https from 'https';
import type { AddressInfo } from 'net';
import type { PcrEvent } from '../attestation/pcr-event-log';
import type { ApplianceStatus } from './appliance-status';
import { misdirectedHost } from './host-header';
import { allow, declaredLength, Exchange, Refusal, sendJson, send } from './http-exchange';
import type { OllamaChat } from './ollama-client';
import { chatCompletions, listModels, MAX_CHAT_REQUEST_BYTES, OpenAiApiContext, openAiError } from './openai-api';
import { UI_ASSETS } from './ui-assets';
import { setSecurityHeaders } from '../shared/security-headers';

export { MAX_CHAT_REQUEST_BYTES } from './openai-api';

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
  /**
   * DNS names the service answers to besides IP addresses; a request naming another host in `Host` is refused (421).
   * @default - IP addresses only
   */
  readonly hostNames?: readonly string[];
  /**
   * Chats answered at once; more are refused with 503 and Retry-After.
   * @default 8
   */
  readonly maxChatsInFlight?: number;
  /** Time limits on clients. */
  readonly timeouts?: Partial<InferenceServiceTimeouts>;
}

/** How long the service waits on a client, in milliseconds. */
export interface InferenceServiceTimeouts {
  /** To receive a request's headers. */
  readonly headersMs: number;
  /** To receive a whole request, body included (and the rest of a refused body). */
  readonly requestMs: number;
  /** For a client that has stopped reading a streamed answer: the answer is then broken off. */
  readonly writeStallMs: number;
  /** A silent connection; a chat waiting for a model to load stays under it. */
  readonly idleMs: number;
}

/** The defaults: generous for people on slow links, short enough that idle sockets do not pile up. */
export const DEFAULT_INFERENCE_SERVICE_TIMEOUTS: InferenceServiceTimeouts = {
  headersMs: 10_000,
  requestMs: 30_000,
  writeStallMs: 30_000,
  idleMs: 5 * 60_000,
};

/** Chats answered at once unless configured: Ollama answers a few at a time and queues the rest, so more would only wait. */
export const DEFAULT_MAX_CHATS_IN_FLIGHT = 8;

/** A listening service. */
export interface InferenceService {
  /** `https://<host>:<port>` as bound. */
  readonly url: string;
  readonly port: number;
  /** Stops listening and ends open connections, including chats in progress. */
  close(): Promise<void>;
}

/** Nonce sizes accepted, in bytes (the attestation document's nonce field). */
export const MIN_NONCE_BYTES = 16;
export const MAX_NONCE_BYTES = 64;

const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Node checks the headers and request timeouts only this often (30 s unless told): at most a second late. */
const MAX_TIMEOUT_CHECK_INTERVAL_MS = 1000;

const NONCE_HEX = /^[0-9a-fA-F]*$/;

/**
 * Starts the appliance's port-3000 service: the chat page (`GET /`, `/app.js`, `/app.css`), `GET /api/status`,
 * `GET /api/ready` (200 once the model is served, 503 before),
 * `GET /api/attestation?nonce=<hex>` and the OpenAI-compatible `POST /v1/chat/completions` and `GET /v1/models`
 * (once ready). Resolves once listening.
 */
export async function startInferenceService(
  dependencies: InferenceServiceDependencies,
  options: InferenceServiceOptions,
): Promise<InferenceService> {
  const timeouts = { ...DEFAULT_INFERENCE_SERVICE_TIMEOUTS, ...options.timeouts };
  if (timeouts.headersMs > timeouts.requestMs) {
    throw new Error(`The headers timeout (${timeouts.headersMs} ms) must not exceed the request timeout (${timeouts.requestMs} ms)`);
  }
  const maxChatsInFlight = options.maxChatsInFlight ?? DEFAULT_MAX_CHATS_IN_FLIGHT;
  if (!Number.isInteger(maxChatsInFlight) || maxChatsInFlight < 1) {
    throw new Error(`maxChatsInFlight must be a whole number of at least 1, got ${maxChatsInFlight}`);
  }
  const handle = requestHandler(dependencies, {
    hostNames: new Set((options.hostNames ?? []).map((name) => name.toLowerCase().replace(/\.$/, ''))),
    chats: { inFlight: 0, limit: maxChatsInFlight },
    writeStallMs: timeouts.writeStallMs,
  });
  const server = https.createServer(
    {
      key: options.tls.key,
      cert: options.tls.cert,
      minVersion: 'TLSv1.3',
      headersTimeout: timeouts.headersMs,
      requestTimeout: timeouts.requestMs,
      connectionsCheckingInterval: Math.min(MAX_TIMEOUT_CHECK_INTERVAL_MS, Math.ceil(timeouts.headersMs / 4)),
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    },
    handle,
  );
  // Node would answer `Expect: 100-continue` itself, inviting an upload it is about to refuse.
  server.on('checkContinue', (request: http.IncomingMessage, response: http.ServerResponse) => {
    if (declaredLength(request) > MAX_CHAT_REQUEST_BYTES) {
      // Refused before the upload: the client sends no body, so nothing is left to read on this connection.
      response.setHeader('connection', 'close');
    } else {
      response.writeContinue();
    }
    handle(request, response);
  });
  server.setTimeout(timeouts.idleMs);
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

/** What the request handler keeps across requests. */
interface ServiceState {
  readonly hostNames: ReadonlySet<string>;
  readonly chats: OpenAiApiContext['chats'];
  readonly writeStallMs: number;
}

function requestHandler(dependencies: InferenceServiceDependencies, state: ServiceState): http.RequestListener {
  const attestation = { inProgress: false };
  const openAi: OpenAiApiContext = {
    status: () => dependencies.status(),
    ollama: dependencies.ollama,
    chats: state.chats,
    writeStallMs: state.writeStallMs,
    log: (line) => dependencies.log(line),
  };
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
    setSecurityHeaders(response);

    const answered = (async () => {
      const misdirected = misdirectedHost(request.headers.host, state.hostNames);
      if (misdirected !== undefined) throw new Refusal(421, misdirected, { code: 'misdirected_request' });
      if (url === undefined) {
        throw new Refusal(400, 'Malformed request target: send a path such as /api/status', { code: 'invalid_request' });
      }
      await route(dependencies, openAi, attestation, url, request, response, exchange);
    })();
    answered.catch((error: unknown) => {
      if (!request.complete) request.resume(); // read and dropped, so the client can read the answer (readBody)
      if (response.headersSent) {
        response.destroy();
        return;
      }
      const refusal = error instanceof Refusal
        ? error
        : new Refusal(500, 'Internal error', { code: 'internal_error', detail: `internal error (${(error as Error).name})` });
      if (refusal.options.detail !== undefined) dependencies.log(`${method} ${path.slice(0, 200)}: ${refusal.options.detail}`);
      const body = path.startsWith('/v1/')
        ? openAiError(refusal.status, refusal.message, refusal.options.code)
        : { error: refusal.message };
      sendJson(request, response, exchange, refusal.status, body, refusal.options.headers);
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
  openAi: OpenAiApiContext,
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
  } else if (url.pathname === '/api/ready') {
    // A load balancer's health check: in the pool only once the model is unsealed, verified and measured in PCR15.
    allow(request, ['GET', 'HEAD']);
    const { phase } = dependencies.status();
    sendJson(request, response, exchange, phase === 'ready' ? 200 : 503, { ready: phase === 'ready', phase });
  } else if (url.pathname === '/v1/chat/completions') {
    allow(request, ['POST']);
    await chatCompletions(openAi, request, response, exchange);
  } else if (url.pathname === '/v1/models') {
    allow(request, ['GET']);
    listModels(openAi, request, response, exchange);
  } else if (url.pathname === '/api/attestation') {
    allow(request, ['GET']);
    await attest(dependencies, attestation, url, request, response, exchange);
  } else {
    throw new Refusal(404, `No such resource: ${url.pathname.slice(0, 200)}`, { code: 'not_found' });
  }
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
    throw new Refusal(429, 'An attestation is in progress; retry in a moment', { headers: { 'retry-after': '1' } });
  }
  attestation.inProgress = true;
  let evidence: AttestationEvidence;
  try {
    evidence = await dependencies.attest(nonce);
  } catch (error) {
    // The reason may quote nitro-tpm-attest's output: for the log, not for clients.
    throw new Refusal(500, "Attestation failed; the appliance's log has the reason", {
      detail: `attestation failed: ${(error as Error).message}`,
    });
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
