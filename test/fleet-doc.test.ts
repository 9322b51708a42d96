import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';

const root = path.join(__dirname, '..');
const doc = fs.readFileSync(path.join(root, 'docs', 'fleet.md'), 'utf8');
const examples = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);

test('the fleet guide shows a TypeScript example', () => {
  expect(examples.length).toBeGreaterThanOrEqual(1);
});

test("the fleet guide's example type-checks against the library", () => {
  const files = new Map(examples.map((code, i) => [path.join(root, 'test', `fleet-doc-example-${i + 1}.ts`), code]));
  const options: ts.CompilerOptions = {
    ...ts.parseJsonConfigFileContent(ts.readConfigFile(path.join(root, 'tsconfig.json'), ts.sys.readFile).config, ts.sys, root)
      .options,
    noEmit: true,
    baseUrl: root,
    paths: { 'cdk-sealed-inference': ['lib/index.ts'] },
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
