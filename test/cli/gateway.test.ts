import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { createTlsIdentity } from '../../lib/appliance/tls-identity';
import type { VerifyExpectations } from '../../lib/cli/verify-connection';
import { readMeasurementsFile } from '../../lib/cli/verify-expectations';
import { Gateway, GatewayOptions, MAX_REQUEST_BODY_BYTES, startGateway } from '../../lib/gateway/gateway';
import { createTestChain, TestChain } from '../attestation/test-attestation';
import { attestedAnswer, IMAGE, MODEL, MODEL_MEASUREMENT, OTHER_IMAGE, TestImage } from './doubles/attested-answer';
import { answerTo, FakeAppliance, SERVED_MODEL, wordChunks } from './doubles/fake-appliance';
import { SwitchableProxy } from './doubles/switchable-proxy';

const PROMPT = 'hello sealed world';
const ANSWER = answerTo([{ role: 'user', content: PROMPT }]);

let chain: TestChain;
let expectations: VerifyExpectations;
/** Everything each test starts, stopped after it. */
let stops: Array<() => Promise<void>>;
let stdout: string;
let stderr: string;

const appliance = async (image: TestImage = IMAGE) => {
  const fake = await FakeAppliance.start((nonce, binding) => attestedAnswer(chain, image, nonce, binding));
  stops.push(() => fake.stop());
  return fake;
};

async function gateway(serviceUrl: string, options: Partial<GatewayOptions> = {}): Promise<Gateway> {
  const started = await startGateway({
    serviceUrl: new URL(serviceUrl),
    expectations,
    listen: { host: '127.0.0.1', port: 0 },
    maxAgeSeconds: 60,
    timeoutSeconds: 2,
    reverifySeconds: 300,
    maxConnections: 4,
    trustedRoots: [chain.root.certificate],
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    ...options,
  });
  stops.push(() => started.close());
  return started;
}

const client = (local: Gateway) => new OpenAI({ baseURL: `${local.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 5000 });

/** A request to the gateway as a browser or curl sends it, with a Host header of the test's choosing. */
function request(local: Gateway, path: string, options: { method?: string; host?: string; body?: string } = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const { port } = new URL(local.url);
    const req = http.request({
      host: '127.0.0.1', port, path, method: options.method ?? 'GET',
      headers: { host: options.host ?? `127.0.0.1:${port}`, 'content-type': 'application/json' },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk) => (body += chunk)).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

async function until(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The chat of PROMPT through the gateway, not streamed; rejects with the client's APIError. */
const chat = (local: Gateway) =>
  client(local).chat.completions.create({ model: 'whatever-the-client-says', messages: [{ role: 'user', content: PROMPT }] });

beforeAll(async () => {
  chain = await createTestChain();
  expectations = { images: readMeasurementsFile(JSON.stringify(IMAGE), 'expected image'), model: MODEL };
});

beforeEach(() => {
  stops = [];
  stdout = '';
  stderr = '';
});

afterEach(async () => {
  for (const stop of stops.reverse()) await stop();
});

describe('a genuine service', () => {
  test('verified at start: one line on stdout, and /health says what was verified', async () => {
    const genuine = await appliance();
    const local = await gateway(genuine.url);
    const spki = genuine.binding.toString().split('=')[1];
    expect(stderr).toBe('');
    expect(stdout).toBe(`Verified ${genuine.url}/: image ${IMAGE.imageId}, model ${MODEL_MEASUREMENT}, TLS key SPKI SHA-256 ${spki} pinned; ` +
      `serving it at ${local.url}/v1 (OpenAI-compatible) and ${local.url}/ (chat)\n`);

    const health = await request(local, '/health');
    expect(health.status).toBe(200);
    const body = JSON.parse(health.body);
    expect(body).toEqual({
      verified: true, service: `${genuine.url}/`, image: IMAGE.imageId, pcrs: expect.objectContaining({ 4: IMAGE.pcr4 }),
      servedModels: [MODEL_MEASUREMENT], tlsSpkiSha256: spki, verifiedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect(local.health()).toEqual(body);
  });

  test('the official openai client: streamed and whole completions arrive token for token, and the served model is listed', async () => {
    const genuine = await appliance();
    const local = await gateway(genuine.url);
    const openai = client(local);

    const stream = await openai.chat.completions.create({
      model: 'whatever-the-client-says', stream: true, messages: [{ role: 'user', content: PROMPT }],
    });
    const tokens: string[] = [];
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) tokens.push(chunk.choices[0].delta.content);
    }
    expect(tokens).toEqual(wordChunks(ANSWER));

    const whole = await chat(local);
    expect(whole.choices[0].message.content).toBe(ANSWER);
    expect(whole.model).toBe(SERVED_MODEL);

    const models = await openai.models.list();
    expect(models.data.map((model) => model.id)).toEqual([SERVED_MODEL]);

    // The request went upstream as the client sent it, with the service's own Host header.
    expect(genuine.v1Requests.map((r) => [r.method, r.url.pathname, r.host])).toEqual([
      ['POST', '/v1/chat/completions', new URL(genuine.url).host],
      ['POST', '/v1/chat/completions', new URL(genuine.url).host],
      ['GET', '/v1/models', new URL(genuine.url).host],
    ]);
    expect(genuine.v1Requests[1].body).toEqual({ model: 'whatever-the-client-says', messages: [{ role: 'user', content: PROMPT }] });
    // The connection verified at start served every request: one at a time, reused.
    expect(genuine.attestationRequests).toHaveLength(1);
    expect(new Set(genuine.received.map((r) => r.connection))).toEqual(new Set([1]));
  });

  test('every connection is verified over itself before a request goes over it', async () => {
    const genuine = await appliance();
    const local = await gateway(genuine.url, { maxConnections: 3 });
    // Concurrent requests need connections of their own.
    genuine.pace = () => new Promise((resolve) => setTimeout(resolve, 20));
    const answers = await Promise.all([1, 2, 3, 4, 5].map(() => chat(local)));
    expect(answers.map((a) => a.choices[0].message.content)).toEqual(Array(5).fill(ANSWER));

    const byConnection = new Map<number, string[]>();
    for (const r of genuine.received) byConnection.set(r.connection, [...byConnection.get(r.connection) ?? [], r.url.pathname]);
    expect(byConnection.size).toBeGreaterThan(1);
    expect(byConnection.size).toBeLessThanOrEqual(3);
    for (const paths of byConnection.values()) {
      expect(paths[0]).toBe('/api/attestation');
      expect(paths.filter((p) => p === '/api/attestation')).toHaveLength(1);
    }
    const nonces = genuine.attestationRequests.map((r) => r.url.searchParams.get('nonce'));
    expect(new Set(nonces).size).toBe(nonces.length);
  });

  test('a stream is passed on chunk by chunk: the first token arrives while the service still holds the rest', async () => {
    const genuine = await appliance();
    const local = await gateway(genuine.url);
    let releaseRest!: () => void;
    const rest = new Promise<void>((resolve) => (releaseRest = resolve));
    genuine.pace = (index) => (index === 1 ? rest : Promise.resolve());

    const stream = await client(local).chat.completions.create({
      model: 'm', stream: true, messages: [{ role: 'user', content: PROMPT }],
    });
    const tokens: string[] = [];
    let heldTooLong = false;
    const holdTimer = setTimeout(() => {
      heldTooLong = true;
      releaseRest();
    }, 2000);
    let firstTokenWhileHeld: boolean | undefined;
    for await (const chunk of stream) {
      const content = chunk.choices[0]?.delta.content;
      if (!content) continue;
      if (tokens.length === 0) {
        // Were the gateway to buffer, the first token would only come once the service was released, after 2 s.
        firstTokenWhileHeld = !heldTooLong;
        clearTimeout(holdTimer);
        releaseRest();
      }
      tokens.push(content);
    }
    expect(firstTokenWhileHeld).toBe(true);
    expect(tokens).toEqual(wordChunks(ANSWER));
  });

  test('a connection the service closed is not used: the next request verifies a fresh one', async () => {
    const genuine = await appliance();
    const local = await gateway(genuine.url);
    await until(() => genuine.openConnections === 1);
    genuine.dropConnections();
    await until(() => genuine.openConnections === 0);
    expect((await chat(local)).choices[0].message.content).toBe(ANSWER);
    expect(genuine.received.map((r) => [r.connection, r.url.pathname])).toEqual([
      [1, '/api/attestation'], [2, '/api/attestation'], [2, '/v1/chat/completions'],
    ]);
  });

  test('an idle connection is closed after 4 s, before the service\'s 5 s keep-alive timeout could close it under a request', async () => {
    const genuine = await appliance();
    await gateway(genuine.url);
    await until(() => genuine.openConnections === 1);
    await new Promise((resolve) => setTimeout(resolve, 3700));
    expect(genuine.openConnections).toBe(1);
    await until(() => genuine.openConnections === 0, 800);
  }, 10_000);

  test('--reverify: a fresh connection is attested on schedule, even with no request', async () => {
    const genuine = await appliance();
    await gateway(genuine.url, { reverifySeconds: 0.2 });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const attestations = genuine.attestationRequests;
    expect(attestations.length).toBeGreaterThanOrEqual(4);
    expect(attestations.length).toBeLessThanOrEqual(7);
    expect(new Set(attestations.map((r) => r.connection)).size).toBe(attestations.length);
    expect(genuine.v1Requests).toEqual([]);
  });

  test('only local names in the Host header (DNS rebinding): 421, and nothing is forwarded', async () => {
    const genuine = await appliance();
    const local = await gateway(genuine.url);
    const { port } = new URL(local.url);
    const refused = await request(local, '/v1/chat/completions', {
      method: 'POST', host: `attacker.example:${port}`, body: JSON.stringify({ messages: [{ role: 'user', content: PROMPT }] }),
    });
    expect(refused.status).toBe(421);
    expect(JSON.parse(refused.body).error).toMatchObject({ type: 'invalid_request_error', message: expect.stringMatching(/DNS rebinding/) });
    expect((await request(local, '/health', { host: `127.0.0.1:${Number(port) + 1}` })).status).toBe(421);
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`]) expect((await request(local, '/health', { host })).status).toBe(200);
    expect(genuine.v1Requests).toEqual([]);
  });

  test('a body over 64 KiB is refused without being forwarded', async () => {
    const genuine = await appliance();
    const local = await gateway(genuine.url);
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(MAX_REQUEST_BODY_BYTES) }] });
    const refused = await request(local, '/v1/chat/completions', { method: 'POST', body });
    expect(refused.status).toBe(413);
    expect(JSON.parse(refused.body).error.message).toMatch(/larger than 64 KiB/);
    expect(genuine.v1Requests).toEqual([]);
  });

  test('the chat page: static, same-origin only, shows the verification', async () => {
    const genuine = await appliance();
    const local = await gateway(genuine.url);
    const page = await request(local, '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toMatch(/^default-src 'self';/);
    expect(page.body).toMatch(/<script src="\/app.js" defer><\/script>/);
    expect(page.body).not.toMatch(/<script>|style=|https?:\/\//);
    const script = await request(local, '/app.js');
    expect(script.body).toMatch(/fetch\('\/health'\)/);
    expect(script.body).toMatch(/fetch\('\/v1\/chat\/completions'/);
    expect(script.body).toMatch(/tlsSpkiSha256/);
  });
});

describe('a service that does not verify: nothing is forwarded', () => {
  test('a relay with a TLS key of its own is refused (channel-mismatch): no prompt reaches the relay or the service', async () => {
    const genuine = await appliance();
    const relayIdentity = await createTlsIdentity();
    const relayedPrompts: string[] = [];
    let relayedAttestations = 0;
    // Forwards /api/attestation to the genuine service, and would answer chats itself.
    const relay = https.createServer({ key: relayIdentity.key, cert: relayIdentity.cert, minVersion: 'TLSv1.3' }, (req, res) => {
      if (req.url?.startsWith('/api/attestation')) {
        relayedAttestations++;
        https.get(`${genuine.url}${req.url}`, { rejectUnauthorized: false }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, { 'content-type': 'application/json' });
          answer.pipe(res);
        });
      } else {
        relayedPrompts.push(req.url ?? '');
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      }
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    stops.push(async () => {
      relay.closeAllConnections();
      await new Promise((resolve) => relay.close(resolve));
    });
    const relayUrl = `https://127.0.0.1:${(relay.address() as AddressInfo).port}`;

    const local = await gateway(relayUrl);
    expect(stdout).toBe('');
    expect(stderr).toMatch(new RegExp(`^sealed-inference gateway: NOT forwarding to ${relayUrl}/: channel-mismatch: channel check failed: ` +
      `expected the document binds this connection's TLS key \\(SPKI SHA-256 ${relayIdentity.spkiSha256}\\); found channel-mismatch: .*` +
      'the service answering is not the attested instance.*\n$'));

    const error = await chat(local).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error).toMatchObject({ status: 502, type: 'attestation_failed', code: 'channel-mismatch' });
    expect((error as Error).message).toMatch(/nothing was sent to it: channel-mismatch: .*not the attested instance/);
    await expect(client(local).models.list()).rejects.toMatchObject({ status: 502, code: 'channel-mismatch' });

    const health = await request(local, '/health');
    expect(health.status).toBe(503);
    expect(JSON.parse(health.body)).toEqual({
      verified: false, failedCheck: 'channel-mismatch', reason: expect.stringMatching(/not the attested instance \(a relay or a mirror\)/),
    });
    // Each request tried a fresh connection, and failed the same way: said once.
    expect(relayedAttestations).toBe(3);
    expect(stderr.split('\n')).toHaveLength(2);
    expect(relayedPrompts).toEqual([]);
    expect(genuine.v1Requests).toEqual([]);
  });

  test('the address starts answering from another image: the next connection is refused, and that service gets no request', async () => {
    const applianceA = await appliance(IMAGE);
    const applianceB = await appliance(OTHER_IMAGE);
    const proxy = await SwitchableProxy.start(applianceA.url);
    stops.push(() => proxy.stop());
    const local = await gateway(proxy.url, { reverifySeconds: 0.3 });
    expect((await chat(local)).choices[0].message.content).toBe(ANSWER);
    expect(applianceA.v1Requests).toHaveLength(1);

    proxy.target = applianceB.url;
    await until(() => !local.health().verified);
    expect(local.health()).toMatchObject({ verified: false, failedCheck: 'image-mismatch' });
    const error = await chat(local).catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 502, type: 'attestation_failed', code: 'image-mismatch' });
    expect(applianceB.attestationRequests.length).toBeGreaterThanOrEqual(2);
    expect(applianceB.v1Requests).toEqual([]);
    expect(applianceA.v1Requests).toHaveLength(1);
    expect(stderr).toMatch(/^sealed-inference gateway: NOT forwarding to .*: image-mismatch: image check failed: /);

    // Back to the expected image: the next request verifies a fresh connection and goes through.
    proxy.target = applianceA.url;
    expect((await chat(local)).choices[0].message.content).toBe(ANSWER);
    expect(applianceA.v1Requests).toHaveLength(2);
    expect(stderr).toMatch(/\nsealed-inference gateway: forwarding again: Verified .*: image ami-0123456789abcdef0/);
    expect(applianceB.v1Requests).toEqual([]);
  });

  test('a service that cannot be reached: 502 attestation-unavailable, /health says why', async () => {
    const gone = await appliance();
    const url = gone.url;
    await gone.stop();
    const local = await gateway(url);
    expect(stderr).toMatch(/NOT forwarding to .*: attestation-unavailable: could not check: Could not connect to 127\.0\.0\.1:\d+ over TLS 1\.3/);
    await expect(chat(local)).rejects.toMatchObject({ status: 502, type: 'attestation_failed', code: 'attestation-unavailable' });
    expect(JSON.parse((await request(local, '/health')).body)).toMatchObject({ verified: false, failedCheck: 'attestation-unavailable' });
  });
});
