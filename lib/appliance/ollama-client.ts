import * as http from 'http';
import { isIP } from 'net';
import type { Readable } from 'stream';
import { isJsonObject } from '../shared/json-object';
import type { PlaintextSink } from '../sealing/unseal';

/** Chats with the local Ollama through its OpenAI-compatible API: what the port-3000 service needs of it. */
export interface OllamaChat {
  /**
   * Sends an OpenAI chat completion request (a JSON object, its `model` already the served one) to Ollama's
   * `POST /v1/chat/completions`. Resolves once Ollama has accepted it (200), with its answer as it arrives: a
   * `chat.completion` object, or server-sent events when the request asked for a stream. A refusal rejects with an
   * {@link OllamaError} carrying Ollama's status and reason; aborting `signal` ends the upstream request and the answer.
   */
  chatCompletions(body: string, signal: AbortSignal): Promise<Readable>;
}

/** Loads a model into the local Ollama: what the boot pipeline needs of it. */
export interface OllamaModels {
  /**
   * Starts uploading the `size` bytes of the blob with this SHA-256, written as they are verified. Committing ends
   * the upload and waits for Ollama, which recomputes the digest and stores the blob only if it matches (the sink's
   * `verifiesSha256`); aborting breaks the upload off, and Ollama keeps nothing of it. A blob Ollama already holds
   * is answered 200 without being read: only an upload to a store empty at boot is checked.
   */
  uploadBlob(sha256: string, size: number): PlaintextSink;
  /** Creates (or replaces) model `name` from the blob with this SHA-256, known to Ollama as `fileName`. */
  createModel(name: string, sha256: string, fileName: string): Promise<void>;
}

/**
 * Ollama refused a request or answered something unexpected; `status` is its HTTP status (0 when none). The message
 * names Ollama's address: it is for the appliance's log, not for clients.
 */
export class OllamaError extends Error {
  /**
   * @param status Ollama's HTTP status, 0 when it gave none
   * @param message what failed, for the log
   * @param reason Ollama's own words for a refusal (its `error` message), empty when it gave none
   */
  constructor(
    public readonly status: number,
    message: string,
    public readonly reason = '',
  ) {
    super(message);
    this.name = 'OllamaError';
  }
}

/** How long loading a model may wait on Ollama saying nothing. */
export interface OllamaTimeouts {
  /** A blob check, or a pause in a blob upload. */
  readonly requestMs: number;
  /** Creating the model from its blob, which Ollama reads whole before it answers. */
  readonly createMs: number;
}

/** Minutes, not seconds: Ollama may be busy, but a hung one must not keep the appliance loading forever. */
export const DEFAULT_OLLAMA_TIMEOUTS: OllamaTimeouts = { requestMs: 2 * 60_000, createMs: 15 * 60_000 };

const SHA256_LOWER_HEX = /^[0-9a-f]{64}$/;
/** How much of an error or create answer is read: Ollama's are a line of JSON. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * A client of the Ollama on this machine, over plain HTTP on the loopback interface only: the model and the
 * conversations never leave the instance on their way to it.
 *
 * It uses `node:http` rather than `fetch`, whose default timeouts would cut off a long blob upload or a model that
 * takes minutes to produce its first token.
 */
export class OllamaClient implements OllamaChat, OllamaModels {
  private readonly base: URL;
  private readonly timeouts: OllamaTimeouts;

  /**
   * @param baseUrl e.g. `http://127.0.0.1:11434`; refused unless plain HTTP on a loopback address.
   * @param timeouts how long loading may wait on a silent Ollama; chats have none, as a first token may take minutes
   */
  constructor(baseUrl: string, timeouts: OllamaTimeouts = DEFAULT_OLLAMA_TIMEOUTS) {
    this.base = loopbackUrl(baseUrl);
    this.timeouts = timeouts;
  }

  public uploadBlob(sha256: string, size: number): PlaintextSink {
    const path = blobPath(sha256);
    const what = `POST ${path} to Ollama at ${this.base.origin}`;
    const request = http.request(new URL(path, this.base), {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
    });
    request.setTimeout(this.timeouts.requestMs, () =>
      request.destroy(new Error(`no answer for ${Math.round(this.timeouts.requestMs / 1000)} s`)));
    const answer = new Promise<http.IncomingMessage>((resolve, reject) => {
      request.once('response', resolve);
      request.on('error', (error) => reject(new OllamaError(0, `${what} failed: ${error.message}`)));
    });
    // A write whose connection breaks never hears back: it is given up on when the request errors or closes.
    const broken = new Promise<never>((_resolve, reject) => {
      answer.catch(reject);
      request.once('close', () => reject(new OllamaError(0, `${what} failed: the connection closed`)));
    });
    answer.catch(() => undefined); // reported by the write or the commit that meets it
    broken.catch(() => undefined);
    return {
      // Ollama hashes the upload itself and answers 400 on a digest mismatch.
      verifiesSha256: sha256,
      // Resolved once the plaintext is handed to the socket: the caller may then reuse (or transfer) its memory.
      write: (plaintext) =>
        Promise.race([broken, new Promise<void>((resolve) => request.write(plaintext, () => resolve()))]),
      commit: async () => {
        request.end();
        const response = await answer;
        // 201: stored; 200: Ollama already had it.
        if (response.statusCode !== 201 && response.statusCode !== 200) throw await refusal(`POST ${path}`, response);
        response.resume();
      },
      abort: async () => void request.destroy(),
    };
  }

  public async createModel(name: string, sha256: string, fileName: string): Promise<void> {
    if (name.length === 0) throw new Error('Ollama model name must not be empty');
    if (!/^[^/\\]+$/.test(fileName)) {
      throw new Error(`Ollama file name must be a plain file name (no path); got ${JSON.stringify(fileName)}`);
    }
    const body = JSON.stringify({ model: name, files: { [fileName]: `sha256:${checkSha256(sha256)}` }, stream: false });
    const response = await this.request('POST', '/api/create', {
      body,
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
      idleTimeoutMs: this.timeouts.createMs,
    });
    if (response.statusCode !== 200) throw await refusal('POST /api/create', response);
    const answer = await readAnswer(response);
    let status: unknown;
    try {
      status = (JSON.parse(answer) as { status?: unknown }).status;
    } catch {
      status = undefined;
    }
    if (status !== 'success') {
      throw new OllamaError(200, `Ollama did not confirm creating model ${name}: ${oneLine(answer)}`);
    }
  }

  public async chatCompletions(body: string, signal: AbortSignal): Promise<Readable> {
    const response = await this.request('POST', '/v1/chat/completions', {
      body,
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
      signal,
    });
    if (response.statusCode !== 200) throw await refusal('POST /v1/chat/completions', response);
    return response;
  }

  private request(
    method: string,
    path: string,
    options: {
      body?: string;
      headers?: http.OutgoingHttpHeaders;
      signal?: AbortSignal;
      /** Ends the request when Ollama sends nothing for this long. */
      idleTimeoutMs?: number;
    } = {},
  ): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const { headers, signal, idleTimeoutMs } = options;
      const request = http.request(new URL(path, this.base), { method, headers, signal });
      if (idleTimeoutMs !== undefined) {
        request.setTimeout(idleTimeoutMs, () =>
          request.destroy(new Error(`no answer for ${Math.round(idleTimeoutMs / 1000)} s`)));
      }
      request.once('response', resolve);
      // `on`, not `once`: an abort after the response also errors the request.
      request.on('error', (error) => {
        const what = `${method} ${path} to Ollama at ${this.base.origin}`;
        reject(signal?.aborted ? error : new OllamaError(0, `${what} failed: ${error.message}`));
      });
      request.end(options.body);
    });
  }
}

/** Parses and checks Ollama's base URL: plain HTTP on 127.0.0.0/8, ::1 or localhost, nothing but an origin. */
function loopbackUrl(baseUrl: string): URL {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new Error(`Ollama base URL is not a URL: ${JSON.stringify(baseUrl)}`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const loopback =
    host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
  if (url.protocol !== 'http:' || !loopback || url.pathname !== '/' || url.search || url.username || url.password) {
    throw new Error(
      `Ollama base URL must be plain http on a loopback address (127.0.0.1, ::1 or localhost), without path or ` +
        `credentials; got ${JSON.stringify(baseUrl)}`,
    );
  }
  return url;
}

function checkSha256(sha256: string): string {
  if (!SHA256_LOWER_HEX.test(sha256)) {
    throw new Error(`Blob digest must be a lowercase hex SHA-256 (64 digits); got ${JSON.stringify(sha256)}`);
  }
  return sha256;
}

function blobPath(sha256: string): string {
  return `/api/blobs/sha256:${checkSha256(sha256)}`;
}

/**
 * An error for a refused request, carrying Ollama's own reason when it gave one: `{"error": "…"}` from its native API,
 * `{"error": {"message": "…"}}` from its OpenAI-compatible one.
 */
async function refusal(what: string, response: http.IncomingMessage): Promise<OllamaError> {
  const answer = await readAnswer(response).catch(() => '');
  let reason: string = oneLine(answer);
  try {
    const error = (JSON.parse(answer) as { error?: unknown }).error;
    if (typeof error === 'string') reason = error;
    else if (isJsonObject(error) && typeof error.message === 'string') reason = error.message;
  } catch {
    // not JSON: keep the raw text
  }
  const status = response.statusCode ?? 0;
  return new OllamaError(status, `Ollama refused ${what} (${status})${reason ? `: ${reason}` : ''}`, reason);
}

async function readAnswer(response: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > MAX_ANSWER_BYTES) {
      response.destroy();
      throw new OllamaError(response.statusCode ?? 0, `Ollama's answer exceeds ${MAX_ANSWER_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, 500);
}
