// The `datapilot` bin of the installed package: exit codes, one-line errors, --json, and the
// commands against a live server.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataPilot } from '@animus/datapilot';
import { ADMIN_TOKEN, startServer } from './support.mjs';

const BIN = join('node_modules', '.bin', 'datapilot');
let server;
let keys;
let freePort;

function cli(args, env = {}) {
  const r = spawnSync(BIN, args, {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, DATAPILOT_URL: server?.url ?? '', DATAPILOT_TOKEN: ADMIN_TOKEN, ...env },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function oneLine(r) {
  assert.equal(r.err.split('\n').filter(Boolean).length, 1, `stderr: ${r.err}`);
  assert.match(r.err, /^datapilot: /);
}

/** A port nothing listens on (bound, then released). */
async function unusedPort() {
  const { createServer } = await import('node:net');
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

before(async () => {
  freePort = await unusedPort();
  server = await startServer();
  const admin = new DataPilot({ baseUrl: server.url, token: ADMIN_TOKEN });
  keys = (await admin.listVerifierKeys()).keys.map((k) => k.verifier);
});
after(() => server?.stop());

test('--help and --version', () => {
  const h = cli(['--help']);
  assert.equal(h.code, 0);
  for (const c of ['digest', 'register', 'export', 'verify', 'whoami', '--json']) assert.ok(h.out.includes(c), c);
  assert.match(cli(['--version']).out, /^\d+\.\d+\.\d+/);
});

test('usage errors exit 2 with one line', () => {
  for (const args of [['frobnicate'], ['digest'], ['verify', 'x.zip'], ['export', '--run', 'r'], ['--bogus']]) {
    const r = cli(args);
    assert.equal(r.code, 2, args.join(' '));
    oneLine(r);
  }
  const noUrl = cli(['whoami'], { DATAPILOT_URL: '' });
  assert.equal(noUrl.code, 2);
  oneLine(noUrl);
});

test('whoami, and a bad token fails with one line and no secret', () => {
  const me = cli(['whoami', '--json']);
  assert.equal(me.code, 0, me.err);
  assert.equal(JSON.parse(me.out).role, 'admin');
  const bad = cli(['whoami'], { DATAPILOT_TOKEN: 'dpt_notTheRightToken123456' });
  assert.equal(bad.code, 1);
  oneLine(bad);
  assert.match(bad.err, /401/);
  assert.ok(!bad.err.includes('notTheRightToken'));
  // Nothing listens there: retryable, so 75 (EX_TEMPFAIL), not 1.
  const down = cli(['whoami', '--url', `http://127.0.0.1:${freePort}`, '--timeout-ms', '2000']);
  assert.equal(down.code, 75, down.err);
  oneLine(down);
});

test('digest, register, export, verify; a tampered bundle exits 3', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dp-cli-'));
  writeFileSync(join(dir, 'a.txt'), 'a\n');
  writeFileSync(join(dir, 'b.txt'), 'b\n');
  const d = cli(['digest', dir]);
  assert.equal(d.code, 0, d.err);
  assert.match(d.out.trim(), /^sha256:[0-9a-f]{64}$/);
  const dj = JSON.parse(cli(['digest', dir, '--json']).out);
  assert.equal(dj.digest, d.out.trim());
  assert.equal(dj.file_count, 2);

  const reg = cli(['register', dir, '--dataset', 'cli-set', '--json']);
  assert.equal(reg.code, 0, reg.err);
  const r = JSON.parse(reg.out);
  assert.equal(r.created, true);
  assert.equal(r.version.digest, dj.digest);
  const again = cli(['register', dir, '--dataset', 'cli-set']);
  assert.equal(again.code, 0, again.err);
  assert.match(again.out, /already registered/);

  const admin = new DataPilot({ baseUrl: server.url, token: ADMIN_TOKEN });
  const run = await admin.createRun({
    name: 'cli-run',
    inputs: [{ dataset_id: r.dataset_id, digest: dj.digest }],
    git_commit: 'f'.repeat(40),
    image_digest: `sha256:${'c'.repeat(64)}`,
  });
  await run.finish({ status: 'failed' });

  const file = join(dir, 'evidence.zip');
  const ex = cli(['export', '--run', run.runId, '-o', file]);
  assert.equal(ex.code, 0, ex.err);
  const v = cli(['verify', file, ...keys.flatMap((k) => ['--trusted-key', k])]);
  assert.equal(v.code, 0, v.out + v.err);
  assert.match(v.out, /^ok +inclusion\.proofs: /m);
  const vj = cli(['verify', file, '--json', '--trusted-key', keys[0]]);
  assert.equal(JSON.parse(vj.out).ok, true);

  const bytes = readFileSync(file);
  bytes[Math.floor(bytes.length / 2)] ^= 0xff;
  writeFileSync(file, bytes);
  const bad = cli(['verify', file, '--trusted-key', keys[0]]);
  assert.equal(bad.code, 3);
  oneLine(bad);
  assert.match(bad.err, /does not verify/);

  const missing = cli(['export', '--run', 'run_01M8XPHYHJZYEN9D2W0Y78MK94', '-o', join(dir, 'x.zip')]);
  assert.equal(missing.code, 1);
  oneLine(missing);
  assert.match(missing.err, /404|not_found/);
});

test('a CI job: gate, run-start (eval-able), metrics, upload, run-finish, export, verify', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dp-cli-job-'));
  writeFileSync(join(dir, 'train.csv'), 'id,label\n1,cat\n');
  const admin = new DataPilot({ baseUrl: server.url, token: ADMIN_TOKEN });
  await admin.updatePolicy({ required_gates: ['schema'] });
  const reg = JSON.parse(cli(['register', dir, '--dataset', 'job-set', '--json']).out);
  const input = `job-set@${reg.version.digest}`;
  const start = ['run-start', '--input', input, '--git-commit', 'a'.repeat(40), '--image-digest', `sha256:${'b'.repeat(64)}`, '--name', 'nightly', '--param', 'lr=0.01'];

  // Before the gate passes the run is refused: one line, exit 1, the server's code.
  const refused = cli([...start, '--print-env']);
  assert.equal(refused.code, 1);
  // What eval would run: no variables, and the failure's status.
  assert.equal(refused.out, 'unset DATAPILOT_RUN_ID DATAPILOT_RUN_TOKEN; (exit 1)\n');
  oneLine(refused);
  assert.match(refused.err, /gate_not_passed|has not passed/);

  const g = cli(['gate', input, '--gate', 'schema', '--status', 'passed', '--detail', 'rows=1']);
  assert.equal(g.code, 0, g.err);
  assert.match(g.out, /gates now passed/);

  // run-start --print-env prints shell lines; what a job would eval.
  const s = cli([...start, '--print-env']);
  assert.equal(s.code, 0, s.err);
  const env = Object.fromEntries([...s.out.matchAll(/^export (DATAPILOT_RUN_ID|DATAPILOT_RUN_TOKEN)='(\S+)'$/gm)].map((m) => [m[1], m[2]]));
  assert.match(env.DATAPILOT_RUN_ID, /^run_/);
  assert.match(env.DATAPILOT_RUN_TOKEN, /^dpr_/);
  // The run commands use the run token (least privilege); the API token is not needed.
  const asRun = (args) => cli(args, { ...env, DATAPILOT_TOKEN: '' });
  assert.equal(JSON.parse(asRun(['whoami', '--json', '--token', env.DATAPILOT_RUN_TOKEN]).out).role, 'run');

  const points = join(dir, 'metrics.jsonl');
  writeFileSync(points, '{"name":"loss","step":1,"value":0.5}\n\n{"name":"loss","step":2,"value":0.25}\n');
  const m = asRun(['metrics', points]);
  assert.equal(m.code, 0, m.err);
  assert.match(m.out, /appended 2 metric points/);
  writeFileSync(join(dir, 'bad.jsonl'), '{"name":"loss","step":1,"value":0.5}\n{"name":"loss"}\n');
  const badPoints = asRun(['metrics', join(dir, 'bad.jsonl')]);
  assert.equal(badPoints.code, 1);
  oneLine(badPoints);
  assert.match(badPoints.err, /bad\.jsonl:2: expected/);

  const model = join(dir, 'model.bin');
  writeFileSync(model, Buffer.alloc(2 * 1024 * 1024 + 3, 5));
  const u = asRun(['upload', model, '--json']);
  assert.equal(u.code, 0, u.err);
  const artifact = JSON.parse(u.out);
  assert.equal(artifact.name, 'model.bin');
  assert.equal(artifact.size, 2 * 1024 * 1024 + 3);

  assert.equal(asRun(['run-finish', '--status', 'done']).code, 2, 'a bad status is a usage error');
  const f = asRun(['run-finish', '--status', 'succeeded']);
  assert.equal(f.code, 0, f.err);
  assert.match(f.out, /succeeded/);

  // What the job left is in the run's evidence, and it verifies.
  const bundle = join(dir, 'evidence.zip');
  assert.equal(cli(['export', '--run', env.DATAPILOT_RUN_ID, '-o', bundle]).code, 0);
  const v = cli(['verify', bundle, '--json', ...keys.flatMap((k) => ['--trusted-key', k])]);
  assert.equal(v.code, 0, v.out + v.err);
  assert.equal(JSON.parse(v.out).ok, true);
  const run = await admin.getRun(env.DATAPILOT_RUN_ID);
  assert.equal(run.status, 'succeeded');
  assert.deepEqual(run.params, { lr: '0.01' });

  // Without a run the run commands are a usage error.
  const noRun = cli(['metrics', points]);
  assert.equal(noRun.code, 2);
  oneLine(noRun);
  await admin.updatePolicy({ required_gates: [] });
});
