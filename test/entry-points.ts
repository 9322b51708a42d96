import * as fs from 'node:fs';
import * as path from 'node:path';

/** One entry point of package.json's exports map. */
export interface EntryPoint {
  /** As the exports map names it: '.', './attestation'. */
  readonly entry: string;
  /** As a user imports it: 'cdk-sealed-inference/attestation'. */
  readonly specifier: string;
  /** The TypeScript source its compiled file is built from, relative to the package root. */
  readonly source: string;
}

/** The package's code entry points (not './package.json'), read from its exports map. */
export function entryPoints(root: string): EntryPoint[] {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    name: string;
    exports: Record<string, string | { default: string }>;
  };
  return Object.entries(manifest.exports)
    .filter((entry): entry is [string, { default: string }] => typeof entry[1] !== 'string')
    .map(([entry, target]) => ({
      entry,
      specifier: path.posix.join(manifest.name, entry),
      source: target.default.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts'),
    }));
}
