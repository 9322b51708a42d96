import * as https from 'node:https';
import { Readable } from 'node:stream';

/** The appliance's certificate is self-signed: the tests reach it as a client that pins nothing would. */
const agent = new https.Agent({ rejectUnauthorized: false, minVersion: 'TLSv1.3' });

/**
 * `fetch` for the appliance's TLS service, whose self-signed certificate global fetch would refuse; the answer streams
 * like fetch's.
 */
export function tlsFetch(
  url: string | URL,
  init: { method?: string; headers?: Record<string, string>; body?: string | Buffer; signal?: AbortSignal } = {},
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const request = https.request(url, { method: init.method ?? 'GET', headers: init.headers, agent, signal: init.signal },
      (answer) => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(answer.headers)) {
          for (const one of [value ?? []].flat()) headers.append(name, one);
        }
        const body = answer.statusCode === 204 || answer.statusCode === 304 || init.method === 'HEAD'
          ? null
          : Readable.toWeb(answer) as ReadableStream<Uint8Array>;
        if (body === null) answer.resume();
        resolve(new Response(body, { status: answer.statusCode, headers }));
      });
    request.once('error', reject);
    request.end(init.body);
  });
}
