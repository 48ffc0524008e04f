#!/usr/bin/env node
// The bundler matrix: the packed npm package, installed into a fresh project as a dashboard
// team would (`npm install the.tgz`, nothing changed by hand), built by each bundler a dashboard
// uses (Vite, webpack 5, esbuild, Rollup 4; versions pinned in package.json here) into a tiny
// dashboard (app/), then driven in Debian's Chromium against the live reference server on
// another origin (CORS allowed for the page's origin): before init() a typed `not_initialised`
// error, whoAmI, the latest runs newest first, hashing a Blob, verifying an evidence bundle
// (the verifier module found at run time), the same SDK in a Web Worker, and a server that does
// not allow the page's origin answering with a transport error that says CORS. A Node-only
// TypeScript project (lib es2022 + @types/node, no DOM) compiles against the Node typings.
//
//   node tests/bundlers/run.mjs TARBALL.tgz     (./x test: stage bundler-matrix; the bundlers
//                                               are installed by ./x into tests/bundlers/node_modules)
//   DATAPILOT_SERVER_BIN  server binary (default target/debug/datapilot-server)
//   CHROMIUM              browser (default /usr/bin/chromium)
//   BUNDLERS              comma-separated subset (default vite,webpack,esbuild,rollup)
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createHash } from 'node:crypto';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const tarball = process.env.DATAPILOT_TARBALL ? resolve(process.env.DATAPILOT_TARBALL) : undefined;
const SERVER_BIN = resolve(process.env.DATAPILOT_SERVER_BIN ?? join(repo, 'target', 'debug', 'datapilot-server'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const BUNDLERS = (process.env.BUNDLERS || 'vite,webpack,esbuild,rollup').split(',');
const ADMIN_TOKEN = `dpt_bundlers${'0'.repeat(20)}`;
const fromHere = createRequire(join(here, 'package.json'));
const load = (name) => import(pathToFileURL(fromHere.resolve(name)));
const { chromium } = createRequire(join(repo, 'package.json'))('playwright-core');

let project; // the dashboard project: package.json, node_modules/@animus/datapilot, src/, out/
let server; // { url, child }
let site; // { url, close }

// ---- the project ------------------------------------------------------------------------------

function installProject() {
  assert.ok(tarball && existsSync(tarball), `DATAPILOT_TARBALL ${tarball} not found (./x pkg --pack)`);
  project = mkdtempSync(join(tmpdir(), 'datapilot-bundlers-'));
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'dashboard', private: true, type: 'module', dependencies: { '@animus/datapilot': `file:${tarball}` } }),
  );
  // The tarball carries its dependencies (bundleDependencies): no registry needed.
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', '--offline'], { cwd: project, stdio: 'inherit' });
  cpSync(join(here, 'app'), join(project, 'src'), { recursive: true });
}

/** index.html for the bundlers that do not process HTML: the built entry as a module script. */
function page(outDir, script) {
  writeFileSync(
    join(outDir, 'index.html'),
    readFileSync(join(here, 'app', 'index.html'), 'utf8').replace('./dashboard.js', script),
  );
}

const builds = {
  async vite(outDir) {
    const { build } = await load('vite');
    const warnings = [];
    await build({
      root: join(project, 'src'),
      base: './',
      configFile: false,
      logLevel: 'silent',
      customLogger: { info() {}, warn: (m) => warnings.push(m), warnOnce: (m) => warnings.push(m), error: (m) => warnings.push(m), clearScreen() {}, hasWarned: false, hasErrorLogged: () => false },
      // Vite bundles workers as IIFE by default, which cannot hold the package's lazily
      // imported verifier; module workers (what the dashboard creates) take ES output.
      worker: { format: 'es' },
      build: { outDir, emptyOutDir: true, chunkSizeWarningLimit: 4096 },
    });
    return warnings;
  },
  async webpack(outDir) {
    const { default: webpack } = await load('webpack');
    const stats = await new Promise((ok, fail) =>
      webpack(
        {
          mode: 'production',
          context: join(project, 'src'),
          entry: { dashboard: './dashboard.js' },
          output: { path: outDir, filename: '[name].js', clean: true },
          performance: { hints: false },
        },
        (err, s) => (err ? fail(err) : ok(s)),
      ),
    );
    const info = stats.toJson({ all: false, errors: true, warnings: true });
    if (stats.hasErrors()) throw new Error(info.errors.map((e) => e.message).join('\n'));
    page(outDir, './dashboard.js');
    return info.warnings.map((w) => w.message);
  },
  async esbuild(outDir) {
    const esbuild = await load('esbuild');
    const r = await esbuild.build({
      entryPoints: [join(project, 'src', 'dashboard.js'), join(project, 'src', 'worker.js')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      outdir: outDir,
      logLevel: 'silent',
    });
    page(outDir, './dashboard.js');
    return [...r.errors, ...r.warnings].map((w) => w.text);
  },
  async rollup(outDir) {
    const { rollup } = await load('rollup');
    const { default: nodeResolve } = await load('@rollup/plugin-node-resolve');
    const warnings = [];
    const bundle = await rollup({
      input: [join(project, 'src', 'dashboard.js'), join(project, 'src', 'worker.js')],
      plugins: [nodeResolve({ browser: true })],
      onwarn: (w) => warnings.push(w.message),
    });
    await bundle.write({ dir: outDir, format: 'es' });
    await bundle.close();
    page(outDir, './dashboard.js');
    return warnings;
  },
};

// ---- the servers ------------------------------------------------------------------------------

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.zip': 'application/zip' };

/** A static server for project/out with a strict CSP (self, the API server, wasm allowed). */
function startSite(root, apiOrigin) {
  const http = createServer((req, res) => {
    const rel = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^([/\\])+/, '');
    let file = join(root, rel);
    if (!file.startsWith(root + sep) && file !== root) return res.writeHead(403).end();
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!existsSync(file)) return res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-security-policy': `default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' ${apiOrigin} http://localhost:*; worker-src 'self'`,
      'cache-control': 'no-store',
    });
    res.end(readFileSync(file));
  });
  return new Promise((ok) =>
    http.listen(0, '127.0.0.1', () => ok({ url: `http://127.0.0.1:${http.address().port}`, port: http.address().port, close: () => http.close() })),
  );
}

async function startApi(corsOrigin) {
  const dataDir = join(project, 'data');
  const child = spawn(SERVER_BIN, ['--data-dir', dataDir, '--listen', '127.0.0.1:0', '--cors-origins', corsOrigin, '--log', 'warn'], {
    env: { ...process.env, DATAPILOT_BOOTSTRAP_TOKEN: ADMIN_TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const url = await new Promise((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`server did not start: ${stderr}`)), 30_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
    child.on('exit', (code) => fail(new Error(`server exited ${code}: ${stderr}`)));
  });
  return { url, child };
}

/** Data for the dashboard, through the package's Node entry: three runs and a run's bundle. */
async function seed() {
  const sdk = await import(pathToFileURL(join(project, 'node_modules', '@animus', 'datapilot', 'index.node.mjs')));
  const dp = new sdk.DataPilot({ baseUrl: server.url, token: ADMIN_TOKEN });
  const ds = await dp.createDataset({ name: 'bundler-matrix' });
  const files = [{ path: 'a.csv', sha256: 'ab'.repeat(32), size: 1 }];
  const d = { digest: sdk.datasetDigest(files), files };
  await dp.registerDatasetVersion(ds.id, d);
  let last;
  for (const name of ['first', 'second', 'third']) {
    const run = await dp.createRun({
      name,
      inputs: [{ dataset_id: ds.id, digest: d.digest }],
      git_commit: 'c'.repeat(40),
      image_digest: `sha256:${'d'.repeat(64)}`,
    });
    await run.finish({ status: 'succeeded' });
    last = run.runId;
  }
  const bundle = await dp.exportRunEvidence(last);
  const keys = (await dp.listVerifierKeys()).keys.map((k) => k.verifier);
  return { bundle, keys };
}

// ---- the tests --------------------------------------------------------------------------------

let browser;
let data;

before(async () => {
  installProject();
  mkdirSync(join(project, 'out'), { recursive: true });
  // The site's port first: the API server allows exactly that origin.
  site = await startSite(join(project, 'out'), 'http://127.0.0.1:*');
  server = await startApi(site.url);
  data = await seed();
  writeFileSync(join(project, 'out', 'bundle.zip'), data.bundle);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-dev-shm-usage'],
  });
});

after(async () => {
  await browser?.close();
  site?.close();
  if (server) {
    server.child.kill('SIGTERM');
    await new Promise((r) => (server.child.exitCode !== null ? r() : server.child.on('exit', r)));
  }
  if (project && !process.env.KEEP_TEST_PROJECT) rmSync(project, { recursive: true, force: true });
  else if (project) console.error(`kept ${project}`);
});

for (const name of BUNDLERS) {
  test(`${name}: builds the dashboard from the packed package without a warning, and it runs in Chromium`, { timeout: 240_000 }, async () => {
    const outDir = join(project, 'out', name);
    const warnings = await builds[name](outDir);
    assert.deepEqual(warnings, [], `${name} warned`);

    const pageUrl = new URL(`${site.url}/${name}/index.html`);
    pageUrl.search = new URLSearchParams({
      server: server.url,
      token: ADMIN_TOKEN,
      bundle: `${site.url}/bundle.zip`,
      keys: JSON.stringify(data.keys),
      // Same host, another port: another origin the API server does not allow.
      foreign: `http://localhost:${site.port}`,
    }).toString();
    const ctx = await browser.newContext();
    const errors = [];
    const requests = [];
    try {
      const p = await ctx.newPage();
      p.on('pageerror', (e) => errors.push(e.message));
      ctx.on('response', (r) => requests.push({ url: r.url(), status: r.status() }));
      await p.goto(pageUrl.href);
      await p.waitForSelector('body:not([data-state="running"])', { timeout: 120_000 });
      const state = await p.getAttribute('body', 'data-state');
      const out = JSON.parse(await p.textContent('#result'));
      assert.equal(state, 'done', `dashboard failed: ${JSON.stringify(out)}`);

      assert.equal(out.beforeInit.isDataPilotError, true, JSON.stringify(out.beforeInit));
      assert.equal(out.beforeInit.name, 'DataPilotError');
      assert.equal(out.beforeInit.kind, 'init');
      assert.equal(out.beforeInit.code, 'not_initialised');
      assert.match(out.beforeInit.message, /call `await init\(\)`/);
      assert.equal(out.whoAmI.role, 'admin');
      assert.equal(out.digest, createHash('sha256').update('dashboard\n').digest('hex'));
      assert.equal(out.verified, true, 'the bundle verified (the verifier module was found)');
      assert.deepEqual(out.worker, { role: 'admin', digest: out.digest }, 'the SDK in a Web Worker');
      assert.equal(out.foreign.isDataPilotError, true, JSON.stringify(out.foreign));
      assert.equal(out.foreign.code, 'transport_error');
      assert.match(out.foreign.message, /cross-origin request from http:\/\/127\.0\.0\.1:\d+ to http:\/\/localhost:\d+.*CORS/);
      assert.deepEqual(errors, []);
      assert.deepEqual(out.runs, ['third', 'second', 'first'], 'runs newest first');
      // Both wasm modules (page: core + verifier; worker: core) came from the files the
      // bundler emitted (Vite, webpack), or from the package's inlined copies after the file
      // next to the bundle was missing (esbuild, Rollup: they copy no .wasm).
      const wasm = requests.filter((r) => r.url.endsWith('.wasm')).map((r) => `${r.status} ${r.url.slice(site.url.length)}`);
      console.log(`${name}: wasm requests ${JSON.stringify(wasm)}`);
      const emits = name === 'vite' || name === 'webpack';
      assert.equal(wasm.length, 3, JSON.stringify(wasm));
      for (const w of wasm) assert.match(w, emits ? /^200 / : /^404 .*\/dist\/(datapilot|verifier)_bg\.wasm$/);
    } finally {
      await ctx.close();
    }
  });
}

test('a Node-only TypeScript project (lib es2022 + @types/node, no DOM) compiles against the package', () => {
  const dir = join(project, 'node-ts');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'main.ts'),
    [
      "import { DataPilot, hashDirectory, isDataPilotError, verifyEvidenceBundle } from '@animus/datapilot';",
      "const dp = new DataPilot({ baseUrl: 'http://127.0.0.1:1', token: 'dpt_x' });",
      'async function main(): Promise<void> {',
      "  const d = await hashDirectory('.');",
      '  const me = await dp.whoAmI();',
      '  const r = await verifyEvidenceBundle(new Uint8Array(0), { trustedKeys: [] });',
      '  console.log(d.digest, me.role, r.ok);',
      '}',
      'main().catch((e: unknown) => { if (isDataPilotError(e)) console.log(e.code); });',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'es2022',
        lib: ['es2022'],
        module: 'nodenext',
        moduleResolution: 'nodenext',
        strict: true,
        noEmit: true,
        types: ['node'],
        typeRoots: [join(here, 'node_modules', '@types')],
      },
      files: ['main.ts'],
    }),
  );
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', dir], { cwd: dir, encoding: 'utf8' });
  } catch (e) {
    assert.fail(`tsc (lib es2022 + @types/node) failed:\n${e.stdout}${e.stderr}`);
  }
});
