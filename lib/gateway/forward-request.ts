import type * as http from 'node:http';
import { sendOpenAiError } from './openai-error';
import type { VerifiedUpstream, VerifiedUpstreamPool } from './verified-upstream-pool';

/** A client request, read whole, to send upstream. */
export interface ForwardedRequest {
  readonly method: 'GET' | 'POST';
  /** The path under the service URL, e.g. `v1/chat/completions`. */
  readonly path: string;
  /** The JSON body of a POST. */
  readonly body?: Buffer;
}

/** The upstream's response headers passed on; hop-by-hop ones and anything else are not. */
const PASSED_RESPONSE_HEADERS = ['content-type', 'content-length'] as const;

/**
 * A silent upstream is given up after this long: an answer waiting for a model to load stays under it, as with the
 * appliance's own idle timeout.
 */
const UPSTREAM_SILENCE_MS = 5 * 60_000;

/** Connections tried for one request when reused ones turn out closed before a byte was written to them. */
const MAX_ATTEMPTS = 3;

type Outcome =
  /** Not a byte was written: the request may go over another connection. */
  | { readonly sent: false; readonly error: Error }
  /** The exchange ended; the connection is reusable only when the answer arrived whole. */
  | { readonly sent: true; readonly reusable: boolean };

/**
 * Sends `forwarded` over a verified connection of `pool` and streams the answer to `response` as it arrives, chunk
 * by chunk with backpressure. A request is sent again, over another verified connection, only when not a byte of it
 * was written.
 *
 * @throws AttestationFailedError when no verified connection can be had: nothing was forwarded
 */
export async function forwardRequest(
  pool: VerifiedUpstreamPool,
  forwarded: ForwardedRequest,
  response: http.ServerResponse,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const upstream = await pool.acquire();
    const outcome = await exchange(upstream, forwarded, response);
    pool.release(upstream, outcome.sent && outcome.reusable);
    if (outcome.sent) return;
    if (attempt === MAX_ATTEMPTS || response.destroyed) {
      sendUpstreamError(response, `the verified connection to the service failed: ${outcome.error.message}`);
      return;
    }
  }
}

function exchange(upstream: VerifiedUpstream, forwarded: ForwardedRequest, response: http.ServerResponse): Promise<Outcome> {
  return new Promise((resolve) => {
    const { connection } = upstream;
    const base = connection.serviceUrl.pathname.endsWith('/') ? connection.serviceUrl.pathname : `${connection.serviceUrl.pathname}/`;
    const headers: http.OutgoingHttpHeaders = { accept: forwarded.method === 'POST' ? 'application/json, text/event-stream' : 'application/json' };
    if (forwarded.body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = forwarded.body.length;
    }
    const request = connection.request(`${base}${forwarded.path}`, { method: forwarded.method, headers });
    let written = false;
    let answered = false;
    const endClientGone = () => {
      if (!answered) request.destroy(new Error('the client went away'));
    };
    response.once('close', endClientGone);
    const finish = (outcome: Outcome) => {
      response.off('close', endClientGone);
      resolve(outcome);
    };

    request.setTimeout(UPSTREAM_SILENCE_MS, () => request.destroy(new Error(`no data for ${UPSTREAM_SILENCE_MS / 1000} s`)));
    // Written only once the connection's socket is assigned and alive: an error before then left nothing upstream.
    request.once('socket', (socket) => {
      if (socket.destroyed) return;
      written = true;
      request.end(forwarded.body);
    });
    request.once('error', (error) => {
      if (!written) return finish({ sent: false, error });
      if (!response.headersSent) sendUpstreamError(response, `the verified connection to the service failed: ${error.message}`);
      else response.destroy();
      finish({ sent: true, reusable: false });
    });
    request.once('response', (upstreamResponse: http.IncomingMessage) => {
      const passed: http.OutgoingHttpHeaders = {};
      for (const name of PASSED_RESPONSE_HEADERS) {
        const value = upstreamResponse.headers[name];
        if (value !== undefined) passed[name] = value;
      }
      response.writeHead(upstreamResponse.statusCode ?? 502, passed);
      // The status line and headers go out now: a stream's first token must not wait for more.
      response.flushHeaders();
      upstreamResponse.pipe(response);
      upstreamResponse.once('end', () => {
        answered = true;
        finish({ sent: true, reusable: true });
      });
      // An answer cut short ends the client's too: it must not pass for a whole one.
      upstreamResponse.once('close', () => {
        if (upstreamResponse.complete) return;
        response.destroy();
        finish({ sent: true, reusable: false });
      });
      upstreamResponse.once('error', () => response.destroy());
    });
  });
}

/** A 502 in OpenAI's error shape for an upstream that failed after the request was verified and sent. */
function sendUpstreamError(response: http.ServerResponse, message: string): void {
  if (response.headersSent || response.destroyed) return;
  sendOpenAiError(response, 502, { message, type: 'upstream_error', code: 'upstream-failed' });
}
