import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import OpenAI from 'openai';
import type { VerifyExpectations } from '../../lib/cli/verify-connection';
import { readMeasurementsFile } from '../../lib/cli/verify-expectations';
import { verifyEachConnection } from '../../lib/cli/verify-all';
import type { FleetHealth, RefusedInstance } from '../../lib/gateway/fleet-health';
import { Gateway, GatewayOptions, startGateway } from '../../lib/gateway/gateway';
import { createTestChain, TestChain } from '../attestation/test-attestation';
import { runCaptured } from './capture';
import { attestedAnswer, IMAGE, MODEL, MODEL_MEASUREMENT, OTHER_IMAGE, TestImage } from './doubles/attested-answer';
import { answerTo, FakeAppliance, ReceivedRequest } from './doubles/fake-appliance';
import { HaproxyFleet, HEALTH_CHECK_INTERVAL_MS } from './doubles/haproxy-fleet';

// A fleet of appliance doubles behind a real HAProxy in TCP mode, as SealedInferenceFleet puts instances behind a
// Network Load Balancer: TLS ends on each appliance, and each new connection may land on another one.

let chain: TestChain;
let expectations: VerifyExpectations;
let directory: string;
/** Everything each test starts, stopped after it. */
let stops: Array<() => Promise<void>>;
let stderr: string;

const spkiOf = (fake: FakeAppliance) => fake.binding.toString().split('=')[1];

async function appliances(...images: TestImage[]): Promise<FakeAppliance[]> {
  return Promise.all(images.map(async (image) => {
    const fake = await FakeAppliance.start((nonce, binding) => attestedAnswer(chain, image, nonce, binding));
    stops.push(() => fake.stop());
    return fake;
  }));
}

async function loadBalancer(fakes: FakeAppliance[]): Promise<HaproxyFleet> {
  const haproxy = await HaproxyFleet.start(fakes.map((fake) => fake.url));
  stops.push(() => haproxy.stop());
  return haproxy;
}

async function fleetGateway(serviceUrl: string, options: Partial<GatewayOptions> = {}): Promise<Gateway> {
  const started = await startGateway({
    serviceUrl: new URL(serviceUrl),
    expectations,
    listen: { host: '127.0.0.1', port: 0 },
    maxAgeSeconds: 60,
    timeoutSeconds: 2,
    reverifySeconds: 300,
    maxConnections: 6,
    fleet: true,
    trustedRoots: [chain.root.certificate],
    stdout: () => undefined,
    stderr: (text) => (stderr += text),
    ...options,
  });
  stops.push(() => started.close());
  return started;
}

/** A streamed chat of `prompt` through the gateway; resolves with the text streamed. */
async function streamedChat(local: Gateway, prompt: string): Promise<string> {
  const openai = new OpenAI({ baseURL: `${local.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 10_000 });
  const stream = await openai.chat.completions.create({ model: 'any', stream: true, messages: [{ role: 'user', content: prompt }] });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
  return text;
}

const promptOf = (request: ReceivedRequest) => (request.body as { messages: Array<{ content: string }> }).messages[0].content;

/** True when every /v1 request the fake received came over a connection whose attestation it had answered first. */
function everyRequestOnAVerifiedConnection(fake: FakeAppliance): boolean {
  return fake.received.every((request, index) => !request.url.pathname.startsWith('/v1/') ||
    fake.received.slice(0, index).some((earlier) => earlier.url.pathname === '/api/attestation' && earlier.connection === request.connection));
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits until HAProxy's health check has seen `status` from `fake`, and has had time to act on it. */
async function untilHealthCheckSaw(fake: FakeAppliance, status: number): Promise<void> {
  const seen = fake.readinessAnswers.length;
  await until(() => fake.readinessAnswers.slice(seen).includes(status));
  await new Promise((resolve) => setTimeout(resolve, HEALTH_CHECK_INTERVAL_MS / 4));
}

beforeAll(async () => {
  chain = await createTestChain();
  expectations = { images: readMeasurementsFile(JSON.stringify(IMAGE), 'expected image'), model: MODEL };
});

beforeEach(() => {
  stops = [];
  stderr = '';
  directory = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-test-'));
});

afterEach(async () => {
  for (const stop of stops.reverse()) await stop();
  fs.rmSync(directory, { recursive: true, force: true });
});

describe('the gateway in fleet mode', () => {
  test('verifies each connection it makes, whichever instance it lands on, before a request goes over it', async () => {
    const fakes = await appliances(IMAGE, IMAGE, IMAGE);
    const haproxy = await loadBalancer(fakes);
    const local = await fleetGateway(haproxy.url);

    const prompts = Array.from({ length: 6 }, (_, index) => `prompt number ${index}`);
    // Held at the second chunk until all six are in flight: six connections at once, two on each instance.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    for (const fake of fakes) fake.pace = (chunk) => (chunk === 1 ? held : Promise.resolve());
    const answers = Promise.all(prompts.map((prompt) => streamedChat(local, prompt)));
    await until(() => fakes.reduce((sum, fake) => sum + fake.v1Requests.length, 0) === prompts.length);
    release();

    expect(await answers).toEqual(prompts.map((prompt) => answerTo([{ role: 'user', content: prompt }])));
    for (const fake of fakes) {
      expect(fake.attestationRequests.length).toBeGreaterThan(0);
      expect(fake.v1Requests.length).toBeGreaterThan(0);
      expect(everyRequestOnAVerifiedConnection(fake)).toBe(true);
    }
    const health = local.health() as FleetHealth;
    expect(health).toMatchObject({ verified: true, fleet: true, service: `${haproxy.url}/` });
    expect(Object.keys(health.instances).sort()).toEqual(fakes.map(spkiOf).sort());
    for (const fake of fakes) {
      expect(health.instances[spkiOf(fake)]).toEqual({
        verified: true, moduleId: expect.any(String), image: IMAGE.imageId, servedModels: [MODEL_MEASUREMENT],
        verifiedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      });
    }
  });

  test('an instance booted from another image is refused while the others serve: it receives no request', async () => {
    const fakes = await appliances(IMAGE, IMAGE, OTHER_IMAGE);
    const [, , impostor] = fakes;
    const haproxy = await loadBalancer(fakes);
    const local = await fleetGateway(haproxy.url, { maxConnections: 3 });

    // Batches of three at once need three connections, and round robin sends one of each batch's new ones to it.
    const answers: string[] = [];
    for (let batch = 0; batch < 3; batch++) {
      const prompts = Array.from({ length: 3 }, (_, index) => `batch ${batch} prompt ${index}`);
      answers.push(...await Promise.all(prompts.map((prompt) => streamedChat(local, prompt))));
    }

    expect(answers).toHaveLength(9);
    expect(answers.every((answer) => answer.startsWith('You said: batch '))).toBe(true);
    expect(impostor.attestationRequests.length).toBeGreaterThan(0);
    expect(impostor.v1Requests).toEqual([]);
    const answered = await fetch(`${local.url}/health`);
    expect(answered.status).toBe(200);
    const health = await answered.json() as FleetHealth;
    expect(health.verified).toBe(true);
    expect(health.instances[spkiOf(impostor)]).toEqual({
      verified: false, moduleId: expect.any(String), failedCheck: 'image-mismatch',
      reason: expect.stringContaining('image check failed'), refusedAt: expect.stringMatching(/^\d{4}-/),
    });
    expect((health.instances[spkiOf(impostor)] as RefusedInstance).reason).toContain(OTHER_IMAGE.pcr4);
    expect(health.instances[spkiOf(fakes[0])]?.verified).toBe(true);
    // Told once, however many connections landed on it.
    expect(stderr.match(/REFUSED instance/g)).toHaveLength(1);
    expect(stderr).toContain(`REFUSED instance ${spkiOf(impostor)}`);
  });

  test('an instance killed mid-stream fails only the requests in flight on it: the other streams complete', async () => {
    const fakes = await appliances(IMAGE, IMAGE, IMAGE);
    const [victim] = fakes;
    const haproxy = await loadBalancer(fakes);
    const local = await fleetGateway(haproxy.url);

    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    for (const fake of fakes) fake.pace = (chunk) => (chunk === 1 ? held : Promise.resolve());
    const prompts = Array.from({ length: 6 }, (_, index) => `stream number ${index}`);
    const outcomes = Promise.allSettled(prompts.map((prompt) => streamedChat(local, prompt)));
    await until(() => fakes.reduce((sum, fake) => sum + fake.v1Requests.length, 0) === prompts.length);
    const onVictim = new Set(victim.v1Requests.map(promptOf));
    expect(onVictim.size).toBeGreaterThan(0);

    await victim.stop();
    release();

    const settled = await outcomes;
    prompts.forEach((prompt, index) => {
      if (onVictim.has(prompt)) expect(settled[index].status).toBe('rejected');
      else expect(settled[index]).toEqual({ status: 'fulfilled', value: answerTo([{ role: 'user', content: prompt }]) });
    });
    // The service goes on: new requests go to the instances still there.
    await untilHealthCheckSaw(fakes[1], 200);
    expect(await streamedChat(local, 'after the loss')).toBe('You said: after the loss');
  });

  test('a fleet of which no instance verifies: 502 attestation_failed after the attempts, and /health 503', async () => {
    const fakes = await appliances(OTHER_IMAGE, OTHER_IMAGE);
    const haproxy = await loadBalancer(fakes);
    const local = await fleetGateway(haproxy.url, { fleetAttempts: 3 });
    const before = fakes.reduce((sum, fake) => sum + fake.attestationRequests.length, 0);

    await expect(streamedChat(local, 'anyone?')).rejects.toMatchObject({ status: 502, type: 'attestation_failed', code: 'image-mismatch' });
    expect(fakes.reduce((sum, fake) => sum + fake.attestationRequests.length, 0) - before).toBe(3);
    expect(fakes.every((fake) => fake.v1Requests.length === 0)).toBe(true);
    const answered = await fetch(`${local.url}/health`);
    expect(answered.status).toBe(503);
    const health = await answered.json() as FleetHealth;
    expect(health).toMatchObject({ verified: false, failedCheck: 'image-mismatch' });
    expect(Object.values(health.instances).map((instance) => instance.verified)).toEqual([false, false]);
  });
});

describe('readiness: the load balancer sends connections only to instances that answer /api/ready 200', () => {
  test('an instance answering 503 (unsealing, failed) is taken out of the pool, and back in once it answers 200', async () => {
    const [steady, flapping] = await appliances(IMAGE, IMAGE);
    const haproxy = await loadBalancer([steady, flapping]);
    const check = () => verifyEachConnection(new URL(haproxy.url), expectations, 6, { maxAge: 60, timeout: 2 },
      { trustedRoots: [chain.root.certificate] });

    flapping.ready = false;
    await untilHealthCheckSaw(flapping, 503);
    const requestsBefore = flapping.clientRequests.length;
    const whileUnready = await check();
    expect(whileUnready.instances.map((instance) => instance.tlsSpkiSha256)).toEqual([spkiOf(steady)]);
    expect(whileUnready.instances[0]).toMatchObject({ verdict: 'verified', connections: 6 });
    expect(flapping.clientRequests.length).toBe(requestsBefore);

    flapping.ready = true;
    await untilHealthCheckSaw(flapping, 200);
    const whenReady = await check();
    expect(whenReady.verified).toBe(true);
    expect(whenReady.instances.map((instance) => instance.tlsSpkiSha256).sort()).toEqual([spkiOf(steady), spkiOf(flapping)].sort());
    expect(flapping.clientRequests.length).toBeGreaterThan(requestsBefore);
  });
});

describe('verify --all through the load balancer', () => {
  const measurements = () => {
    const file = path.join(directory, 'image.json');
    fs.writeFileSync(file, JSON.stringify(IMAGE));
    return file;
  };

  test('every instance verified: one line an instance reached, exit 0', async () => {
    const fakes = await appliances(IMAGE, IMAGE, IMAGE);
    const haproxy = await loadBalancer(fakes);

    const run = await runCaptured(['verify', haproxy.url, '--measurements', measurements(), '--any-model', '--all', '--attempts', '6'],
      { trustedRoots: [chain.root.certificate] });

    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    for (const fake of fakes) {
      expect(run.stdout).toMatch(new RegExp(`^  ok    instance ${spkiOf(fake)} \\(module [^)]+\\): image ${IMAGE.imageId}, ` +
        `model ${MODEL_MEASUREMENT}; 2 connections$`, 'm'));
    }
    expect(run.stdout).toMatch(/\nVerified: all 3 instances reached\.\n$/);
  });

  test('one instance runs another image: it is named with the failed check, exit 3; --json gives each instance', async () => {
    const fakes = await appliances(IMAGE, OTHER_IMAGE, IMAGE);
    const haproxy = await loadBalancer(fakes);
    const args = ['verify', haproxy.url, '--measurements', measurements(), '--any-model', '--all', '--attempts', '6'];

    const run = await runCaptured(args, { trustedRoots: [chain.root.certificate] });

    expect(run.code).toBe(3);
    expect(run.stdout).toMatch(new RegExp(`^  FAIL  instance ${spkiOf(fakes[1])} \\(module [^)]+\\): image: expected .*; found .*${OTHER_IMAGE.pcr4}`, 'm'));
    expect(run.stdout.match(/^ {2}ok {4}instance /gm)).toHaveLength(2);
    expect(run.stdout).toMatch(/\nNOT TRUSTWORTHY: 1 of 3 instances reached failed a check, 2 verified\.\n$/);
    expect(run.stderr).toMatch(new RegExp(`^sealed-inference: not trustworthy: instance ${spkiOf(fakes[1])}: image: expected`, 'm'));

    const json = await runCaptured([...args, '--json'], { trustedRoots: [chain.root.certificate] });
    expect(json.code).toBe(3);
    const report = JSON.parse(json.stdout);
    expect(report).toMatchObject({ verified: false, service: `${haproxy.url}/`, attempts: 6, unreachable: [] });
    expect(report.instances).toHaveLength(3);
    const impostor = report.instances.find((instance: { tlsSpkiSha256: string }) => instance.tlsSpkiSha256 === spkiOf(fakes[1]));
    expect(impostor).toMatchObject({ verdict: 'not-trustworthy', connections: 2, report: { verified: false, tlsSpkiSha256: spkiOf(fakes[1]) } });
  });

  test('nothing answers: exit 1, could not check', async () => {
    const [fake] = await appliances(IMAGE);
    const haproxy = await loadBalancer([fake]);
    await fake.stop();

    const run = await runCaptured(['verify', haproxy.url, '--measurements', measurements(), '--any-model', '--all', '--attempts', '2'],
      { trustedRoots: [chain.root.certificate] });

    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/\nCould not check: none of 2 connections reached an instance\.\n$/);
    expect(run.stderr).toMatch(/^sealed-inference: Could not check https:\/\/127\.0\.0\.1:\d+\/: none of 2 connections reached an instance/m);
  });

  test('--attempts without --all is a usage error', async () => {
    const run = await runCaptured(['verify', 'https://127.0.0.1:1', '--measurements', measurements(), '--any-model', '--attempts', '3']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--attempts only applies with --all');
  });
});

describe('gateway --fleet options', () => {
  test('--attempts without --fleet is a usage error', async () => {
    const run = await runCaptured(['gateway', 'https://127.0.0.1:1', '--measurements', path.join(directory, 'image.json'), '--any-model', '--attempts', '3']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--attempts only applies with --fleet');
  });
});
