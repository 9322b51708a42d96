import type * as http from 'http';

/** A request refused with a status and a one-line reason for the client. */
export class Refusal extends Error {
  /**
   * @param status the HTTP status
   * @param message the reason the client reads: never an internal address or a tool's output
   * @param options `headers` to add; `code`, a short machine-readable name for OpenAI-style errors; `detail`, what the
   *   appliance's log gets beside the request line (never a prompt or an answer)
   */
  constructor(
    public readonly status: number,
    message: string,
    public readonly options: {
      readonly headers?: Readonly<Record<string, string>>;
      readonly code?: string;
      readonly detail?: string;
    } = {},
  ) {
    super(message);
    this.name = 'Refusal';
  }
}

/** Byte counts of one request, for its log line. */
export interface Exchange {
  bytesIn: number;
  bytesOut: number;
}

/** Sends `body` as JSON. */
export function sendJson(
  request: http.IncomingMessage,
  response: http.ServerResponse,
  exchange: Exchange,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  send(request, response, exchange, status, 'application/json; charset=utf-8', JSON.stringify(body), headers);
}

/** Sends a whole answer with its length. */
export function send(
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

/** Refuses a request unless its method is one of `methods`. */
export function allow(request: http.IncomingMessage, methods: string[]): void {
  if (!methods.includes(request.method ?? '')) {
    throw new Refusal(405, `Method ${request.method} is not allowed here; use ${methods.join(' or ')}`, {
      headers: { allow: methods.join(', ') },
      code: 'method_not_allowed',
    });
  }
}

/** Refuses a body not declared as JSON. */
export function requireJson(request: http.IncomingMessage): void {
  const contentType = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (contentType !== 'application/json') {
    throw new Refusal(415, 'Send the body as JSON with content-type application/json', { code: 'unsupported_media_type' });
  }
}

/**
 * Reads a request body as UTF-8, refusing one larger than `limit` bytes with 413 before or while reading it. The rest
 * of a refused body is read and discarded, and the connection kept, so that a client still sending reads the refusal
 * rather than a reset connection; the server's request timeout bounds how long that may take.
 */
export function readBody(request: http.IncomingMessage, exchange: Exchange, limit: number): Promise<string> {
  const tooLarge = new Refusal(413, `The request body exceeds ${limit} bytes`, { code: 'request_too_large' });
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
    if (declaredLength(request) > limit) return refuse();
    request.on('data', collect);
    request.once('end', finish);
  });
}

/** The request's Content-Length, 0 when it declares none. */
export function declaredLength(request: http.IncomingMessage): number {
  return Number(request.headers['content-length'] ?? 0);
}
