// Bundles the runtime code with esbuild when the library builds (npm prepare, pretest):
// - the custom-resource handler, so that consumers synthesize with a ready asset and need neither esbuild nor Docker;
// - the appliance, one file that the image recipe installs, with its chat page embedded as strings.
//
// The AWS SDK is bundled rather than taken from the runtime: each bundle then runs the exact, tested SDK version
// pinned in package-lock.json, whatever the Lambda runtime or the image ships.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { uiAsText } from './ui-as-text.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const bundles = [
  { entry: 'lib/published-image/handler/index.ts', outfile: 'assets/published-measurements-handler/index.js' },
  { entry: 'lib/appliance/main.ts', outfile: 'assets/appliance/appliance.js', plugins: [uiAsText] },
];

for (const { entry, outfile, plugins = [] } of bundles) {
  await build({
    entryPoints: [join(root, entry)],
    outfile: join(root, outfile),
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'cjs',
    minify: false,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
    plugins,
  });
  console.log(`bundled ${entry} -> ${outfile}`);
}
