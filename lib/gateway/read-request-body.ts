import type * as http from 'node:http';

/** A request body larger than allowed: answered 413 without reading further. */
export class BodyTooLargeError extends Error {
  constructor(public readonly limit: number) {
    super(`The request body is larger than ${limit / 1024} KiB: send a shorter conversation`);
    this.name = 'BodyTooLargeError';
  }
}

/**
 * Reads a request's body whole, refusing more than `limit` bytes: a body goes upstream only once it is complete, so
 * that a request failed before any byte was written can be sent again.
 *
 * @throws BodyTooLargeError past the limit; the error of the request when the client goes away
 */
export function readRequestBody(request: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (Number(request.headers['content-length'] ?? 0) > limit) {
      reject(new BodyTooLargeError(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        request.removeAllListeners('data');
        request.pause();
        reject(new BodyTooLargeError(limit));
      } else {
        chunks.push(chunk);
      }
    });
    request.once('end', () => resolve(Buffer.concat(chunks)));
    request.once('error', reject);
    request.once('aborted', () => reject(new Error('the client went away before sending the whole request')));
  });
}
