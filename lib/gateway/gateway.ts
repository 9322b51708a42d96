import type { X509Certificate } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { printableText } from '../attestation/attestation-response';
import type { VerifyExpectations } from '../cli/verify-connection';
import { AttestationFailedError } from './attestation-failure';
import type { InstanceHealth } from './fleet-health';
import { forwardRequest, ForwardedRequest } from './forward-request';
import { GatewayHealth, VerifiedHealth } from './gateway-health';
import { GATEWAY_PAGE } from './gateway-page';
import { allowedHostHeaders, LoopbackAddress } from './loopback-address';
import { sendOpenAiError } from './openai-error';
import { BodyTooLargeError, readRequestBody } from './read-request-body';
import { FleetPoolOptions, VerifiedUpstreamPool } from './verified-upstream-pool';
import { setSecurityHeaders } from '../shared/security-headers';

/** What the gateway needs: the service, what to expect of it, where to listen and how often to check. */
export interface GatewayOptions {
  /** The service, https. */
  readonly serviceUrl: URL;
  readonly expectations: VerifyExpectations;
  /** Where to listen: loopback only ({@link parseLoopbackAddress}). */
  readonly listen: LoopbackAddress;
  /** The oldest attestation document accepted, in seconds. */
  readonly maxAgeSeconds: number;
  /** How long to wait for the service to connect or attest, in seconds. */
  readonly timeoutSeconds: number;
  /** Connections older than this are retired, and a fresh one verified this often, in seconds. */
  readonly reverifySeconds: number;
  /** The most upstream connections at once. */
  readonly maxConnections: number;
  /**
   * The service is a load balancer in front of several attested instances: each connection is verified on its own,
   * and one that fails is refused without closing the connections to the others.
   *
   * @default false - a single instance: a failed verification stops all forwarding until a fresh connection verifies
   */
  readonly fleet?: boolean;
  /**
   * In fleet mode, the fresh connections tried for one request, each perhaps to another instance, before it is
   * answered 502.
   *
   * @default 4
   */
  readonly fleetAttempts?: number;
  /** The roots attestation documents may chain to; the AWS Nitro root when absent. */
  readonly trustedRoots?: X509Certificate[];
  /** Where the one line about the first verification goes when it passes. */
  readonly stdout: (text: string) => void;
  /** Where each failed verification, and a later success, is told. */
  readonly stderr: (text: string) => void;
}

/** A running gateway. */
export interface Gateway {
  /** Its local URL, e.g. `http://127.0.0.1:8080`: OpenAI clients take `${url}/v1` as their base URL. */
  readonly url: string;
  /** The outcome of the last verification, as `GET /health` answers it. */
  health(): GatewayHealth;
  /** Stops listening and closes every connection, local and upstream. */
  close(): Promise<void>;
}

/** The largest request body accepted: a conversation, not a document store. */
export const MAX_REQUEST_BODY_BYTES = 64 * 1024;

/** Fresh connections tried for one request in fleet mode, unless told otherwise. */
export const DEFAULT_FLEET_ATTEMPTS = 4;

/** The longest text from the service printed on one line. */
const MAX_PRINTED_LENGTH = 512;

/**
 * Starts the local verified gateway: plain HTTP on a loopback address, forwarding the OpenAI-compatible
 * `POST /v1/chat/completions` and `GET /v1/models` to the service only over TLS connections whose own fresh
 * attestation verified, and serving `GET /` (a chat page) and `GET /health`. It verifies once before it resolves,
 * and says on `stdout` what it verified, or on `stderr` what failed; it keeps running either way. With `fleet`, each
 * instance behind the service's load balancer is judged on its own ({@link GatewayOptions.fleet}).
 *
 * @throws Error when it cannot listen (the address in use)
 */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const reverifyMs = options.reverifySeconds * 1000;
  let url = '';
  let firstVerification = true;
  const pool = new VerifiedUpstreamPool({
    serviceUrl: options.serviceUrl,
    expectations: options.expectations,
    maxAgeSeconds: options.maxAgeSeconds,
    timeoutSeconds: options.timeoutSeconds,
    reverifyMs,
    maxConnections: options.maxConnections,
    trustedRoots: options.trustedRoots,
    fleet: options.fleet === true ? fleetReporting(options, () => url) : undefined,
    onHealthChange: (health, previous) => {
      const first = firstVerification;
      firstVerification = false;
      if (!health.verified) {
        // A failure repeating itself with each request is told once.
        if (first || previous.verified || previous.reason !== health.reason) {
          options.stderr(`sealed-inference gateway: NOT forwarding to ${options.serviceUrl.href}: ${health.failedCheck}: ${health.reason}; ` +
            'a fresh connection is verified again at the next request\n');
        }
      } else if (first) {
        options.stdout(`${describeVerified(health)}; serving it at ${url}/v1 (OpenAI-compatible) and ${url}/ (chat)\n`);
      } else if (!previous.verified) {
        options.stderr(`sealed-inference gateway: forwarding again: ${describeVerified(health)}\n`);
      }
    },
  });

  const server = http.createServer({ noDelay: true, headersTimeout: 10_000, requestTimeout: 30_000 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listen.port, options.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const hostHeaders = allowedHostHeaders(options.listen, port);
  url = `http://${options.listen.host.includes(':') ? `[${options.listen.host}]` : options.listen.host}:${port}`;
  server.on('request', (request: http.IncomingMessage, response: http.ServerResponse) => {
    setSecurityHeaders(response);
    route(pool, hostHeaders, request, response).catch(() => {
      if (response.headersSent) response.destroy();
      else sendOpenAiError(response, 500, { message: 'Internal error of the gateway', type: 'server_error', code: 'internal-error' });
    });
  });

  await pool.reverify();
  const timer = setInterval(() => void pool.reverify(), reverifyMs);
  return {
    url,
    health: () => pool.health,
    close: async () => {
      clearInterval(timer);
      pool.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function route(
  pool: VerifiedUpstreamPool,
  hostHeaders: ReadonlySet<string>,
  request: http.IncomingMessage,
  response: http.ServerResponse,
): Promise<void> {
  if (!hostHeaders.has(request.headers.host?.toLowerCase() ?? '')) {
    sendOpenAiError(response, 421, {
      message: `This gateway answers only requests for ${[...hostHeaders].join(', ')}: other names could be a DNS rebinding attack`,
      type: 'invalid_request_error', code: 'misdirected-request',
    });
    return;
  }
  const path = (request.url ?? '/').split('?')[0];
  const method = request.method ?? 'GET';
  const page = GATEWAY_PAGE.get(path);
  if (method === 'GET' && page !== undefined) {
    response.writeHead(200, { 'content-type': page.contentType }).end(page.body);
  } else if (method === 'GET' && path === '/health') {
    const health = pool.health;
    const body = JSON.stringify(health);
    response.writeHead(health.verified ? 200 : 503, { 'content-type': 'application/json' }).end(body);
  } else if (method === 'GET' && path === '/v1/models') {
    await forward(pool, { method: 'GET', path: 'v1/models' }, response);
  } else if (method === 'POST' && path === '/v1/chat/completions') {
    // JSON only: a cross-site form or simple request cannot send it without a CORS preflight, which is refused.
    if (!/^application\/json\s*(;|$)/i.test(request.headers['content-type'] ?? '')) {
      sendOpenAiError(response, 415, {
        message: 'Send the request as JSON with content-type: application/json', type: 'invalid_request_error', code: 'unsupported-media-type',
      });
      return;
    }
    let body: Buffer;
    try {
      body = await readRequestBody(request, MAX_REQUEST_BODY_BYTES);
    } catch (error) {
      if (!(error instanceof BodyTooLargeError)) throw error;
      response.setHeader('connection', 'close');
      sendOpenAiError(response, 413, { message: error.message, type: 'invalid_request_error', code: 'request-too-large' });
      return;
    }
    await forward(pool, { method: 'POST', path: 'v1/chat/completions', body }, response);
  } else {
    sendOpenAiError(response, 404, {
      message: `No ${method} ${printableText(path, 100)} here: the gateway serves POST /v1/chat/completions, GET /v1/models, GET /health and GET /`,
      type: 'invalid_request_error', code: 'not-found',
    });
  }
}

/** Forwards over a verified connection, or answers 502 with why none could be had, forwarding nothing. */
async function forward(pool: VerifiedUpstreamPool, forwarded: ForwardedRequest, response: http.ServerResponse): Promise<void> {
  try {
    await forwardRequest(pool, forwarded, response);
  } catch (error) {
    if (!(error instanceof AttestationFailedError)) throw error;
    sendOpenAiError(response, 502, {
      message: `The service failed verification, so nothing was sent to it: ${error.code}: ${error.reason}`,
      type: 'attestation_failed',
      code: error.code,
    });
  }
}

/**
 * The fleet pool's options: what it is told of each instance goes to stderr once per change, and the first instance
 * verified to stdout with where the gateway serves.
 */
function fleetReporting(options: GatewayOptions, localUrl: () => string): FleetPoolOptions {
  const service = options.serviceUrl.href;
  let anyVerified = false;
  let lastUnreachable: string | undefined;
  return {
    attempts: options.fleetAttempts ?? DEFAULT_FLEET_ATTEMPTS,
    onInstanceChange: (tlsSpkiSha256: string, current: InstanceHealth, previous: InstanceHealth | undefined) => {
      lastUnreachable = undefined;
      const instance = printableText(`instance ${tlsSpkiSha256}${current.moduleId === undefined ? '' : ` (module ${current.moduleId})`}`,
        MAX_PRINTED_LENGTH);
      if (current.verified) {
        const models = current.servedModels.length === 0 ? 'no model yet' : `model ${current.servedModels.join(', ')}`;
        const what = printableText(`image ${current.image ?? '(unnamed)'}, ${models}`, MAX_PRINTED_LENGTH);
        if (!anyVerified) {
          anyVerified = true;
          options.stdout(`Verified ${instance} of the fleet at ${service}: ${what}; serving the fleet at ${localUrl()}/v1 ` +
            `(OpenAI-compatible) and ${localUrl()}/ (chat), each new connection verified on its own\n`);
        } else if (previous === undefined || !previous.verified) {
          options.stderr(`sealed-inference gateway: verified ${instance}: ${what}; forwarding to it\n`);
        }
      } else if (previous === undefined || previous.verified || previous.reason !== current.reason) {
        // A refusal repeating itself with each connection to that instance is told once.
        options.stderr(`sealed-inference gateway: REFUSED ${instance} of ${service}: ${current.failedCheck}: ${current.reason}; ` +
          'nothing is forwarded to it, the instances that verify still serve\n');
      }
    },
    onUnreachable: (failure: AttestationFailedError) => {
      if (failure.reason === lastUnreachable) return;
      lastUnreachable = failure.reason;
      options.stderr(`sealed-inference gateway: no instance of ${service} answered: ${failure.code}: ${failure.reason}\n`);
    },
  };
}

/** One line on what was verified; the service's text is escaped. */
function describeVerified(health: VerifiedHealth): string {
  const models = health.servedModels.length === 0 ? 'no model yet' : `model ${health.servedModels.join(', ')}`;
  return printableText(`Verified ${health.service}: image ${health.image ?? '(unnamed)'}, ${models}, ` +
    `TLS key SPKI SHA-256 ${health.tlsSpkiSha256} pinned`, MAX_PRINTED_LENGTH);
}
