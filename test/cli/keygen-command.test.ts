import { existsSync, lstatSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'fs';
import { open } from 'fs/promises';
import { tmpdir } from 'os';
import * as path from 'path';
import { failure, runCaptured } from './capture';

const freshDir = () => mkdtempSync(path.join(tmpdir(), 'keygen-'));

test('writes 32 fresh random bytes, readable by the owner only whatever the umask, and prints no key', async () => {
  const dir = freshDir();
  const saved = process.umask(0);
  try {
    const first = await runCaptured(['keygen', path.join(dir, 'a.bin')]);
    const second = await runCaptured(['keygen', path.join(dir, 'b.bin')]);
    expect(first).toEqual({ code: 0, stdout: '', stderr: `Wrote a fresh 32-byte data key to ${path.join(dir, 'a.bin')} (mode 0600)\n` });
    expect(second.code).toBe(0);
  } finally {
    process.umask(saved);
  }
  const [a, b] = ['a.bin', 'b.bin'].map((name) => readFileSync(path.join(dir, name)));
  expect([a.length, b.length]).toEqual([32, 32]);
  expect(a.equals(b)).toBe(false);
  expect(statSync(path.join(dir, 'a.bin')).mode & 0o777).toBe(0o600);
});

test('syncs the key file and its directory to disk', async () => {
  const dir = freshDir();
  const probe = await open(path.join(dir, 'probe'), 'w');
  const fileHandle = Object.getPrototypeOf(probe);
  await probe.close();
  const sync = jest.spyOn(fileHandle, 'sync');
  try {
    expect((await runCaptured(['keygen', path.join(dir, 'key.bin')])).code).toBe(0);
    expect(sync).toHaveBeenCalledTimes(2);
  } finally {
    sync.mockRestore();
  }
});

test('the key it writes seals and unseals offline, without a warning about the mode', async () => {
  const dir = freshDir();
  const keyFile = path.join(dir, 'key.bin');
  const model = path.join(dir, 'model.gguf');
  writeFileSync(model, 'a small model');
  await runCaptured(['keygen', keyFile]);
  const sealed = await runCaptured(['seal', model, '--out', path.join(dir, 'sealed'), '--data-key-file', keyFile]);
  expect({ code: sealed.code, stderr: sealed.stderr }).toEqual({ code: 0, stderr: `Sealed model (13 B) into ${path.join(dir, 'sealed')}\n` });
  const unsealed = path.join(dir, 'unsealed.gguf');
  const { code } = await runCaptured(['unseal', path.join(dir, 'sealed', 'model.sealed'), '--data-key-file', keyFile, '--out', unsealed]);
  expect(code).toBe(0);
  expect(readFileSync(unsealed, 'utf8')).toBe('a small model');
});

describe('refuses, exit code 1, and writes nothing', () => {
  test('a file that exists', async () => {
    const file = path.join(freshDir(), 'key.bin');
    writeFileSync(file, 'an older key');
    const { code, stdout, stderr } = await runCaptured(['keygen', file]);
    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    expect(stderr).toMatch(failure(new RegExp(`${file} already exists: keygen never replaces a file; choose another`)));
    expect(readFileSync(file, 'utf8')).toBe('an older key');
  });

  test('a link, even one to nothing, which it does not follow', async () => {
    const dir = freshDir();
    const link = path.join(dir, 'key.bin');
    symlinkSync(path.join(dir, 'elsewhere.bin'), link);
    const { code, stderr } = await runCaptured(['keygen', link]);
    expect(code).toBe(1);
    expect(stderr).toMatch(failure(/.*key.bin already exists/));
    expect(existsSync(path.join(dir, 'elsewhere.bin'))).toBe(false);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
  });

  test('a directory that does not exist', async () => {
    const dir = path.join(freshDir(), 'keys');
    const { code, stderr } = await runCaptured(['keygen', path.join(dir, 'key.bin')]);
    expect(code).toBe(1);
    expect(stderr).toMatch(failure(new RegExp(`${dir} is not an existing directory: create it first, or choose another file`)));
    expect(existsSync(dir)).toBe(false);
  });
});

test('needs the file to write: exit code 2', async () => {
  const { code, stderr } = await runCaptured(['keygen']);
  expect(code).toBe(2);
  expect(stderr).toMatch(failure(/missing required argument 'file'/));
});

test.each([['seal'], ['unseal']])('the help of %s says to make the key file with keygen', async (command) => {
  const { stdout } = await runCaptured([command, '--help']);
  expect(stdout.replace(/\s+/g, ' ')).toMatch(/--data-key-file <file> .*\((make one|made) with sealed-inference keygen <file>\)/);
});
