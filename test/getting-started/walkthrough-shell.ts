import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { IMAGE_BUILD_TOOLS, installImageBuildTools } from '../image-recipes/doubles/image-build-tools';

/**
 * The shell a reader of a walkthrough types into, with AWS replaced: a clone of this repository (its entries linked
 * into a fresh directory), and on PATH the real jq, sha256sum and bash, the image build's stand-ins, and these:
 * - `npx cdk <command>`: refuses a flag the real CDK CLI does not list for the command; `deploy` synthesizes with the
 *   real CLI and logs its arguments to `WALK_DEPLOY_LOG` for the test to deploy; other commands are logged only;
 * - `npx sealed-inference`: the built CLI, trusting `WALK_TRUSTED_ROOT` (the test's attestation root) instead of
 *   the AWS Nitro root; every other `npx <tool>` runs the repository's own;
 * - `npm ci`: the test runs after `npm ci`; it checks that the library and the appliance bundle were built;
 * - `aws s3 cp s3://…`: a GET from the S3 double at `WALK_S3_ENDPOINT`; other `aws` calls go to the build stand-in;
 * - `curl`: the build stand-in for the Ollama release download, the real curl otherwise; `sudo`: runs its command.
 */

export const ROOT = path.join(__dirname, '..', '..');

/** What a command wrote, and its exit code. */
export interface ShellRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const node = `#!${process.execPath}`;

const NPX = `${node}
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const repo = process.env.WALK_REPO;
const [tool, ...args] = process.argv.slice(2);
const run = (program, programArgs, options = {}) => {
  const result = spawnSync(program, programArgs, { stdio: 'inherit', ...options });
  process.exit(result.status ?? 1);
};
if (tool === 'sealed-inference') {
  const { X509Certificate } = require('crypto');
  const { runCli } = require(path.join(repo, 'dist/lib/cli/program.js'));
  const trustedRoots = [new X509Certificate(fs.readFileSync(process.env.WALK_TRUSTED_ROOT))];
  runCli(args, undefined, { trustedRoots }).then((code) => { process.exitCode = code; });
} else if (tool === 'cdk') {
  const cdk = path.join(repo, 'node_modules/.bin/cdk');
  const [command] = args;
  const help = spawnSync(cdk, [command, '--help'], { encoding: 'utf8' });
  const listed = help.stdout + help.stderr;
  for (const flag of args.filter((arg) => arg.startsWith('-')).map((arg) => arg.split('=')[0])) {
    if (!new RegExp('(^|[\\\\s,])' + flag + '(?=[\\\\s,]|$)', 'm').test(listed)) {
      console.error('npx cdk ' + command + ': the CDK CLI has no ' + flag);
      process.exit(2);
    }
  }
  fs.appendFileSync(process.env.WALK_DEPLOY_LOG, JSON.stringify({ command, args: args.slice(1), cwd: process.cwd() }) + '\\n');
  if (command === 'deploy') {
    const context = args.flatMap((arg, i) => (arg === '-c' || arg === '--context' ? ['-c', args[i + 1]] : []));
    run(cdk, ['synth', '--quiet', ...context]);
  }
} else {
  run(path.join(repo, 'node_modules/.bin', tool), args);
}
`;

const NPM = `${node}
const fs = require('fs');
const path = require('path');
const args = process.argv.slice(2);
const built = ['dist/lib/index.js', 'dist/lib/cli/program.js', 'assets/appliance/appliance.js'];
const missing = built.filter((file) => !fs.existsSync(path.join(process.env.WALK_REPO, file)));
if (args.join(' ') !== 'ci' || missing.length > 0) {
  console.error('npm ' + args.join(' ') + ': expected npm ci, after which ' + built.join(', ') + ' exist; missing: ' + missing.join(', '));
  process.exit(1);
}
`;

const AWS = `${node}
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const args = process.argv.slice(2);
if (args[0] === 's3' && args[1] === 'cp') {
  const match = /^s3:\\/\\/([^/]+)\\/(.+)$/.exec(args[2]);
  if (!match) { console.error('aws s3 cp: not an S3 URI: ' + args[2]); process.exit(1); }
  fetch(process.env.WALK_S3_ENDPOINT + '/' + match[1] + '/' + match[2]).then(async (response) => {
    if (!response.ok) { console.error('fatal error: An error occurred (' + response.status + ') when calling the GetObject operation'); process.exit(1); }
    const target = fs.existsSync(args[3]) && fs.statSync(args[3]).isDirectory() ? path.join(args[3], path.basename(match[2])) : args[3];
    fs.writeFileSync(target, Buffer.from(await response.arrayBuffer()));
    console.log('download: ' + args[2] + ' to ' + target);
  });
} else {
  process.exit(spawnSync(path.join(process.env.WALK_STAND_INS, 'aws'), args, { stdio: 'inherit' }).status ?? 1);
}
`;

const CURL = `${node}
const { spawnSync } = require('child_process');
const path = require('path');
const args = process.argv.slice(2);
const release = args.some((arg) => arg.startsWith('https://github.com/ollama/ollama/releases/'));
const program = release ? path.join(process.env.WALK_STAND_INS, 'curl') : '/usr/bin/curl';
process.exit(spawnSync(program, args, { stdio: 'inherit' }).status ?? 1);
`;

const SUDO = '#!/bin/bash\nexec "$@"\n';

/** A clone of this repository (its entries linked) and the shims, in `work`; returns the PATH to run with. */
export function prepareWalkthroughShell(work: string): string {
  const clone = path.join(work, 'clone');
  fs.mkdirSync(clone);
  for (const entry of fs.readdirSync(ROOT)) {
    if (!entry.startsWith('.') && entry !== 'cdk.out') fs.symlinkSync(path.join(ROOT, entry), path.join(clone, entry));
  }
  const shims = path.join(work, 'shims');
  const standIns = path.join(work, 'stand-ins');
  fs.mkdirSync(shims);
  fs.mkdirSync(standIns);
  installImageBuildTools(standIns);
  for (const [name, script] of Object.entries({ npx: NPX, npm: NPM, aws: AWS, curl: CURL, sudo: SUDO })) {
    fs.writeFileSync(path.join(shims, name), script, { mode: 0o755 });
  }
  const buildTools = IMAGE_BUILD_TOOLS.filter((tool) => !['aws', 'curl'].includes(tool));
  for (const tool of buildTools) fs.symlinkSync(path.join(standIns, tool), path.join(shims, tool));
  return [shims, path.dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(':');
}

/** The directory a walkthrough's commands run in: the clone. */
export const cloneOf = (work: string) => path.join(work, 'clone');

/** The stand-ins' directory, for `WALK_STAND_INS`. */
export const standInsOf = (work: string) => path.join(work, 'stand-ins');

/** Runs `script` with bash (errexit, pipefail) in `cwd`, to its end. */
export function runScript(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<ShellRun> {
  const child = spawnBash(script, cwd, env);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** A script left running, as in a terminal of its own. */
export interface BackgroundScript {
  output(): string;
  /** Resolves once its output matches `pattern`; rejects if it exits first or after `timeoutMs`. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Sends `signal` (Ctrl-C: SIGINT) to the command and resolves with its exit code. */
  stop(signal: NodeJS.Signals): Promise<number | null>;
}

/** Starts `script` and leaves it running. */
export function startScript(script: string, cwd: string, env: NodeJS.ProcessEnv): BackgroundScript {
  // exec: the signal reaches the command itself, as Ctrl-C in its terminal would.
  const child = spawnBash(`exec ${script}`, cwd, env);
  let output = '';
  let exit: number | null | undefined;
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve((exit = code))));
  return {
    output: () => output,
    waitForOutput: async (pattern, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(output)) {
        if (exit !== undefined || Date.now() > deadline) {
          throw new Error(`${pattern} did not show (exit ${String(exit)}):\n${output}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    stop: async (signal) => {
      if (exit === undefined) child.kill(signal);
      return exited;
    },
  };
}

function spawnBash(script: string, cwd: string, env: NodeJS.ProcessEnv): ChildProcess {
  return spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
}
