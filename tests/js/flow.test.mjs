// The full flow against a live reference server, through the installed package: register a
// directory, gates, a refused run, a run with its token (metrics, artifacts, finish), export,
// verify (and a tampered copy fails), proofs, lists, errors, timeouts, aborts, retries.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DataPilot,
  hashDirectory,
  isDataPilotError,
  openFileBlob,
  verifyCheckpoint,
  verifyConsistency,
  verifyEvidenceBundle,
  verifyInclusion,
} from '@animus/datapilot';
import { ADMIN_TOKEN, startServer } from './support.mjs';

let server;
let admin;
let eng;
let keys;
const state = {};

before(async () => {
  server = await startServer();
  admin = new DataPilot({ baseUrl: server.url, token: ADMIN_TOKEN });
  await admin.updatePolicy({ required_gates: ['schema'] });
  const t = await admin.createToken({ name: 'ci engineer', role: 'engineer' });
  assert.match(t.secret, /^dpt_/);
  eng = admin.withToken(t.secret);
  keys = (await admin.listVerifierKeys()).keys.map((k) => k.verifier);
});
after(() => server?.stop());

function dataDir() {
  const d = mkdtempSync(join(tmpdir(), 'dp-flow-'));
  mkdirSync(join(d, 'images'));
  writeFileSync(join(d, 'labels.csv'), 'id,label\n1,cat\n');
  writeFileSync(join(d, 'images', '1.raw'), Buffer.alloc(100_000, 1));
  return d;
}

const RUN = (ds, digest, name = 'train') => ({
  name,
  inputs: [{ dataset_id: ds, digest }],
  git_commit: '0123456789abcdef0123456789abcdef01234567',
  image_digest: `sha256:${'ab'.repeat(32)}`,
  params: { lr: '0.01' },
});

test('register a directory (idempotent by digest)', async () => {
  const who = await eng.whoAmI();
  assert.equal(who.role, 'engineer');
  state.checkpoint0 = await eng.getCheckpoint();
  const ds = await eng.createDataset({ name: 'flow-set', description: 'js flow' });
  const d = await hashDirectory(dataDir());
  const first = await eng.registerDatasetVersion(ds.id, { digest: d.digest, files: d.files, note: 'v1' });
  assert.equal(first.created, true);
  assert.equal(first.version.digest, d.digest);
  assert.equal(first.version.gate_status, 'pending');
  const again = await eng.registerDatasetVersion(ds.id, { digest: d.digest, files: d.files });
  assert.equal(again.created, false);
  const manifest = await eng.getDatasetVersionManifest(ds.id, d.digest);
  assert.deepEqual(manifest.files, d.files);
  state.ds = ds.id;
  state.digest = d.digest;
});

test('a run on an ungated input is refused with a typed gate_not_passed error', async () => {
  await assert.rejects(eng.createRun(RUN(state.ds, state.digest)), (e) => {
    assert.ok(isDataPilotError(e));
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'DataPilotError');
    assert.equal(e.code, 'gate_not_passed');
    assert.equal(e.status, 422);
    assert.equal(e.retryable, false);
    assert.equal(e.sent, 'yes');
    assert.ok(e.requestId, 'request id');
    assert.ok(!e.message.includes('dpt_'), 'no token in message');
    return true;
  });
});

test('gates, a run with its run token, metrics, artifacts, finish', async () => {
  await eng.recordGateResult(state.ds, state.digest, { gate: 'schema', status: 'passed', details: { rows: '1' } });
  assert.equal((await eng.getDatasetVersion(state.ds, state.digest)).gate_status, 'passed');
  const gates = await eng.listGateResults(state.ds, state.digest).all();
  assert.equal(gates.length, 1);

  const run = await eng.createRun(RUN(state.ds, state.digest));
  assert.match(run.runToken, /^dpr_/);
  assert.equal(run.run.status, 'running');
  assert.equal((await run.client.whoAmI()).role, 'run');

  const batch = await run.appendMetrics({ points: [{ name: 'loss', step: 1, value: 0.5 }, { name: 'loss', step: 2, value: 0.25 }] });
  assert.equal(batch.count, 2);
  const metrics = [];
  for await (const m of run.listMetrics({ name: 'loss' })) metrics.push(m.value);
  assert.deepEqual(metrics, [0.5, 0.25]);

  const dir = mkdtempSync(join(tmpdir(), 'dp-art-'));
  const modelSize = 3 * 1024 * 1024 + 5;
  writeFileSync(join(dir, 'model.bin'), Buffer.alloc(modelSize, 9));
  const events = [];
  const a1 = await run.uploadArtifact('model.bin', await openFileBlob(join(dir, 'model.bin')), { onProgress: (p) => events.push(p) });
  assert.equal(a1.size, modelSize);
  const phases = events.map((e) => e.phase);
  assert.ok(phases.includes('hashing') && phases.at(-1) === 'done', phases.join());
  // Node streams the file and reports the bytes sent as fetch pulls them (about every MiB).
  const sent = events.filter((e) => e.phase === 'uploading' && e.bytes > 0).map((e) => e.bytes);
  assert.ok(sent.length >= 3, `upload progress: ${sent.join()}`);
  assert.deepEqual(sent, [...sent].sort((x, y) => x - y), 'bytes sent only grow');
  assert.equal(sent.at(-1), modelSize);
  assert.ok(events.every((e) => e.totalBytes === modelSize));
  const a2 = await run.uploadArtifact('notes/readme.txt', new TextEncoder().encode('hello'));
  const listed = await run.listArtifacts().all();
  assert.deepEqual(listed.map((a) => a.name).sort(), ['model.bin', 'notes/readme.txt']);
  const dl = await run.downloadArtifact(a2.id);
  assert.equal(new TextDecoder().decode(dl.bytes), 'hello');
  assert.equal(dl.sha256, a2.sha256);

  const done = await run.finish({ status: 'succeeded' });
  assert.equal(done.status, 'succeeded');
  await assert.rejects(run.appendMetrics({ points: [{ name: 'loss', step: 3, value: 1 }] }), (e) => e.code === 'run_sealed');
  state.run = run.runId;
});

test('export and verify the evidence bundle; a tampered copy fails', async () => {
  const bundle = await eng.exportRunEvidence(state.run);
  assert.ok(bundle instanceof Uint8Array && bundle.length > 100);
  const pending = verifyEvidenceBundle(bundle, { trustedKeys: keys });
  assert.ok(pending instanceof Promise, 'async: the verifier module loads on first use');
  const report = await pending;
  assert.equal(report.ok, true, JSON.stringify(report.checks.filter((c) => !c.passed)));
  assert.equal(report.summary.scope, `run:${state.run}`);
  assert.ok(report.checks.length >= 10);

  for (const at of [40, Math.floor(bundle.length / 2), bundle.length - 30]) {
    const tampered = bundle.slice();
    tampered[at] ^= 0x01;
    const bad = await verifyEvidenceBundle(tampered, { trustedKeys: keys });
    assert.equal(bad.ok, false, `byte ${at}`);
  }
  const wrongKey = 'datapilot.local/ledger+5f52be1c+AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB';
  const wrong = await verifyEvidenceBundle(bundle, { trustedKeys: [wrongKey] });
  // Bad arguments reject (never throw synchronously), like every promise-returning call.
  await assert.rejects(verifyEvidenceBundle(bundle, { trustedKeys: [] }), (e) => isDataPilotError(e) && e.code === 'invalid_request');
  assert.equal(wrong.ok, false);

  // Online: consistency from the checkpoint trusted at the start.
  const online = await eng.verifyEvidenceBundle(bundle, { trustedKeys: keys, lastCheckpoint: state.checkpoint0 });
  assert.equal(online.ok, true, JSON.stringify(online.checks.filter((c) => !c.passed)));
  assert.ok(online.checks.some((c) => c.name === 'consistency' && c.passed));
  // Every client has the method (withToken and run handles make clients without `new`), and
  // it honours the call's signal.
  assert.equal(typeof admin.verifyEvidenceBundle, 'function');
  const aborted = AbortSignal.abort();
  await assert.rejects(
    eng.verifyEvidenceBundle(bundle, { trustedKeys: keys, lastCheckpoint: state.checkpoint0, signal: aborted }),
    (e) => e.name === 'AbortError',
  );
  // A bad call option rejects with the client's typed error when the proof is fetched.
  await assert.rejects(
    eng.verifyEvidenceBundle(bundle, { trustedKeys: keys, lastCheckpoint: state.checkpoint0, deadlineMs: -1 }),
    (e) => isDataPilotError(e) && e.code === 'invalid_request',
  );
  // A tampered bundle does not reject online either: the report says it.
  const tamperedOnline = bundle.slice();
  tamperedOnline[Math.floor(bundle.length / 2)] ^= 0x01;
  const badOnline = await eng.verifyEvidenceBundle(tamperedOnline, { trustedKeys: keys, lastCheckpoint: state.checkpoint0 });
  assert.equal(badOnline.ok, false);
  state.bundleCheckpoint = report.summary.checkpoint;
});

test('checkpoints and proofs verify with the low-level functions', async () => {
  const cp = await verifyCheckpoint(await eng.getCheckpoint(), keys);
  assert.ok(cp.tree_size > 5);
  const proof = await eng.getInclusionProof(3, { treeSize: cp.tree_size });
  assert.equal(verifyInclusion({ leafHash: proof.leaf_hash, index: 3, treeSize: cp.tree_size, proof: proof.hashes, rootHash: cp.root_hash }), true);
  assert.equal(verifyInclusion({ leafHash: proof.leaf_hash, index: 2, treeSize: cp.tree_size, proof: proof.hashes, rootHash: cp.root_hash }), false);
  const old = await verifyCheckpoint(state.checkpoint0, keys);
  const cons = await eng.getConsistencyProof(old.tree_size, { to: cp.tree_size });
  assert.equal(verifyConsistency({ oldSize: old.tree_size, newSize: cp.tree_size, oldRoot: old.root_hash, newRoot: cp.root_hash, proof: cons.hashes }), true);
  await assert.rejects(verifyCheckpoint(state.checkpoint0, ['datapilot.local/ledger+5f52be1c+AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB']), (e) => isDataPilotError(e) && e.code === 'verification_failed');
  await assert.rejects(verifyCheckpoint(state.checkpoint0, ['not a key']), (e) => isDataPilotError(e) && e.code === 'invalid_request');
});

test('async iterators follow cursors across pages; lineage and audit', async () => {
  for (let i = 0; i < 3; i++) await eng.createRun(RUN(state.ds, state.digest, `page-${i}`));
  const it = eng.listRuns({ limit: 2 });
  const first = await it.nextPage();
  assert.equal(first.items.length, 2);
  assert.ok(first.next_cursor);
  const names = [];
  for await (const r of eng.listRuns({ limit: 1 })) names.push(r.name);
  assert.deepEqual(names, ['train', 'page-0', 'page-1', 'page-2']);
  const lineage = await eng.getRunLineage(state.run);
  assert.ok(lineage.edges.some((e) => e.kind === 'input'));
  const events = await admin.listAuditEvents({ subject: `run:${state.run}`, limit: 2 }).all();
  assert.ok(events.some((e) => e.action === 'run.finish'));
  const entries = await admin.listLedgerEntries({ start: 1, limit: 3 }).nextPage();
  assert.equal(entries.items[0].seq, 1);
});

test('timeouts, aborts and bad input fail fast with typed errors', async () => {
  // A server that accepts connections and never answers.
  const hang = createTcpServer(() => {}).listen(0, '127.0.0.1');
  await new Promise((r) => hang.once('listening', r));
  const slow = new DataPilot({ baseUrl: `http://127.0.0.1:${hang.address().port}`, maxAttempts: 1 });
  const t0 = Date.now();
  await assert.rejects(slow.getHealth({ timeoutMs: 200 }), (e) => e.code === 'timeout' && e.retryable && e.sent === 'maybe');
  assert.ok(Date.now() - t0 < 5000);
  const ac = new AbortController();
  const p = slow.getHealth({ signal: ac.signal, timeoutMs: 60_000 });
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(p, (e) => e.name === 'AbortError');
  hang.close();

  assert.throws(() => new DataPilot({ baseUrl: 'relative/path' }), (e) => isDataPilotError(e) && e.code === 'invalid_request');
  // Async methods reject on bad arguments (JS convention); they never throw synchronously.
  await assert.rejects(eng.createDataset({ nme: 1 }), (e) => isDataPilotError(e) && e.sent === 'no');
  await assert.rejects(eng.getAuditEvent(-1), (e) => isDataPilotError(e) && e.code === 'invalid_request');
  await assert.rejects(new DataPilot({ baseUrl: server.url, token: 'dpt_wrongwrongwrongwrong12' }).whoAmI(), (e) => {
    return e.code === 'unauthenticated' && e.status === 401 && !e.message.includes('wrongwrong');
  });
});

test('retries 503 with Retry-After and reuses the idempotency key', async () => {
  const seen = [];
  const fake = createServer((req, res) => {
    seen.push(req.headers['idempotency-key']);
    if (seen.length < 3) {
      res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '0', 'x-request-id': `r${seen.length}` });
      res.end(JSON.stringify({ type: 'x', title: 'busy', status: 503, detail: 'busy', code: 'unavailable', request_id: `r${seen.length}` }));
      return;
    }
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 'ds_1', name: 'n', description: null, created_at: 't', created_by: 'me' }));
  }).listen(0, '127.0.0.1');
  await new Promise((r) => fake.once('listening', r));
  const c = new DataPilot({ baseUrl: `http://127.0.0.1:${fake.address().port}`, token: 'dpt_fakefakefakefake1234' });
  const ds = await c.createDataset({ name: 'n' });
  assert.equal(ds.id, 'ds_1');
  assert.equal(seen.length, 3);
  assert.ok(seen[0] && seen.every((k) => k === seen[0]), seen.join());
  fake.close();
});

test('deadlineMs bounds the whole call, retries and Retry-After waits included', async (t) => {
  let hits = 0;
  const busy = createServer((req, res) => {
    hits += 1;
    res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '2', 'x-request-id': `b${hits}` });
    res.end(JSON.stringify({ type: 'x', title: 'busy', status: 503, detail: 'busy', code: 'unavailable', request_id: `b${hits}` }));
  }).listen(0, '127.0.0.1');
  await new Promise((r) => busy.once('listening', r));
  t.after(() => busy.close());
  const url = `http://127.0.0.1:${busy.address().port}`;
  // A 2 s Retry-After does not fit in a 500 ms deadline: one attempt, then the 503 itself.
  const c = new DataPilot({ baseUrl: url, maxAttempts: 5, deadlineMs: 500 });
  let t0 = Date.now();
  await assert.rejects(c.getHealth(), (e) => isDataPilotError(e) && e.code === 'unavailable' && e.status === 503);
  assert.ok(Date.now() - t0 < 1500, `took ${Date.now() - t0} ms`);
  assert.equal(hits, 1);
  // The per-call option overrides the client's: with 5 s the Retry-After wait fits once.
  hits = 0;
  t0 = Date.now();
  await assert.rejects(c.getHealth({ deadlineMs: 5_000 }), (e) => e.code === 'unavailable');
  assert.ok(hits >= 2, `hits ${hits}`);
  await assert.rejects(c.getHealth({ deadlineMs: -1 }), (e) => isDataPilotError(e) && e.code === 'invalid_request');
});

test('a rate-limited server (--rate-limit): calls wait out Retry-After; without retries the 429 is typed', async (t) => {
  const limited = await startServer(['--rate-limit', '2', '--rate-limit-burst', '2']);
  t.after(() => limited.stop());
  const c = new DataPilot({ baseUrl: limited.url, token: ADMIN_TOKEN });
  const t0 = Date.now();
  for (let i = 0; i < 4; i++) assert.equal((await c.whoAmI()).role, 'admin');
  // The burst of 2 at once, then each call refused first and retried after Retry-After (1 s).
  assert.ok(Date.now() - t0 >= 900, `took ${Date.now() - t0} ms`);
  const once = new DataPilot({ baseUrl: limited.url, token: ADMIN_TOKEN, maxAttempts: 1 });
  let refused;
  for (let i = 0; i < 3 && !refused; i++) {
    try {
      await once.whoAmI();
    } catch (e) {
      refused = e;
    }
  }
  assert.ok(isDataPilotError(refused), String(refused));
  assert.equal(refused.status, 429);
  assert.equal(refused.code, 'rate_limited');
  assert.equal(refused.retryable, true);
  assert.ok(refused.requestId);
});
