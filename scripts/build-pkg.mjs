#!/usr/bin/env node
// Assembles the npm package @animus/datapilot in pkg/ from pkg-templates/ and the wasm-bindgen
// outputs of `./x wasm` (target/wasm-bindgen/{web,nodejs,experimental-nodejs-module}).
//
//   node scripts/build-pkg.mjs [--pack]      (`./x pkg` runs `./x wasm` first, then this)
//
// Layout: one wasm binary (dist/datapilot_bg.wasm, shared: wasm-bindgen emits the same bytes
// for the three targets, checked here) and three glue modules next to it: dist/web.js
// (browsers, workers, bundlers), dist/node.mjs (Node ESM), dist/node.cjs (Node CommonJS).
// Thin entries add init() and the Node-only helpers. The TypeScript comes from wasm-bindgen
// (classes, functions) and tsify (models); this script only renames, adds the entries' few
// declarations and refuses to ship an `any`.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
const wasm = {};
for (const [k, t] of Object.entries(targets)) {
  try {
    wasm[k] = readFileSync(join(bg, t, 'datapilot_bg.wasm'));
  } catch {
    die(`missing ${join(bg, t)}: run ./x wasm first`);
  }
}
if (!wasm.web.equals(wasm.nodejs) || !wasm.web.equals(wasm.esm)) {
  die('wasm-bindgen produced different wasm for web and Node targets; cannot share one binary');
}
const cargo = read(join(root, 'Cargo.toml'));
const version = /\[package\][^[]*?\nversion\s*=\s*"([^"]+)"/.exec(cargo)?.[1];
if (!version) die('no [package] version in Cargo.toml');

// ---- output ---------------------------------------------------------------------------------
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'dist'), { recursive: true });
mkdirSync(join(out, 'bin'), { recursive: true });
writeFileSync(join(out, 'dist', 'datapilot_bg.wasm'), wasm.web);

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
  writeFileSync(join(out, 'dist', dts), types);
}
glue('web', 'web.js', 'web.d.ts');
glue('experimental-nodejs-module', 'node.mjs', 'node.d.mts');
glue('nodejs', 'node.cjs', 'node.d.cts');

const nodeApi = read(join(tpl, 'node-api.js'));
writeFileSync(join(out, 'node-api.mjs'), `${nodeApi}\nexport { makeNodeApi };\n`);
writeFileSync(join(out, 'node-api.cjs'), `'use strict';\n${nodeApi}\nmodule.exports = { makeNodeApi };\n`);

for (const f of ['index.node.mjs', 'index.node.cjs', 'index.web.js', 'README.md']) {
  copyFileSync(join(tpl, f), join(out, f));
}
copyFileSync(join(tpl, 'bin', 'datapilot.mjs'), join(out, 'bin', 'datapilot.mjs'));
chmodSync(join(out, 'bin', 'datapilot.mjs'), 0o755);

const nodeExtra = read(join(tpl, 'node-extra.d.ts'));
const banner = '// @animus/datapilot: declarations generated from the Rust crate (see the package README).\n';
for (const [file, glueFile] of [['index.node.d.mts', './dist/node.mjs'], ['index.node.d.cts', './dist/node.cjs']]) {
  writeFileSync(
    join(out, file),
    `${banner}export * from '${glueFile}';\nimport type { DatasetDigest, HashProgress } from '${glueFile}';\n\n${nodeExtra}`,
  );
}
writeFileSync(
  join(out, 'index.web.d.ts'),
  `${banner}export * from './dist/web.js';\nimport type { InitInput } from './dist/web.js';\n\n${read(join(tpl, 'web-extra.d.ts'))}`,
);

const pkg = JSON.parse(read(join(tpl, 'package.json')));
pkg.version = version;
writeFileSync(join(out, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);

// ---- checks -----------------------------------------------------------------------------------
// No `any` in the public API (comments aside).
for (const f of ['dist/web.d.ts', 'dist/node.d.mts', 'dist/node.d.cts', 'index.node.d.mts', 'index.web.d.ts']) {
  const code = read(join(out, f))
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '');
  const m = /\bany\b/.exec(code);
  if (m) die(`${f} declares \`any\`: ...${code.slice(Math.max(0, m.index - 80), m.index + 20)}...`);
}
const size = wasm.web.length;
const gz = execFileSync('gzip', ['-9c'], { input: wasm.web, maxBuffer: 64 << 20 }).length;
process.stdout.write(`pkg/ @animus/datapilot ${version}: wasm ${size} bytes (${gz} gzip)\n`);

if (process.argv.includes('--pack')) {
  const tgz = execFileSync('npm', ['pack', '--silent', '--pack-destination', join(root, 'target')], {
    cwd: out,
    encoding: 'utf8',
  }).trim().split('\n').pop();
  process.stdout.write(`${join(root, 'target', tgz)}\n`);
}
