import { execFile } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { promisify } from 'util';
import { AttestableImage } from '../../lib';
import { withFakeEc2 } from '../fake-ec2';
import { hex384, publishedImage } from '../fixtures';

/** The CLI as the package's `bin` installs it, built by `npm run build` (which `npm test` runs first). */
const CLI = path.join(__dirname, '../../dist/bin/sealed-inference.js');
const IMAGE_ID = 'ami-0123456789abcdef0';

/** Runs the compiled CLI as a child process. */
const cli = (args: string[], env = process.env) => promisify(execFile)(process.execPath, [CLI, ...args], { env });

beforeAll(() => {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
});

test('the compiled CLI prints measurements that AttestableImage.fromMeasurements accepts', async () => {
  const { result, requests } = await withFakeEc2([{ images: [publishedImage()] }], () =>
    cli(['measurements', IMAGE_ID, '--owner', '111111111111']),
  );
  expect(requests).toHaveLength(1);
  expect(result.stderr).toContain('Recipe version: 1.2.0\n');

  const { imageId, ...measurements } = JSON.parse(result.stdout);
  expect(AttestableImage.fromMeasurements(imageId, measurements)).toEqual({
    imageId: IMAGE_ID,
    measurements: { pcr4: hex384('a4'), pcr7: undefined, pcr12: hex384('00') },
  });
});

test('the compiled CLI seals a model offline and unseals it to the same bytes', async () => {
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'compiled-cli-'));
  const model = path.join(dir, 'model.gguf');
  const keyFile = path.join(dir, 'key.bin');
  fs.writeFileSync(model, randomBytes(300_000));
  fs.writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });

  const out = path.join(dir, 'sealed');
  const sealed = await cli(['seal', model, '--out', out, '--data-key-file', keyFile, '--chunk-size', '0.0625']);
  expect(sealed.stderr).toBe(`Sealed model (293.0 KiB) into ${out}\n`);
  expect(JSON.parse(sealed.stdout).manifest).toMatchObject({ modelName: 'model', plaintextSize: 300_000 });

  const unsealed = path.join(dir, 'unsealed.gguf');
  await cli(['unseal', path.join(out, 'model.sealed'), '--data-key-file', keyFile, '--out', unsealed]);
  expect(fs.readFileSync(unsealed).equals(fs.readFileSync(model))).toBe(true);
});

test("the compiled CLI prints the package's version", async () => {
  const { version } = JSON.parse(fs.readFileSync(path.join(__dirname, '../../package.json'), 'utf8'));
  expect((await cli(['--version'])).stdout).toBe(`${version}\n`);
});
