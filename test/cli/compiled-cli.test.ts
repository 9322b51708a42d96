import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { promisify } from 'util';
import { AttestableImage } from '../../lib';
import { withFakeEc2 } from '../fake-ec2';
import { hex384, publishedImage } from '../fixtures';

/** The CLI as the package's `bin` installs it, built by `npm run build` (which `npm test` runs first). */
const CLI = path.join(__dirname, '../../dist/bin/sealed-inference.js');
const IMAGE_ID = 'ami-0123456789abcdef0';

test('the compiled CLI prints measurements that AttestableImage.fromMeasurements accepts', async () => {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  const { result, requests } = await withFakeEc2([{ images: [publishedImage()] }], () =>
    promisify(execFile)(process.execPath, [CLI, 'measurements', IMAGE_ID, '--owner', '111111111111'], {
      env: process.env,
    }),
  );
  expect(requests).toHaveLength(1);
  expect(result.stderr).toContain('Recipe version: 1.2.0\n');

  const { imageId, ...measurements } = JSON.parse(result.stdout);
  expect(AttestableImage.fromMeasurements(imageId, measurements)).toEqual({
    imageId: IMAGE_ID,
    measurements: { pcr4: hex384('a4'), pcr7: undefined, pcr12: hex384('00') },
  });
});
