import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

/**
 * kiwi-ng itself loads and validates every image description (RELAX NG schema and schematron rules), offline, for
 * the default build and for each profile. kiwi-ng is Debian's kiwi package, provisioned by scripts/provision-kiwi.sh.
 */

const ROOT = path.join(__dirname, '..', '..');
const RECIPES = path.join(ROOT, 'image-recipes');
const descriptions = fs
  .readdirSync(RECIPES)
  .filter((name) => fs.existsSync(path.join(RECIPES, name, 'appliance.kiwi')))
  .map((name) => path.join(RECIPES, name));

let kiwi: string;

beforeAll(() => {
  kiwi = execFileSync('bash', [path.join(ROOT, 'scripts', 'provision-kiwi.sh')], { encoding: 'utf8' }).trim();
}, 180_000);

function imageInfo(description: string, profile?: string) {
  const args = [...(profile ? ['--profile', profile] : []), 'image', 'info', '--description', description];
  const run = spawnSync(kiwi, args, { encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

function profilesOf(description: string): string[] {
  const xml = fs.readFileSync(path.join(description, 'appliance.kiwi'), 'utf8');
  return [...xml.matchAll(/<profile\s+name="([^"]+)"/g)].map((match) => match[1]);
}

test('there is a description to validate', () => {
  expect(descriptions.map((description) => path.basename(description))).toContain('sealed-inference-appliance');
});

describe.each(descriptions)('%s', (description) => {
  const builds: Array<[string, string | undefined]> = [
    ['the default build', undefined],
    ...profilesOf(description).map((profile): [string, string] => [`profile ${profile}`, profile]),
  ];
  test.each(builds)('loads and validates %s', (_build, profile) => {
    const run = imageInfo(description, profile);
    expect(run.output).toContain(`--> loaded ${path.join(description, 'appliance.kiwi')}`);
    expect(run.output).not.toMatch(/ERROR|KiwiDescriptionInvalid/);
    expect(run.status).toBe(0);
  });
});

test('kiwi-ng refuses a description that breaks its schema, so the checks above can fail', () => {
  const broken = fs.mkdtempSync(path.join(tmpdir(), 'kiwi-broken-'));
  try {
    fs.cpSync(path.join(RECIPES, 'sealed-inference-appliance'), broken, { recursive: true });
    const file = path.join(broken, 'appliance.kiwi');
    const xml = fs.readFileSync(file, 'utf8');
    expect(xml).toContain('overlayroot_readonly_filesystem="erofs"');
    fs.writeFileSync(file, xml.replace('overlayroot_readonly_filesystem="erofs"', 'overlayroot_readonly_filesystem="ext4"'));
    const run = imageInfo(broken);
    expect(run.output).toMatch(/KiwiDescriptionInvalid/);
    expect(run.status).not.toBe(0);
  } finally {
    fs.rmSync(broken, { recursive: true, force: true });
  }
});
