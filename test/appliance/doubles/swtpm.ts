/**
 * A real TPM 2.0 for tests: swtpm (the software TPM QEMU uses) on free loopback ports, with its state in a
 * temporary directory.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { AddressInfo, createServer, Server } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readSha384Pcrs } from '../../../lib/appliance/tpm2-tools';

/** A running software TPM. */
export interface Swtpm {
  /** The `TPM2TOOLS_TCTI` value that reaches it, e.g. `swtpm:host=127.0.0.1,port=40123`. */
  readonly tcti: string;
  /** Stops the TPM and removes its state. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 10_000;
const PORT_ATTEMPTS = 5;

function listenOn(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/**
 * Two consecutive free ports: the TPM's command port and, one above, its control port, where the swtpm TCTI of
 * tpm2-tools expects it. Another process may take them before swtpm binds; `startSwtpm` then tries again.
 */
async function freePortPair(): Promise<number> {
  for (;;) {
    const first = await listenOn(0);
    if (first === undefined) throw new Error('cannot bind a loopback port');
    const port = (first.address() as AddressInfo).port;
    const second = await listenOn(port + 1);
    await new Promise((resolve) => first.close(resolve));
    if (second !== undefined) {
      await new Promise((resolve) => second.close(resolve));
      return port;
    }
  }
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Starts swtpm and resolves once it answers a PCR read; the caller must `stop()` it. */
async function startOnce(stateDirectory: string): Promise<Swtpm | 'port-taken'> {
  const port = await freePortPair();
  const child = spawn('swtpm', [
    'socket', '--tpm2',
    '--tpmstate', `dir=${stateDirectory}`,
    '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`,
    '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
    '--flags', 'not-need-init,startup-clear',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));

  const tcti = `swtpm:host=127.0.0.1,port=${port}`;
  const stop = async () => {
    child.kill('SIGTERM');
    await exited(child);
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const failure = await Promise.race([spawnError, sleep(50).then(() => undefined)]);
    if (failure !== undefined) {
      throw (failure as NodeJS.ErrnoException).code === 'ENOENT'
        ? new Error('swtpm is not installed: run scripts/require-system-tools.sh (Debian package swtpm)')
        : failure;
    }
    if (child.exitCode !== null) {
      if (/address already in use/i.test(stderr)) return 'port-taken';
      throw new Error(`swtpm exited with status ${child.exitCode}: ${stderr.trim()}`);
    }
    try {
      await readSha384Pcrs([0], { env: { ...process.env, TPM2TOOLS_TCTI: tcti } });
      return { tcti, stop };
    } catch (e) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`swtpm did not answer within ${START_TIMEOUT_MS} ms: ${(e as Error).message}`, { cause: e });
      }
    }
  }
}

/** Starts a fresh software TPM 2.0 (PCRs reset, started up) on free loopback ports. */
export async function startSwtpm(): Promise<Swtpm> {
  const stateDirectory = await mkdtemp(path.join(tmpdir(), 'swtpm-'));
  try {
    for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
      const tpm = await startOnce(stateDirectory);
      if (tpm === 'port-taken') continue;
      return {
        tcti: tpm.tcti,
        stop: async () => {
          await tpm.stop();
          await rm(stateDirectory, { recursive: true, force: true });
        },
      };
    }
    throw new Error(`swtpm found its ports taken ${PORT_ATTEMPTS} times`);
  } catch (e) {
    await rm(stateDirectory, { recursive: true, force: true });
    throw e;
  }
}
