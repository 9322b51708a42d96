import * as net from 'node:net';

/**
 * A TCP proxy at a fixed address whose target can be switched: connections accepted after a switch go to the new
 * target, those already open stay with the old one. Stands in for a service address that starts answering from
 * another machine.
 */
export class SwitchableProxy {
  public static async start(target: string): Promise<SwitchableProxy> {
    const proxy = new SwitchableProxy(target);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** How many connections were piped to each target URL. */
  public readonly connectionsTo = new Map<string, number>();
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  /** @param target the https URL connections are piped to */
  private constructor(public target: string) {
    this.server = net.createServer((client) => {
      const { hostname, port } = new URL(this.target);
      this.connectionsTo.set(this.target, (this.connectionsTo.get(this.target) ?? 0) + 1);
      const upstream = net.connect(Number(port), hostname);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.once('close', () => this.sockets.delete(socket));
        socket.on('error', () => [client, upstream].forEach((s) => s.destroy()));
      }
      client.pipe(upstream).pipe(client);
    });
  }

  /** The proxy's URL, as a service URL. */
  public get url(): string {
    return `https://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  public async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
