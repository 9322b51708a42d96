import * as fs from 'node:fs';
import { Browser, chromium } from 'playwright-core';
import { Gateway, startGateway } from '../../lib/gateway/gateway';
import { readMeasurementsFile } from '../../lib/cli/verify-expectations';
import { createTestChain, TestChain } from '../attestation/test-attestation';
import { attestedAnswer, IMAGE, MODEL, MODEL_MEASUREMENT } from './doubles/attested-answer';
import { FakeAppliance } from './doubles/fake-appliance';

const CHROMIUM = '/usr/bin/chromium';

jest.setTimeout(20_000);

let browser: Browser;
let genuine: FakeAppliance;
let gateway: Gateway;
let chain: TestChain;

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install it with \`apt-get install chromium\``);
  chain = await createTestChain();
  genuine = await FakeAppliance.start((nonce, binding) => attestedAnswer(chain, IMAGE, nonce, binding));
  gateway = await startGateway({
    serviceUrl: new URL(genuine.url),
    expectations: { images: readMeasurementsFile(JSON.stringify(IMAGE), 'expected image'), model: MODEL },
    listen: { host: '127.0.0.1', port: 0 },
    maxAgeSeconds: 60, timeoutSeconds: 2, reverifySeconds: 300, maxConnections: 2,
    trustedRoots: [chain.root.certificate],
    stdout: () => undefined,
    stderr: () => undefined,
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-background-networking'] });
});

afterAll(async () => {
  await browser?.close();
  await gateway?.close();
  await genuine?.stop();
});

test('the page says what was verified and chats through the gateway, under its strict policy', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('request', (request) => {
    if (!request.url().startsWith(`${gateway.url}/`)) problems.push(`request to ${request.url()}`);
  });
  try {
    await page.goto(`${gateway.url}/`);
    const verification = page.locator('#verification');
    await verification.getByText(/^Verified at /).waitFor();
    const spki = genuine.binding.toString().split('=')[1];
    for (const fact of [`${genuine.url}/`, IMAGE.imageId, MODEL_MEASUREMENT, spki, `PCR4 ${IMAGE.pcr4}`]) {
      await expect(verification.textContent()).resolves.toContain(fact);
    }

    await page.fill('#prompt', 'hello from the page');
    await page.click('button[type=submit]');
    await page.locator('#conversation li.assistant').getByText('You said: hello from the page').waitFor();
    expect(genuine.v1Requests.map((r) => r.body)).toEqual([
      { model: 'served', stream: true, messages: [{ role: 'user', content: 'hello from the page' }] },
    ]);
    expect(problems).toEqual([]);
  } finally {
    await context.close();
  }
});

test('in fleet mode, the page lists each instance reached, by its TLS key, with what was verified of it', async () => {
  const fleetGateway = await startGateway({
    serviceUrl: new URL(genuine.url),
    expectations: { images: readMeasurementsFile(JSON.stringify(IMAGE), 'expected image'), model: MODEL },
    listen: { host: '127.0.0.1', port: 0 },
    maxAgeSeconds: 60, timeoutSeconds: 2, reverifySeconds: 300, maxConnections: 2, fleet: true,
    trustedRoots: [chain.root.certificate],
    stdout: () => undefined,
    stderr: () => undefined,
  });
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(error.message));
  try {
    await page.goto(`${fleetGateway.url}/`);
    const verification = page.locator('#verification');
    await verification.getByText(/^Verified fleet /).waitFor();
    const spki = genuine.binding.toString().split('=')[1];
    for (const fact of [`${genuine.url}/`, `Instance with TLS key (SPKI SHA-256) ${spki}`, IMAGE.imageId, MODEL_MEASUREMENT]) {
      await expect(verification.textContent()).resolves.toContain(fact);
    }
    expect(problems).toEqual([]);
  } finally {
    await context.close();
    await fleetGateway.close();
  }
});
