import { createHash } from 'crypto';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MEASUREMENT_TAGS } from '../../lib';
import { readPublishedMeasurements } from '../../lib/shared/published-measurements';
import {
  installImageBuildTools, NEW_IMAGE_ID, readToolCalls, SNAPSHOT_ID, taggedImage, tagsOf, ToolCall,
} from './doubles/image-build-tools';

/**
 * image-recipes/build-and-publish.sh with stand-ins for kiwi-ng (and its mkfs.erofs, veritysetup), coldsnap, the AWS
 * CLI and curl on PATH (./doubles/image-build-tools.ts). jq, sha256sum and node are real.
 */

const ROOT = path.join(__dirname, '../..');
const SCRIPT = path.join(ROOT, 'image-recipes/build-and-publish.sh');
const STANDARD = path.join(__dirname, 'fixtures/pcr_measurements.json');
const SECURE_BOOT = path.join(__dirname, 'fixtures/pcr_measurements.secure-boot.json');
const OLLAMA_ARCHIVE = 'a stand-in for the Ollama release archive\n';
const OLLAMA_SHA256 = createHash('sha256').update(OLLAMA_ARCHIVE).digest('hex');
const EXISTING_IMAGE_ID = 'ami-0123456789abcdef0';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  calls: ToolCall[];
  target: string;
}

let work: string;
let stubs: string;
let appliance: string;

beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist/lib/shared/measurements.js'))) {
    throw new Error('dist/lib/shared/measurements.js is missing: run npm run build (npm test runs it first)');
  }
  if (spawnSync('jq', ['--version']).error) {
    throw new Error('jq is missing: run bash scripts/require-system-tools.sh (as root it installs it)');
  }
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'build-and-publish-'));
  stubs = path.join(work, 'bin');
  fs.mkdirSync(stubs);
  installImageBuildTools(stubs);
  appliance = path.join(work, 'appliance.js');
  fs.writeFileSync(appliance, '// the appliance bundle\n');
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function publish(
  args: string[],
  options: {
    measurements?: string;
    existingImage?: string;
    omit?: string[];
    pathPrefix?: string;
    env?: Record<string, string>;
  } = {},
): Run {
  const runDir = fs.mkdtempSync(path.join(work, 'run-'));
  const bin = path.join(runDir, 'bin');
  fs.mkdirSync(bin);
  for (const tool of fs.readdirSync(stubs)) {
    if (!(options.omit ?? []).includes(tool)) fs.symlinkSync(path.join(stubs, tool), path.join(bin, tool));
  }
  const log = path.join(runDir, 'calls.jsonl');
  fs.writeFileSync(log, '');
  const target = path.join(runDir, 'build');
  const result = spawnSync('bash', [SCRIPT, '--target-dir', target, ...args], {
    encoding: 'utf8',
    cwd: runDir,
    env: {
      PATH: [...(options.pathPrefix ? [options.pathPrefix] : []), bin, path.dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(':'),
      HOME: runDir,
      STUB_LOG: log,
      STUB_MEASUREMENTS: options.measurements ?? STANDARD,
      STUB_OLLAMA_ARCHIVE: OLLAMA_ARCHIVE,
      STUB_EXISTING_IMAGE: options.existingImage ?? '',
      ...options.env,
    },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, calls: readToolCalls(log), target };
}

const INPUTS = ['--ollama-version', '0.12.3', '--ollama-sha256', OLLAMA_SHA256];

const fixture = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')).Measurements as Record<string, string>;
const sha256Of = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const awsCalls = (run: Run, command: string) => run.calls.filter((c) => c.tool === 'aws' && c.args.includes(command));

describe('a first run', () => {
  let run: Run;
  beforeAll(() => {
    run = publish([...INPUTS, '--appliance', appliance, '--region', 'eu-west-1']);
  });

  test('succeeds', () => {
    expect(run.stderr).not.toMatch(/build-and-publish\.sh: (missing|.*required|.*is missing)/);
    expect(run.status).toBe(0);
  });

  test('downloads the pinned Ollama release over HTTPS and builds the staged description with kiwi-ng', () => {
    const curl = run.calls.filter((c) => c.tool === 'curl');
    expect(curl).toHaveLength(1);
    expect(curl[0].args).toEqual(
      expect.arrayContaining([
        '--proto',
        '=https',
        'https://github.com/ollama/ollama/releases/download/v0.12.3/ollama-linux-amd64.tgz',
      ]),
    );
    const build = run.calls.filter((c) => c.tool === 'kiwi-ng' && c.args.includes('build'));
    expect(build).toHaveLength(1);
    const staged = build[0].args[build[0].args.indexOf('--description') + 1];
    expect(build[0].args).toEqual(['system', 'build', '--description', staged, '--target-dir', expect.any(String)]);
    expect(fs.readFileSync(path.join(staged, 'root/opt/sealed-inference/appliance.js'), 'utf8')).toBe(
      '// the appliance bundle\n',
    );
    expect(fs.readFileSync(path.join(staged, 'root/usr/lib/sealed-inference/ollama-linux-amd64.tgz'), 'utf8')).toBe(
      OLLAMA_ARCHIVE,
    );
    expect(fs.readFileSync(path.join(staged, 'root/usr/lib/sealed-inference/build-inputs.env'), 'utf8')).toBe(
      `RECIPE_VERSION=0.1.0\nOLLAMA_VERSION=0.12.3\nOLLAMA_SHA256=${OLLAMA_SHA256}\nOLLAMA_ASSET=ollama-linux-amd64.tgz\n`,
    );
  });

  test('looks for an AMI of the same recipe version and measurements before registering', () => {
    const lookups = awsCalls(run, 'describe-images');
    expect(lookups).toHaveLength(1);
    const name = `sealed-inference-appliance-0.1.0-${sha256Of(STANDARD).slice(0, 16)}`;
    expect(lookups[0].args).toEqual(
      expect.arrayContaining(['--owners', 'self', '--filters', `Name=name,Values=${name}`]),
    );
    expect(run.calls.findIndex((c) => c.args.includes('describe-images'))).toBeLessThan(
      run.calls.findIndex((c) => c.args.includes('register-image')),
    );
  });

  test('uploads the raw disk and registers it as an attestable AMI: UEFI, TPM 2.0, IMDSv2, ENA', () => {
    const upload = run.calls.filter((c) => c.tool === 'coldsnap');
    expect(upload).toHaveLength(1);
    expect(upload[0].args).toEqual(expect.arrayContaining(['upload', '--wait']));
    expect(upload[0].args[upload[0].args.length - 1]).toMatch(/\.raw$/);

    const register = awsCalls(run, 'register-image');
    expect(register).toHaveLength(1);
    const args = register[0].args.join(' ');
    expect(args).toContain('--boot-mode uefi --tpm-support v2.0 --imds-support v2.0 --ena-support');
    expect(args).toContain('--architecture x86_64');
    expect(args).toContain('--root-device-name /dev/xvda');
    expect(register[0].args).toContain(
      `DeviceName=/dev/xvda,Ebs={SnapshotId=${SNAPSHOT_ID},VolumeType=gp3,DeleteOnTermination=true}`,
    );
    expect(register[0].args).toEqual(expect.arrayContaining(['--region', 'eu-west-1']));
  });

  test("tags the AMI with exactly the library's tag keys and the fixture's values", () => {
    const tagging = awsCalls(run, 'create-tags');
    expect(tagging).toHaveLength(1);
    expect(tagging[0].args).toEqual(expect.arrayContaining(['--resources', NEW_IMAGE_ID]));
    const measurements = fixture(STANDARD);
    expect(Object.fromEntries(tagsOf(tagging[0]))).toEqual({
      [MEASUREMENT_TAGS.pcr4]: measurements.PCR4,
      [MEASUREMENT_TAGS.pcr12]: measurements.PCR12,
      [MEASUREMENT_TAGS.recipeVersion]: '0.1.0',
      [MEASUREMENT_TAGS.measurementsSha256]: sha256Of(STANDARD),
    });
  });

  test('publishes tags that the deploy-time reader accepts with the same values', () => {
    const image = taggedImage(NEW_IMAGE_ID, awsCalls(run, 'create-tags')[0]);
    const measurements = fixture(STANDARD);
    expect(
      readPublishedMeasurements(image, { secureBoot: false, measurementsSha256: sha256Of(STANDARD) }),
    ).toMatchObject({ pcr4: measurements.PCR4, pcr12: measurements.PCR12, recipeVersion: '0.1.0', warnings: [] });
  });

  test('prints the AMI id and its measurements as JSON, as `sealed-inference measurements` does', () => {
    const measurements = fixture(STANDARD);
    expect(JSON.parse(run.stdout)).toEqual({
      imageId: NEW_IMAGE_ID,
      pcr4: measurements.PCR4,
      pcr12: measurements.PCR12,
    });
  });
});

test('a second run finds the AMI by name and reuses it instead of registering another', () => {
  const run = publish([...INPUTS, '--appliance', appliance], { existingImage: EXISTING_IMAGE_ID });
  expect(run.status).toBe(0);
  expect(awsCalls(run, 'describe-images')).toHaveLength(1);
  expect(awsCalls(run, 'register-image')).toEqual([]);
  expect(run.calls.filter((c) => c.tool === 'coldsnap')).toEqual([]);
  const tagging = awsCalls(run, 'create-tags');
  expect(tagging).toHaveLength(1);
  expect(tagging[0].args).toEqual(expect.arrayContaining(['--resources', EXISTING_IMAGE_ID]));
  expect(run.stderr).toContain(`reusing ${EXISTING_IMAGE_ID}`);
  expect(JSON.parse(run.stdout).imageId).toBe(EXISTING_IMAGE_ID);
});

test('a Secure Boot build also publishes PCR7, under every key of MEASUREMENT_TAGS', () => {
  const run = publish([...INPUTS, '--appliance', appliance], { measurements: SECURE_BOOT });
  expect(run.status).toBe(0);
  const measurements = fixture(SECURE_BOOT);
  const tags = tagsOf(awsCalls(run, 'create-tags')[0]);
  expect([...tags.keys()].sort()).toEqual(Object.values(MEASUREMENT_TAGS).sort());
  expect(tags.get(MEASUREMENT_TAGS.pcr7)).toBe(measurements.PCR7);
  expect(JSON.parse(run.stdout)).toEqual({
    imageId: NEW_IMAGE_ID,
    pcr4: measurements.PCR4,
    pcr7: measurements.PCR7,
    pcr12: measurements.PCR12,
  });
});

describe('--dry-run', () => {
  let run: Run;
  beforeAll(() => {
    run = publish([...INPUTS, '--appliance', appliance, '--dry-run', '--measurements', STANDARD]);
  });

  test('runs nothing: no build, no download, no AWS call', () => {
    expect(run.status).toBe(0);
    expect(run.calls).toEqual([]);
    expect(fs.existsSync(run.target)).toBe(false);
  });

  test('prints every command, one a line prefixed "+ "', () => {
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines.every((line) => line.startsWith('+ '))).toBe(true);
    const commands = lines.map((line) => line.split(' ').slice(1, 4).join(' '));
    expect(commands).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^curl /),
        expect.stringMatching(/^kiwi-ng system build/),
        'aws ec2 describe-images',
        expect.stringMatching(/^coldsnap upload/),
        'aws ec2 register-image',
        'aws ec2 create-tags',
      ]),
    );
    const register = lines.find((line) => line.startsWith('+ aws ec2 register-image'));
    expect(register).toContain('--boot-mode uefi --tpm-support v2.0 --imds-support v2.0 --ena-support');
  });

  test('computes the tags from the given measurements', () => {
    const tagging = run.stdout.split('\n').find((line) => line.startsWith('+ aws ec2 create-tags'));
    const measurements = fixture(STANDARD);
    expect(tagging).toContain(`Key=${MEASUREMENT_TAGS.pcr4},Value=${measurements.PCR4}`);
    expect(tagging).toContain(`Key=${MEASUREMENT_TAGS.pcr12},Value=${measurements.PCR12}`);
    expect(tagging).toContain(`Key=${MEASUREMENT_TAGS.measurementsSha256},Value=${sha256Of(STANDARD)}`);
    expect(tagging).not.toContain(MEASUREMENT_TAGS.pcr7);
  });
});

describe('refuses to start, saying what to do', () => {
  test('without the Ollama version or checksum', () => {
    const noVersion = publish(['--appliance', appliance]);
    expect(noVersion.status).toBe(1);
    expect(noVersion.stderr).toMatch(/the Ollama version is required: pass --ollama-version/);
    const noChecksum = publish(['--ollama-version', '0.12.3', '--appliance', appliance]);
    expect(noChecksum.status).toBe(1);
    expect(noChecksum.stderr).toMatch(/SHA-256 of the Ollama 0\.12\.3 archive is required: pass --ollama-sha256/);
    expect([...noVersion.calls, ...noChecksum.calls]).toEqual([]);
  });

  test('without the appliance bundle', () => {
    const run = publish([...INPUTS, '--appliance', path.join(work, 'absent.js')]);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/appliance bundle .*absent\.js is missing: run npm run build/);
  });

  test('without a prerequisite, naming the missing tool and how to install it', () => {
    const run = publish([...INPUTS, '--appliance', appliance], { omit: ['coldsnap'] });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/missing coldsnap: install coldsnap \(cargo install --locked coldsnap\)/);
    expect(run.calls).toEqual([]);
  });

  test('with a kiwi-ng too old for the description', () => {
    const old = fs.mkdtempSync(path.join(work, 'old-kiwi-'));
    fs.writeFileSync(path.join(old, 'kiwi-ng'), '#!/bin/sh\necho "KIWI (next generation) version 9.24.56"\n', {
      mode: 0o755,
    });
    const run = publish([...INPUTS, '--appliance', appliance], { omit: ['kiwi-ng'], pathPrefix: old });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/kiwi-ng is 9\.24\.56; the description needs 10\.2\.21 or later/);
  });

  test.each([
    ['a PCR value that is no SHA-384', { PCR4: 'ab'.repeat(47), PCR12: 'cd'.repeat(48) }, /PCR4 in .*pcr_measurements\.json must be a SHA-384 value of 96 hex characters/],
    ['measurements that pin no image', { PCR4: 'ab'.repeat(48) }, /pcr_measurements\.json is not pinned: missing pcr12/],
  ])('when the build measured %s, before any AWS call', (_, values, reason) => {
    const measurements = path.join(fs.mkdtempSync(path.join(work, 'measurements-')), 'pcr_measurements.json');
    fs.writeFileSync(measurements, JSON.stringify({ Measurements: values }));
    const run = publish([...INPUTS, '--appliance', appliance], { measurements });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(reason);
    expect(run.calls.filter((c) => c.tool === 'aws')).toEqual([]);
  });

  test('when the downloaded archive does not have the pinned checksum', () => {
    const run = publish(['--ollama-version', '0.12.3', '--ollama-sha256', 'ab'.repeat(32), '--appliance', appliance]);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/does not have the SHA-256 (ab){32}/);
    expect(run.calls.filter((c) => ['coldsnap', 'aws'].includes(c.tool) || c.args.includes('build'))).toEqual([]);
  });
});
