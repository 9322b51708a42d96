import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';
import { entryPoints } from './entry-points';

/** The TypeScript examples of the README and of every page under docs/, type-checked as a user would import them. */

const root = path.join(__dirname, '..');
const pages = ['README.md', ...fs.readdirSync(path.join(root, 'docs'), { recursive: true, encoding: 'utf8' })
  .filter((file) => file.endsWith('.md'))
  .map((file) => path.join('docs', file))];
const examples = pages.flatMap((page) => [...fs.readFileSync(path.join(root, page), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)]
  .map((match, i) => ({ page, file: path.join(root, 'test', `${page.replace(/[/.]/g, '-')}-example-${i + 1}.ts`), code: match[1] })));

test.each([['README.md', 2], ['docs/fleet.md', 1]])('%s shows TypeScript examples', (page, least) => {
  expect(examples.filter((example) => example.page === page).length).toBeGreaterThanOrEqual(least);
});

test('every example type-checks against the library', () => {
  const files = new Map(examples.map(({ file, code }) => [file, code]));
  const options: ts.CompilerOptions = {
    ...ts.parseJsonConfigFileContent(ts.readConfigFile(path.join(root, 'tsconfig.json'), ts.sys.readFile).config, ts.sys, root)
      .options,
    noEmit: true,
    baseUrl: root,
    paths: Object.fromEntries(entryPoints(root).map(({ specifier, source }) => [specifier, [source]])),
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  host.readFile = (file) => files.get(file) ?? readFile(file);
  host.fileExists = (file) => files.has(file) || ts.sys.fileExists(file);
  const program = ts.createProgram([...files.keys()], options, host);
  const problems = ts
    .getPreEmitDiagnostics(program)
    .map((d) => `${d.file?.fileName ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
  expect(problems).toEqual([]);
});
