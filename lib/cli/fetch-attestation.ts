import { AttestationResponse, parseAttestationResponse, printableText } from '../attestation/attestation-response';

/**
 * Asking an appliance for a fresh attestation: `GET <service-url>/api/attestation?nonce=<hex>`.
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
 * Fetches and parses the attestation of the service at `serviceUrl` for `nonce`, giving up after `timeoutMs`.
 *
 * @throws AttestationUnavailableError when the service is unreachable, slow, answers an HTTP error or something that
 * is not an attestation response
 */
export async function fetchAttestation(
  serviceUrl: URL,
  nonce: Buffer,
  timeoutMs: number,
  fetchAnswer: typeof fetch = fetch,
): Promise<AttestationResponse> {
  const url = attestationUrl(serviceUrl, nonce);
  let response: Response;
  let text: string;
  try {
    response = await fetchAnswer(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' }, redirect: 'error' });
    text = await readAtMost(response, MAX_RESPONSE_BYTES);
  } catch (error) {
    if (error instanceof AttestationUnavailableError) throw error;
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = (error as Error).name === 'TimeoutError'
      ? `no answer within ${timeoutMs / 1000} s`
      : cause?.code ?? cause?.message ?? (error as Error).message;
    throw new AttestationUnavailableError(`Could not reach ${url.origin}: ${reason}`, { cause: error });
  }
  if (!response.ok) {
    throw new AttestationUnavailableError(`${url.origin}${url.pathname} answered HTTP ${response.status}: ${printableText(text.trim(), 200)}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new AttestationUnavailableError(`${url.origin}${url.pathname} did not answer JSON: is this a sealed-inference service?`);
  }
  try {
    return parseAttestationResponse(body);
  } catch (error) {
    throw new AttestationUnavailableError((error as Error).message);
  }
}

/** The response body as text, refusing more than `limit` bytes without reading the rest. */
async function readAtMost(response: Response, limit: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body?.getReader();
  for (let chunk = await reader?.read(); chunk !== undefined && !chunk.done; chunk = await reader?.read()) {
    size += chunk.value.length;
    if (size > limit) {
      await reader?.cancel();
      throw new AttestationUnavailableError(`${response.url} answered more than ${limit} bytes: is this a sealed-inference service?`);
    }
    chunks.push(chunk.value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
