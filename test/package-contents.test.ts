import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { builtinModules } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * What `npm pack` publishes: the built library, CLI and bundles, never the sources of tests, the sample app or build
 * files; and the package installed as a consumer installs it, with only its dependencies (and peers) beside it.
 */

const root = path.join(__dirname, '..');
const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  name: string;
  exports: Record<string, string | { types: string; default: string }>;
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
};
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'package-contents-'));
const [pack] = JSON.parse(
  execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  }),
) as Array<{ filename: string; files: Array<{ path: string }> }>;
const files = pack.files.map((file) => file.path);

/**
 * A consumer's project holding the packed package and, beside it, only `modules` linked from this checkout:
 * anything else the package requires fails to resolve, as it would after `npm install cdk-sealed-inference`.
 */
function consumer(name: string, modules: string[]): string {
  const project = path.join(work, name);
  const installed = path.join(project, 'node_modules', manifest.name);
  fs.mkdirSync(installed, { recursive: true });
  execFileSync('tar', ['-xzf', path.join(work, pack.filename), '-C', installed, '--strip-components=1']);
  for (const module of modules) {
    const link = path.join(project, 'node_modules', module);
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(path.join(root, 'node_modules', module), link, 'dir');
  }
  return project;
}

/** Runs `script` with Node in `project`, as the consumer's code would, and returns what it printed. */
function runIn(project: string, script: string): string {
  return execFileSync(process.execPath, ['-e', script], { cwd: project, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const dependencies = Object.keys(manifest.dependencies);
const peers = Object.keys(manifest.peerDependencies);
/** Only the runtime dependencies: what a client that verifies attestations in-process installs. */
const verifierProject = consumer('verifier', dependencies);
/** A CDK app: the runtime dependencies, the peers, and the Node types its compiler reads. */
const cdkProject = consumer('cdk-app', [...dependencies, ...peers, '@types/node']);

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

describe('the published package', () => {
  test.each([
    'LICENSE',
    'README.md',
    'dist/lib/index.js',
    'dist/lib/index.d.ts',
    'dist/lib/attestation/index.js',
    'dist/lib/attestation/index.d.ts',
    'dist/lib/sealing/index.js',
    'dist/lib/sealing/index.d.ts',
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

  test('leaves out the sample app: of bin/, only the CLI ships', () => {
    expect(files.filter((file) => file.startsWith('dist/bin/'))).toEqual(['dist/bin/sealed-inference.js']);
  });

  test('ships no source map whose sources it leaves out', () => {
    const unresolvable = files.filter((file) => file.endsWith('.map')).flatMap((map) => {
      const { sources = [], sourcesContent = [] } = JSON.parse(
        fs.readFileSync(path.join(verifierProject, 'node_modules', manifest.name, map), 'utf8'),
      ) as { sources?: string[]; sourcesContent?: Array<string | null> };
      return sources
        .map((source, i) => ({ source: path.posix.join(path.posix.dirname(map), source), inline: typeof sourcesContent[i] === 'string' }))
        .filter(({ source, inline }) => !inline && !files.includes(source))
        .map(({ source }) => `${map} -> ${source}`);
    });
    expect(unresolvable).toEqual([]);
  });

  test('requires, from its compiled code, only Node, itself, its dependencies and its peers', () => {
    const allowed = new Set([...dependencies, ...peers]);
    const outside = files.filter((file) => file.startsWith('dist/') && file.endsWith('.js')).flatMap((file) => {
      const code = fs.readFileSync(path.join(verifierProject, 'node_modules', manifest.name, file), 'utf8');
      return [...code.matchAll(/require\("([^"]+)"\)/g)]
        .map(([, specifier]) => specifier)
        .filter((specifier) => !specifier.startsWith('.') && !specifier.startsWith('node:') && !builtinModules.includes(specifier))
        .filter((specifier) => !allowed.has(specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/')))
        .map((specifier) => `${file}: ${specifier}`);
    });
    expect(outside).toEqual([]);
  });
});

describe('its entry points, as a consumer resolves them', () => {
  test.each(Object.entries(manifest.exports))('%s names files the package ships', (_entry, target) => {
    const targets = typeof target === 'string' ? [target] : [target.types, target.default];
    for (const file of targets) expect(files).toContain(path.posix.normalize(file));
  });

  test('"./attestation" loads with the runtime dependencies alone: a verifier needs no CDK', () => {
    const exported = runIn(verifierProject, `
      const attestation = require('${manifest.name}/attestation');
      console.log([typeof attestation.verifyAttestationDocument, typeof attestation.PinnedConnection].join(' '));`);
    expect(exported.trim()).toBe('function function');
    expect(() => runIn(verifierProject, `require('${manifest.name}')`)).toThrow(/Cannot find module 'aws-cdk-lib'/);
  });

  test('"./sealing" loads with the runtime dependencies alone: a model owner\'s script needs no CDK', () => {
    const exported = runIn(verifierProject, `
      const sealing = require('${manifest.name}/sealing');
      console.log([sealing.seal, sealing.unseal, sealing.parseManifest, sealing.SealedModelError, sealing.modelMeasurement]
        .map((f) => typeof f).join(' '));`);
    expect(exported.trim()).toBe('function function function function function');
  });

  test('"." loads the constructs and the sealing API in a CDK app, and leaves the verifier to "./attestation"', () => {
    const exported = runIn(cdkProject, `
      const library = require('${manifest.name}');
      console.log([typeof library.SealedInference, typeof library.verifyAttestationDocument, typeof library.seal,
        typeof library.modelMeasurement].join(' '));`);
    expect(exported.trim()).toBe('function undefined function function');
  }, 60_000);

  test('a file outside the entry points cannot be imported', () => {
    expect(() => runIn(cdkProject, `require('${manifest.name}/dist/lib/cli/program')`)).toThrow(/ERR_PACKAGE_PATH_NOT_EXPORTED/);
  });

  test('TypeScript finds the types of each entry point through the exports map', () => {
    fs.writeFileSync(path.join(cdkProject, 'consumer.ts'), [
      `import { SealedInference } from '${manifest.name}';`,
      `import { AttestationErrorKind, verifyAttestationDocument } from '${manifest.name}/attestation';`,
      `import { MeasuredModel, modelMeasurement } from '${manifest.name}/sealing';`,
      "export const measured: MeasuredModel = { modelName: 'm', plaintextSize: 0, sha256: '0'.repeat(64) };",
      'export const measurement: string = modelMeasurement(measured);',
      'export const checks: Array<(bytes: Uint8Array) => unknown> = [verifyAttestationDocument];',
      "export const kind: string = AttestationErrorKind.STALE_DOCUMENT;",
      'export type Construct = SealedInference;',
    ].join('\n'));
    execFileSync(process.execPath, [
      path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '--strict', '--skipLibCheck',
      '--module', 'node16', '--moduleResolution', 'node16', '--types', 'node', 'consumer.ts',
    ], { cwd: cdkProject, encoding: 'utf8' });
  }, 60_000);

  test('the CLI runs with the runtime dependencies alone', () => {
    const help = execFileSync(process.execPath, [path.join('node_modules', manifest.name, 'dist', 'bin', 'sealed-inference.js'), '--help'], {
      cwd: verifierProject, encoding: 'utf8',
    });
    expect(help).toMatch(/^Usage: sealed-inference /);
  });
});
