import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

/** Where Debian's haproxy package installs it. */
export const HAPROXY = '/usr/sbin/haproxy';

/** Health checks this often, in milliseconds: one failed check takes a server out, one passed puts it back. */
export const HEALTH_CHECK_INTERVAL_MS = 200;

/**
 * A real HAProxy in TCP mode in front of appliance doubles, as the fleet's Network Load Balancer is in front of its
 * instances: bytes pass through (TLS ends on the appliances), new connections go round robin to the servers whose
 * HTTPS health check `GET /api/ready` answers 200, and a connection that cannot reach its server is sent to another.
 */
export class HaproxyFleet {
  /**
   * Starts HAProxy in the foreground for the appliances at `serverUrls` (https://127.0.0.1:<port>).
   *
   * @throws Error with the install command when HAProxy is missing
   */
  public static async start(serverUrls: string[]): Promise<HaproxyFleet> {
    if (!existsSync(HAPROXY)) {
      throw new Error(`${HAPROXY} is missing; install it: apt-get update && apt-get install -y --no-install-recommends haproxy`);
    }
    const directory = mkdtempSync(path.join(tmpdir(), 'haproxy-fleet-'));
    const port = await freePort();
    const config = path.join(directory, 'haproxy.cfg');
    writeFileSync(config, haproxyConfig(port, serverUrls));
    const child = spawn(HAPROXY, ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    const fleet = new HaproxyFleet(child, port, directory);
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (fleet.log += text));
    await fleet.untilListening();
    return fleet;
  }

  /** What HAProxy wrote on stderr: its warnings and the servers' state changes. */
  public log = '';

  private constructor(private readonly child: ChildProcess, private readonly port: number, private readonly directory: string) {}

  /** The fleet's address, as a service URL: the load balancer's. */
  public get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  public async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    rmSync(this.directory, { recursive: true, force: true });
  }

  private async untilListening(): Promise<void> {
    const deadline = Date.now() + 5000;
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`haproxy exited with ${this.child.exitCode}: ${this.log}`);
      if (await accepts(this.port)) return;
      if (Date.now() > deadline) throw new Error(`haproxy did not listen on ${this.port} within 5 s: ${this.log}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

/** TCP pass-through, round robin, an HTTPS readiness check that trusts no certificate (clients verify, not HAProxy). */
function haproxyConfig(port: number, serverUrls: string[]): string {
  const servers = serverUrls.map((url, index) => `    server appliance${index + 1} ${new URL(url).host}`);
  return [
    'global',
    '    log stderr format raw local0 notice',
    'defaults',
    '    mode tcp',
    '    log global',
    '    timeout connect 2s',
    '    timeout client 60s',
    '    timeout server 60s',
    '    retries 2',
    '    option redispatch',
    'frontend fleet',
    `    bind 127.0.0.1:${port}`,
    '    default_backend appliances',
    'backend appliances',
    '    balance roundrobin',
    '    option httpchk GET /api/ready',
    '    http-check expect status 200',
    `    default-server check check-ssl verify none inter ${HEALTH_CHECK_INTERVAL_MS}ms fall 1 rise 1`,
    ...servers,
    '',
  ].join('\n');
}

/** A port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
