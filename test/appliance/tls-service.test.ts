import { createHash, createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { ApplianceConfig } from '../../lib/shared/appliance-config';
import type { ApplianceStatus } from '../../lib/appliance/appliance-status';
import { InferenceService, startInferenceService } from '../../lib/appliance/inference-service';
import { ApplianceEnvironment, RunningAppliance, startAppliance } from '../../lib/appliance/main';
import { OllamaClient } from '../../lib/appliance/ollama-client';
import * as tlsIdentityModule from '../../lib/appliance/tls-identity';
import { extendSha384Pcr, readSha384Pcrs } from '../../lib/appliance/tpm2-tools';
import { spkiSha256 } from '../../lib/attestation/channel-binding';
import { modelEncryptionContext } from '../../lib/sealing/manifest';
import { createTestChain } from '../attestation/test-attestation';
import { FakeKms } from './doubles/fake-kms';
import { FakeS3, startFakeS3 } from './doubles/fake-s3';
import { installNitroTpmAttestDouble } from './doubles/nitro-tpm-attest';
import { storeSealedModel, testApplianceConfig } from './doubles/sealed-model-fixture';
import { StubOllama } from './doubles/stub-ollama';
import { startSwtpm, Swtpm } from './doubles/swtpm';
import { tlsFetch } from './doubles/tls-fetch';

/**
 * The port-3000 service as a TLS endpoint: TLS 1.3 only, no plaintext, and a key that lives in memory only.
 */

const sha384 = (text: string) => createHash('sha384').update(text).digest('hex');

describe('the TLS endpoint', () => {
  let service: InferenceService;
  const port = () => Number(new URL(service.url).port);

  beforeAll(async () => {
    const status: ApplianceStatus = { phase: 'starting', since: new Date().toISOString() };
    service = await startInferenceService(
      {
        status: () => status,
        ollama: new OllamaClient('http://127.0.0.1:11434'),
        attest: () => Promise.reject(new Error('not used')),
        log: () => undefined,
      },
      { host: '127.0.0.1', port: 0, tls: await tlsIdentityModule.createTlsIdentity() },
    );
  });
  afterAll(() => service.close());

  test('a plaintext HTTP request gets no HTTP answer', async () => {
    const received = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      const socket = net.connect(port(), '127.0.0.1', () =>
        socket.write('GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', () => undefined);
      const giveUp = setTimeout(() => socket.destroy(), 2000);
      socket.on('close', () => {
        clearTimeout(giveUp);
        resolve(Buffer.concat(chunks));
      });
    });

    expect(received.toString('latin1')).not.toContain('HTTP/');
  });

  test('TLS 1.2 is refused in the handshake; TLS 1.3 is served', async () => {
    const handshake = (maxVersion: tls.SecureVersion) => new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ port: port(), host: '127.0.0.1', rejectUnauthorized: false, maxVersion }, () => {
        resolve(socket.getProtocol() ?? '');
        socket.destroy();
      });
      socket.once('error', reject);
    });

    await expect(handshake('TLSv1.2')).rejects.toThrow(/protocol version|handshake failure|alert/i);
    await expect(handshake('TLSv1.3')).resolves.toBe('TLSv1.3');
  });
});

describe('the TLS key of a booted appliance', () => {
  let swtpm: Swtpm;
  let s3: FakeS3;
  let kms: FakeKms;
  let ollama: StubOllama;
  let work: string;
  let directories: { state: string; runtime: string; home: string; tools: string };
  let environment: ApplianceEnvironment;
  const running: RunningAppliance[] = [];

  beforeAll(async () => {
    swtpm = await startSwtpm();
    const tpm = { env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti } };
    await extendSha384Pcr(4, sha384('unified kernel image'), tpm);
    await extendSha384Pcr(12, sha384('kernel command line'), tpm);
    const pcrs = await readSha384Pcrs([4, 12], tpm);
    const chain = await createTestChain();
    kms = await FakeKms.start({ trustedRoots: [chain.root.certificate], allowedImages: [{ pcr4: pcrs.get(4)!, pcr12: pcrs.get(12)! }] });
    s3 = await startFakeS3();
    ollama = await StubOllama.start();
    work = await mkdtemp(path.join(tmpdir(), 'tls-key-'));
    directories = {
      state: path.join(work, 'state'),
      runtime: path.join(work, 'runtime'),
      home: path.join(work, 'home'),
      tools: path.join(work, 'tools'),
    };
    for (const directory of Object.values(directories)) await mkdir(directory);
    const attestCommand = await installNitroTpmAttestDouble(chain, directories.tools);
    // Port 0: the service takes a free one.
    const config: ApplianceConfig = { ...testApplianceConfig(), keyArn: kms.keyArn, servicePort: 0 };
    await storeSealedModel(s3, { config, wrap: (dataKey) => kms.wrap(dataKey, modelEncryptionContext(config.modelName)) });
    environment = {
      stateDirectory: directories.state,
      runtimeDirectory: directories.runtime,
      ollamaUrl: ollama.url,
      host: '127.0.0.1',
      defaultPort: 0,
      attestCommand,
      toolEnv: { PATH: process.env.PATH, HOME: directories.home, TPM2TOOLS_TCTI: swtpm.tcti },
      readConfig: async () => config,
      clients: () => ({ s3: s3.client(), kms: kms.client() }),
      log: () => undefined,
    };
  }, 60_000);

  afterAll(async () => {
    for (const appliance of running) await appliance.close();
    await ollama?.stop();
    await s3?.close();
    await kms?.stop();
    await swtpm?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  afterEach(() => jest.restoreAllMocks());

  test('is in no file the appliance writes, is the one served, and is new after a restart', async () => {
    const createTlsIdentity = jest.spyOn(tlsIdentityModule, 'createTlsIdentity');

    const appliance = await startAppliance(environment);
    running.push(appliance);
    await appliance.booted;
    const status = (await (await tlsFetch(`${appliance.service.url}/api/status`)).json()) as ApplianceStatus;
    expect(status).toMatchObject({ phase: 'ready' });
    // Another attestation, whose inputs go to the runtime directory.
    expect((await tlsFetch(`${appliance.service.url}/api/attestation?nonce=${randomBytes(32).toString('hex')}`)).status).toBe(200);

    expect(createTlsIdentity).toHaveBeenCalledTimes(1);
    const identity = await (createTlsIdentity.mock.results[0].value as Promise<tlsIdentityModule.TlsIdentity>);
    const files = await filesUnder(Object.values(directories).filter((directory) => directory !== directories.tools));
    expect(files.map((file) => path.relative(work, file))).toContain(path.join('state', 'pcr15-event-log.json'));
    for (const file of files) {
      const contents = await readFile(file);
      for (const [form, bytes] of Object.entries(privateKeyForms(identity.key))) {
        expect([file, form, contents.includes(bytes)]).toEqual([file, form, false]);
      }
    }

    const served = await peerCertificate(appliance.service.port);
    expect(spkiSha256(served)).toBe(identity.spkiSha256);

    await running.splice(0).pop()!.close();
    const restarted = await startAppliance({ ...environment, readConfig: () => Promise.reject(new Error('not this time')) });
    running.push(restarted);
    const next = await (createTlsIdentity.mock.results[1].value as Promise<tlsIdentityModule.TlsIdentity>);
    expect(next.key).not.toBe(identity.key);
    expect(next.spkiSha256).not.toBe(identity.spkiSha256);
    expect(spkiSha256(await peerCertificate(restarted.service.port))).toBe(next.spkiSha256);
  }, 60_000);
});

/** The private key (PKCS#8 PEM) in every form a file could hold it. */
function privateKeyForms(pem: string): Record<string, Buffer> {
  const key = createPrivateKey(pem);
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const d = key.export({ format: 'jwk' }).d!;
  const scalar = Buffer.from(d, 'base64url');
  return {
    'PKCS#8 PEM': Buffer.from(pem),
    'PKCS#8 DER in base64': Buffer.from(pkcs8.toString('base64')),
    'PKCS#8 DER': pkcs8,
    'SEC1 DER': key.export({ type: 'sec1', format: 'der' }),
    'scalar (JWK d, base64url)': Buffer.from(d),
    'scalar, raw': scalar,
    'scalar, hex': Buffer.from(scalar.toString('hex')),
    'scalar, upper-case hex': Buffer.from(scalar.toString('hex').toUpperCase()),
  };
}

/** Every regular file under `directories`, at any depth. */
async function filesUnder(directories: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const directory of directories) {
    for (const entry of await readdir(directory, { withFileTypes: true, recursive: true })) {
      if (entry.isFile()) files.push(path.join(entry.parentPath ?? entry.path, entry.name));
    }
  }
  return files;
}

function peerCertificate(port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()!);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}
