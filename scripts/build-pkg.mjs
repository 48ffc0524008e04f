#!/usr/bin/env node
// Assembles the npm package @animus/datapilot in pkg/ from pkg-templates/ and the wasm-bindgen
// outputs of `./x wasm`: the core module (target/wasm-bindgen/{web,nodejs,
// experimental-nodejs-module}) and the evidence verifier module (target/wasm-bindgen-verifier/
// ..., the same three targets).
//
//   node scripts/build-pkg.mjs [--pack]      (`./x pkg` runs `./x wasm` first, then this)
//
// Layout: two wasm binaries, each shared by the three targets (wasm-bindgen emits the same bytes
// for them, checked here): dist/datapilot_bg.wasm (the core: client, hashing, Merkle proofs)
// with its glue modules dist/web.js (browsers, workers, bundlers), dist/node.mjs (Node ESM),
// dist/node.cjs (Node CommonJS), and dist/verifier_bg.wasm (bundle and checkpoint
// verification) with dist/verifier-web.js, dist/verifier-node.mjs, dist/verifier-node.cjs,
// which the entries load on the first verification. Thin entries add init(), the async
// verifier functions (verifier-api.js), the client's online verifyEvidenceBundle and the
// Node-only helpers. The TypeScript comes from wasm-bindgen (classes, functions) and tsify
// (models); this script only renames, takes the verifier functions' declarations from the
// verifier module's output, adds the entries' few declarations and refuses to ship an `any`.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tpl = join(root, 'pkg-templates');
const bg = join(root, 'target', 'wasm-bindgen');
const out = join(root, 'pkg');

function die(msg) {
  process.stderr.write(`build-pkg: ${msg}\n`);
  process.exit(1);
}
const read = (p) => readFileSync(p, 'utf8');

// ---- inputs ---------------------------------------------------------------------------------
const targets = { web: 'web', nodejs: 'nodejs', esm: 'experimental-nodejs-module' };
const modules = {
  core: { dir: bg, name: 'datapilot' },
  verifier: { dir: join(root, 'target', 'wasm-bindgen-verifier'), name: 'verifier' },
};
const wasm = {};
for (const [m, { dir, name }] of Object.entries(modules)) {
  const per = {};
  for (const [k, t] of Object.entries(targets)) {
    try {
      per[k] = readFileSync(join(dir, t, `${name}_bg.wasm`));
    } catch {
      die(`missing ${join(dir, t, `${name}_bg.wasm`)}: run ./x wasm first`);
    }
  }
  if (!per.web.equals(per.nodejs) || !per.web.equals(per.esm)) {
    die(`wasm-bindgen produced different ${m} wasm for web and Node targets; cannot share one binary`);
  }
  wasm[m] = per.web;
}
const cargo = read(join(root, 'Cargo.toml'));
const version = /\[package\][^[]*?\nversion\s*=\s*"([^"]+)"/.exec(cargo)?.[1];
if (!version) die('no [package] version in Cargo.toml');

// ---- output ---------------------------------------------------------------------------------
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'dist'), { recursive: true });
mkdirSync(join(out, 'bin'), { recursive: true });
writeFileSync(join(out, 'dist', 'datapilot_bg.wasm'), wasm.core);
writeFileSync(join(out, 'dist', 'verifier_bg.wasm'), wasm.verifier);
// The same bytes as ES modules (base64), for bundlers that do not copy the files a
// `new URL('./x.wasm', import.meta.url)` names (esbuild, Rollup without a plugin): the web entry
// imports them only when the .wasm file is not where that URL points (index.web.js).
for (const [m, name] of [['core', 'datapilot'], ['verifier', 'verifier']]) {
  writeFileSync(
    join(out, 'dist', `${name}_bg.wasm.js`),
    `// ${name}_bg.wasm, base64: the web entry's fallback when the file is not served next to the bundle.\nexport default ${JSON.stringify(wasm[m].toString('base64'))};\n`,
  );
}

/** wasm-bindgen glue with its self-types comment pointing at the renamed declaration file. */
function glue(target, name, dts) {
  const js = read(join(bg, target, 'datapilot.js')).replace(
    /^\/\* @ts-self-types="\.\/datapilot\.d\.ts" \*\/\n/,
    `/* @ts-self-types="./${dts}" */\n`,
  );
  writeFileSync(join(out, 'dist', name), js);
  let types = read(join(bg, target, 'datapilot.d.ts'));
  // InitOutput lists the raw wasm exports (typed `any` by wasm-bindgen); it is not API.
  types = types.replace(
    /export interface InitOutput \{[\s\S]*?\n\}\n/,
    'export interface InitOutput {\n    readonly memory: WebAssembly.Memory;\n}\n',
  );
  // `[Symbol.dispose]` needs lib "esnext.disposable"; consumers on older libs would fail to
  // compile. The method stays at run time (use `free()` in typed code).
  types = types.replace(/^\s*\[Symbol\.dispose\]\(\): void;\n/gm, '');
  if (target !== 'web') types = withoutDomTypes(types, dts);
  writeFileSync(join(out, 'dist', dts), types);
}
/**
 * Node typings that compile without lib "dom" (a Node project has `lib: ["es2022"]` and
 * @types/node, which declares Blob, File, AbortSignal and fetch but not the drag-and-drop
 * types): the browser-only parameters get structural types. Each rewrite must match.
 */
function withoutDomTypes(types, name) {
  const rewrites = [
    ['filesFromDataTransfer(data: DataTransfer | DataTransferItemList)', 'filesFromDataTransfer(data: object)'],
    ['hashFiles(files: FileList | Iterable<File | DatasetFile>', 'hashFiles(files: ArrayLike<File> | Iterable<File | DatasetFile>'],
  ];
  for (const [from, to] of rewrites) {
    if (!types.includes(from)) die(`${name}: expected \`${from}\` in the wasm-bindgen declarations`);
    types = types.replace(from, to);
  }
  const left = /\b(DataTransfer|DataTransferItemList|FileList|HTMLElement|Document|Window)\b/.exec(
    types.replace(/\/\*[\s\S]*?\*\//g, ''),
  );
  if (left) die(`${name}: declares the DOM-only type ${left[1]}; Node projects without lib "dom" would not compile`);
  return types;
}

glue('web', 'web.js', 'web.d.ts');
guardWebGlue(join(out, 'dist', 'web.js'));

/**
 * The web glue before `init()` has no wasm exports, so every export failed with "Cannot read
 * properties of undefined". Its `wasm` starts as a stand-in whose every property read throws a
 * DataPilotError (kind `init`, code `not_initialised`) that says to call `init()` first; the
 * glue's own "already loaded?" checks compare with the stand-in instead of `undefined`. Each
 * rewrite must match exactly once, so a wasm-bindgen upgrade that changes the glue fails here.
 */
function guardWebGlue(file) {
  let js = read(file);
  const swap = (from, to, times) => {
    const n = js.split(from).length - 1;
    if (n !== times) die(`${file}: expected ${times} of ${JSON.stringify(from)} in the wasm-bindgen glue, found ${n}`);
    js = js.replaceAll(from, to);
  };
  swap('let wasmModule, wasmInstance, wasm;', `${read(join(tpl, 'not-ready.js')).trim()}\nlet wasmModule, wasmInstance, wasm = NOT_READY;`, 1);
  swap('if (wasm !== undefined) return wasm;', 'if (wasm !== NOT_READY) return wasm;', 2);
  writeFileSync(file, js);
}
glue('experimental-nodejs-module', 'node.mjs', 'node.d.mts');
glue('nodejs', 'node.cjs', 'node.d.cts');

/** The verifier module's glue. Its declarations are not shipped: the entries declare the
 * functions they export (taken from them below), and the glue is no public API. */
function verifierGlue(target, name) {
  const js = read(join(modules.verifier.dir, target, 'verifier.js')).replace(/^\/\* @ts-self-types="[^"]*" \*\/\n/, '');
  writeFileSync(join(out, 'dist', name), js);
}
verifierGlue('web', 'verifier-web.js');
verifierGlue('experimental-nodejs-module', 'verifier-node.mjs');
verifierGlue('nodejs', 'verifier-node.cjs');

// wasm-bindgen's JS snippets (`#[wasm_bindgen(module = ...)]`), which the glue imports as
// ./snippets/...: one copy in dist/, so every target and module must have emitted the same bytes.
for (const { dir } of Object.values(modules)) {
  for (const t of Object.values(targets)) {
    const from = join(dir, t, 'snippets');
    if (!existsSync(from)) continue;
    for (const rel of readdirSync(from, { recursive: true })) {
      if (!statSync(join(from, rel)).isFile()) continue;
      const bytes = readFileSync(join(from, rel));
      const dest = join(out, 'dist', 'snippets', rel);
      if (existsSync(dest)) {
        if (!readFileSync(dest).equals(bytes)) die(`snippet ${rel} differs between targets or modules`);
      } else {
        mkdirSync(dirname(dest), { recursive: true });
        writeFileSync(dest, bytes);
      }
    }
  }
}

const nodeApi = read(join(tpl, 'node-api.js'));
writeFileSync(join(out, 'node-api.mjs'), `${nodeApi}\nexport { makeNodeApi };\n`);
writeFileSync(join(out, 'node-api.cjs'), `'use strict';\n${nodeApi}\nmodule.exports = { makeNodeApi };\n`);
const verifierApi = read(join(tpl, 'verifier-api.js'));
writeFileSync(join(out, 'verifier-api.js'), `${verifierApi}\nexport { makeVerifierApi };\n`);
writeFileSync(join(out, 'verifier-api.cjs'), `'use strict';\n${verifierApi}\nmodule.exports = { makeVerifierApi };\n`);

for (const f of ['index.node.mjs', 'index.node.cjs', 'index.web.js', 'wasm-source.js', 'README.md']) {
  copyFileSync(join(tpl, f), join(out, f));
}
copyFileSync(join(tpl, 'bin', 'datapilot.mjs'), join(out, 'bin', 'datapilot.mjs'));
chmodSync(join(out, 'bin', 'datapilot.mjs'), 0o755);

// The verifier functions the entries export (async: they load the verifier module first), with
// their doc comments, exactly as wasm-bindgen declared them for the verifier module.
const verifierDts = read(join(modules.verifier.dir, 'web', 'verifier.d.ts'));
const verifierDecls = ['verifyEvidenceBundle', 'verifyCheckpoint']
  .map((fn) => {
    const m = new RegExp(`(?:/\\*\\*(?:(?!\\*/)[\\s\\S])*\\*/\\n)?export function ${fn}\\([^;]*;\\n`).exec(verifierDts);
    if (!m) die(`the verifier module declares no ${fn}`);
    if (!/\): Promise<[^;]+>;\n$/.test(m[0])) die(`${fn} must return a Promise: ${m[0]}`);
    return m[0];
  })
  .join('\n');
const verifierExtra = read(join(tpl, 'verifier-extra.d.ts'));

/** Public declarations of an entry: the glue's, plus the verifier functions, the online method
 * (an augmentation of the glue's DataPilot) and the entry's own extras. */
function entryTypes(glueFile, extra) {
  const extras = `${verifierDecls}\n${extra}\n${verifierExtra.replaceAll('GLUE', glueFile)}`;
  // The type names the added declarations use, imported from the glue (tsify's, from Rust).
  const glueDts = read(join(out, glueFile.replace(/^\.\//, '').replace(/\.js$/, '.d.ts').replace(/\.mjs$/, '.d.mts').replace(/\.cjs$/, '.d.cts')));
  const declared = new Set([...glueDts.matchAll(/^export (?:interface|type|class|declare class) (\w+)/gm)].map((m) => m[1]));
  const code = extras.replace(/\/\*[\s\S]*?\*\//g, '');
  const own = new Set([...code.matchAll(/\b(?:interface|class) (\w+)/g)].map((m) => m[1]));
  const used = [...new Set(code.match(/\b[A-Z]\w*\b/g))].filter((n) => declared.has(n) && !own.has(n)).sort();
  return `${banner}export * from '${glueFile}';\nimport type { ${used.join(', ')} } from '${glueFile}';\n\n${extras}`;
}

const nodeExtra = read(join(tpl, 'node-extra.d.ts'));
const banner = '// @animus/datapilot: declarations generated from the Rust crate (see the package README).\n';
for (const [file, glueFile] of [['index.node.d.mts', './dist/node.mjs'], ['index.node.d.cts', './dist/node.cjs']]) {
  writeFileSync(join(out, file), entryTypes(glueFile, nodeExtra));
}
writeFileSync(join(out, 'index.web.d.ts'), entryTypes('./dist/web.js', read(join(tpl, 'web-extra.d.ts'))));

const pkg = JSON.parse(read(join(tpl, 'package.json')));
pkg.version = version;
// The CLI's runtime dependencies (cli-progress and what it needs) ship inside the tarball
// (`bundleDependencies`), copied from this repository's node_modules (versions pinned by
// package-lock.json): installing the package then needs no registry, which is what air-gapped
// sites and `npm install --offline` of the tarball (tests/js/run.mjs) have.
const bundled = new Map();
function bundle(name, fromDir) {
  // Node's resolution: the requiring package's own node_modules first, then the top level.
  const nested = join(fromDir, 'node_modules', name);
  if (fromDir !== root && existsSync(nested)) return; // copied along with its parent directory
  const dir = join(root, 'node_modules', name);
  if (!existsSync(join(dir, 'package.json'))) die(`dependency ${name} is not installed: run npm ci (./x setup)`);
  if (bundled.has(name)) return;
  bundled.set(name, dir);
  for (const dep of Object.keys(JSON.parse(read(join(dir, 'package.json'))).dependencies ?? {})) bundle(dep, dir);
}
for (const dep of Object.keys(pkg.dependencies ?? {})) bundle(dep, root);
for (const [name, dir] of bundled) cpSync(dir, join(out, 'node_modules', name), { recursive: true });
pkg.bundleDependencies = Object.keys(pkg.dependencies ?? {});
writeFileSync(join(out, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);

// ---- checks -----------------------------------------------------------------------------------
// No `any` in the public API (comments aside).
for (const f of ['dist/web.d.ts', 'dist/node.d.mts', 'dist/node.d.cts', 'index.node.d.mts', 'index.node.d.cts', 'index.web.d.ts']) {
  const code = read(join(out, f))
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '');
  const m = /\bany\b/.exec(code);
  if (m) die(`${f} declares \`any\`: ...${code.slice(Math.max(0, m.index - 80), m.index + 20)}...`);
}
const gzip = (b) => execFileSync('gzip', ['-9c'], { input: b, maxBuffer: 64 << 20 }).length;
const [core, ver] = [wasm.core, wasm.verifier].map((b) => ({ raw: b.length, gz: gzip(b) }));
process.stdout.write(
  `pkg/ @animus/datapilot ${version}: core wasm ${core.raw} bytes (${core.gz} gzip), ` +
    `verifier wasm ${ver.raw} bytes (${ver.gz} gzip, loaded on first verification), ` +
    `total ${core.raw + ver.raw} (${core.gz + ver.gz} gzip)\n`,
);

if (process.argv.includes('--pack')) {
  const tgz = execFileSync('npm', ['pack', '--silent', '--pack-destination', join(root, 'target')], {
    cwd: out,
    encoding: 'utf8',
  }).trim().split('\n').pop();
  process.stdout.write(`${join(root, 'target', tgz)}\n`);
}
