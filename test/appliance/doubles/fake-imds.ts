import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';

/** A local instance metadata service that, like IMDSv2 with tokens required, answers only token-bearing requests. */
export interface FakeImds {
  readonly endpoint: string;
  /** `undefined`: the instance has no user data (404). */
  userData: string | undefined;
  /** Requests refused for lack of a valid token. */
  readonly refused: number;
  close(): Promise<void>;
}

export async function startFakeImds(userData?: string): Promise<FakeImds> {
  const tokens = new Set<string>();
  let refused = 0;
  const state = { userData };
  const server: Server = createServer((request, response) => {
    if (request.method === 'PUT' && request.url === '/latest/api/token') {
      if (!request.headers['x-aws-ec2-metadata-token-ttl-seconds']) return void response.writeHead(400).end();
      const token = randomBytes(16).toString('hex');
      tokens.add(token);
      return void response.writeHead(200, { 'Content-Type': 'text/plain' }).end(token);
    }
    if (!tokens.has(String(request.headers['x-aws-ec2-metadata-token']))) {
      refused++;
      return void response.writeHead(401).end();
    }
    if (request.method === 'GET' && request.url === '/latest/user-data' && state.userData !== undefined) {
      return void response.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(state.userData);
    }
    response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get userData() {
      return state.userData;
    },
    set userData(value) {
      state.userData = value;
    },
    get refused() {
      return refused;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
