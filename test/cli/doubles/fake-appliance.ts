import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';

/** What the fake answers: a status and a body (JSON-encoded unless a string), or no answer at all. */
export type FakeAnswer = { status?: number; body: unknown } | 'hang';

/**
 * A local HTTP server standing in for the appliance's `GET /api/attestation?nonce=<hex>`. `answer` receives the nonce
 * of each request; every request is recorded. With `tls` (a PEM key and certificate) it serves https.
 */
export class FakeAppliance {
  public static async start(
    answer: (nonce: Buffer) => FakeAnswer,
    tls?: { key: Buffer; cert: Buffer },
  ): Promise<FakeAppliance> {
    const fake = new FakeAppliance(answer, tls);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  /** The URL of every request received. */
  public readonly requests: URL[] = [];
  private readonly server: http.Server;
  private readonly scheme: string;

  private constructor(public answer: (nonce: Buffer) => FakeAnswer, tls?: { key: Buffer; cert: Buffer }) {
    this.scheme = tls ? 'https' : 'http';
    const handle: http.RequestListener = (req, res) => {
      // One connection a request: the CLI's runs share this process's connection pool, and a kept-alive socket the
      // server closes while a test synthesizes a stack would fail the next run with ECONNRESET.
      res.setHeader('connection', 'close');
      const url = new URL(req.url ?? '/', 'http://fake');
      this.requests.push(url);
      if (req.method !== 'GET' || url.pathname !== '/api/attestation') {
        res.writeHead(404).end('not found');
        return;
      }
      const result = this.answer(Buffer.from(url.searchParams.get('nonce') ?? '', 'hex'));
      if (result === 'hang') return;
      const body = typeof result.body === 'string' ? result.body : JSON.stringify(result.body);
      res.writeHead(result.status ?? 200, { 'content-type': 'application/json' }).end(body);
    };
    this.server = tls ? https.createServer(tls, handle) : http.createServer(handle);
  }

  public get url(): string {
    return `${this.scheme}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  public async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
