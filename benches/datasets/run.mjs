// Real-size datasets (issue 10), measured against their peers in the same run:
//
// 1. Directory digests of many small files: the npm package's hashDirectory (what the CLI
//    runs) against the coreutils recipe of docs/formats.md, on the same warm tree.
// 2. The same trees dropped as a folder onto the demo page in Debian's Chromium (what a
//    browser user does): time from the drop to the digest on screen, against coreutils again.
// 3. Registering 1.3 million files through the npm package against the release server: wall
//    time, client peak RSS and server peak RSS.
//
// Usage (after `./x pkg` and `cargo build --release -p datapilot-server`):
//   node benches/datasets/run.mjs [trees|chromium|register|all]
// (chromium also needs `./x site` and Debian's chromium; playwright-core from the root
// node_modules, installed by ./x test)
// DP_BENCH_TREES=150000x64,150000x1024,1000000x64,1000000x1024 picks the trees (files x bytes);
// DP_BENCH_DIR (default: the OS temp dir) is where they are written (1M x 1 KiB is ~5 GB of
// disk with inodes). Trees are kept in DP_BENCH_DIR between runs (creating 1M files takes
// minutes); delete them yourself.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dp = await import(pathToFileURL(join(repo, 'pkg', 'index.node.mjs')));
const what = process.argv[2] ?? 'all';
const base = process.env.DP_BENCH_DIR ?? join(tmpdir(), 'datapilot-bench-trees');

function tree(files, bytes) {
  const root = join(base, `${files}x${bytes}`);
  if (existsSync(join(root, '.complete'))) return root;
  const folders = Math.max(1, Math.round(files / 500));
  process.stderr.write(`creating ${files} files of ${bytes} B in ${folders} folders under ${root} ...\n`);
  for (let d = 0; d < folders; d++) mkdirSync(join(root, 'data', `d${d}`), { recursive: true });
  const pad = Buffer.alloc(bytes, 0x61);
  for (let i = 0; i < files; i++) {
    const b = Buffer.from(pad);
    b.write(`${i}\n`);
    writeFileSync(join(root, 'data', `d${i % folders}`, `f${i}.bin`), b);
  }
  writeFileSync(join(root, '.complete'), '');
  return root;
}

const time = async (f) => {
  const t0 = process.hrtime.bigint();
  const r = await f();
  return [Number(process.hrtime.bigint() - t0) / 1e9, r];
};

function coreutils(root) {
  // .complete is the bench's own marker: left out so both sides hash the same files.
  return execFileSync('sh', ['-c', `cd "$1" && find data -type f -printf '%p\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum`, 'sh', root], { encoding: 'utf8', maxBuffer: 1 << 30 }).split(' ')[0];
}

async function trees() {
  const specs = (process.env.DP_BENCH_TREES ?? '150000x64,150000x1024').split(',');
  console.log('| files | bytes each | coreutils s | hashDirectory s | ratio (≤ 1.0 is the goal) | same id |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const spec of specs) {
    const [files, bytes] = spec.split('x').map(Number);
    const root = tree(files, bytes);
    // The dataset is `data/` (the bench's marker file sits beside it).
    const dir = join(root, 'data');
    coreutils(root); // warm the page cache for both
    const runs = 3;
    let cu = Infinity;
    let nd = Infinity;
    let a;
    let b;
    for (let i = 0; i < runs; i++) {
      let t;
      [t, a] = await time(() => coreutils(root));
      cu = Math.min(cu, t);
      [t, b] = await time(() => dp.hashDirectory(dir));
      nd = Math.min(nd, t);
    }
    // coreutils hashed paths starting `data/`; the package hashed paths below `data/`: compare
    // the package's id with coreutils run inside data/ once.
    const inside = execFileSync('sh', ['-c', `cd "$1" && find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum`, 'sh', dir], { encoding: 'utf8', maxBuffer: 1 << 30 }).split(' ')[0];
    console.log(`| ${files} | ${bytes} | ${cu.toFixed(2)} | ${nd.toFixed(2)} | ${(nd / cu).toFixed(2)} | ${`sha256:${inside}` === b.digest ? 'yes' : 'NO'} |`);
    void a;
  }
}

async function chromiumTrees() {
  const { chromium } = await import(pathToFileURL(join(repo, 'node_modules', 'playwright-core', 'index.mjs')));
  const bin = process.env.DATAPILOT_SERVER_BIN ?? join(repo, 'target', 'release', 'datapilot-server');
  const srv = await startServer(bin, ['--static-dir', join(repo, 'target', 'site')]);
  const profile = join(base, `chromium-${process.pid}`);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${srv.url}/`);
    const cdp = await context.newCDPSession(page);
    const zone = page.locator('#drop-dir');
    // A real folder drop through CDP, as tests/e2e/tree.test.mjs does: Chromium reads the
    // directory itself; the clock stops when the page shows the digest.
    const drop = async (dir) => {
      await zone.scrollIntoViewIfNeeded();
      const box = await zone.boundingBox();
      await page.evaluate(() => document.querySelector('#digest-out').replaceChildren());
      const t0 = process.hrtime.bigint();
      for (const type of ['dragEnter', 'dragOver', 'drop']) {
        await cdp.send('Input.dispatchDragEvent', { type, x: box.x + box.width / 2, y: box.y + box.height / 2, data: { items: [], files: [dir], dragOperationsMask: 1 } });
      }
      const done = page.locator('#digest-out .msg.ok');
      await done.waitFor({ timeout: 3_600_000 });
      return [Number(process.hrtime.bigint() - t0) / 1e9, await done.textContent()];
    };
    // A directory pick (<input webkitdirectory>), set through CDP the way a user's choice is.
    const pick = async (dir) => {
      await page.evaluate(() => document.querySelector('#digest-out').replaceChildren());
      const t0 = process.hrtime.bigint();
      await page.setInputFiles('#dir-input', dir, { timeout: 0 });
      const done = page.locator('#digest-out .msg.ok');
      await done.waitFor({ timeout: 3_600_000 });
      return [Number(process.hrtime.bigint() - t0) / 1e9, await done.textContent()];
    };
    const specs = (process.env.DP_BENCH_TREES ?? '150000x64,150000x1024').split(',');
    console.log('| files | bytes each | coreutils s | Chromium pick s | ratio | Chromium drop s | ratio | same id |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const spec of specs) {
      const [files, bytes] = spec.split('x').map(Number);
      const root = tree(files, bytes);
      const dir = join(root, 'data');
      coreutils(root);
      const [cu, id] = await time(() => execFileSync('sh', ['-c', `cd "$1" && find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum`, 'sh', dir], { encoding: 'utf8', maxBuffer: 1 << 30 }).split(' ')[0]);
      const [tp, picked] = await pick(dir);
      const [t, text] = await drop(dir);
      const same = text.includes(`sha256:${id}`) && picked.includes(`sha256:${id}`);
      console.log(`| ${files} | ${bytes} | ${cu.toFixed(2)} | ${tp.toFixed(2)} | ${(tp / cu).toFixed(2)} | ${t.toFixed(2)} | ${(t / cu).toFixed(2)} | ${same ? 'yes' : 'NO'} |`);
    }
    await cdp.detach();
  } finally {
    await Promise.race([context.close(), new Promise((r) => setTimeout(r, 10_000).unref())]);
    srv.child.kill('SIGTERM');
    await new Promise((r) => srv.child.on('exit', r));
    execFileSync('rm', ['-rf', srv.dataDir, profile]);
  }
}

async function startServer(bin, extra = []) {
  const dataDir = join(base, `server-${process.pid}`);
  const child = spawn(bin, ['--data-dir', dataDir, '--listen', '127.0.0.1:0', ...extra], {
    env: { ...process.env, DATAPILOT_BOOTSTRAP_TOKEN: 'dpt_benchAdminToken0123456789', DATAPILOT_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise((ok, fail) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) ok(m[1]);
    });
    child.on('exit', (c) => fail(new Error(`server exited ${c}`)));
  });
  return { url, child, dataDir };
}

const hwm = (pid) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;

async function register() {
  const bin = process.env.DATAPILOT_SERVER_BIN ?? join(repo, 'target', 'release', 'datapilot-server');
  const n = Number(process.env.DP_BENCH_FILES ?? 1_300_000);
  const srv = await startServer(bin);
  try {
    const admin = new dp.DataPilot({ baseUrl: srv.url, token: 'dpt_benchAdminToken0123456789' });
    const files = new Array(n);
    const lines = [];
    for (let i = 0; i < n; i++) {
      const sha256 = createHash('sha256').update(`bench/${i}`).digest('hex');
      files[i] = { path: `train/n${String(i % 1000).padStart(8, '0')}/img_${i}.JPEG`, sha256, size: 100_000 + i };
    }
    const sorted = files.map((f) => f.path).sort();
    const byPath = new Map(files.map((f) => [f.path, f.sha256]));
    const h = createHash('sha256');
    for (const p of sorted) h.update(`${byPath.get(p)}  ${p}\n`);
    const digest = `sha256:${h.digest('hex')}`;
    void lines;
    const ds = await admin.createDataset({ name: 'bench' });
    const serverBefore = hwm(srv.child.pid);
    const [t, reg] = await time(() => admin.registerDatasetVersion(ds.id, { digest, files }));
    const [tRead, count] = await time(async () => {
      let k = 0;
      for await (const f of admin.listDatasetVersionFiles(ds.id, digest, { limit: 10_000 })) k += f ? 1 : 0;
      return k;
    });
    console.log('| files | register s (goal < 60) | read back s | client peak RSS MiB | server peak RSS MiB (goal < 512) | server RSS before MiB |');
    console.log('| --- | --- | --- | --- | --- | --- |');
    console.log(`| ${reg.version.file_count} | ${t.toFixed(1)} | ${tRead.toFixed(1)} (${count} files) | ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} | ${(hwm(srv.child.pid) / 1048576).toFixed(0)} | ${(serverBefore / 1048576).toFixed(0)} |`);
  } finally {
    srv.child.kill('SIGTERM');
    await new Promise((r) => srv.child.on('exit', r));
    execFileSync('rm', ['-rf', srv.dataDir]);
  }
}

if (what === 'trees' || what === 'all') await trees();
if (what === 'chromium' || what === 'all') await chromiumTrees();
if (what === 'register' || what === 'all') await register();
