#!/usr/bin/env node
// Artifact transfers of real size (issue 10): upload and download one large artifact through
// the npm package (pkg/, built by `./x pkg`) and through curl against the same reference server,
// and report throughput and peak RSS of each client. Not part of `./x test` (minutes, GiBs of
// disk); results go to BENCHMARKS.md by hand.
//
//   node benches/transfers/run.mjs            # 4 GiB, target/release/datapilot-server
//
// Env: DP_BENCH_GIB (artifact size, default 4), DP_BENCH_ROUNDS (default 3; medians are
// reported), DATAPILOT_SERVER_BIN (default the release build). The source is a sparse file with marked regions (reads cost no disk, for curl and
// Node alike); the server's copy (one blob, same digest for every upload) is real and is
// removed with the server. Every client runs as its own process under /usr/bin/time -v, whose
// "Maximum resident set size" is the peak RSS.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkg = pathToFileURL(join(repo, 'pkg', 'index.node.mjs')).href;
const { DataPilot } = await import(pkg);
const GIB = 1 << 30;
const MIB = 1 << 20;
const size = Number(process.env.DP_BENCH_GIB ?? 4) * GIB;
const TOKEN = 'dpt_benchAdminToken0123456789';
const serverBin = resolve(process.env.DATAPILOT_SERVER_BIN ?? join(repo, 'target', 'release', 'datapilot-server'));
if (!existsSync(serverBin)) throw new Error(`no server at ${serverBin} (cargo build --release -p datapilot-server)`);

const work = mkdtempSync(join(tmpdir(), 'dp-bench-transfers-'));
const dataDir = join(work, 'data');
const server = spawn(serverBin, ['--data-dir', dataDir, '--listen', '127.0.0.1:0', '--max-artifact-bytes', String(2 * size)], {
  env: { ...process.env, DATAPILOT_BOOTSTRAP_TOKEN: TOKEN, DATAPILOT_LOG: 'warn' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const url = await new Promise((res, rej) => {
  let out = '';
  server.stdout.on('data', (d) => {
    out += d;
    const m = /listening on (http:\/\/\S+)/.exec(out);
    if (m) res(m[1]);
  });
  server.on('exit', (c) => rej(new Error(`server exited ${c}`)));
});

try {
  const admin = new DataPilot({ baseUrl: url, token: TOKEN });
  const ds = await admin.createDataset({ name: 'bench-transfers' });
  const a = createHash('sha256').update('a').digest('hex');
  const digest = `sha256:${createHash('sha256').update(`${a}  a.txt\n`).digest('hex')}`;
  const { version } = await admin.registerDatasetVersion(ds.id, { digest, files: [{ path: 'a.txt', sha256: a, size: 1 }] });
  const run = await admin.createRun({
    name: 'bench', inputs: [{ dataset_id: ds.id, digest: version.digest }],
    git_commit: '4015b57a143aec5156fd1444a017a32137a3fd0f', image_digest: `sha256:${'6105d6cc'.repeat(8)}`,
  });
  const [runId, token] = [run.runId, run.runToken];

  const file = join(work, 'model.bin');
  const fd = openSync(file, 'w');
  for (let at = 0; at < size; at += 256 * MIB + 4099) writeSync(fd, `offset ${at}`, at);
  closeSync(fd);
  truncateSync(file, size);
  const sha = execFileSync('sha256sum', [file], { encoding: 'utf8' }).slice(0, 64);

  /**
   * Runs argv under /usr/bin/time -v: wall seconds and peak RSS in MiB. `sync` first, outside
   * the timing: every upload ends with the server's fsync of its 4 GiB copy, so dirty pages
   * left by the previous transfer would otherwise be paid by the next one.
   */
  const timed = (argv) => {
    execFileSync('sync');
    const started = process.hrtime.bigint();
    const r = spawnSync('/usr/bin/time', ['-v', ...argv], { encoding: 'utf8', maxBuffer: 16 << 20 });
    const secs = Number(process.hrtime.bigint() - started) / 1e9;
    if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
    const kib = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)[1]);
    return { secs, rssMiB: kib / 1024, stdout: r.stdout };
  };
  const auth = ['-H', `authorization: Bearer ${token}`];
  const rounds = Number(process.env.DP_BENCH_ROUNDS ?? 3);
  /** what -> [{ secs, rssMiB }], one per round. */
  const samples = new Map();
  const record = (what, t) => {
    if (!samples.has(what)) samples.set(what, []);
    samples.get(what).push(t);
    console.error(`${what}: ${t.secs.toFixed(1)} s, ${(size / MIB / t.secs).toFixed(0)} MiB/s, peak RSS ${t.rssMiB.toFixed(0)} MiB`);
  };
  const curlUpload = (name, extra = []) =>
    timed(['curl', '-sS', '-f', '-o', '/dev/null', ...auth, '-H', 'content-type: application/octet-stream', ...extra, '-T', file, '-X', 'POST',
      `${url}/v1/runs/${runId}/artifacts?name=${name}&sha256=${sha}`]);

  // Node: the npm package in a process of its own per transfer.
  const child = join(work, 'child.mjs');
  writeFileSync(child, `
import { DataPilot, openFileBlob } from ${JSON.stringify(pkg)};
const [mode, url, token, runId, arg, name, sha] = process.argv.slice(2);
const dp = new DataPilot({ baseUrl: url, token });
if (mode === 'upload') {
  const opts = sha ? { sha256: sha } : {};
  const a = await dp.uploadArtifact(runId, name, await openFileBlob(arg), opts);
  console.log(a.id);
} else {
  const { stream } = await dp.downloadArtifactStream(runId, arg);
  let n = 0;
  for await (const c of stream) n += c.byteLength;
  console.log(n);
}
`);
  // Rounds, each in the same order; the table gives the median of each (a name is a new
  // artifact each time, the blob is the same).
  let artifactId;
  for (let round = 0; round < rounds; round++) {
    record('curl upload', curlUpload(`curl-${round}.bin`));
    record('curl upload (chunked)', curlUpload(`curl-chunked-${round}.bin`, ['-H', 'transfer-encoding: chunked']));
    record('npm uploadArtifact (sha256 given)', timed([process.execPath, child, 'upload', url, token, runId, file, `node-${round}.bin`, sha]));
    record('npm uploadArtifact (hashes first)', timed([process.execPath, child, 'upload', url, token, runId, file, `node-hashed-${round}.bin`]));
    if (!artifactId) {
      const list = await new DataPilot({ baseUrl: url, token }).listArtifacts(runId).all();
      artifactId = list.find((x) => x.name === 'curl-0.bin').id;
    }
    record('curl download (not verified)', timed(['curl', '-sS', '-f', '-o', '/dev/null', ...auth, `${url}/v1/runs/${runId}/artifacts/${artifactId}/content`]));
    // The same download checked as the SDK checks it: curl piped into sha256sum (peak RSS of
    // the shell, curl and sha256sum each, the largest counted).
    const verified = timed(['sh', '-c', `curl -sS -f -H 'authorization: Bearer ${token}' '${url}/v1/runs/${runId}/artifacts/${artifactId}/content' | sha256sum`]);
    if (!verified.stdout.startsWith(sha)) throw new Error(`curl | sha256sum: ${verified.stdout}`);
    record('curl download piped to sha256sum (verified)', verified);
    record('npm downloadArtifactStream (verified)', timed([process.execPath, child, 'download', url, token, runId, artifactId]));
  }
  rmSync(file, { force: true });

  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const row = (what) => {
    const ts = samples.get(what);
    const secs = median(ts.map((t) => t.secs));
    return { what, secs, mibps: size / MIB / secs, rssMiB: Math.max(...ts.map((t) => t.rssMiB)), all: ts.map((t) => t.secs.toFixed(1)).join(' / ') };
  };
  const rows = [...samples.keys()].map(row);
  const base = (what) =>
    row(what.includes('download') ? (what.includes('(verified)') ? 'curl download piped to sha256sum (verified)' : 'curl download (not verified)') : 'curl upload');
  console.log(`| transfer of ${size / GIB} GiB (median of ${rounds}) | wall | each round | throughput | vs curl (downloads: verified vs verified) | peak RSS |`);
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    console.log(`| ${r.what} | ${r.secs.toFixed(1)} s | ${r.all} s | ${r.mibps.toFixed(0)} MiB/s | ${(r.mibps / base(r.what).mibps).toFixed(2)}x | ${r.rssMiB.toFixed(0)} MiB |`);
  }
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => (server.exitCode !== null ? r() : server.on('exit', r)));
  rmSync(work, { recursive: true, force: true });
}
