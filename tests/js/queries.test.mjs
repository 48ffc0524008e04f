// The dashboard queries through the installed npm package against a live server: newest
// first, run filters, a dataset by name, artifacts by content, lineage three generations
// deep, metric summaries and a comparison; bad options are typed errors before any request.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { DataPilot, datasetDigest, isDataPilotError } from '@animus/datapilot';
import { ADMIN_TOKEN, startServer } from './support.mjs';

let server;
let dp;
const chain = [];
const runs = [];
const sha = (s) => createHash('sha256').update(s).digest('hex');

before(async () => {
  server = await startServer();
  dp = new DataPilot({ baseUrl: server.url, token: ADMIN_TOKEN });
  for (const name of ['q-raw', 'q-clean', 'q-features', 'q-model']) {
    const ds = await dp.createDataset({ name });
    const files = [{ path: `${name}.csv`, sha256: sha(name), size: name.length }];
    const digest = datasetDigest(files);
    await dp.registerDatasetVersion(ds.id, { digest, files });
    chain.push({ id: ds.id, digest });
  }
  // q-raw -> gen-0 -> q-clean -> gen-1 -> q-features -> gen-2 -> q-model
  for (let g = 0; g < 3; g++) {
    const run = await dp.createRun({
      name: `gen-${g}`,
      inputs: [{ dataset_id: chain[g].id, digest: chain[g].digest }],
      git_commit: String(g).repeat(40),
      image_digest: `sha256:${'e'.repeat(64)}`,
    });
    await run.appendMetrics({
      points: Array.from({ length: 100 }, (_, s) => ({ name: 'loss', step: s, value: (g + 1) / (s + 1) })),
    });
    await run.uploadArtifact('weights.bin', new TextEncoder().encode(`w${g}`));
    await run.finish({ status: 'succeeded', outputs: [{ dataset_id: chain[g + 1].id, digest: chain[g + 1].digest }] });
    runs.push(run.runId);
  }
});
after(() => server?.stop());

test('latest runs first, filtered, and cursors that stay with their list', async () => {
  const latest = await dp.listRuns({ order: 'desc', limit: 2 }).all();
  assert.deepEqual(latest.map((r) => r.id), [...runs].reverse());
  const onClean = await dp.listRuns({ input: `${chain[1].id}@${chain[1].digest}` }).all();
  assert.deepEqual(onClean.map((r) => r.id), [runs[1]]);
  const madeModel = await dp.listRuns({ output: `${chain[3].id}@${chain[3].digest}` }).all();
  assert.deepEqual(madeModel.map((r) => r.id), [runs[2]]);
  const byCommit = await dp.listRuns({ gitCommit: '1'.repeat(40), status: 'succeeded' }).all();
  assert.deepEqual(byCommit.map((r) => r.id), [runs[1]]);
  assert.equal((await dp.listRuns({ createdAfter: '2999-01-01T00:00:00Z' }).all()).length, 0);

  // A cursor from the desc list given to the asc list is a typed 400, not a wrong page.
  const it = dp.listRuns({ order: 'desc', limit: 1 });
  await it.nextPage();
  await assert.rejects(dp.listRuns({ cursor: it.cursor }).nextPage(), (e) => {
    assert.ok(isDataPilotError(e));
    assert.equal(e.status, 400);
    assert.equal(e.code, 'bad_request');
    return true;
  });
  assert.throws(() => dp.listRuns({ order: 'newest' }), (e) => isDataPilotError(e) && e.code === 'invalid_request');
});

test('a dataset by name and artifacts by content', async () => {
  const [features] = await dp.listDatasets({ name: 'q-features' }).all();
  assert.equal(features.id, chain[2].id);
  assert.deepEqual(await dp.listDatasets({ name: 'nothing-here' }).all(), []);
  const arts = await dp.findArtifacts(sha('w1')).all();
  assert.deepEqual(arts.map((a) => a.run_id), [runs[1]]);
});

test('lineage three generations deep in one call', async () => {
  const node = `dataset_version:${chain[0].id}@${chain[0].digest}`;
  const model = `dataset_version:${chain[3].id}@${chain[3].digest}`;
  const g3 = await dp.getLineage(node, { direction: 'downstream', depth: 3 });
  assert.ok(g3.nodes.some((n) => n.id === model));
  assert.equal(g3.nodes.filter((n) => n.kind === 'run').length, 3);
  const g1 = await dp.getLineage(node, { direction: 'downstream', depth: 1 });
  assert.equal(g1.nodes.filter((n) => n.kind === 'run').length, 1);
  const up = await dp.getLineage(model, { direction: 'upstream', depth: 2 });
  assert.deepEqual(up.nodes.filter((n) => n.kind === 'run').map((n) => n.id).sort(), [`run:${runs[1]}`, `run:${runs[2]}`].sort());
  await assert.rejects(dp.getLineage(node, { depth: 11 }), (e) => isDataPilotError(e) && e.code === 'invalid_request');
});

test('metric summaries and a comparison of runs', async () => {
  const s = await dp.getMetricSummary(runs[0], { points: 10 });
  assert.equal(s.run_id, runs[0]);
  assert.equal(s.metrics[0].name, 'loss');
  assert.equal(s.metrics[0].count, 100);
  assert.equal(s.metrics[0].series.length, 10);
  assert.equal(s.metrics[0].last_step, 99);
  assert.equal(s.metrics[0].max, 1);
  const cmp = await dp.compareMetrics([runs[2], runs[0]], 'loss', { points: 5 });
  assert.deepEqual(cmp.runs.map((r) => r.run_id), [runs[2], runs[0]]);
  assert.equal(cmp.runs[0].metrics[0].max, 3);
  await assert.rejects(dp.compareMetrics([], 'loss'), (e) => isDataPilotError(e) && e.code === 'invalid_request');
});

test('an unknown problem code is a generic api error; unknown response fields pass through', async () => {
  const { createServer } = await import('node:http');
  const http = createServer((req, res) => {
    if (req.url.startsWith('/v1/runs/')) {
      res.writeHead(418, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ type: 'https://animus.dev/datapilot/problems/brand_new_code', title: 'T', status: 418, detail: 'a v1.9 server refuses this', code: 'brand_new_code', request_id: 'req_x' }));
    } else {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok', version: '1.9.0', tree_size: 3, brand_new_field: { x: 1 } }));
    }
  });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  try {
    const c = new DataPilot({ baseUrl: `http://127.0.0.1:${http.address().port}`, token: ADMIN_TOKEN });
    await assert.rejects(c.getRun('run_01JD8Y7B2C4D6E8F0G1H3J5K7M'), (e) => {
      assert.ok(isDataPilotError(e));
      assert.equal(e.kind, 'api');
      assert.equal(e.code, 'brand_new_code');
      assert.equal(e.status, 418);
      assert.equal(e.retryable, false);
      return true;
    });
    const h = await c.getHealth();
    assert.equal(h.status, 'ok');
  } finally {
    http.close();
  }
});
