// The npm client's writes through a network that fails (issue 11), like tests/client_faults.rs
// for the native client: a couple hundred logical writes (datasets, versions, runs, metric
// batches, artifact uploads, finishes) from three concurrent jobs go through the fault proxy
// (tests/fault_proxy/, started as a process), which resets connections before, during and
// after the server handles a request, answers 503 and 409 `idempotency_in_flight` itself,
// truncates answers and adds delays, on a seeded schedule. Then, straight from the server, the
// audit log and the objects must show every acknowledged write exactly once and no write twice.
//
// Reproduce a failure with the seed it prints: DATAPILOT_FAULT_SEED=<seed>. Every write sends
// an explicit idempotency key made of its job, iteration and run name (never a server-made id),
// so the faults it meets depend on the seed alone; only which of two racing deliveries wins (a
// late one against its retry) is left to timing.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataPilot, hashDirectory, openFileBlob } from '@animus/datapilot';
import { ADMIN_TOKEN, startFaultProxy, startServer } from './support.mjs';

const JOBS = 3;
const ITERATIONS = 6;
const BATCHES = 6;
const ARTIFACTS = 2;
/** Least injections of each fault for the run to count (so it cannot pass vacuously). */
const MIN_PER_FAULT = 3;
// The per-mille rates of tests/client_faults.rs: about a third of all requests meet a fault.
const PROXY_ARGS = [
  ['reset_before', 60], ['reset_during', 60], ['cut_upstream', 50], ['reset_after', 70],
  ['unavailable_503', 50], ['in_flight_409', 50], ['truncated', 60],
].flatMap(([name, rate]) => ['--rate', `${name}=${rate}`])
  .concat(['--delay', '200:150', '--retry-after', '1', '--max-faults-per-key', '2']);

let server;
let proxy;
let direct;
let engToken;
let work;

before(async () => {
  server = await startServer();
  direct = new DataPilot({ baseUrl: server.url, token: ADMIN_TOKEN });
  engToken = (await direct.createToken({ name: 'fault jobs', role: 'engineer' })).secret;
  const seed = process.env.DATAPILOT_FAULT_SEED;
  proxy = await startFaultProxy(server.url, seed ? [...PROXY_ARGS, '--seed', seed] : PROXY_ARGS);
  console.log(`fault proxy seed ${proxy.seed} (DATAPILOT_FAULT_SEED=${proxy.seed} replays this schedule)`);
  work = mkdtempSync(join(tmpdir(), 'dp-faults-'));
});
after(async () => {
  await proxy?.stop().catch(() => {});
  await server?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Identity of a logical write in the audit log (see targetOf). */
const T = {
  dataset: (name) => `dataset ${name}`,
  version: (digest) => `version ${digest}`,
  run: (name) => `run ${name}`,
  metrics: (runId, count) => `metrics ${runId} ${count}`,
  artifact: (runId, name) => `artifact ${runId} ${name}`,
  finish: (runId) => `finish ${runId}`,
};

function targetOf(e) {
  const run = e.subject.replace(/^run:/, '');
  switch (e.action) {
    case 'dataset.create': return T.dataset(e.data.name);
    case 'dataset_version.register': return T.version(e.data.digest);
    case 'run.create': return T.run(e.data.name);
    case 'metrics.append': return T.metrics(run, e.data.count);
    case 'artifact.upload': return T.artifact(run, e.data.name);
    case 'run.finish': return T.finish(run);
    default: return null;
  }
}

const ledger = [];

/**
 * One logical write with `key` on every attempt (the SDK's retries); records what the SDK
 * reported.
 */
async function write(key, target, seqOf, op) {
  try {
    const value = await op(key);
    ledger.push({ key, target, acked: true, seq: seqOf(value) });
    return value;
  } catch (e) {
    ledger.push({ key, target, acked: false, error: `${e.code}: ${e.message}` });
    throw e;
  }
}

/**
 * A client for one write. Its retry budget (100 tokens, 10 per retry, 1 back per success)
 * exists to stop a client multiplying an outage's load, and would drain within thirty calls
 * on a network failing a third of all requests by design; then the SDK stops retrying on
 * purpose, which would hide a retry it wrongly skips. A budget per write leaves only the SDK's
 * own rules: six attempts (two faults per key at most, and a 409 in flight after each), within
 * the default deadline. Connections are pooled across clients by Node's fetch all the same.
 */
const client = (token) => new DataPilot({ baseUrl: proxy.url, token, maxAttempts: 6, timeoutMs: 10_000 });

const RUN = (name, input) => ({
  name,
  inputs: [input],
  git_commit: '4015b57a143aec5156fd1444a017a32137a3fd0f',
  image_digest: `sha256:${'6105d6cc'.repeat(8)}`,
});

async function iteration(n, i) {
  const tag = `j${n}-i${i}`;
  const eng = () => client(engToken);
  const name = `faults-${tag}`;
  const ds = await write(`ds-${tag}`, T.dataset(name), () => null, (k) => eng().createDataset({ name }, { idempotencyKey: k }));
  const dir = mkdtempSync(join(work, `${tag}-`));
  writeFileSync(join(dir, 'data.csv'), `id,job,iteration\n1,${n},${i}\n`);
  const d = await hashDirectory(dir);
  const reg = await write(`version-${tag}`, T.version(d.digest), (r) => r.version.audit_seq, (k) =>
    eng().registerDatasetVersion(ds.id, { digest: d.digest, files: d.files }, { idempotencyKey: k }));
  // A replay answers what the first attempt got (201); a retry that ran again would say 200.
  assert.equal(reg.created, true, `${tag}: the version's registration was not the first one`);
  const input = { dataset_id: ds.id, digest: d.digest };

  let runName = `run-${tag}`;
  let run;
  for (;;) {
    try {
      run = await write(`create-${runName}`, T.run(runName), (h) => h.run.audit_seq, (k) =>
        eng().createRun(RUN(runName, input), { idempotencyKey: k }));
      break;
    } catch (e) {
      if (e.code !== 'secret_not_replayable') throw e;
      // The first answer was lost after the run was created; its token is gone. Close the
      // orphan (as the problem's detail says) and start another run.
      const orphan = (await direct.listRuns().all()).find((r) => r.name === runName);
      assert.ok(orphan, `${runName}: no orphaned run after ${e.message}`);
      await write(`finish-orphan-${runName}`, T.finish(orphan.id), () => null, (k) =>
        eng().finishRun(orphan.id, { status: 'failed' }, { idempotencyKey: k }));
      runName += '-again';
    }
  }
  const runId = run.runId;
  // The run's writes through a RunHandle with the run token, on a fresh client each.
  const asRun = () => eng().runHandle(runId, run.runToken);
  for (let b = 1; b <= BATCHES; b++) {
    // Batch b has b points: its count identifies it in the audit log.
    const points = Array.from({ length: b }, (_, p) => ({ name: 'loss', step: b * 100 + p, value: 1 / (b + p + 1) }));
    await write(`metrics-${runName}-${b}`, T.metrics(runId, b), (m) => m.audit_seq, (k) =>
      asRun().appendMetrics({ points }, { idempotencyKey: k }));
  }
  for (let a = 0; a < ARTIFACTS; a++) {
    const artName = `out/part-${a}.bin`;
    const text = `artifact ${a} of ${runId}\n`.repeat(50 + a * 10);
    const key = `artifact-${runName}-${a}`;
    if (a === 0) {
      // Bytes.
      await write(key, T.artifact(runId, artName), (x) => x.audit_seq, (k) =>
        asRun().uploadArtifact(artName, new TextEncoder().encode(text), { idempotencyKey: k }));
    } else {
      // A file-backed Blob watched for progress: Node streams it chunked, read anew per attempt.
      const path = join(dir, `part-${a}.bin`);
      writeFileSync(path, text);
      await write(key, T.artifact(runId, artName), (x) => x.audit_seq, async (k) =>
        asRun().uploadArtifact(artName, await openFileBlob(path), { idempotencyKey: k, onProgress: () => {} }));
    }
  }
  await write(`finish-${runName}`, T.finish(runId), () => null, (k) => asRun().finish({ status: 'succeeded' }, { idempotencyKey: k }));
}

test('a couple hundred writes through network faults are applied exactly once', { timeout: 600_000 }, async () => {
  const started = Date.now();
  const jobs = await Promise.allSettled(
    Array.from({ length: JOBS }, async (_, n) => {
      for (let i = 0; i < ITERATIONS; i++) await iteration(n, i);
    }),
  );
  const elapsed = (Date.now() - started) / 1000;
  const stats = await proxy.stats();

  // A failure other than the designed one is the SDK giving up on something it should retry
  // (or the server refusing a retry).
  const failures = ledger
    .filter((w) => !w.acked && !(w.target.startsWith('run ') && w.error.startsWith('secret_not_replayable')))
    .map((w) => `${w.key} (${w.target}): ${w.error}`);
  jobs.forEach((j, n) => j.status === 'rejected' && failures.push(`job ${n} stopped: ${j.reason?.stack ?? j.reason}`));

  // Straight from the server: every audit event, by the identity of the write it records.
  const applied = new Map();
  for (const e of await direct.listAuditEvents().all()) {
    const t = targetOf(e);
    if (t === null) {
      assert.ok(['ledger.init', 'token.create'].includes(e.action), `unexpected event ${JSON.stringify(e)}`);
      continue;
    }
    applied.set(t, [...(applied.get(t) ?? []), e.seq]);
  }
  const asked = new Set(ledger.map((w) => w.target));
  for (const t of applied.keys()) assert.ok(asked.has(t), `an event no write asked for: ${t}`);
  const duplicates = [];
  const missing = [];
  let acked = 0;
  let unackedApplied = 0;
  for (const w of ledger) {
    const seqs = applied.get(w.target) ?? [];
    if (seqs.length > 1) duplicates.push(`${w.key} (${w.target}): events ${seqs}`);
    if (w.acked) {
      acked++;
      if (seqs.length === 0) missing.push(`${w.key} (${w.target})`);
      else if (w.seq != null && seqs.length === 1) assert.equal(seqs[0], w.seq, `${w.key}: the answer names another event`);
    } else {
      unackedApplied += seqs.length;
    }
  }
  assert.deepEqual(duplicates, [], `seed ${proxy.seed}: applied twice`);
  assert.deepEqual(missing, [], `seed ${proxy.seed}: acknowledged but not on the server`);
  // After the duplicate check, which holds for whatever the jobs did before they stopped.
  assert.deepEqual(failures, [], `seed ${proxy.seed}: writes failed`);

  // What is left unacknowledged is secret_not_replayable: each of those runs was created.
  assert.equal(unackedApplied, ledger.length - acked);

  // The objects agree with the log: each run holds exactly the points and artifacts it was sent
  // once, and its status is the finish it got.
  let runsChecked = 0;
  for (const w of ledger.filter((x) => x.acked && x.target.startsWith('finish '))) {
    const id = w.target.slice('finish '.length);
    const orphan = w.key.startsWith('finish-orphan-');
    assert.equal((await direct.getRun(id)).status, orphan ? 'failed' : 'succeeded', id);
    if (orphan) continue;
    const points = await direct.listMetrics(id).all();
    assert.equal(points.length, (BATCHES * (BATCHES + 1)) / 2, `${id}: points`);
    assert.equal(new Set(points.map((p) => p.step)).size, points.length, `${id}: a point stored twice`);
    const arts = await direct.listArtifacts(id).all();
    assert.equal(arts.length, ARTIFACTS, `${id}: artifacts`);
    assert.equal(new Set(arts.map((a) => a.name)).size, ARTIFACTS, `${id}: an artifact stored twice`);
    runsChecked++;
  }
  assert.equal(runsChecked, JOBS * ITERATIONS);

  const faults = Object.fromEntries(
    ['reset_before', 'reset_during', 'cut_upstream', 'reset_after', 'unavailable_503', 'in_flight_409', 'truncated'].map((f) => [f, stats[f]]),
  );
  console.log(
    `${ledger.length} logical writes (${acked} acknowledged, ${ledger.length - acked} createRun answers lost and ` +
      `the orphan closed) in ${elapsed.toFixed(1)} s; ` +
      `proxy: ${stats.requests} requests, ${stats.forwarded} forwarded, ${stats.delays} delayed, faults ${JSON.stringify(faults)}; ` +
      `duplicates: ${duplicates.length}`,
  );
  assert.ok(ledger.length >= 200, `${ledger.length} writes`);
  for (const [f, count] of Object.entries(faults)) {
    assert.ok(count >= MIN_PER_FAULT, `seed ${proxy.seed}: only ${count} ${f} faults: the run proves too little`);
  }
  assert.ok(stats.delays >= MIN_PER_FAULT, `only ${stats.delays} delays`);
});
