#!/usr/bin/env node
// datapilot: the DataPilot command line for CI scripts (part of @animus/datapilot).
// Every failure prints ONE line on stderr and exits non-zero (1: the operation failed,
// 2: bad usage). `--json` prints machine-readable output on stdout.
import { readFile, writeFile, rename } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import process from 'node:process';
import {
  DataPilot,
  hashDirectory,
  isDataPilotError,
  openFileBlob,
  sdkVersion,
  verifyEvidenceBundle,
} from '../index.node.mjs';

const HELP = `datapilot ${sdkVersion()}: DataPilot from CI scripts

Usage:
  datapilot digest DIR                          DPM-1 dataset id of a directory
  datapilot register DIR --dataset NAME [--note TEXT]
                                                hash DIR and register it as a version of
                                                dataset NAME (created if missing)
  datapilot export --run ID -o FILE [--tree-size N]
                                                download a run's evidence bundle
  datapilot verify BUNDLE.zip --trusted-key KEY [--trusted-key KEY...] [--last-checkpoint FILE]
                                                verify a bundle offline with pinned keys
  datapilot whoami                              the principal the token authenticates as

The run of a CI job (DATASET@DIGEST names a dataset version by dataset name):
  datapilot gate DATASET@DIGEST --gate NAME --status passed|failed [--detail K=V...]
                                                record a quality gate result
  datapilot run-start --input DATASET@DIGEST [--input ...] --git-commit SHA
                      --image-digest sha256:HEX [--name NAME] [--param K=V...]
                                                start a run; prints shell lines exporting
                                                DATAPILOT_RUN_ID and DATAPILOT_RUN_TOKEN, for
                                                eval "$(datapilot run-start ...)" (keep them
                                                out of logs: the token is a secret)
  datapilot metrics FILE.jsonl                  append metric points, one JSON object per
                                                line: {"name":"loss","step":1,"value":0.5}
  datapilot upload FILE [--name NAME]           upload an artifact of the run (streamed)
  datapilot run-finish --status succeeded|failed [--produced DATASET@DIGEST...]
                                                seal the run (with the versions it produced)
  The run commands act on --run ID (default: $DATAPILOT_RUN_ID) with the run token
  ($DATAPILOT_RUN_TOKEN) when it is set, else with --token / $DATAPILOT_TOKEN.

Options:
  --url URL          server URL (default: $DATAPILOT_URL)
  --token TOKEN      API token (default: $DATAPILOT_TOKEN; prefer the variable: flags are
                     visible in process lists)
  --timeout-ms N     per-attempt timeout
  --json             machine-readable output
  -h, --help         this text
  --version          the SDK version

Exit status: 0 success, 1 failure (or a bundle that does not verify), 2 usage error.`;

class UsageError extends Error {}

function fail(message, code) {
  // One line, always: newlines in server text would break log parsers.
  process.stderr.write(`datapilot: ${String(message).replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(code);
}

function client(values, token = values.token ?? process.env.DATAPILOT_TOKEN) {
  const baseUrl = values.url ?? process.env.DATAPILOT_URL;
  if (!baseUrl) throw new UsageError('no server: pass --url or set DATAPILOT_URL');
  const timeoutMs = values['timeout-ms'] === undefined ? undefined : Number(values['timeout-ms']);
  return new DataPilot({ baseUrl, token, timeoutMs, userAgent: 'datapilot-cli' });
}

function out(values, json, text) {
  process.stdout.write(values.json ? `${JSON.stringify(json, null, 2)}\n` : `${text}\n`);
}

function one(positionals, what) {
  if (positionals.length !== 1) throw new UsageError(`expected exactly one ${what}`);
  return positionals[0];
}

async function findOrCreateDataset(dp, name) {
  for await (const ds of dp.listDatasets({ limit: 500 })) {
    if (ds.name === name) return ds;
  }
  try {
    return await dp.createDataset({ name });
  } catch (e) {
    // Someone else created it in between.
    if (isDataPilotError(e) && e.code === 'already_exists') {
      for await (const ds of dp.listDatasets({ limit: 500 })) if (ds.name === name) return ds;
    }
    throw e;
  }
}

/** The run a run command acts on, and a client with the least privilege at hand. */
function runClient(values) {
  const runId = values.run ?? process.env.DATAPILOT_RUN_ID;
  if (!runId) throw new UsageError('no run: pass --run ID or set DATAPILOT_RUN_ID (see run-start)');
  const token = values.token ?? process.env.DATAPILOT_RUN_TOKEN ?? process.env.DATAPILOT_TOKEN;
  return { runId, dp: client(values, token) };
}

/** `K=V` flags as an object (undefined when none). */
function pairs(list, flag) {
  if (!list?.length) return undefined;
  const outObj = {};
  for (const item of list) {
    const i = item.indexOf('=');
    if (i <= 0) throw new UsageError(`${flag} takes KEY=VALUE, got '${item}'`);
    outObj[item.slice(0, i)] = item.slice(i + 1);
  }
  return outObj;
}

/** `DATASET@DIGEST` (dataset by name) as `{ dataset_id, digest }`. */
async function versionRef(dp, spec, flag) {
  const at = spec.lastIndexOf('@');
  if (at <= 0) throw new UsageError(`${flag} takes DATASET@DIGEST, got '${spec}'`);
  const name = spec.slice(0, at);
  const digest = spec.slice(at + 1);
  for await (const ds of dp.listDatasets({ limit: 500 })) {
    if (ds.name === name) return { dataset_id: ds.id, digest };
  }
  throw new Error(`no dataset named '${name}'`);
}

function oneOf(value, allowed, flag) {
  if (!allowed.includes(value)) throw new UsageError(`${flag} must be ${allowed.join(' or ')}`);
  return value;
}

/** Metric points from a JSON-lines file (blank lines skipped; errors name the line). */
async function readPoints(file) {
  const text = await readFile(file, 'utf8');
  const points = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let p;
    try {
      p = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not JSON (${e.message})`);
    }
    if (p === null || typeof p !== 'object' || typeof p.name !== 'string' || !Number.isInteger(p.step) || typeof p.value !== 'number') {
      throw new Error(`${file}:${i + 1}: expected {"name": string, "step": integer, "value": number}`);
    }
    points.push(p);
  });
  if (points.length === 0) throw new Error(`${file}: no metric points`);
  return points;
}

const commands = {
  async digest(values, positionals) {
    const d = await hashDirectory(one(positionals, 'directory'));
    out(values, { digest: d.digest, file_count: d.files.length, total_bytes: d.total_bytes }, d.digest);
  },

  async register(values, positionals) {
    const dir = one(positionals, 'directory');
    if (!values.dataset) throw new UsageError('--dataset NAME is required');
    const dp = client(values);
    const d = await hashDirectory(dir);
    const ds = await findOrCreateDataset(dp, values.dataset);
    const reg = await dp.registerDatasetVersion(ds.id, { digest: d.digest, files: d.files, note: values.note });
    out(
      values,
      { dataset_id: ds.id, created: reg.created, version: reg.version },
      `${reg.created ? 'registered' : 'already registered'} ${ds.name} ${reg.version.digest} (${reg.version.file_count} files, gates ${reg.version.gate_status})`,
    );
  },

  async export(values, positionals) {
    if (positionals.length > 0) throw new UsageError('export takes no positional argument');
    if (!values.run) throw new UsageError('--run ID is required');
    if (!values.output) throw new UsageError('-o FILE is required');
    const treeSize = values['tree-size'] === undefined ? undefined : Number(values['tree-size']);
    const bytes = await client(values).exportRunEvidence(values.run, { treeSize });
    // Write then rename: a partial file never looks like a bundle.
    const tmp = `${values.output}.part`;
    await writeFile(tmp, bytes);
    await rename(tmp, values.output);
    out(values, { file: values.output, bytes: bytes.length }, `wrote ${values.output} (${bytes.length} bytes)`);
  },

  async verify(values, positionals) {
    const file = one(positionals, 'bundle file');
    const trustedKeys = values['trusted-key'] ?? [];
    if (trustedKeys.length === 0) throw new UsageError('at least one --trusted-key is required');
    const bytes = await readFile(file);
    const options = { trustedKeys };
    if (values['last-checkpoint']) options.lastCheckpoint = await readFile(values['last-checkpoint'], 'utf8');
    let report;
    if (options.lastCheckpoint !== undefined && (values.url ?? process.env.DATAPILOT_URL)) {
      // Online: fetch the consistency proof from the trusted checkpoint to the bundle's.
      report = await client(values).verifyEvidenceBundle(bytes, options);
    } else {
      report = await verifyEvidenceBundle(bytes, options);
    }
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      for (const c of report.checks) process.stdout.write(`${c.passed ? 'ok  ' : 'FAIL'} ${c.name}: ${c.reason}\n`);
    }
    if (!report.ok) {
      const first = report.checks.find((c) => !c.passed);
      fail(`${file} does not verify: ${first.name}: ${first.reason}`, 1);
    }
  },

  async gate(values, positionals) {
    const spec = one(positionals, 'DATASET@DIGEST');
    if (!values.gate) throw new UsageError('--gate NAME is required');
    const status = oneOf(values.status, ['passed', 'failed'], '--status');
    const dp = client(values);
    const ref = await versionRef(dp, spec, 'gate');
    const details = pairs(values.detail, '--detail');
    const r = await dp.recordGateResult(ref.dataset_id, ref.digest, { gate: values.gate, status, details });
    const version = await dp.getDatasetVersion(ref.dataset_id, ref.digest);
    out(values, { result: r, gate_status: version.gate_status }, `gate ${r.gate} ${r.status} on ${spec} (gates now ${version.gate_status})`);
  },

  async 'run-start'(values, positionals) {
    if (positionals.length > 0) throw new UsageError('run-start takes no positional argument');
    if (!values.input?.length) throw new UsageError('at least one --input DATASET@DIGEST is required');
    if (!values['git-commit']) throw new UsageError('--git-commit SHA is required');
    if (!values['image-digest']) throw new UsageError('--image-digest sha256:HEX is required');
    const dp = client(values);
    const inputs = [];
    for (const spec of values.input) inputs.push(await versionRef(dp, spec, '--input'));
    const run = await dp.createRun({
      name: values.name ?? 'ci run',
      inputs,
      git_commit: values['git-commit'],
      image_digest: values['image-digest'],
      params: pairs(values.param, '--param'),
    });
    out(
      values,
      { run: run.run, run_token: run.runToken, run_token_expires_at: run.runTokenExpiresAt },
      `export DATAPILOT_RUN_ID=${run.runId}\nexport DATAPILOT_RUN_TOKEN=${run.runToken}`,
    );
  },

  async metrics(values, positionals) {
    const file = one(positionals, 'JSON-lines file');
    const { runId, dp } = runClient(values);
    const points = await readPoints(file);
    const batch = await dp.appendMetrics(runId, { points });
    out(values, batch, `appended ${batch.count} metric points to ${runId}`);
  },

  async upload(values, positionals) {
    const file = one(positionals, 'file');
    const { runId, dp } = runClient(values);
    const name = values.name ?? file.split(/[\\/]/).pop();
    const a = await dp.uploadArtifact(runId, name, await openFileBlob(file));
    out(values, a, `uploaded ${a.name} to ${runId} (${a.size} bytes, sha256 ${a.sha256})`);
  },

  async 'run-finish'(values, positionals) {
    if (positionals.length > 0) throw new UsageError('run-finish takes no positional argument');
    const status = oneOf(values.status, ['succeeded', 'failed'], '--status');
    const { runId, dp } = runClient(values);
    // Datasets are looked up with the API token: a run token may only touch its run.
    const outputs = [];
    for (const spec of values.produced ?? []) outputs.push(await versionRef(client(values), spec, '--produced'));
    const run = await dp.finishRun(runId, outputs.length ? { status, outputs } : { status });
    out(values, run, `run ${run.id} ${run.status}`);
  },

  async whoami(values, positionals) {
    if (positionals.length > 0) throw new UsageError('whoami takes no positional argument');
    const me = await client(values).whoAmI();
    out(values, me, `${me.subject} (${me.role})`);
  },
};

async function main() {
  let parsed;
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        token: { type: 'string' },
        'timeout-ms': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
        dataset: { type: 'string' },
        note: { type: 'string' },
        run: { type: 'string' },
        output: { type: 'string', short: 'o' },
        'tree-size': { type: 'string' },
        'trusted-key': { type: 'string', multiple: true },
        'last-checkpoint': { type: 'string' },
        gate: { type: 'string' },
        status: { type: 'string' },
        detail: { type: 'string', multiple: true },
        input: { type: 'string', multiple: true },
        'git-commit': { type: 'string' },
        'image-digest': { type: 'string' },
        name: { type: 'string' },
        param: { type: 'string', multiple: true },
        produced: { type: 'string', multiple: true },
      },
    });
  } catch (e) {
    fail(`${e.message} (try --help)`, 2);
  }
  const { values, positionals } = parsed;
  if (values.version) return void process.stdout.write(`${sdkVersion()}\n`);
  const [command, ...rest] = positionals;
  if (values.help || command === undefined || command === 'help') return void process.stdout.write(`${HELP}\n`);
  const run = commands[command];
  if (run === undefined) fail(`unknown command '${command}' (try --help)`, 2);
  try {
    await run(values, rest);
  } catch (e) {
    if (e instanceof UsageError) fail(`${e.message} (try --help)`, 2);
    if (isDataPilotError(e)) {
      const rid = e.requestId && !e.message.includes(e.requestId) ? ` (request id ${e.requestId})` : '';
      fail(`${e.message}${rid}`, 1);
    }
    if (e?.code === 'ENOENT' || e?.code === 'EACCES' || e?.code === 'ENOTDIR') fail(e.message, 1);
    fail(e?.message ?? String(e), 1);
  }
}

await main();
