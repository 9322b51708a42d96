import { ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ApplianceStatus } from '../../../lib/appliance/appliance-status';
import { tlsFetch } from './tls-fetch';

/** The appliance bundle the image installs, as built by `npm run build`. */
export const APPLIANCE_BUNDLE = path.join(__dirname, '..', '..', '..', 'assets', 'appliance', 'appliance.js');

/** A free TCP port on the loopback. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The appliance bundle running as a process, with the directories systemd would give it. */
export interface ApplianceProcess {
  readonly url: string;
  readonly stateDirectory: string;
  readonly runtimeDirectory: string;
  /** Everything it wrote to stdout and stderr so far (its journal). */
  output(): string;
  status(): Promise<ApplianceStatus>;
  /** Polls the status until `done` holds, or fails after `timeoutMs` with the last status and the output. */
  waitFor(done: (status: ApplianceStatus) => boolean, timeoutMs?: number): Promise<ApplianceStatus>;
  /** Kills the process as a crash would (SIGKILL), keeping its directories. */
  crash(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the bundle with `env` added to a minimal environment (no AWS settings of the machine running the tests),
 * after `prepareState` has put into its state directory what an earlier run would have left there.
 */
export async function startApplianceProcess(
  port: number,
  env: NodeJS.ProcessEnv,
  prepareState: (stateDirectory: string) => Promise<void> = async () => undefined,
): Promise<ApplianceProcess> {
  const stateDirectory = await mkdtemp(path.join(tmpdir(), 'appliance-state-'));
  const runtimeDirectory = await mkdtemp(path.join(tmpdir(), 'appliance-runtime-'));
  await prepareState(stateDirectory);
  const child: ChildProcess = spawn(process.execPath, [APPLIANCE_BUNDLE], {
    env: {
      PATH: process.env.PATH,
      HOME: stateDirectory,
      STATE_DIRECTORY: stateDirectory,
      RUNTIME_DIRECTORY: runtimeDirectory,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `https://127.0.0.1:${port}`;
  const status = async () => (await (await tlsFetch(`${url}/api/status`)).json()) as ApplianceStatus;
  return {
    url,
    stateDirectory,
    runtimeDirectory,
    output: () => output,
    status,
    async waitFor(done, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let last: ApplianceStatus | undefined;
      while (Date.now() < deadline) {
        if (child.exitCode !== null) throw new Error(`the appliance exited (${child.exitCode}):\n${output}`);
        last = await status().catch(() => undefined);
        if (last && done(last)) return last;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error(`the appliance did not get there in ${timeoutMs} ms; last status ${JSON.stringify(last)}:\n${output}`);
    },
    async crash() {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      await rm(stateDirectory, { recursive: true, force: true });
      await rm(runtimeDirectory, { recursive: true, force: true });
    },
  };
}

/** Where an instance's neighbours are, as the appliance finds them: its TPM tools, TPM, Ollama, IMDS, S3 and KMS. */
export interface ApplianceNeighbours {
  /** The directory holding `nitro-tpm-attest` (the double). */
  readonly tpmTools: string;
  readonly tpmTcti: string;
  readonly ollamaUrl: string;
  readonly imdsEndpoint: string;
  readonly s3Endpoint: string;
  readonly kmsEndpoint: string;
}

/** The appliance's environment on an instance with `neighbours`, with the instance role's (test) credentials. */
export function applianceEnvironment(neighbours: ApplianceNeighbours): NodeJS.ProcessEnv {
  return {
    PATH: `${neighbours.tpmTools}:${process.env.PATH}`,
    TPM2TOOLS_TCTI: neighbours.tpmTcti,
    OLLAMA_HOST: neighbours.ollamaUrl,
    AWS_EC2_METADATA_SERVICE_ENDPOINT: neighbours.imdsEndpoint,
    AWS_ENDPOINT_URL_S3: neighbours.s3Endpoint,
    AWS_ENDPOINT_URL_KMS: neighbours.kmsEndpoint,
    AWS_ACCESS_KEY_ID: 'AKIDINSTANCEROLE',
    AWS_SECRET_ACCESS_KEY: 'instance-role-secret',
  };
}
