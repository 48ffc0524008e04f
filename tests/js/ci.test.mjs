// The `datapilot` CLI as CI systems run it: the GitHub Actions workflow and the GitLab CI job
// of docs/ci.md, run step by step against a live server (twice: the second run must extend the
// checkpoint the first saved), with the run token nowhere in their logs; exit codes 75 (a
// server answering 503), 3 (a rolled back ledger) and 2; progress bars on a pseudo-terminal
// and none otherwise; the paper cuts of issue 14.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DataPilot, isDataPilotError, verifyEvidenceBundle } from '@animus/datapilot';
import { ADMIN_TOKEN, startServer } from './support.mjs';

const BIN_DIR = resolve('node_modules', '.bin');
const BIN = join(BIN_DIR, 'datapilot');
const REPO = process.env.DATAPILOT_REPO;
let server;
let keys;
let admin;

/** The environment a job starts with: PATH with the CLI, the server, the pinned keys. */
function baseEnv(extra = {}) {
  return {
    PATH: `${BIN_DIR}:${process.env.PATH}`,
    HOME: process.env.HOME,
    DATAPILOT_URL: server.url,
    DATAPILOT_TOKEN: ADMIN_TOKEN,
    DATAPILOT_TRUSTED_KEYS: keys.join(' '),
    DATAPILOT_PROGRESS_INTERVAL_MS: '600000',
    ...extra,
  };
}

function cli(args, env = {}, opts = {}) {
  const r = spawnSync(BIN, args, { encoding: opts.encoding ?? 'utf8', env: baseEnv(env), cwd: opts.cwd });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** `cli` without blocking this process's event loop (needed when this process is the server). */
function cliAsync(args, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(BIN, args, { env: baseEnv(env) });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

before(async () => {
  server = await startServer();
  admin = new DataPilot({ baseUrl: server.url, token: ADMIN_TOKEN });
  keys = (await admin.listVerifierKeys()).keys.map((k) => k.verifier);
  // The recipes gate on `schema`, as a real policy would.
  await admin.updatePolicy({ required_gates: ['schema'] });
});
after(() => server?.stop());

// ---- the recipes, read from docs/ci.md ---------------------------------------------------------

function yamlBlock(marker) {
  const doc = readFileSync(join(REPO, 'docs', 'ci.md'), 'utf8');
  const at = doc.indexOf(`<!-- ci-test: ${marker} -->`);
  assert.ok(at >= 0, `docs/ci.md has no ${marker} block`);
  const m = /```yaml\n([\s\S]*?)```/.exec(doc.slice(at));
  return m[1].split('\n');
}

/** GitHub: the job env (literal values) and the steps ({ name, if, run, uses }). */
function githubWorkflow() {
  const lines = yamlBlock('github-actions');
  const env = {};
  const steps = [];
  let inEnv = false;
  let step;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (/^ {4}env:$/.test(l)) {
      inEnv = true;
      continue;
    }
    if (inEnv && /^ {6}(\w+): (.*)$/.test(l)) {
      const [, k, v] = /^ {6}(\w+): (.*)$/.exec(l);
      env[k] = v;
      continue;
    }
    inEnv = false;
    const start = /^ {6}- (name|uses): (.*)$/.exec(l);
    if (start) {
      step = { [start[1]]: start[2] };
      steps.push(step);
      continue;
    }
    const kv = /^ {8}(name|if|uses|run): ?(.*)$/.exec(l);
    if (step && kv) {
      if (kv[1] === 'run' && kv[2] === '|') {
        const body = [];
        while (i + 1 < lines.length && (/^ {10}/.test(lines[i + 1]) || lines[i + 1] === '')) body.push(lines[++i].slice(10));
        step.run = body.join('\n');
      } else step[kv[1]] = kv[2];
    }
  }
  return { env, steps };
}

/** GitLab: the job's literal variables and its script lines. */
function gitlabJob() {
  const lines = yamlBlock('gitlab-ci');
  const env = {};
  const script = [];
  let section;
  for (const l of lines) {
    const top = /^ {2}(\w+):/.exec(l);
    if (top) {
      section = top[1];
      continue;
    }
    if (section === 'variables' && /^ {4}(\w+): (.*)$/.test(l)) {
      const [, k, v] = /^ {4}(\w+): (.*)$/.exec(l);
      env[k] = v;
    }
    if (section === 'script' && /^ {4}- /.test(l)) script.push(l.slice(6));
  }
  return { env, script };
}

/** A job's workspace: the training data and a training script. */
function workspace() {
  const dir = mkdtempSync(join(tmpdir(), 'dp-ci-job-'));
  mkdirSync(join(dir, 'data'));
  writeFileSync(join(dir, 'data', 'train.csv'), 'id,label\n1,cat\n2,dog\n');
  writeFileSync(
    join(dir, 'train.py'),
    [
      'import json, os, sys',
      'args = dict(zip(sys.argv[1::2], sys.argv[2::2]))',
      "os.makedirs(args['--out'], exist_ok=True)",
      "with open(args['--metrics'], 'w') as f:",
      '    for step in range(5):',
      "        f.write(json.dumps({'name': 'loss', 'step': step, 'value': 1 / (step + 1)}) + '\\n')",
      "with open(os.path.join(args['--out'], 'model.bin'), 'wb') as f:",
      "    f.write(b'weights' * 1000)",
      '',
    ].join('\n'),
  );
  return dir;
}

const IMAGE = `sha256:${'ab'.repeat(32)}`;

/** Runs the GitHub workflow's steps as the runner would; returns what the log would show. */
function runGithub(dir, runNumber) {
  const { env: jobEnv, steps } = githubWorkflow();
  const given = { DATAPILOT_URL: server.url, DATAPILOT_TOKEN: ADMIN_TOKEN, DATAPILOT_TRUSTED_KEYS: keys.join(' '), IMAGE_DIGEST: IMAGE };
  const env = baseEnv();
  for (const [k, v] of Object.entries(jobEnv)) env[k] = v.startsWith('${{') ? given[k] : v;
  const githubEnv = join(dir, '.github-env');
  writeFileSync(githubEnv, '');
  Object.assign(env, {
    GITHUB_ACTIONS: 'true',
    GITHUB_ENV: githubEnv,
    GITHUB_PATH: join(dir, '.github-path'),
    GITHUB_SHA: 'c'.repeat(40),
    GITHUB_RUN_NUMBER: String(runNumber),
    GITHUB_WORKSPACE: dir,
  });
  let raw = '';
  const masks = [];
  let ran = 0;
  for (const step of steps) {
    // `uses:` steps (checkout, cache, artifacts) and the install step are the runner's and
    // the registry's business; the happy path skips `if: failure()` steps.
    if (step.uses || step.name?.startsWith('Install') || step.if?.includes('failure()')) continue;
    // Variables from $GITHUB_ENV reach the steps after the one that wrote them.
    const stepEnv = { ...env };
    for (const line of readFileSync(githubEnv, 'utf8').split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) stepEnv[line.slice(0, i)] = line.slice(i + 1);
    }
    const r = spawnSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', step.run], { cwd: dir, env: stepEnv, encoding: 'utf8' });
    raw += r.stdout + r.stderr;
    ran++;
    assert.equal(r.status, 0, `step '${step.name}' failed:\n${r.stdout}${r.stderr}`);
  }
  assert.equal(ran, 6, 'the workflow has six run steps on the happy path');
  const vars = Object.fromEntries(readFileSync(githubEnv, 'utf8').split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  // The runner consumes workflow commands (they are never logged) and masks their values.
  const log = raw
    .split('\n')
    .filter((l) => {
      const m = /^::add-mask::(.*)$/.exec(l);
      if (m) masks.push(m[1]);
      return !m;
    })
    .join('\n');
  return { raw, log, masks, vars };
}

/** Runs the GitLab job's script in one shell, each line echoed first as GitLab does. */
function runGitlab(dir, iid) {
  const { env: jobEnv, script } = gitlabJob();
  const env = baseEnv({ ...jobEnv, GITLAB_CI: 'true', CI_COMMIT_SHA: 'd'.repeat(40), CI_PIPELINE_IID: String(iid), CI_PROJECT_DIR: dir, IMAGE_DIGEST: IMAGE });
  const lines = script.filter((l) => !l.startsWith('npm install'));
  assert.equal(lines.length, 12, 'the job has twelve script lines after the install');
  const quoted = (s) => `'${s.replace(/'/g, `'\\''`)}'`;
  const body = lines.map((l) => `printf '$ %s\\n' ${quoted(l)}\n${l}`).join('\n');
  const r = spawnSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', body], { cwd: dir, env, encoding: 'utf8' });
  assert.equal(r.status, 0, `job failed:\n${r.stdout}${r.stderr}`);
  return { log: r.stdout + r.stderr };
}

async function assertVerifiedRun(dir, runId) {
  const run = await admin.getRun(runId);
  assert.equal(run.status, 'succeeded');
  const artifacts = await admin.listArtifacts(runId).all();
  assert.deepEqual(artifacts.map((a) => a.name), ['model.bin']);
  const metrics = await admin.listMetrics(runId).all();
  assert.equal(metrics.length, 5);
  const report = await verifyEvidenceBundle(readFileSync(join(dir, 'evidence.zip')), { trustedKeys: keys });
  assert.equal(report.ok, true);
  assert.ok(existsSync(join(dir, '.datapilot', 'checkpoint')));
}

test('the GitHub Actions workflow of docs/ci.md, twice, with the run token masked', async () => {
  const dir = workspace();
  const first = runGithub(dir, 1);
  const token = first.vars.DATAPILOT_RUN_TOKEN;
  assert.match(token, /^dpr_/);
  assert.match(first.vars.DATAPILOT_RUN_ID, /^run_/);
  // Masked before it was handed over, and in the log nowhere (the mask line is not logged).
  assert.deepEqual(first.masks, [token]);
  assert.ok(!first.log.includes(token), 'the run token is in the job log');
  assert.equal(first.raw.split(token).length - 1, 1, 'the token occurs only in the ::add-mask:: command');
  assert.match(first.log, /saved checkpoint \d+ to \.datapilot\/checkpoint \(first\)/);
  await assertVerifiedRun(dir, first.vars.DATAPILOT_RUN_ID);

  // The next pipeline: same workspace (the cache restored the checkpoint), a new run.
  const second = runGithub(dir, 2);
  assert.notEqual(second.vars.DATAPILOT_RUN_ID, first.vars.DATAPILOT_RUN_ID);
  assert.ok(!second.log.includes(second.vars.DATAPILOT_RUN_TOKEN));
  assert.match(second.log, /saved checkpoint (\d+) to \.datapilot\/checkpoint \(extends \d+\)/);
  await assertVerifiedRun(dir, second.vars.DATAPILOT_RUN_ID);
});

test('the GitLab CI job of docs/ci.md, twice; the token stays out of the log and the dotenv report', async () => {
  const dir = workspace();
  const first = runGitlab(dir, 7);
  const exported = readFileSync(join(dir, '.datapilot', 'run.env'), 'utf8');
  const token = /DATAPILOT_RUN_TOKEN='(dpr_[^']+)'/.exec(exported)[1];
  const runId = /DATAPILOT_RUN_ID='(run_[^']+)'/.exec(exported)[1];
  assert.equal(statSync(join(dir, '.datapilot', 'run.env')).mode & 0o777, 0o600);
  assert.ok(!first.log.includes(token), 'the run token is in the job log');
  // The dotenv report becomes a downloadable artifact: the run id only.
  assert.equal(readFileSync(join(dir, 'run.env'), 'utf8'), `DATAPILOT_RUN_ID=${runId}\n`);
  assert.match(first.log, /^\$ datapilot run-start /m);
  await assertVerifiedRun(dir, runId);
  const second = runGitlab(dir, 8);
  assert.match(second.log, /\(extends \d+\)/);
});

// ---- exit codes --------------------------------------------------------------------------------

test('75 for a server answering 503 (after the retries), 1 for a refusal, 2 for usage', async () => {
  let hits = 0;
  const stub = createServer((req, res) => {
    hits++;
    res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '0' });
    res.end(JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503, code: 'unavailable', detail: 'maintenance' }));
  });
  await new Promise((r) => stub.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${stub.address().port}`;
    const r = await cliAsync(['runs', 'list'], { DATAPILOT_URL: url });
    assert.equal(r.code, 75, r.err);
    assert.equal(r.err.split('\n').filter(Boolean).length, 1);
    assert.match(r.err, /503/);
    assert.ok(hits > 1, 'the CLI retried before giving up');
  } finally {
    stub.close();
  }
  const dir = workspace();
  cli(['register', join(dir, 'data'), '--dataset', 'exit-codes']);
  const digest = cli(['digest', join(dir, 'data')]).out.trim();
  const refused = cli(['run-start', '--input', `exit-codes@${digest}`, '--git-commit', 'a'.repeat(40), '--image-digest', IMAGE, '--export-file', join(dir, 'run.env')]);
  assert.equal(refused.code, 1, refused.err);
  assert.match(refused.err, /gate_not_passed|not passed/);
  assert.ok(!existsSync(join(dir, 'run.env')), 'a refused run-start leaves no variables file');
  // No destination for the token: refused before a run is created.
  const nowhere = cli(['run-start', '--input', `exit-codes@${digest}`, '--git-commit', 'a'.repeat(40), '--image-digest', IMAGE]);
  assert.equal(nowhere.code, 2);
  assert.match(nowhere.err, /--export-file/);
  for (const args of [['runs'], ['runs', 'frob'], ['export', '--run', 'r', '--dataset', 'd@x', '-o', 'x'], ['upload', 'a', 'b'], ['policy', 'set'], ['whoami', '--input', 'x']]) {
    const r = cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.equal(r.err.split('\n').filter(Boolean).length, 1);
  }
});

test('checkpoint save/check refuse a rollback with 3 and keep the trusted file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dp-cp-'));
  const file = join(dir, 'cp');
  const saved = cli(['checkpoint', 'save', '--file', file, '--json']);
  assert.equal(saved.code, 0, saved.err);
  const first = JSON.parse(saved.out);
  assert.equal(first.previous, null);
  await admin.createDataset({ name: `cp-${Date.now()}` });
  const check = JSON.parse(cli(['checkpoint', 'check', '--file', file, '--json']).out);
  assert.equal(check.previous.tree_size, first.current.tree_size);
  assert.ok(check.current.tree_size > first.current.tree_size);
  assert.equal(check.saved, false);
  assert.equal(JSON.parse(cli(['checkpoint', 'save', '--file', file, '--json']).out).previous.tree_size, first.current.tree_size);

  // A second, fresh server signs with another key: its checkpoint does not verify (3).
  const other = await startServer();
  try {
    const foreign = cli(['checkpoint', 'check', '--file', file], { DATAPILOT_URL: other.url });
    assert.equal(foreign.code, 3, foreign.err);
    // The same keys, a smaller tree than the trusted one: a rollback (3), the file unchanged.
    const otherKeys = (await new DataPilot({ baseUrl: other.url, token: ADMIN_TOKEN }).listVerifierKeys()).keys.map((k) => k.verifier);
    const otherFile = join(dir, 'other');
    for (let i = 0; i < 3; i++) await new DataPilot({ baseUrl: other.url, token: ADMIN_TOKEN }).createDataset({ name: `grow-${i}` });
    assert.equal(cli(['checkpoint', 'save', '--file', otherFile], { DATAPILOT_URL: other.url, DATAPILOT_TRUSTED_KEYS: otherKeys.join(' ') }).code, 0);
    const big = readFileSync(otherFile, 'utf8');
    // A server answering with a smaller tree than the trusted checkpoint, both signed by
    // pinned keys, is what a restore from an old backup looks like to a client: a rollback.
    const restored = await startServer();
    try {
      const restoredKeys = (await new DataPilot({ baseUrl: restored.url, token: ADMIN_TOKEN }).listVerifierKeys()).keys.map((k) => k.verifier);
      writeFileSync(otherFile, big);
      const r = cli(['checkpoint', 'save', '--file', otherFile], { DATAPILOT_URL: restored.url, DATAPILOT_TRUSTED_KEYS: [...otherKeys, ...restoredKeys].join(' ') });
      assert.equal(r.code, 3, r.err);
      assert.equal(readFileSync(otherFile, 'utf8'), big, 'a refused checkpoint is not saved');
    } finally {
      await restored.stop();
    }
  } finally {
    await other.stop();
  }
});

// ---- progress ----------------------------------------------------------------------------------

test('progress: a bar on a pseudo-terminal, none when stderr is a pipe', async () => {
  const dir = workspace();
  writeFileSync(join(dir, 'data', 'big.bin'), Buffer.alloc(24 * 1024 * 1024, 7));
  const envPairs = Object.entries(baseEnv({ DATAPILOT_PROGRESS_INTERVAL_MS: '' })).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
  // util-linux `script` gives the command a pseudo-terminal (stdout and stderr).
  const pty = spawnSync('script', ['-qec', `env ${envPairs} TERM=xterm ${BIN} digest ${join(dir, 'data')}`, '/dev/null'], { encoding: 'utf8' });
  assert.equal(pty.status, 0, pty.stdout);
  assert.match(pty.stdout, /hashing \[[█░]+\] \d+%/);
  assert.match(pty.stdout, /sha256:[0-9a-f]{64}/);
  const piped = cli(['digest', join(dir, 'data')], { DATAPILOT_PROGRESS_INTERVAL_MS: '' });
  assert.equal(piped.code, 0);
  // Only the coreutils re-check line (issue 10): no bar and, for a short job, no periodic line.
  assert.match(piped.err, /^datapilot: re-check with coreutils: .*sha256sum\n$/, 'no bar and, for a short job, no periodic line on a pipe');
  assert.ok(!/[\r\u001b]/.test(piped.out));
  // Periodic plain lines on a pipe when the job is long enough (interval shortened here).
  const periodic = cli(['digest', join(dir, 'data')], { DATAPILOT_PROGRESS_INTERVAL_MS: '1' });
  // Files are the unit (a directory walk does not stat sizes up front), bytes the detail.
  assert.match(periodic.err, /^datapilot: hashing: 2 files of 2 files \(100%\), 24\.0 MiB, [\d.]+ files\/s, \S+ left$/m);
  assert.ok(!/[\r\u001b]/.test(periodic.err));
});

// ---- paper cuts --------------------------------------------------------------------------------

test('paper cuts: export -o -, upload of a missing file, a missing token, verify without options', async () => {
  const dir = workspace();
  const reg = JSON.parse(cli(['register', join(dir, 'data'), '--dataset', 'cuts', '--json']).out);
  const run = await admin.createRun({ name: 'cuts', inputs: [{ dataset_id: reg.dataset_id, digest: reg.version.digest }], git_commit: 'e'.repeat(40), image_digest: IMAGE }).catch(async (e) => {
    // The policy requires `schema`: record it and start again.
    if (!isDataPilotError(e)) throw e;
    await admin.recordGateResult(reg.dataset_id, reg.version.digest, { gate: 'schema', status: 'passed' });
    return admin.createRun({ name: 'cuts', inputs: [{ dataset_id: reg.dataset_id, digest: reg.version.digest }], git_commit: 'e'.repeat(40), image_digest: IMAGE });
  });
  await run.finish({ status: 'succeeded' });

  // `-o -` is stdout, byte for byte the bundle (it used to create a file named '-').
  const piped = cli(['export', '--run', run.runId, '-o', '-'], {}, { encoding: 'buffer', cwd: dir });
  assert.equal(piped.code, 0, String(piped.err));
  assert.ok(!existsSync(join(dir, '-')));
  const report = await verifyEvidenceBundle(new Uint8Array(piped.out), { trustedKeys: keys });
  assert.equal(report.ok, true);
  const viaDataset = cli(['export', '--dataset', `cuts@${reg.version.digest}`, '-o', join(dir, 'ds.zip')]);
  assert.equal(viaDataset.code, 0, viaDataset.err);

  const missing = cli(['upload', 'nope.bin', '--run', run.runId], {}, { cwd: dir });
  assert.equal(missing.code, 1);
  assert.equal(missing.err, 'datapilot: nope.bin: no such file\n');

  const noToken = cli(['whoami'], { DATAPILOT_TOKEN: '' });
  assert.equal(noToken.code, 2);
  assert.match(noToken.err, /set DATAPILOT_TOKEN/);

  await assert.rejects(verifyEvidenceBundle(new Uint8Array(piped.out)), (e) => {
    assert.ok(isDataPilotError(e));
    assert.equal(e.code, 'invalid_request');
    assert.match(e.message, /trustedKeys is required/);
    assert.ok(!/Reflect/.test(e.message));
    return true;
  });

  // download by artifact name, checked end to end; lineage, runs, keys, audit with --json.
  const handle = await admin.createRun({ name: 'dl', inputs: [{ dataset_id: reg.dataset_id, digest: reg.version.digest }], git_commit: 'e'.repeat(40), image_digest: IMAGE });
  await handle.uploadArtifact('w.bin', new Uint8Array([1, 2, 3]));
  const dl = cli(['download', '--run', handle.runId, '--artifact', 'w.bin', '-o', join(dir, 'w.bin'), '--json']);
  assert.equal(dl.code, 0, dl.err);
  assert.deepEqual([...readFileSync(join(dir, 'w.bin'))], [1, 2, 3]);
  assert.equal(JSON.parse(cli(['runs', 'get', handle.runId, '--json']).out).id, handle.runId);
  assert.ok(JSON.parse(cli(['runs', 'list', '--json', '--limit', '2']).out).length <= 2);
  assert.ok(JSON.parse(cli(['lineage', '--run', handle.runId, '--json']).out).edges.length > 0);
  assert.equal(cli(['keys']).out.trim().split('\n')[0], keys[0]);
  const events = JSON.parse(cli(['audit', 'list', '--subject', `run:${handle.runId}`, '--json']).out);
  assert.equal(events[0].action, 'run.create');
  assert.equal(JSON.parse(cli(['audit', 'get', String(events[0].seq), '--json']).out).seq, events[0].seq);
});

test('tokens and policy from the CLI; secrets only where asked', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dp-tok-'));
  const refused = cli(['token', 'create', '--name', 'ci', '--role', 'engineer']);
  assert.equal(refused.code, 2, 'a secret with nowhere to go is refused');
  const made = cli(['token', 'create', '--name', 'ci', '--role', 'engineer', '--export-file', join(dir, 'ci.env'), '--json']);
  assert.equal(made.code, 0, made.err);
  const secret = /DATAPILOT_TOKEN='(dpt_[^']+)'/.exec(readFileSync(join(dir, 'ci.env'), 'utf8'))[1];
  assert.ok(!made.out.includes(secret) && !made.err.includes(secret));
  assert.equal(JSON.parse(cli(['whoami', '--json'], { DATAPILOT_TOKEN: secret }).out).role, 'engineer');
  const id = JSON.parse(made.out).token.id;
  assert.ok(JSON.parse(cli(['token', 'list', '--json']).out).some((t) => t.id === id));
  assert.equal(cli(['token', 'revoke', id]).code, 0);
  assert.equal(cli(['whoami'], { DATAPILOT_TOKEN: secret }).code, 1);
  assert.equal(cli(['policy', 'get', '--field', 'required_gates']).out.trim(), '["schema"]');
  const p = JSON.parse(cli(['policy', 'set', '--require-gate', 'schema', '--run-token-ttl', '3600', '--json']).out);
  assert.equal(p.run_token_ttl_seconds, 3600);
});

test('config file precedence, help per command, completion', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dp-cfg-'));
  const cfg = join(dir, 'config.json');
  writeFileSync(cfg, JSON.stringify({ url: server.url, token: ADMIN_TOKEN }), { mode: 0o644 });
  const loose = cli(['whoami', '--config', cfg], { DATAPILOT_URL: '', DATAPILOT_TOKEN: '' });
  assert.equal(loose.code, 2);
  assert.match(loose.err, /chmod 600/);
  writeFileSync(cfg, JSON.stringify({ url: 'http://127.0.0.1:1', token: ADMIN_TOKEN }), { mode: 0o600 });
  spawnSync('chmod', ['600', cfg]);
  // The environment beats the file; the file fills what is unset.
  const r = cli(['whoami', '--config', cfg, '--json'], { DATAPILOT_TOKEN: '' });
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out).role, 'admin');
  writeFileSync(cfg, JSON.stringify({ nope: 1 }));
  assert.match(cli(['whoami', '--config', cfg]).err, /unknown key 'nope'/);

  for (const c of ['run-start', 'checkpoint save', 'export', 'verify', 'token create']) {
    const h = cli(['help', ...c.split(' ')]);
    assert.equal(h.code, 0);
    assert.match(h.out, /^Usage: datapilot /);
    assert.match(h.out, /--json: /);
  }
  assert.match(cli(['upload', '--help']).out, /--name NAME/);
  const bash = cli(['completion', 'bash']);
  assert.equal(bash.code, 0);
  const check = spawnSync('bash', ['-c', `${bash.out}\nCOMP_WORDS=(datapilot checkpoint s); COMP_CWORD=2; _datapilot; echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' });
  assert.equal(check.stdout.trim(), 'save');
  assert.match(cli(['completion', 'fish']).out, /complete -c datapilot/);
});
