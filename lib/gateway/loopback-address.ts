import { isIP } from 'node:net';

/** Where the gateway listens: a loopback address only, since its local leg is plain HTTP. */
export interface LoopbackAddress {
  /** An IP address literal, without brackets. */
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
}

/** The address `--listen` defaults to. */
export const DEFAULT_LISTEN = '127.0.0.1:8080';

/**
 * Parses `host:port` (`[::1]:port` for IPv6; `localhost` means 127.0.0.1).
 *
 * @throws Error saying what to write instead, for a malformed value or an address that is not loopback
 */
export function parseLoopbackAddress(value: string): LoopbackAddress {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (match === null || port > 65535) {
    throw new Error(`Expected a loopback address and port such as ${DEFAULT_LISTEN} or [::1]:8080, got ${JSON.stringify(value)}.`);
  }
  const named = match[1] ?? match[2];
  const host = named.toLowerCase() === 'localhost' ? '127.0.0.1' : named;
  if (!isLoopback(host)) {
    throw new Error(
      `${value} is not a loopback address: the gateway speaks plain HTTP locally, so anyone who could reach it on ` +
      'another interface could read the prompts and answers and use the verified service. Listen on 127.0.0.1 or [::1].');
  }
  return { host, port };
}

function isLoopback(host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(host);
  return false;
}

/**
 * The Host header values a local client sends to the gateway listening on `address` with `port`: a page on any other
 * name, though it resolves to a loopback address (DNS rebinding), is refused.
 */
export function allowedHostHeaders(address: LoopbackAddress, port: number): ReadonlySet<string> {
  const literal = isIP(address.host) === 6 ? `[${address.host}]` : address.host;
  return new Set(['localhost', '127.0.0.1', '[::1]', literal].map((host) => `${host}:${port}`));
}
