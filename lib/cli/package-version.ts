import { readFileSync } from 'fs';
import * as path from 'path';

/** The package whose version the CLI reports. */
const PACKAGE_NAME = 'cdk-sealed-inference';

/**
 * The version in the package's `package.json`, read at run time: the nearest one named {@link PACKAGE_NAME} above
 * this file, which is `lib/cli/` in the sources and `dist/lib/cli/` once compiled, both inside the package.
 */
export function packageVersion(from: string = __dirname): string {
  for (let directory = from; ; directory = path.dirname(directory)) {
    const manifest = readPackageJson(path.join(directory, 'package.json'));
    if (manifest?.name === PACKAGE_NAME && typeof manifest.version === 'string') return manifest.version;
    if (path.dirname(directory) === directory) {
      throw new Error(`No package.json of ${PACKAGE_NAME} above ${from}: reinstall the package`);
    }
  }
}

function readPackageJson(file: string): { name?: unknown; version?: unknown } | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}
