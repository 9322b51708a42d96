import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

/** Every shell script of the image recipes and of scripts/ passes ShellCheck. */

const ROOT = path.join(__dirname, '../..');

function shellScripts(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return shellScripts(file);
    if (entry.name.endsWith('.sh')) return [file];
    return [];
  });
}

const scripts = [
  ...shellScripts(path.join(ROOT, 'image-recipes')),
  ...shellScripts(path.join(ROOT, 'scripts')),
  path.join(ROOT, '.ci', 'run'),
];

test('finds the recipe and build scripts', () => {
  const names = scripts.map((file) => path.relative(ROOT, file));
  expect(names).toEqual(
    expect.arrayContaining([
      'image-recipes/build-and-publish.sh',
      'image-recipes/sealed-inference-appliance/config.sh',
      'image-recipes/sealed-inference-appliance/edit_boot_install.sh',
      'scripts/require-system-tools.sh',
      'scripts/use-node-22.sh',
      '.ci/run',
    ]),
  );
});

test.each(scripts.map((file) => [path.relative(ROOT, file), file]))('%s passes ShellCheck', (_name, file) => {
  const result = spawnSync('shellcheck', ['--shell=bash', '--severity=style', file], { encoding: 'utf8' });
  if (result.error) {
    throw new Error('shellcheck is missing: run bash scripts/require-system-tools.sh (as root it installs it)');
  }
  expect(result.stdout).toBe('');
  expect(result.status).toBe(0);
});

test.each(scripts.map((file) => [path.relative(ROOT, file), file]))('%s is strict bash and executable', (_name, file) => {
  const text = fs.readFileSync(file, 'utf8');
  expect(text.startsWith('#!/bin/bash\n')).toBe(true);
  expect(text).toMatch(/^set -euo pipefail$/m);
  expect(fs.statSync(file).mode & 0o111).not.toBe(0);
});
