import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from '../../lib/cli/program';
import { createTestChain, TestChain } from '../attestation/test-attestation';
import { failure, runCaptured } from './capture';
import { attestedAnswer, IMAGE } from './doubles/attested-answer';
import { FakeAppliance } from './doubles/fake-appliance';

let chain: TestChain;
let genuine: FakeAppliance;
let dir: string;
let measurements: string;

beforeAll(async () => {
  chain = await createTestChain();
  genuine = await FakeAppliance.start((nonce, binding) => attestedAnswer(chain, IMAGE, nonce, binding));
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gateway-'));
  measurements = path.join(dir, 'measurements.json');
  fs.writeFileSync(measurements, JSON.stringify(IMAGE));
});

afterAll(async () => {
  await genuine.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const gatewayArgs = (...args: string[]) => ['gateway', genuine.url, '--measurements', measurements, '--any-model', '--timeout', '2', ...args];

describe('usage errors: exit code 2', () => {
  test.each(['0.0.0.0:8080', '192.168.1.10:8080', 'example.com:8080'])('--listen %s is refused: the local leg is plain HTTP', async (address) => {
    const { code, stdout, stderr } = await runCaptured(gatewayArgs('--listen', address));
    expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
    expect(stderr).toMatch(/is not a loopback address: the gateway speaks plain HTTP locally, .*Listen on 127\.0\.0\.1 or \[::1\]/);
    expect(genuine.attestationRequests).toEqual([]);
  });

  test.each([
    [['--listen', '127.0.0.1'], /Expected a loopback address and port such as 127\.0\.0\.1:8080/],
    [['--reverify', '0'], /Expected a positive number of seconds/],
    [['--connections', '0'], /Expected a whole number of connections from 1 to 64/],
  ])('%j is refused', async (args, message) => {
    const { code, stderr } = await runCaptured(gatewayArgs(...args));
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
  });

  test('without expectations', async () => {
    const { code, stderr } = await runCaptured(['gateway', genuine.url]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/gateway: say what to expect with --measurements <file>, --image <ami-id> or --stack-outputs <file>/);
  });
});

test('an address in use: exit code 1, saying to choose another', async () => {
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  try {
    const port = (taken.address() as net.AddressInfo).port;
    const { code, stderr } = await runCaptured(gatewayArgs('--listen', `127.0.0.1:${port}`), { trustedRoots: [chain.root.certificate] });
    expect(code).toBe(1);
    expect(stderr).toMatch(failure(new RegExp(`Could not listen on 127\\.0\\.0\\.1:${port}: the port is in use; choose another with --listen`)));
  } finally {
    await new Promise((resolve) => taken.close(resolve));
  }
});

test('runs until SIGTERM, then exits 0 having closed everything', async () => {
  let stdout = '';
  let stderr = '';
  const exit = runCli(gatewayArgs('--listen', '127.0.0.1:0', '--reverify', '0.5'),
    { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) }, { trustedRoots: [chain.root.certificate] });
  for (let waited = 0; !stdout.includes('\n'); waited += 20) {
    if (waited > 3000) throw new Error(`the gateway did not start: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(stdout).toMatch(new RegExp(`^Verified ${genuine.url}/: image ${IMAGE.imageId}, .*; serving it at http://127\\.0\\.0\\.1:\\d+/v1 .*\n$`));
  const local = /serving it at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(stdout)![1];
  const health = await fetch(`${local}/health`);
  expect(health.status).toBe(200);

  process.emit('SIGTERM');
  expect(await exit).toBe(0);
  expect(stderr).toBe('');
  await expect(fetch(`${local}/health`)).rejects.toThrow();
  await new Promise((resolve) => setTimeout(resolve, 600));
  expect(genuine.openConnections).toBe(0);
  expect(process.listenerCount('SIGTERM')).toBe(0);
});
