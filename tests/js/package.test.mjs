// The installed tarball: ESM import, CommonJS require, TypeScript (tsc --strict on a consumer
// file), are-the-types-wrong, the DPM-1 digest against coreutils.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as dp from '@animus/datapilot';

const repo = process.env.DATAPILOT_REPO;
const bin = (name) => join(repo, 'node_modules', '.bin', name);

function sampleDir() {
  const d = mkdtempSync(join(tmpdir(), 'dp-data-'));
  mkdirSync(join(d, 'sub', 'deeper'), { recursive: true });
  writeFileSync(join(d, 'a.txt'), 'alpha\n');
  writeFileSync(join(d, 'sub', 'b.bin'), Buffer.alloc(3 << 20, 7));
  writeFileSync(join(d, 'sub', 'deeper', 'c.csv'), 'x,y\n1,2\n');
  writeFileSync(join(d, 'Zebra'), '');
  return d;
}

function coreutilsDigest(dir) {
  const out = execFileSync('bash', ['-c', "find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum"], { cwd: dir, encoding: 'utf8' });
  return `sha256:${out.slice(0, 64)}`;
}

test('ESM import exposes the API', async () => {
  for (const name of ['DataPilot', 'RunHandle', 'DigestBuilder', 'hashDirectory', 'hashFiles', 'hashBlob', 'filesFromDataTransfer', 'verifyEvidenceBundle', 'verifyCheckpoint', 'verifyInclusion', 'verifyConsistency', 'datasetDigest', 'isDataPilotError', 'init', 'initVerifier', 'sdkVersion']) {
    assert.equal(typeof dp[name], 'function', name);
  }
  await dp.init(); // no-op in Node, callable anyway
  assert.match(dp.sdkVersion(), /^\d+\.\d+\.\d+/);
  assert.equal(typeof dp.DataPilot.prototype.verifyEvidenceBundle, 'function');
  await dp.initVerifier();
});

test('two wasm modules: the core has no evidence verifier, the verifier module has it', () => {
  const dist = join('node_modules', '@animus', 'datapilot', 'dist');
  const exportsOf = (f) => WebAssembly.Module.exports(new WebAssembly.Module(readFileSync(join(dist, f)))).map((e) => e.name);
  const core = exportsOf('datapilot_bg.wasm');
  const verifier = exportsOf('verifier_bg.wasm');
  for (const name of ['verifyInclusion', 'verifyConsistency', 'datasetDigest', 'leafHash', 'merkleRoot', 'datapilot_new']) {
    assert.ok(core.includes(name), `core exports ${name}`);
  }
  for (const name of ['verifyEvidenceBundle', 'verifyCheckpoint', 'verifyEvidenceBundleOnline']) {
    assert.ok(!core.includes(name), `core does not export ${name}`);
    assert.ok(verifier.includes(name), `verifier exports ${name}`);
  }
  assert.ok(!verifier.includes('datapilot_new'), 'the verifier module has no client');
});

test('CommonJS require gives the same module', () => {
  const r = spawnSync(process.execPath, ['consumer.cjs'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout);
  assert.equal(got.version, dp.sdkVersion());
  assert.equal(got.digest, dp.datasetDigest([{ path: 'a', sha256: '0'.repeat(64), size: 1 }]));
  assert.equal(got.isError, true);
  assert.deepEqual(got.verify, { promise: true, ok: false, rejected: 'verification_failed' });
});

test('hashDirectory equals the coreutils DPM-1 recipe, with progress', async () => {
  const dir = sampleDir();
  const seen = [];
  const d = await dp.hashDirectory(dir, { onProgress: (p) => seen.push(p) });
  assert.equal(d.digest, coreutilsDigest(dir));
  assert.deepEqual(d.files.map((f) => f.path), ['Zebra', 'a.txt', 'sub/b.bin', 'sub/deeper/c.csv']);
  assert.equal(d.total_bytes, (3 << 20) + 6 + 8);
  const last = seen.at(-1);
  assert.equal(last.bytesHashed, d.total_bytes);
  assert.equal(last.filesHashed, 4);
  // Progress is throttled (at most every 100 ms, and once at the end), not one per chunk.
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].bytesHashed >= seen[i - 1].bytesHashed, 'progress only grows');
  assert.equal(dp.datasetDigest(d.files), d.digest);
});

test('the wasm browser path (hashFiles over Blobs) gives the same digest', async () => {
  const dir = sampleDir();
  const files = [];
  for (const p of ['a.txt', 'sub/b.bin', 'sub/deeper/c.csv', 'Zebra']) {
    files.push({ path: p, file: new Blob([readFileSync(join(dir, p))]) });
  }
  let progress = 0;
  const d = await dp.hashFiles(files, { chunkSize: 1 << 20, onProgress: () => progress++ });
  assert.equal(d.digest, coreutilsDigest(dir));
  assert.ok(progress >= 4);
  const b = new dp.DigestBuilder();
  b.beginFile('x/y');
  b.update(new TextEncoder().encode('he'));
  b.update(new TextEncoder().encode('llo'));
  assert.equal(b.endFile().sha256, dp.sha256Hex(new TextEncoder().encode('hello')));
  assert.throws(() => b.addFile('../evil', '0'.repeat(64), 1), (e) => dp.isDataPilotError(e) && e.code === 'invalid_request');
  b.free();
  // The packed forms (what hashDirectory uses): same checks and the same digest as one by one.
  const entries = [{ path: 'b/2', sha256: 'a'.repeat(64), size: 2 }, { path: 'a', sha256: 'b'.repeat(64), size: 1 }];
  const packed = new dp.DigestBuilder();
  packed.addFiles(entries.map((e) => e.path).join('\0'), entries.map((e) => e.sha256).join(''), Float64Array.of(2, 1));
  const out = packed.finishPacked();
  assert.equal(out.digest, dp.datasetDigest(entries));
  assert.equal(out.paths, 'a\0b/2');
  assert.equal(out.sha256s, 'b'.repeat(64) + 'a'.repeat(64));
  assert.deepEqual([...out.sizes], [1, 2]);
  assert.equal(out.total_bytes, 3);
  const bad = (paths, shas, sizes, re) => assert.throws(() => packed.addFiles(paths, shas, Float64Array.from(sizes)), (e) => dp.isDataPilotError(e) && e.code === 'invalid_request' && re.test(e.message));
  bad('a\0b', 'a'.repeat(64), [1, 2], /sha256 characters/);
  bad('a\0b', 'a'.repeat(64), [1], /2 paths for 1 sizes/);
  bad('a', 'a'.repeat(128), [1, 2], /1 paths for 2 sizes/);
  bad('a\0b\0c', 'a'.repeat(128), [1, 2], /3 paths for 2 sizes/);
  bad('c\0x\0x', 'a'.repeat(192), [1, 2, 3], /x/);
  bad('d\0y', 'a'.repeat(64) + 'z'.repeat(64), [1, 2], /sha256|hex/i);
  // All or nothing: c and d (before the refused files) were taken out again.
  packed.addFiles('c\0d', 'c'.repeat(128), Float64Array.of(5, 6));
  assert.equal(packed.finishPacked().paths, 'c\0d');
  packed.free();
});

test('hashFiles reads small files in batches and still hashes each one on its own', async () => {
  // Empty files, files across batch limits (1,024 files, 8 MiB) and files above the batch
  // size (256 KiB) in between: every entry must match its own bytes.
  const { createHash } = await import('node:crypto');
  const files = [];
  const entries = [];
  for (let i = 0; i < 2600; i++) {
    const size = i % 700 === 0 ? 300 << 10 : i % 97 === 0 ? 0 : (i * 37) % 9000;
    const bytes = Buffer.alloc(size, i % 251);
    const path = `d${i % 13}/f${i}`;
    files.push({ path, file: new Blob([bytes]) });
    entries.push({ path, sha256: createHash('sha256').update(bytes).digest('hex'), size });
  }
  let reports = 0;
  const d = await dp.hashFiles(files, { onProgress: () => reports++ });
  assert.equal(d.digest, dp.datasetDigest(entries));
  assert.equal(d.files.length, 2600);
  assert.ok(reports > 3, 'progress during the batches');
});

test('tsc --noEmit --strict accepts the consumer file (and rejects misuse)', () => {
  writeFileSync('tsconfig.json', JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['es2022', 'dom'], skipLibCheck: false, types: [] },
    files: ['consumer.ts'],
  }));
  const r = spawnSync(bin('tsc'), ['-p', 'tsconfig.json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('are-the-types-wrong finds no problem in the tarball', () => {
  const r = spawnSync(bin('attw'), ['--pack', '--format', 'ascii', process.env.DATAPILOT_TARBALL], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /No problems found/);
});
