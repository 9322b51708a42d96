import * as http from 'node:http';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { spkiSha256 } from './channel-binding';

/**
 * One TLS 1.3 connection to a service, kept as it is: every request sent through it travels over this one socket,
 * and none opens another. The certificate is checked against no CA (the appliance's is self-signed): trust comes from
 * an attestation document received over this same connection whose channel binding names `peerSpkiSha256`.
 */
export class PinnedConnection {
  /**
   * Connects to `serviceUrl` (https) and completes the TLS 1.3 handshake within `timeoutMs`.
   *
   * @throws Error naming the address and the reason (refused, timed out, TLS version or handshake failure)
   */
  public static open(serviceUrl: URL, timeoutMs: number): Promise<PinnedConnection> {
    if (serviceUrl.protocol !== 'https:') {
      throw new Error(`${serviceUrl.origin} is not an https:// URL: only a TLS connection can be bound to an attestation`);
    }
    const host = serviceUrl.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(serviceUrl.port || 443);
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        host,
        port,
        servername: isIP(host) === 0 ? host : undefined,
        minVersion: 'TLSv1.3',
        ALPNProtocols: ['http/1.1'],
        // Trust comes from the attested channel binding, not from a CA: see checkChannelBinding.
        rejectUnauthorized: false,
      });
      const fail = (error: Error) => {
        socket.destroy();
        reject(new Error(`Could not connect to ${serviceUrl.host} over TLS 1.3: ${describeError(error)}`, { cause: error }));
      };
      socket.setTimeout(timeoutMs, () => fail(new Error(`no TLS handshake within ${timeoutMs / 1000} s`)));
      socket.once('error', fail);
      socket.once('secureConnect', () => {
        socket.setTimeout(0);
        socket.off('error', fail);
        const certificate = socket.getPeerX509Certificate();
        if (certificate === undefined) return fail(new Error('the service sent no certificate'));
        resolve(new PinnedConnection(serviceUrl, socket, spkiSha256(certificate)));
      });
    });
  }

  /** The agent that sends requests over this connection only; give it to `http.request`. */
  public readonly agent: http.Agent;

  private constructor(
    /** The service, as connected to. */
    public readonly serviceUrl: URL,
    private readonly socket: tls.TLSSocket,
    /** The SHA-256 (hex) of the DER SubjectPublicKeyInfo of the certificate the service presented. */
    public readonly peerSpkiSha256: string,
  ) {
    this.agent = new SingleSocketAgent(socket);
    // A failure after the handshake ends the connection; the request in flight, if any, sees it.
    socket.on('error', () => socket.destroy());
  }

  /** False once the socket is closed, by either side: a closed connection never reopens. */
  public get isOpen(): boolean {
    return !this.socket.destroyed;
  }

  /** A request over this connection to `path` (with its query) under the service URL's origin. */
  public request(path: string, options: http.RequestOptions = {}): http.ClientRequest {
    return http.request({
      ...options,
      agent: this.agent,
      path,
      headers: { host: this.serviceUrl.host, ...options.headers },
    });
  }

  /** Runs `listener` once the connection closes. */
  public onClose(listener: () => void): void {
    if (this.socket.destroyed) queueMicrotask(listener);
    else this.socket.once('close', listener);
  }

  public close(): void {
    this.agent.destroy();
    this.socket.destroy();
  }
}

/** An agent whose only socket is the one it is given: once that closes, a request fails instead of reconnecting. */
class SingleSocketAgent extends http.Agent {
  private handedOut = false;

  constructor(private readonly socket: tls.TLSSocket) {
    super({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });
  }

  public override createConnection(
    _options: http.ClientRequestArgs,
    callback?: (error: Error | null, socket: Duplex) => void,
  ): Duplex | undefined {
    if (this.handedOut || this.socket.destroyed) {
      // The request fails with this error; the agent never dials anywhere itself.
      callback?.(new Error('the verified connection is closed; a new one must be verified before use'), this.socket);
      return undefined;
    }
    this.handedOut = true;
    return this.socket;
  }
}

function describeError(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code === undefined || error.message.includes(code) ? error.message : `${error.message} (${code})`;
}
