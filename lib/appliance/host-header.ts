import { isIP } from 'net';

/**
 * Checks a request's `Host` header against the names the appliance answers to, which stops DNS rebinding: a page
 * from another site whose name an attacker points at the appliance makes the browser send that name as `Host`, and
 * is refused, so the page cannot drive the API through a user's browser.
 *
 * Accepted: an IP address (IPv4, or IPv6 in brackets), with or without a port, and the configured host names. An IP
 * address needs no DNS, so there is nothing to rebind; and an instance reached through its public IPv4 address never
 * sees that address on its own interface (it is translated to the private one), so the address the connection
 * arrived on cannot be the only one accepted.
 *
 * @param host the `Host` header as received
 * @param hostNames the DNS names configured for the appliance, lower case, without a trailing dot
 * @returns undefined when accepted; otherwise the one-line reason to answer with (421 Misdirected Request)
 */
export function misdirectedHost(host: string | undefined, hostNames: ReadonlySet<string>): string | undefined {
  const usage = "use the appliance's IP address, or a host name listed in its configuration (hostNames)";
  if (host === undefined || host === '') return `The request has no Host header; ${usage}`;
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(host);
  if (bracketed) {
    return isIP(bracketed[1]) === 6 ? undefined : `Host ${quote(host)} is not an IPv6 address; ${usage}`;
  }
  const named = /^([^:]+)(?::\d{1,5})?$/.exec(host);
  const name = named?.[1].toLowerCase().replace(/\.$/, '');
  if (name !== undefined && (isIP(name) === 4 || hostNames.has(name))) return undefined;
  return `Host ${quote(host)} does not name this appliance; ${usage}`;
}

function quote(host: string): string {
  return JSON.stringify(host.slice(0, 100));
}
