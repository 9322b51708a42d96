import * as fs from 'fs';
import * as path from 'path';

const PACKAGE_NAME = 'cdk-sealed-inference';

/**
 * The directory of a custom-resource handler bundled when the library was built (`assets/<name>/index.js` in the
 * package root). Found by searching upward from `from` for this package's package.json, so it works from the
 * TypeScript sources (`lib/`) and from the compiled library (`dist/lib/`) alike.
 *
 * @internal
 */
export function bundledHandlerDir(name: string, from: string = __dirname): string {
  let dir = path.resolve(from);
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest) && JSON.parse(fs.readFileSync(manifest, 'utf8')).name === PACKAGE_NAME) break;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`Cannot find the ${PACKAGE_NAME} package root above ${from}`);
    dir = parent;
  }
  const bundle = path.join(dir, 'assets', name);
  if (!fs.existsSync(path.join(bundle, 'index.js'))) {
    throw new Error(
      `The bundled handler ${path.join(bundle, 'index.js')} is missing: run \`npm run build\` in ${dir}`,
    );
  }
  return bundle;
}
