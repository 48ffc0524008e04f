// Transfers of real size through the npm package (issue 10). A 2 GiB (and 3 MiB) artifact uploaded from a
// file-backed Blob and downloaded with downloadArtifactStream, in a child process whose peak
// RSS (process.resourceUsage().maxRSS) may grow by at most MAX_RSS_GROWTH over it: the upload
// streams from disk and the download holds one chunk at a time in wasm memory. Then the
// server's stored copy is damaged on disk and a second download errors before the end of its
// stream with a DataPilotError. The source file is sparse; the server's copy is removed with
// the server.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { DataPilot, isDataPilotError, openFileBlob } from '@animus/datapilot';
import { ADMIN_TOKEN, startFaultProxy, startServer } from './support.mjs';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
/** A little over 2 GiB: past the 2 GiB mark where Node's fs.openAsBlob breaks (slices across it
 * come back empty; openFileBlob works around it). */
const SIZE = 2 * GIB + 3 * MIB + 7;
/** Peak RSS growth allowed for moving 2 GiB up and down (measured: see the test's output). */
const MAX_RSS_GROWTH = 256 * MIB;

let server;
let runId;
let runToken;
let source;

async function newRun(dp) {
  const ds = await dp.createDataset({ name: `transfers-${Date.now()}` });
  const sha = createHash('sha256').update('a').digest('hex');
  const digest = `sha256:${createHash('sha256').update(`${sha}  a.txt\n`).digest('hex')}`;
  const { version } = await dp.registerDatasetVersion(ds.id, { digest, files: [{ path: 'a.txt', sha256: sha, size: 1 }] });
  const run = await dp.createRun({
    name: 'transfers',
    inputs: [{ dataset_id: ds.id, digest: version.digest }],
    git_commit: '4015b57a143aec5156fd1444a017a32137a3fd0f',
    image_digest: `sha256:${'6105d6cc'.repeat(8)}`,
  });
  return [run.runId, run.runToken];
}

before(async () => {
  server = await startServer(['--max-artifact-bytes', String(4 * GIB)]);
  [runId, runToken] = await newRun(new DataPilot({ baseUrl: server.url, token: ADMIN_TOKEN }));
  // Sparse, with a few marked regions so offsets matter.
  source = join(tmpdir(), `datapilot-2g-${process.pid}.bin`);
  const fd = openSync(source, 'w');
  for (let at = 0; at < SIZE; at += 256 * MIB + 4099) writeSync(fd, `offset ${at}`, at);
  closeSync(fd);
  const { truncateSync } = await import('node:fs');
  truncateSync(source, SIZE);
});

after(async () => {
  if (source) rmSync(source, { force: true });
  await server?.stop();
});

// Runs in a child process so its peak RSS is this transfer's alone.
const CHILD = `
import { DataPilot, openFileBlob } from '@animus/datapilot';
const [url, token, runId, file] = process.argv.slice(2);
const dp = new DataPilot({ baseUrl: url, token });
const kib = () => process.resourceUsage().maxRSS;
// Warm up (wasm instantiated, first request made) before the baseline.
await dp.getRun(runId);
const before = kib();
let upBytes = 0;
const artifact = await dp.uploadArtifact(runId, 'model-2g.bin', await openFileBlob(file), {
  onProgress: (p) => { if (p.phase === 'uploading') upBytes = p.bytes; },
});
const afterUpload = kib();
let downReported = 0;
const { stream, sha256, size } = await dp.downloadArtifactStream(runId, artifact.id, {
  onProgress: (p) => { downReported = p.bytes; },
});
let received = 0;
for await (const chunk of stream) received += chunk.byteLength;
const afterDownload = kib();
console.log(JSON.stringify({ artifact, upBytes, downReported, received, sha256, size, before, afterUpload, afterDownload }));
`;

test('a 2 GiB artifact goes up and down with flat memory; a damaged blob is refused', { timeout: 10 * 60_000 }, async () => {
  const script = join(process.cwd(), 'transfer-child.mjs');
  writeFileSync(script, CHILD);
  const r = spawnSync(process.execPath, [script, server.url, runToken, runId, source], { encoding: 'utf8', maxBuffer: 1 << 20 });
  assert.equal(r.status, 0, r.stderr);
  const m = JSON.parse(r.stdout.trim().split('\n').pop());
  assert.equal(m.artifact.size, SIZE);
  assert.equal(m.upBytes, SIZE, 'upload progress reached the last byte');
  assert.equal(m.received, SIZE);
  assert.equal(m.downReported, SIZE, 'download progress reached the last byte');
  assert.equal(m.sha256, m.artifact.sha256);
  const growth = (Math.max(m.afterUpload, m.afterDownload) - m.before) * 1024;
  console.log(`peak RSS ${Math.round((m.before * 1024) / MIB)} MiB before, +${Math.round(((m.afterUpload - m.before) * 1024) / MIB)} MiB after the upload, +${Math.round(((m.afterDownload - m.before) * 1024) / MIB)} MiB after the download (bound ${MAX_RSS_GROWTH / MIB} MiB)`);
  assert.ok(growth < MAX_RSS_GROWTH, `peak RSS grew by ${growth} bytes moving 2 GiB`);
  rmSync(source, { force: true });

  // Damage the server's copy in the middle: the download must end in an error, not in a
  // stream that closes normally.
  const blob = findFile(server.dataDir, m.artifact.sha256);
  const fd = openSync(blob, 'r+');
  writeSync(fd, 'bit rot', GIB + 12345);
  closeSync(fd);
  const dp = new DataPilot({ baseUrl: server.url, token: runToken });
  const { stream } = await dp.downloadArtifactStream(runId, m.artifact.id);
  let received = 0;
  await assert.rejects(
    (async () => {
      for await (const chunk of stream) received += chunk.byteLength;
    })(),
    (e) => isDataPilotError(e) && ['transport', 'verification'].includes(e.kind),
  );
  assert.ok(received < SIZE, 'the last chunk of a damaged artifact was never handed out');
  rmSync(blob, { force: true });
});

/**
 * Runs one phase of a test under a time limit of its own, so a phase that hangs fails naming
 * itself (a CI run once timed out the whole stall test after 120 s without saying where).
 */
async function phase(name, ms, fn) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`phase "${name}" did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([fn(), limit]);
  } finally {
    clearTimeout(timer);
  }
}

function findFile(dir, name) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const found = findFile(p, name);
      if (found) return found;
    } else if (e.name === name && statSync(p).isFile()) return p;
  }
  return undefined;
}

test('a stalled link fails an upload and a download after the stall timeout; a corrupting link fails verification', { timeout: 120_000 }, async () => {
  const stallMs = 2_000;
  const file = join(tmpdir(), `datapilot-64m-${process.pid}.bin`);
  const fd = openSync(file, 'w');
  writeSync(fd, 'stall test', 0);
  closeSync(fd);
  const { truncateSync } = await import('node:fs');
  truncateSync(file, 64 * MIB);
  const isStall = (e) => isDataPilotError(e) && e.kind === 'timeout' && /stalled/.test(e.message);
  try {
    // Upload: the link forwards 1 MiB of the request, then nothing (the connection stays open).
    const deadUp = await startFaultProxy(server.url, ['--link-up-stall-after', String(MIB)]);
    try {
      const dp = new DataPilot({ baseUrl: deadUp.url, token: runToken, maxAttempts: 1, stallTimeoutMs: stallMs });
      const started = Date.now();
      const blob = await openFileBlob(file);
      await phase('upload over a stalled link', 30_000, () =>
        assert.rejects(dp.uploadArtifact(runId, 'stalled.bin', blob, { sha256: 'a'.repeat(64) }), isStall),
      );
      const took = Date.now() - started;
      assert.ok(took >= stallMs && took < 10 * stallMs, `gave up after ${took} ms`);
    } finally {
      await phase('stop the stalled upload link', 15_000, () => deadUp.stop());
    }

    // Download: stored directly, read over a link that passes 1 MiB of the answer.
    const direct = new DataPilot({ baseUrl: server.url, token: runToken });
    const blob = await openFileBlob(file);
    const artifact = await phase('upload directly', 60_000, () => direct.uploadArtifact(runId, 'stall-64m.bin', blob));
    const deadDown = await startFaultProxy(server.url, ['--link-down-stall-after', String(MIB)]);
    try {
      const dp = new DataPilot({ baseUrl: deadDown.url, token: runToken, maxAttempts: 1 });
      const started = Date.now();
      let received = 0;
      await phase('download over a stalled link', 30_000, async () => {
        const { stream } = await dp.downloadArtifactStream(runId, artifact.id, { stallTimeoutMs: stallMs });
        await assert.rejects(
          (async () => {
            for await (const chunk of stream) received += chunk.byteLength;
          })(),
          isStall,
        );
      });
      const took = Date.now() - started;
      assert.ok(took >= stallMs && took < 10 * stallMs, `gave up after ${took} ms`);
      assert.ok(received < artifact.size);
    } finally {
      await phase('stop the stalled download link', 15_000, () => deadDown.stop());
    }

    // A link that flips one byte of the answer: the stream errors with kind `verification`
    // and never hands out its last chunk.
    const corrupting = await startFaultProxy(server.url, ['--link-down-corrupt-at', String(5 * MIB)]);
    try {
      const dp = new DataPilot({ baseUrl: corrupting.url, token: runToken });
      let received = 0;
      await phase('download over a corrupting link', 60_000, async () => {
        const { stream } = await dp.downloadArtifactStream(runId, artifact.id);
        await assert.rejects(
          (async () => {
            for await (const chunk of stream) received += chunk.byteLength;
          })(),
          (e) => isDataPilotError(e) && e.kind === 'verification' && e.message.includes(artifact.sha256),
        );
      });
      assert.ok(received < artifact.size, 'the last chunk was held back');
    } finally {
      await phase('stop the corrupting link', 15_000, () => corrupting.stop());
    }
  } finally {
    rmSync(file, { force: true });
  }
});

test('the CLI downloads into a file only once verified; a damaged blob leaves nothing behind', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dp-cli-dl-'));
  try {
    // 32 MiB: above the size the server checks whole before sending, so it streams and cuts.
    const bytes = new Uint8Array(32 * MIB);
    for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (i / 4096) % 251;
    const dp = new DataPilot({ baseUrl: server.url, token: runToken });
    const artifact = await dp.uploadArtifact(runId, 'cli-32m.bin', bytes);
    const cli = (args) => {
      const r = spawnSync(join('node_modules', '.bin', 'datapilot'), args, {
        encoding: 'utf8',
        env: { PATH: process.env.PATH, DATAPILOT_URL: server.url, DATAPILOT_RUN_TOKEN: runToken, DATAPILOT_RUN_ID: runId },
      });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    const ok = cli(['download', '--artifact', 'cli-32m.bin', '-o', join(dir, 'ok.bin'), '--json']);
    assert.equal(ok.code, 0, ok.err);
    assert.equal(createHash('sha256').update(readFileSync(join(dir, 'ok.bin'))).digest('hex'), artifact.sha256);
    assert.equal(JSON.parse(ok.out).sha256, artifact.sha256);

    const blob = findFile(server.dataDir, artifact.sha256);
    const fd = openSync(blob, 'r+');
    writeSync(fd, 'bit rot', 20 * MIB);
    closeSync(fd);
    const bad = cli(['download', '--artifact', 'cli-32m.bin', '-o', join(dir, 'bad.bin')]);
    assert.notEqual(bad.code, 0);
    assert.equal(bad.err.split('\n').filter(Boolean).length, 1, `one line: ${bad.err}`);
    assert.deepEqual(readdirSync(dir), ['ok.bin'], 'no file and no part file after a failed download');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a Node upload states its size: Content-Length, not a chunked body', async () => {
  // A capture server (what the SDK sends, not what the reference server does with it): the
  // size lets a server refuse a body over its limit before it is sent, and read it unchunked.
  const file = join(tmpdir(), `datapilot-cl-${process.pid}.bin`);
  writeFileSync(file, Buffer.alloc(3 * MIB + 17, 7));
  const seen = [];
  const fake = createServer((req, res) => {
    let n = 0;
    req.on('data', (d) => (n += d.length));
    req.on('end', () => {
      seen.push({ length: req.headers['content-length'], encoding: req.headers['transfer-encoding'], received: n });
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        id: 'art_01M8YM768PCVC5WW57KBE731ST', run_id: 'run_01M8YM768PCVC5WW57KBE731SA', name: 'm.bin',
        sha256: 'b'.repeat(64), size: n, created_at: '2026-12-03T00:00:00.000Z', created_by: 'tok_x', audit_seq: 1,
      }));
    });
  }).listen(0, '127.0.0.1');
  try {
    await new Promise((r) => fake.once('listening', r));
    const dp = new DataPilot({ baseUrl: `http://127.0.0.1:${fake.address().port}`, token: 'dpt_fakefakefakefake1234' });
    const progress = [];
    await dp.uploadArtifact('run_01M8YM768PCVC5WW57KBE731SA', 'm.bin', await openFileBlob(file), {
      sha256: 'b'.repeat(64),
      onProgress: (p) => progress.push(p.bytes),
    });
    assert.deepEqual(seen, [{ length: String(3 * MIB + 17), encoding: undefined, received: 3 * MIB + 17 }]);
    assert.equal(progress.at(-1), 3 * MIB + 17, 'progress still counted as the body streams');
  } finally {
    fake.close();
    rmSync(file, { force: true });
  }
});
