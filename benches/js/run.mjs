#!/usr/bin/env node
// Benchmarks of the npm package (pkg/, built by `./x pkg`). Every line is a ratio measured in
// this one run, so machine noise cancels out. `./x bench` builds and runs them; results go to
// BENCHMARKS.md by hand. Env: DP_BENCH_MIB (directory size, default 1024), DATAPILOT_SERVER_BIN,
// DATAPILOT_SITE_DIR (default target/site), CHROMIUM (default /usr/bin/chromium), DP_BENCH_ONLY.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dp = await import(pathToFileURL(join(repo, 'pkg', 'index.node.mjs')));
const { createSHA256 } = await import('hash-wasm');
const { sha256: nobleSha256 } = await import('@noble/hashes/sha2.js');

// DP_BENCH_ONLY=hash,dir,merkle,latency,browser runs only the named sections.
const only = process.env.DP_BENCH_ONLY?.split(',');
const want = (name) => !only || only.includes(name);

const rows = [];
const row = (what, ours, peer, unit, note = '') => {
  rows.push({ what, ours, peer, unit, note });
  console.error(`${what}: ${ours.toFixed(1)} vs ${peer.toFixed(1)} ${unit} ${note}`);
};
/** The bench's admin token (a fresh server bootstraps with it). */
const TOKEN = 'dpt_benchAdminToken0123456789';

/** Starts the release reference server on 127.0.0.1 with a temp data dir: `{ url, stop }`. */
async function startServer(extraArgs = []) {
  const bin = resolve(process.env.DATAPILOT_SERVER_BIN ?? join(repo, 'target', 'release', 'datapilot-server'));
  const data = mkdtempSync(join(tmpdir(), 'dp-bench-srv-'));
  const child = spawn(bin, ['--data-dir', data, '--listen', '127.0.0.1:0', ...extraArgs], {
    env: { ...process.env, DATAPILOT_BOOTSTRAP_TOKEN: TOKEN, DATAPILOT_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const stop = () => {
    child.kill();
    rmSync(data, { recursive: true, force: true });
  };
  const url = await new Promise((res, rej) => {
    let out = '';
    child.on('error', rej);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (\S+)/.exec(out);
      if (m) res(m[1]);
    });
  }).catch((e) => {
    stop();
    throw e;
  });
  return { url, stop };
}

const time = async (fn, reps = 3) => {
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t);
  }
  return best;
};

// ---- 1. streaming SHA-256 of 256 MiB in 4 MiB chunks: wasm (the browser path) vs peers -------
// Two comparisons, each like with like: the browser path (a Blob read in 4 MiB slices, two reads
// in flight while hashing) against hash-wasm reading the same Blob the same way, and
// the compute alone (bytes already in memory) against every peer.
if (want('hash')) {
  const chunk = randomBytes(4 << 20);
  const n = 64;
  const mib = (n * chunk.length) / (1 << 20);
  const blob = new Blob(Array.from({ length: n }, () => chunk));
  const hw = await createSHA256();
  // The peer reads like hashBlob does: 4 MiB slices, two reads in flight.
  const hashWasmBlob = async () => {
    const cs = 4 << 20;
    hw.init();
    const pending = [];
    let requested = 0;
    const more = () => {
      pending.push(blob.slice(requested, requested + cs).arrayBuffer());
      requested += cs;
    };
    while (pending.length < 2 && requested < blob.size) more();
    while (pending.length) {
      const buf = await pending.shift();
      if (requested < blob.size) more();
      hw.update(new Uint8Array(buf));
    }
    return hw.digest();
  };
  // Interleaved repetitions in a random order, median of each: both sides see the same machine.
  const runs = { ours: [], peer: [] };
  const sides = { ours: () => dp.hashBlob(blob), peer: hashWasmBlob };
  let digests = {};
  for (let i = 0; i < 9; i++) {
    for (const k of Math.random() < 0.5 ? ['ours', 'peer'] : ['peer', 'ours']) {
      const t = performance.now();
      const out = await sides[k]();
      runs[k].push(performance.now() - t);
      digests = { ...digests, [k]: typeof out === 'string' ? out : out.sha256 };
    }
  }
  const mid = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  const blobMs = { ours: mid(runs.ours), peer: mid(runs.peer) };
  if (digests.ours !== digests.peer) throw new Error('Blob digests differ');
  const ourStream = await time(() => {
    const b = new dp.DigestBuilder();
    b.beginFile('f');
    for (let i = 0; i < n; i++) b.update(chunk);
    b.endFile();
    b.free();
  });
  const hashWasm = await time(() => {
    hw.init();
    for (let i = 0; i < n; i++) hw.update(chunk);
    hw.digest();
  });
  const noble = await time(() => {
    const h = nobleSha256.create();
    for (let i = 0; i < n; i++) h.update(chunk);
    h.digest();
  }, 1);
  const nodeCrypto = await time(() => {
    const h = createHash('sha256');
    for (let i = 0; i < n; i++) h.update(chunk);
    h.digest();
  });
  const mbs = (ms) => mib / (ms / 1000);
  row('SHA-256 of a Blob (4 MiB slices, read-ahead): wasm hashBlob vs hash-wasm, same reads', mbs(blobMs.ours), mbs(blobMs.peer), 'MiB/s');
  row('SHA-256 wasm hashBlob (Blob slices) vs hash-wasm on bytes in memory', mbs(blobMs.ours), mbs(hashWasm), 'MiB/s');
  row('SHA-256 wasm DigestBuilder.update vs hash-wasm', mbs(ourStream), mbs(hashWasm), 'MiB/s');
  row('SHA-256 wasm DigestBuilder.update vs @noble/hashes', mbs(ourStream), mbs(noble), 'MiB/s');
  row('SHA-256 wasm DigestBuilder.update vs node:crypto (for reference)', mbs(ourStream), mbs(nodeCrypto), 'MiB/s');
}

// ---- 2. directory hashing (Node entry) vs sha256sum on the same files -------------------------
if (want('dir')) {
  const total = Number(process.env.DP_BENCH_MIB ?? 1024);
  const dir = mkdtempSync(join(tmpdir(), 'dp-bench-'));
  try {
    const files = 64;
    const per = Math.floor((total << 20) / files);
    for (let i = 0; i < files; i++) {
      mkdirSync(join(dir, `d${i % 8}`), { recursive: true });
      writeFileSync(join(dir, `d${i % 8}`, `f${i}.bin`), randomBytes(per));
    }
    const recipe = "find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum";
    const sum = () => execFileSync('bash', ['-c', recipe], { cwd: dir, encoding: 'utf8' }).slice(0, 64);
    const expected = sum(); // also warms the page cache
    const ours = await time(async () => {
      const d = await dp.hashDirectory(dir);
      if (d.digest !== `sha256:${expected}`) throw new Error('digest mismatch');
    });
    const peer = await time(() => sum());
    row(`directory ${total} MiB / ${files} files: hashDirectory vs sha256sum recipe`, ours, peer, 'ms', '(lower is better)');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- 3. Merkle root of 1M leaves: wasm vs node:crypto from JS ----------------------------------
if (want('merkle')) {
  const n = 1 << 20;
  const leaves = randomBytes(32 * n);
  const jsRoot = () => {
    // RFC 9162: MTH over leaf hashes, split at the largest power of two below n.
    let level = [];
    for (let i = 0; i < n; i++) level.push(leaves.subarray(32 * i, 32 * i + 32));
    // n is a power of two here, so pairwise levels are exact.
    while (level.length > 1) {
      const next = [];
      for (let i = 0; i < level.length; i += 2) {
        next.push(createHash('sha256').update(Buffer.of(1)).update(level[i]).update(level[i + 1]).digest());
      }
      level = next;
    }
    return level[0];
  };
  let a;
  let b;
  const ours = await time(() => (a = dp.merkleRoot(leaves)));
  const peer = await time(() => (b = jsRoot()));
  if (Buffer.compare(Buffer.from(a), b) !== 0) throw new Error('merkle roots differ');
  row('Merkle root of 1M leaf hashes: wasm merkleRoot vs node:crypto in JS', ours, peer, 'ms', '(lower is better)');
}

// ---- 4. SDK call latency vs raw fetch of the same endpoint -------------------------------------
if (want('latency')) {
  const { url, stop } = await startServer();
  try {
    const token = TOKEN;
    const client = new dp.DataPilot({ baseUrl: url, token });
    const raw = async () => {
      const r = await fetch(`${url}/v1/whoami`, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
      return r.json();
    };
    // What the SDK must do per attempt and a bare fetch does not: a deadline that aborts the
    // request (an AbortController and a timer). Shows how much of the gap is Node's fetch itself.
    const rawDeadline = async () => {
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 30_000);
      try {
        const r = await fetch(`${url}/v1/whoami`, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, signal: ac.signal });
        return await r.json();
      } finally {
        clearTimeout(timer);
      }
    };
    const sdk = () => client.whoAmI();
    // Interleaved in a random order per round, so drift and order effects hit every variant alike.
    const variants = { raw, rawDeadline, sdk };
    const samples = { raw: [], rawDeadline: [], sdk: [] };
    const keys = Object.keys(variants);
    for (let i = 0; i < 300; i++) for (const k of keys) await variants[k](); // warm up, pool
    const n = 3000;
    for (let i = 0; i < n; i++) {
      for (const k of [...keys].sort(() => Math.random() - 0.5)) {
        const s = performance.now();
        await variants[k]();
        samples[k].push(performance.now() - s);
      }
    }
    const median = (t) => t.sort((x, y) => x - y)[t.length >> 1] * 1000;
    const m = Object.fromEntries(keys.map((k) => [k, median(samples[k])]));
    row(`whoAmI latency, median of ${n}: SDK vs raw fetch`, m.sdk, m.raw, 'µs', '(lower is better)');
    row(`whoAmI latency, median of ${n}: SDK vs raw fetch with an AbortController deadline`, m.sdk, m.rawDeadline, 'µs', '(lower is better)');
    row(`whoAmI latency, median of ${n}: raw fetch with a deadline vs raw fetch (Node's cost of a signal)`, m.rawDeadline, m.raw, 'µs', '(lower is better)');
  } finally {
    stop();
  }
}

// ---- 4b. the same latency comparison in Chromium (the dashboards' runtime) ---------------------
// The page comes from the reference server (`--static-dir target/site`, `./x site`), so the SDK
// and the raw fetch both call it same-origin, as a dashboard served on-prem does.
if (want('browser')) {
  const site = resolve(process.env.DATAPILOT_SITE_DIR ?? join(repo, 'target', 'site'));
  const browser = process.env.CHROMIUM ?? '/usr/bin/chromium';
  const token = TOKEN;
  const { url, stop } = await startServer(['--static-dir', site]);
  const { chromium } = await import('playwright-core');
  let ctx;
  try {
    ctx = await chromium.launch({ executablePath: browser, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
    const page = await ctx.newPage();
    await page.goto(`${url}/index.html`);
    const m = await page.evaluate(async ({ token, n }) => {
      const dp = await import('/sdk.js');
      await dp.init();
      const client = new dp.DataPilot({ baseUrl: location.origin, token });
      const headers = { authorization: `Bearer ${token}`, accept: 'application/json' };
      const variants = {
        raw: async () => (await fetch('/v1/whoami', { headers })).json(),
        rawDeadline: async () => {
          const ac = new AbortController();
          const timer = setTimeout(() => ac.abort(), 30_000);
          try {
            return await (await fetch('/v1/whoami', { headers, signal: ac.signal })).json();
          } finally {
            clearTimeout(timer);
          }
        },
        sdk: () => client.whoAmI(),
      };
      const keys = Object.keys(variants);
      const samples = Object.fromEntries(keys.map((k) => [k, []]));
      for (let i = 0; i < 200; i++) for (const k of keys) await variants[k]();
      // A page's clock is coarsened (100 µs in Chromium without cross-origin isolation), so each
      // sample times a block of calls; blocks of the variants are interleaved in a random order.
      const block = 20;
      for (let i = 0; i < n / block; i++) {
        for (const k of [...keys].sort(() => Math.random() - 0.5)) {
          const s = performance.now();
          for (let j = 0; j < block; j++) await variants[k]();
          samples[k].push((performance.now() - s) / block);
        }
      }
      const median = (t) => t.sort((x, y) => x - y)[t.length >> 1] * 1000;
      return Object.fromEntries(keys.map((k) => [k, median(samples[k])]));
    }, { token, n: 3000 });
    row('Chromium: whoAmI latency, 3000 calls in interleaved blocks of 20, median block: SDK vs raw fetch', m.sdk, m.raw, 'µs', '(lower is better)');
    row('Chromium: same, SDK vs raw fetch with an AbortController deadline', m.sdk, m.rawDeadline, 'µs', '(lower is better)');
  } finally {
    await ctx?.close();
    stop();
  }
}

// ---- 5. size of the web wasm modules ----------------------------------------------------------
// The core module loads with init(); the verifier module only when something is verified.
const sizes = ['datapilot_bg.wasm', 'verifier_bg.wasm'].map((file) => {
  const wasm = readFileSync(join(repo, 'pkg', 'dist', file));
  return { file, raw: wasm.length, gzip: gzipSync(wasm, { level: 9 }).length };
});

console.log('| benchmark | ours | peer | unit | ratio (ours / peer) |');
console.log('|---|---:|---:|---|---:|');
for (const r of rows) {
  console.log(`| ${r.what} ${r.note} | ${r.ours.toFixed(1)} | ${r.peer.toFixed(1)} | ${r.unit} | ${(r.ours / r.peer).toFixed(2)} |`);
}
for (const z of sizes) console.log(`| web wasm size: ${z.file} | ${z.raw} raw | ${z.gzip} gzip | bytes | |`);
