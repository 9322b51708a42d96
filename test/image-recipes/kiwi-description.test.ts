import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/**
 * The kiwi image descriptions under image-recipes/, validated offline as kiwi-ng validates them before a build:
 * against kiwi's RelaxNG schema and the Schematron rules embedded in it (test/image-recipes/kiwi-schema), with
 * jing and with lxml. The system tools come from scripts/require-system-tools.sh (npm test's pretest).
 */

const ROOT = path.join(__dirname, '../..');
const RECIPES = path.join(ROOT, 'image-recipes');
const SCHEMA = path.join(__dirname, 'kiwi-schema/kiwi-10.2.33.rng');
const VALIDATOR = path.join(__dirname, 'validate-kiwi-description.py');
const PYTHON = '/usr/bin/python3';
const APPLIANCE = path.join(RECIPES, 'sealed-inference-appliance');

const descriptions = fs
  .readdirSync(RECIPES, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => path.join(RECIPES, entry.name, 'appliance.kiwi'))
  .filter((file) => fs.existsSync(file));

/** Fails (never skips) when a tool is missing; `mustSucceed` for probes whose exit status tells. */
function requireTool(command: string, args: string[], mustSucceed = true): void {
  const probe = spawnSync(command, args, { encoding: 'utf8' });
  if (probe.error || (mustSucceed && probe.status !== 0)) {
    throw new Error(`${command} is missing: run bash scripts/require-system-tools.sh (as root it installs it)`);
  }
}

beforeAll(() => {
  requireTool('jing', [], false);
  requireTool(PYTHON, ['-c', 'import lxml.isoschematron']);
});

/** Validates with jing (RelaxNG). jing reports problems on stdout; its warnings about optional jars go to stderr. */
function jing(file: string): { ok: boolean; output: string } {
  const result = spawnSync('jing', [SCHEMA, file], { encoding: 'utf8' });
  return { ok: result.status === 0, output: result.stdout };
}

/** Validates with lxml (RelaxNG and the embedded Schematron rules), as kiwi-ng's XMLDescription.load() does. */
function kiwiValidation(file: string): { ok: boolean; output: string } {
  const result = spawnSync(PYTHON, [VALIDATOR, SCHEMA, file], { encoding: 'utf8' });
  return { ok: result.status === 0, output: result.stderr };
}

interface DescriptionSummary {
  schemaversion: string;
  version: string;
  profiles: string[];
  types: Array<{
    attributes: Record<string, string>;
    bootloader: Record<string, string> | null;
    dracut: Array<Record<string, string>>;
  }>;
  repositories: Array<Record<string, string>>;
  packages: Array<{ profiles: string | null; type: string; packages: string[]; ignored: string[] }>;
}

function summary(file: string): DescriptionSummary {
  const output = execFileSync(PYTHON, [VALIDATOR, SCHEMA, '--summary', file], { encoding: 'utf8' });
  return JSON.parse(output)[file];
}

const temporary: string[] = [];
afterAll(() => temporary.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

/** A copy of the appliance description with `edit` applied, in a temporary directory. */
function mutated(edit: (xml: string) => string): string {
  const original = fs.readFileSync(path.join(APPLIANCE, 'appliance.kiwi'), 'utf8');
  const changed = edit(original);
  expect(changed).not.toEqual(original);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiwi-'));
  temporary.push(dir);
  const file = path.join(dir, 'appliance.kiwi');
  fs.writeFileSync(file, changed);
  return file;
}

test('image-recipes/ holds the appliance description', () => {
  expect(descriptions).toContain(path.join(APPLIANCE, 'appliance.kiwi'));
});

describe.each(descriptions)('%s', (file) => {
  test('is valid RelaxNG for kiwi (jing)', () => {
    const result = jing(file);
    expect(result.output).toBe('');
    expect(result.ok).toBe(true);
  });

  test("passes kiwi's RelaxNG and Schematron validation (lxml, as kiwi-ng loads it)", () => {
    const result = kiwiValidation(file);
    expect(result.output).toBe('');
    expect(result.ok).toBe(true);
  });

  test("uses the vendored schema's version", () => {
    expect(summary(file).schemaversion).toBe('8.3');
  });
});

describe('an invalid description is rejected', () => {
  test('by both validators, when it breaks the RelaxNG schema', () => {
    const file = mutated((xml) =>
      xml.replace('overlayroot_readonly_filesystem="erofs"', 'overlayroot_readonly_filesystem="ext4"'),
    );
    expect(jing(file)).toMatchObject({ ok: false, output: expect.stringMatching(/overlayroot_readonly_filesystem/) });
    expect(kiwiValidation(file)).toMatchObject({ ok: false, output: expect.stringMatching(/RelaxNG/) });
  });

  test('by the Schematron rules, when it breaks only them (jing alone would accept it)', () => {
    const file = mutated((xml) => xml.replace('image="oem"', 'image="iso"'));
    expect(jing(file).ok).toBe(true);
    const result = kiwiValidation(file);
    expect(result.ok).toBe(false);
    expect(result.output).toMatch(/Schematron: overlayroot_readonly_filesystem attribute is only available .* oem/);
  });

  test('when it is not well-formed', () => {
    const file = mutated((xml) => xml.replace('</image>', ''));
    expect(jing(file).ok).toBe(false);
    expect(kiwiValidation(file).ok).toBe(false);
  });
});

describe('the appliance description', () => {
  let cached: DescriptionSummary | undefined;
  const description = () => (cached ??= summary(path.join(APPLIANCE, 'appliance.kiwi')));
  const imageType = () => {
    const types = description().types;
    expect(types).toHaveLength(1);
    return types[0];
  };
  const packagesOf = (profile: string | null) =>
    description()
      .packages.filter((section) => section.type === 'image' && section.profiles === profile)
      .flatMap((section) => section.packages);

  test('boots one dracut UKI through systemd-boot, without a menu', () => {
    const type = imageType();
    expect(type.attributes).toMatchObject({ image: 'oem', firmware: 'uefi', editbootinstall: 'edit_boot_install.sh' });
    expect(type.bootloader).toEqual({ name: 'systemd_boot', timeout: '0' });
    expect(type.dracut).toEqual([{ uefi: 'true' }]);
    expect(fs.existsSync(path.join(APPLIANCE, 'edit_boot_install.sh'))).toBe(true);
  });

  test('has a read-only erofs root under dm-verity over all blocks, with nothing persistent to write to', () => {
    expect(imageType().attributes).toMatchObject({
      overlayroot: 'true',
      overlayroot_write_partition: 'false',
      overlayroot_readonly_filesystem: 'erofs',
      verity_blocks: 'all',
    });
    expect(packagesOf(null)).toEqual(
      expect.arrayContaining(['dracut-kiwi-overlay', 'dracut-kiwi-verity', 'veritysetup', 'systemd-boot']),
    );
  });

  test('embeds a command line with no login or rescue shell and a stop on verity corruption', () => {
    const cmdline = imageType().attributes.kernelcmdline.split(' ');
    expect(cmdline).toEqual(
      expect.arrayContaining([
        'console=ttyS0',
        'systemd.getty_auto=0',
        'systemd.mask=serial-getty@ttyS0.service',
        'systemd.mask=emergency.service',
        'systemd.mask=rescue.service',
        'rd.shell=0',
        'rd.emergency=reboot',
        'rd.kiwi.verity_options=panic-on-corruption',
      ]),
    );
    expect(cmdline).not.toEqual(expect.arrayContaining([expect.stringMatching(/^(rd\.shell|rd\.debug)(=1)?$/)]));
  });

  test('ignores every package that would open a way in', () => {
    const ignored = description().packages.flatMap((section) => section.ignored);
    expect(ignored).toEqual(
      expect.arrayContaining(['openssh-server', 'amazon-ssm-agent', 'cloud-init', 'ec2-instance-connect']),
    );
    const installed = description().packages.flatMap((section) => section.packages);
    expect(installed.filter((name) => ignored.includes(name))).toEqual([]);
  });

  test('installs Node.js 22, the NitroTPM tools and the firewall from one pinned AL2023 release', () => {
    expect(packagesOf(null)).toEqual(expect.arrayContaining(['nodejs22', 'aws-nitro-tpm-tools', 'tpm2-tools', 'nftables']));
    const base = description().repositories.filter((repository) => repository.profiles === undefined);
    expect(base).toHaveLength(1);
    expect(base[0].source).toMatch(/^https:\/\/cdn\.amazonlinux\.com\/al2023\/core\/mirrors\/2023\.\d+\.\d{8}\/x86_64\//);
    expect(base[0].source).not.toContain('latest');
    expect(base[0].package_gpgcheck).toBe('true');
  });

  test('keeps the NVIDIA packages and repository in the gpu profile', () => {
    expect(description().profiles).toEqual(['gpu']);
    const gpuPackages = packagesOf('gpu');
    expect(gpuPackages).toEqual(expect.arrayContaining(['nvidia-driver', 'nvidia-driver-cuda']));
    expect(packagesOf(null).filter((name) => /nvidia|cuda/.test(name))).toEqual([]);
    const nvidia = description().repositories.filter((repository) => /nvidia/.test(repository.source));
    expect(nvidia).toHaveLength(1);
    expect(nvidia[0].profiles).toBe('gpu');
  });

  test('has a version, published as the recipe-version tag', () => {
    expect(description().version).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
