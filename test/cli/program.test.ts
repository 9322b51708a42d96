import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { packageVersion } from '../../lib/cli/package-version';
import { runCaptured } from './capture';

const ROOT = path.join(__dirname, '../..');
const VERSION: string = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;

test("--version prints the package's version", async () => {
  expect(await runCaptured(['--version'])).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
});

describe("the package's version", () => {
  test('is found from the compiled CLI in dist/lib/cli as from the sources', () => {
    expect(packageVersion(path.join(ROOT, 'dist/lib/cli'))).toBe(VERSION);
    expect(packageVersion(path.join(ROOT, 'lib/cli'))).toBe(VERSION);
  });

  test("is the package's own, not that of a package.json between it and the CLI", () => {
    const root = mkdtempSync(path.join(tmpdir(), 'package-version-'));
    const nested = path.join(root, 'node_modules/other/lib');
    mkdirSync(nested, { recursive: true });
    writeFileSync(path.join(root, 'package.json'), JSON.stringify({ name: 'cdk-sealed-inference', version: '9.8.7' }));
    writeFileSync(path.join(root, 'node_modules/other/package.json'), JSON.stringify({ name: 'other', version: '1.0.0' }));
    expect(packageVersion(nested)).toBe('9.8.7');
  });

  test('missing: says to reinstall', () => {
    const alone = mkdtempSync(path.join(tmpdir(), 'package-version-'));
    expect(() => packageVersion(alone)).toThrow(new RegExp(`No package.json of cdk-sealed-inference above ${alone}: reinstall the package`));
  });
});

describe("commander's errors are one line, sealed-inference: <reason>, exit code 2", () => {
  test.each([
    ['an unknown command, with a suggestion', ['seel'], "unknown command 'seel' (Did you mean seal?)"],
    ['too many arguments', ['inspect', 'a', 'b'], "too many arguments for 'inspect'. Expected 1 argument but got 2."],
    ['an option without its value', ['seal', 'm.gguf', '--prefix'], "option '--prefix <prefix>' argument missing"],
    ['an invalid value', ['seal', 'm.gguf', '--chunk-size', 'x'], "option '--chunk-size <MiB>' argument 'x' is invalid. Expected a chunk size in MiB, more than 0 and at most 64."],
    ['a required option', ['unseal', 'm.sealed', '--out', 'm'], "required option '--data-key-file <file>' not specified"],
    ['an unknown option of the program', ['--bogus'], "unknown option '--bogus'"],
  ])('%s', async (_name, args, reason) => {
    expect(await runCaptured(args)).toEqual({ code: 2, stdout: '', stderr: `sealed-inference: ${reason} (add --help for usage)\n` });
  });
});
