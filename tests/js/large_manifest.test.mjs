// Dataset versions of real size through the npm package (issue 10): a 1.3-million-file
// manifest (synthetic paths and digests; ImageNet-1k train has 1,281,167 files) registered
// against the real server in parts, read back page by page, and checked against coreutils
// (`LC_ALL=C sort | sha256sum` over the same lines); connections cut mid-registration by the
// fault proxy; a registration whose process "died" (aborted) resumed from its upload id.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { DataPilot, isDataPilotError } from '@animus/datapilot';
import { ADMIN_TOKEN, startFaultProxy, startServer } from './support.mjs';

const FILES = 1_300_000;

let server;
let admin;

before(async () => {
  server = await startServer();
  admin = new DataPilot({ baseUrl: server.url, token: ADMIN_TOKEN });
});
after(async () => {
  await server?.stop();
});

/** `n` synthetic entries: 1,000 folders, paths that do not sort like their numbers. */
function synthetic(n, seed) {
  const files = new Array(n);
  for (let i = 0; i < n; i++) {
    const sha256 = createHash('sha256').update(`${seed}/${i}`).digest('hex');
    files[i] = { path: `train/n${String(i % 1000).padStart(8, '0')}/img_${i}.JPEG`, sha256, size: 1000 + (i % 4096) };
  }
  return files;
}

/** The DPM-1 id as coreutils computes it: `sha256sum` lines in byte order of path, hashed. */
function coreutilsDigest(files) {
  return new Promise((resolve, reject) => {
    // `path<TAB>sha256` lines sort by path (TAB is below every path byte), then become the
    // `sha256sum` lines.
    const sh = spawn('sh', ['-c', `LC_ALL=C sort | awk -F '\t' '{ print $2 "  " $1 }' | sha256sum`], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    sh.stdout.on('data', (d) => (out += d));
    sh.on('error', reject);
    sh.on('exit', (code) => (code === 0 ? resolve(`sha256:${out.split(' ')[0]}`) : reject(new Error(`sort | sha256sum exited ${code}`))));
    const chunk = 20_000;
    let i = 0;
    const write = () => {
      while (i < files.length) {
        const lines = files.slice(i, i + chunk).map((f) => `${f.path}\t${f.sha256}\n`).join('');
        i += chunk;
        if (!sh.stdin.write(lines)) return sh.stdin.once('drain', write);
      }
      sh.stdin.end();
    };
    write();
  });
}

test('a 1.3M-file manifest registers in parts, reads back page by page, and its id is the coreutils id', { timeout: 15 * 60_000 }, async () => {
  const files = synthetic(FILES, 'imagenet');
  const digest = await coreutilsDigest(files);
  const ds = await admin.createDataset({ name: 'imagenet-like' });

  // The SDK refuses nothing here: it sends 26 parts of 50,000 (converted one part at a time).
  const reports = [];
  const reg = await admin.registerDatasetVersion(ds.id, { digest, files, note: '1.3M' }, {
    onProgress: (p) => reports.push(p),
  });
  assert.equal(reg.created, true);
  assert.equal(reg.version.digest, digest, 'the server recomputed the coreutils id');
  assert.equal(reg.version.file_count, FILES);
  assert.equal(reports.at(-1).partsDone, 26);
  assert.match(reports[0].uploadId, /^mu_/);

  // Registering the same files again is idempotent: the existing version.
  // (One-request form refused above 100,000 files: the SDK goes through an upload again.)
  const again = await admin.registerDatasetVersion(ds.id, { digest, files });
  assert.equal(again.created, false);
  assert.equal(again.version.audit_seq, reg.version.audit_seq);

  // Read back a page at a time and re-derive the id from the pages alone.
  const h = createHash('sha256');
  let n = 0;
  let prev = '';
  for await (const f of admin.listDatasetVersionFiles(ds.id, digest, { limit: 10_000 })) {
    assert.ok(Buffer.compare(Buffer.from(prev), Buffer.from(f.path)) < 0, 'path byte order');
    prev = f.path;
    h.update(`${f.sha256}  ${f.path}\n`);
    n++;
  }
  assert.equal(n, FILES);
  assert.equal(`sha256:${h.digest('hex')}`, digest);

  // The one-answer manifest refuses a version this size, with a typed error.
  await assert.rejects(admin.getDatasetVersionManifest(ds.id, digest), (e) => {
    assert.ok(isDataPilotError(e));
    assert.equal(e.code, 'manifest_too_large');
    return true;
  });
});

test('a registration survives cut connections and resumes after its process stopped', { timeout: 10 * 60_000 }, async () => {
  const files = synthetic(240_000, 'resume');
  const digest = await coreutilsDigest(files);
  const ds = await admin.createDataset({ name: 'resumed' });

  // 1. The "process" dies after two parts: its signal aborts the call.
  const ctl = new AbortController();
  let uploadId;
  await assert.rejects(
    admin.registerDatasetVersion(ds.id, { digest, files }, {
      partFiles: 20_000,
      signal: ctl.signal,
      onProgress: (p) => {
        uploadId = p.uploadId;
        if (p.partsDone === 2) ctl.abort();
      },
    }),
  );
  assert.match(uploadId, /^mu_/);
  const held = [];
  // 2. A new process resumes through a network that cuts connections mid-request.
  const proxy = await startFaultProxy(server.url, [
    '--rate', 'reset_during=150', '--rate', 'cut_upstream=100', '--rate', 'reset_after=100',
    '--max-faults-per-key', '2',
  ]);
  try {
    const viaProxy = new DataPilot({ baseUrl: proxy.url, token: ADMIN_TOKEN, maxAttempts: 6 });
    const reports = [];
    const reg = await viaProxy.registerDatasetVersion(ds.id, { digest, files }, {
      partFiles: 20_000,
      resumeUploadId: uploadId,
      onProgress: (p) => reports.push(p),
    });
    assert.equal(reg.version.digest, digest);
    assert.equal(reg.version.file_count, 240_000);
    assert.equal(reports[0].uploadId, uploadId, 'the same upload continued');
    held.push(...reports);
    const stats = await proxy.stats();
    const injected = Object.entries(stats.injected ?? stats).filter(([k, v]) => /reset|cut/.test(k) && v > 0);
    assert.ok(injected.length > 0, `the proxy cut connections: ${JSON.stringify(stats)}`);
  } finally {
    await proxy.stop();
  }
  assert.equal(held.at(-1).partsDone, 12);
});
