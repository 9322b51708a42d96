import * as fs from 'fs';
import * as path from 'path';
import { Browser, BrowserContext, chromium, Page } from 'playwright-core';
import type { ApplianceStatus } from '../../lib/appliance/appliance-status';
import { InferenceService, startInferenceService } from '../../lib/appliance/inference-service';
import { OllamaClient } from '../../lib/appliance/ollama-client';
import { createTlsIdentity } from '../../lib/appliance/tls-identity';
import { loadTestModel, StubOllama } from './doubles/stub-ollama';

/** Screenshots of each state, for a person to look at; not compared. */
const ARTIFACTS = path.join(__dirname, '../../test-artifacts');
const CHROMIUM = '/usr/bin/chromium';
const SERVED = 'llama-sealed';
const MODEL = { name: SERVED, sha256: 'a'.repeat(64), measurement: 'b4'.repeat(48) };
const GiB = 1024 ** 3;

jest.setTimeout(20_000);

let browser: Browser;
let stub: StubOllama;
let service: InferenceService;
let status: ApplianceStatus;
let context: BrowserContext;
let page: Page;
/** Console errors (CSP violations among them), page errors and requests to other origins seen by the page. */
let problems: string[];

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install it with \`apt-get install chromium\``);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking'],
  });
  stub = await StubOllama.start();
  await loadTestModel(stub, SERVED);
  service = await startInferenceService(
    {
      status: () => status,
      ollama: new OllamaClient(stub.url),
      attest: () => Promise.reject(new Error('not used by the page')),
      log: () => undefined,
    },
    { host: '127.0.0.1', port: 0, tls: await createTlsIdentity() },
  );
});

afterAll(async () => {
  await browser?.close();
  await service?.close();
  await stub?.stop();
});

beforeEach(async () => {
  problems = [];
  context = await browser.newContext({ viewport: { width: 900, height: 700 }, ignoreHTTPSErrors: true });
  page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('request', (request) => {
    if (!request.url().startsWith(`${service.url}/`)) problems.push(`request to ${request.url()}`);
  });
});

afterEach(async () => {
  await context.close();
});


test('while loading, the page shows the phase and its progress, and follows the pipeline', async () => {
  status = {
    phase: 'unsealing',
    progress: { bytes: 1.5 * GiB, total: 4 * GiB },
    model: MODEL,
    since: new Date().toISOString(),
  };

  await page.goto(service.url);

  await expectText('#phase', 'Unsealing the model…');
  await expectText('#progress-text', '1.5 GiB of 4.0 GiB (37%)');
  const bar = page.locator('#progress');
  expect(Number(await bar.getAttribute('value')) / Number(await bar.getAttribute('max'))).toBe(0.375);
  expect(await page.locator('#chat').isHidden()).toBe(true);
  await expectText('#model-name', SERVED);
  await expectText('#model-sha256', MODEL.sha256);
  await expectText('#model-measurement', MODEL.measurement);
  await expectText('#verify-command', `sealed-inference verify ${service.url}`);
  await page.screenshot({ path: path.join(ARTIFACTS, 'chat-ui-loading.png'), fullPage: true });

  status = { phase: 'loading', model: MODEL, since: new Date().toISOString() };

  await expectText('#phase', 'Loading the model into the inference server…');
  expect(await page.locator('#progress').isHidden()).toBe(true);
  expect(problems).toEqual([]);
});

test('before the model is uploaded, the page says what the appliance waits for', async () => {
  const waitingFor = 's3://sealed-models/models/llama.manifest.json: the model is not uploaded yet';
  status = { phase: 'waiting', waitingFor, since: new Date().toISOString() };
  await page.goto(service.url);
  await expectText('#phase', `Waiting for the sealed model: ${waitingFor}`);
  expect(await page.locator('#chat').isHidden()).toBe(true);
  expect(await page.locator('#failure').isHidden()).toBe(true);
  expect(problems).toEqual([]);
});

test('once ready, a question gets an answer streamed into the conversation', async () => {
  status = { phase: 'ready', model: MODEL, since: new Date().toISOString() };
  stub.chunkDelayMs = 150;
  const question = 'why is the sky blue?';
  const answer = StubOllama.answerTo(question);

  await page.goto(service.url);
  await page.locator('#chat').waitFor({ state: 'visible' });
  await expectText('#phase', 'Ready');
  await page.fill('#prompt', question);
  await page.press('#prompt', 'Enter');

  const reply = page.locator('.message.assistant .content');
  await expectText('.message.user .content', question);
  // Part of the answer is on screen while the rest is still on its way.
  const partial = await poll(async () => {
    const text = (await page.locator('.message.assistant.streaming .content').textContent()) ?? '';
    return text.length > 0 && text.length < answer.length ? text : undefined;
  });
  expect(answer.startsWith(partial)).toBe(true);
  await expectText('.message.assistant .content', answer);
  await page.locator('.message.assistant.streaming').waitFor({ state: 'detached' });
  expect(await reply.count()).toBe(1);
  expect(await page.locator('#send').isEnabled()).toBe(true);
  expect(stub.calls.filter((call) => call.path === '/v1/chat/completions').at(-1)?.body).toEqual({
    model: SERVED,
    messages: [{ role: 'user', content: question }],
    stream: true,
  });
  await page.screenshot({ path: path.join(ARTIFACTS, 'chat-ui-chat.png'), fullPage: true });
  expect(problems).toEqual([]);
});

test('a conversation longer than a request may be goes on, without its oldest turns', async () => {
  status = { phase: 'ready', model: MODEL, since: new Date().toISOString() };
  // Each question and its echoed answer take 2 × 20 KiB: the second question would make a request of 80 KiB.
  const questions = ['first', 'second'].map((word) => `${word} ${'x'.repeat(20 * 1024)}`);
  await page.goto(service.url);
  await page.locator('#chat').waitFor({ state: 'visible' });
  for (const [i, question] of questions.entries()) {
    await page.fill('#prompt', question);
    await page.press('#prompt', 'Enter');
    await poll(async () => ((await page.locator('.message.assistant .content').count()) === i + 1 &&
      (await page.locator('.message.assistant.streaming').count()) === 0) || undefined);
  }
  expect(await page.locator('#chat-error').isHidden()).toBe(true);
  const sent = stub.calls.filter((call) => call.path === '/v1/chat/completions').at(-1)?.body as { messages: Array<{ content: string }> };
  expect(sent.messages.map((message) => message.content.slice(0, 6))).toEqual(['second']);
  expect(problems).toEqual([]);
});

test("a refused chat shows the appliance's reason, and the conversation goes on", async () => {
  status = { phase: 'ready', model: MODEL, since: new Date().toISOString() };
  stub.fail('chat', { status: 503, error: 'server busy, please try again.  maximum pending requests exceeded' });
  await page.goto(service.url);
  await page.locator('#chat').waitFor({ state: 'visible' });

  await page.fill('#prompt', 'are you there?');
  await page.press('#prompt', 'Enter');

  await expectText('#chat-error', 'No answer: The inference server is busy; retry in a moment');
  expect(await page.locator('.message.assistant').count()).toBe(0);
  stub.succeed('chat');
  await page.fill('#prompt', 'now?');
  await page.press('#prompt', 'Enter');
  await expectText('.message.assistant .content', StubOllama.answerTo('now?'));
  expect(await page.locator('#chat-error').isHidden()).toBe(true);
  // The refused question is not sent again.
  expect((stub.calls.at(-1)?.body as { messages: unknown[] }).messages).toEqual([{ role: 'user', content: 'now?' }]);
  // The browser logs the 503 itself; nothing else went wrong.
  expect(problems.filter((problem) => !problem.includes('503'))).toEqual([]);
});

test('a failed attestation shows the phase that failed and why, and no chat', async () => {
  const reason = 'KMS refused Decrypt: the attestation document does not satisfy the key policy (PCR4 differs)';
  status = { phase: 'failed', failedPhase: 'attesting', reason, since: new Date().toISOString() };

  await page.goto(service.url);

  await expectText('#phase', 'Failed');
  await expectText(
    '#failure',
    `Failed while attesting this instance and asking KMS for the model key (attesting): ${reason}`,
  );
  expect(await page.locator('#chat').isHidden()).toBe(true);
  expect(await page.locator('#progress').isHidden()).toBe(true);
  await expectText('#model-name', 'not known yet');
  await page.screenshot({ path: path.join(ARTIFACTS, 'chat-ui-failed.png'), fullPage: true });
  expect(problems).toEqual([]);
});

/** Waits until the element's text is `expected` (the page polls, so it may take a moment). */
async function expectText(selector: string, expected: string): Promise<void> {
  const locator = page.locator(selector);
  let shown: string | null = null;
  try {
    await poll(async () => ((shown = await locator.textContent()) === expected ? true : undefined));
  } catch {
    throw new Error(`${selector} shows ${JSON.stringify(shown)}, expected ${JSON.stringify(expected)}`);
  }
}

/** Calls `probe` every 20 ms until it returns a value, for up to five seconds. */
async function poll<T>(probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
