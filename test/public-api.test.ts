import * as fs from 'node:fs';
import * as path from 'node:path';
import { entryPoints } from './entry-points';

/**
 * The package's public surface: the runtime names each entry point of package.json's exports map offers, compared
 * with the list checked in beside this test. Adding, removing or renaming one is a change of the public API; update
 * test/public-api.json in the same commit, on purpose.
 */

const root = path.join(__dirname, '..');
const expected = JSON.parse(fs.readFileSync(path.join(__dirname, 'public-api.json'), 'utf8')) as Record<string, string[]>;
const entries = entryPoints(root).map(({ entry, source }) => [entry, path.join(root, source)] as const);

test('every entry point is listed, and every listed entry point exists', () => {
  expect(entries.map(([entry]) => entry).sort()).toEqual(Object.keys(expected).sort());
});

test.each(entries)('%s exports exactly the listed names', (entry, source) => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const names = Object.keys(require(source) as object).sort();
  expect(names).toEqual([...expected[entry]].sort());
});
