import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { encodeChannelBinding } from '../../../lib/attestation/channel-binding';
import { createTlsIdentity, TlsIdentity } from '../../../lib/appliance/tls-identity';

/** What the fake answers: a status and a body (JSON-encoded unless a string), or no answer at all. */
export type FakeAnswer = { status?: number; body: unknown } | 'hang';

/**
 * A local TLS 1.3 server standing in for the appliance's `GET /api/attestation?nonce=<hex>`, with a key pair and
 * self-signed certificate of its own, as the appliance makes them. `answer` receives the nonce of each request and the
 * channel binding of the fake's TLS key; every request is recorded.
 */
export class FakeAppliance {
  public static async start(answer: (nonce: Buffer, binding: Buffer) => FakeAnswer): Promise<FakeAppliance> {
    const fake = new FakeAppliance(answer, await createTlsIdentity());
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  /** The URL of every request received. */
  public readonly requests: URL[] = [];
  /** The user_data that binds documents to this fake's TLS key. */
  public readonly binding: Buffer;
  private readonly server: https.Server;

  private constructor(public answer: (nonce: Buffer, binding: Buffer) => FakeAnswer, identity: TlsIdentity) {
    this.binding = encodeChannelBinding(identity.spkiSha256);
    this.server = https.createServer({ key: identity.key, cert: identity.cert, minVersion: 'TLSv1.3' }, (req, res) => {
      const url = new URL(req.url ?? '/', 'https://fake');
      this.requests.push(url);
      if (req.method !== 'GET' || url.pathname !== '/api/attestation') {
        res.writeHead(404).end('not found');
        return;
      }
      const result = this.answer(Buffer.from(url.searchParams.get('nonce') ?? '', 'hex'), this.binding);
      if (result === 'hang') return;
      const body = typeof result.body === 'string' ? result.body : JSON.stringify(result.body);
      res.writeHead(result.status ?? 200, { 'content-type': 'application/json' }).end(body);
    });
  }

  public get url(): string {
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  public async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
