import type { IncomingMessage } from 'node:http';
import { AttestationResponse, parseAttestationResponse, printableText } from '../attestation/attestation-response';
import { PinnedConnection } from '../attestation/pinned-connection';

/**
 * Asking an appliance for a fresh attestation, over the TLS connection the attestation is to vouch for:
 * `GET <service-url>/api/attestation?nonce=<hex>`.
 */

/** The service could not be asked, or did not answer like an appliance: nothing was checked. */
export class AttestationUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AttestationUnavailableError';
  }
}

/** The largest answer read: a document with its certificates is a few kilobytes, the event log a few hundred bytes. */
const MAX_RESPONSE_BYTES = 1024 * 1024;

/** The attestation endpoint of the service at `serviceUrl` (which may carry a path prefix) for `nonce`. */
export function attestationUrl(serviceUrl: URL, nonce: Buffer): URL {
  const base = new URL(serviceUrl.href.endsWith('/') ? serviceUrl.href : `${serviceUrl.href}/`);
  const url = new URL('api/attestation', base);
  url.searchParams.set('nonce', nonce.toString('hex'));
  return url;
}

/**
 * Opens a TLS connection to `serviceUrl` within `timeoutMs`.
 *
 * @throws AttestationUnavailableError when the service is unreachable or does not complete a TLS 1.3 handshake
 */
export async function connectToService(serviceUrl: URL, timeoutMs: number): Promise<PinnedConnection> {
  try {
    return await PinnedConnection.open(serviceUrl, timeoutMs);
  } catch (error) {
    throw new AttestationUnavailableError((error as Error).message, { cause: error });
  }
}

/**
 * Fetches and parses the attestation of the service for `nonce` over `connection`, giving up after `timeoutMs`.
 *
 * @throws AttestationUnavailableError when the connection fails, the service is slow, answers an HTTP error or
 * something that is not an attestation response
 */
export async function fetchAttestation(
  connection: PinnedConnection,
  nonce: Buffer,
  timeoutMs: number,
): Promise<AttestationResponse> {
  const url = attestationUrl(connection.serviceUrl, nonce);
  let answer: { status: number; text: string };
  try {
    answer = await get(connection, `${url.pathname}${url.search}`, timeoutMs);
  } catch (error) {
    if (error instanceof AttestationUnavailableError) throw error;
    throw new AttestationUnavailableError(`Could not reach ${url.origin}: ${(error as Error).message}`, { cause: error });
  }
  if (answer.status !== 200) {
    throw new AttestationUnavailableError(
      `${url.origin}${url.pathname} answered HTTP ${answer.status}: ${printableText(answer.text.trim(), 200)}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(answer.text);
  } catch {
    throw new AttestationUnavailableError(`${url.origin}${url.pathname} did not answer JSON: is this a sealed-inference service?`);
  }
  try {
    return parseAttestationResponse(body);
  } catch (error) {
    throw new AttestationUnavailableError((error as Error).message);
  }
}

/** `GET path` over the connection: the status and the body as text, refusing more than MAX_RESPONSE_BYTES. */
function get(connection: PinnedConnection, path: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = connection.request(path, { method: 'GET', headers: { accept: 'application/json' } });
    const timer = setTimeout(() => request.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    request.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    request.once('response', (response: IncomingMessage) => {
      response.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          request.destroy(new AttestationUnavailableError(
            `${connection.serviceUrl.origin} answered more than ${MAX_RESPONSE_BYTES} bytes: is this a sealed-inference service?`));
        } else {
          chunks.push(chunk);
        }
      });
      response.once('end', () => {
        clearTimeout(timer);
        resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    request.end();
  });
}
