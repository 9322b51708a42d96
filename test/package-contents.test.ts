import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

/** What `npm pack` would publish: the built library, CLI and bundles, never the sources of tests or build files. */
describe('the published package', () => {
  const [pack] = JSON.parse(
    execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: path.join(__dirname, '..'),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }),
  ) as Array<{ files: Array<{ path: string }> }>;
  const files = pack.files.map((file) => file.path);

  test.each([
    'LICENSE',
    'README.md',
    'dist/lib/index.js',
    'dist/lib/index.d.ts',
    'dist/bin/sealed-inference.js',
    'assets/published-measurements-handler/index.js',
    'assets/appliance/appliance.js',
    'image-recipes/build-and-publish.sh',
    'image-recipes/sealed-inference-appliance/appliance.kiwi',
    'docs/appliance.md',
  ])('includes %s', (file) => {
    expect(files).toContain(file);
  });

  test('leaves out tests, sources, build settings and test artifacts', () => {
    expect(files.filter((file) => /^(test|lib|bench|scripts|test-artifacts|cdk\.out)\//.test(file))).toEqual([]);
    expect(files).not.toContain('cdk.json');
  });
});
