// Bundles the custom-resource handlers with esbuild when the library builds (npm prepare, pretest), so that
// consumers synthesize with a ready asset and need neither esbuild nor Docker.
//
// The AWS SDK is bundled rather than taken from the Lambda runtime: the handler then runs the exact, tested SDK
// version pinned in package-lock.json, whatever the runtime ships.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const handlers = [{ entry: 'lib/attestable-image/handler/index.ts', out: 'assets/published-measurements-handler' }];

for (const { entry, out } of handlers) {
  await build({
    entryPoints: [join(root, entry)],
    outfile: join(root, out, 'index.js'),
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'cjs',
    minify: false,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  console.log(`bundled ${entry} -> ${out}/index.js`);
}
