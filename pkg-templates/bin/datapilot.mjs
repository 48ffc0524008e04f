#!/usr/bin/env node
// datapilot: the DataPilot command line for CI jobs (part of @animus/datapilot).
//
// Rules every command follows (the package README, "CLI", documents them for users):
// - Every failure prints ONE line on stderr (`datapilot: ...`) and exits with a code a pipeline
//   can act on: 1 failed or refused, 2 usage or configuration, 3 verification failed, 75
//   retryable (network, timeout, 429, 502-504: run the step again later; EX_TEMPFAIL).
// - Nothing secret goes to stdout unless asked (`--print-env`, `--show-secret`): run and API
//   tokens go to files (mode 0600), to $GITHUB_ENV (masked with `::add-mask::` first) or nowhere.
// - `--json` prints one JSON document on stdout (shapes in `datapilot help COMMAND`); `--field
//   PATH` prints one value of it. Progress goes to stderr: a bar on a terminal, a plain line
//   every DATAPILOT_PROGRESS_INTERVAL_MS (10 s) otherwise, nothing with --no-progress.
// - Settings come from flags, then the environment, then an optional JSON config file.
import { appendFile, chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import process from 'node:process';
import {
  DataPilot,
  hashDirectory,
  isDataPilotError,
  openFileBlob,
  sdkVersion,
  verifyCheckpoint,
  verifyConsistency,
  verifyEvidenceBundle,
} from '../index.node.mjs';

const EXIT = { ok: 0, failed: 1, usage: 2, verification: 3, retryable: 75 };

class UsageError extends Error {}
/** A bundle, checkpoint or download that does not verify: exit 3. */
class VerificationError extends Error {}

// ---- options --------------------------------------------------------------------------------

/** Options every command takes. */
const GLOBAL = {
  url: { type: 'string', arg: 'URL', help: 'server URL (env DATAPILOT_URL)' },
  token: { type: 'string', arg: 'TOKEN', help: 'API token (env DATAPILOT_TOKEN; prefer the variable: flags show in process lists)' },
  config: { type: 'string', arg: 'FILE', help: 'JSON config file (env DATAPILOT_CONFIG; default ~/.config/datapilot/config.json if present)' },
  'timeout-ms': { type: 'string', arg: 'N', help: 'per-attempt timeout (env DATAPILOT_TIMEOUT_MS)' },
  'deadline-ms': { type: 'string', arg: 'N', help: 'whole-call deadline, retries included (env DATAPILOT_DEADLINE_MS); artifact uploads and downloads have none unless this is set' },
  'stall-timeout-ms': { type: 'string', arg: 'N', help: 'artifact uploads and downloads: give an attempt up after N ms without progress (default 60000; env DATAPILOT_STALL_TIMEOUT_MS)' },
  json: { type: 'boolean', help: 'print the result as JSON on stdout' },
  field: { type: 'string', arg: 'PATH', help: 'print one field of the JSON result (e.g. version.digest)' },
  'no-progress': { type: 'boolean', help: 'no progress output on stderr' },
  help: { type: 'boolean', short: 'h', help: 'help (of the command)' },
};

const RUN_OPTION = { run: { type: 'string', arg: 'ID', help: 'the run (env DATAPILOT_RUN_ID)' } };
const KEYS_OPTION = {
  'trusted-key': { type: 'string', multiple: true, arg: 'KEY', help: 'pinned verifier key (repeatable; env DATAPILOT_TRUSTED_KEYS, space separated)' },
};
const WITNESS_OPTIONS = {
  witness: { type: 'string', multiple: true, arg: 'VKEY', help: 'trusted witness key <name>+<id>+<base64(0x04||key)> (repeatable): require its cosignature' },
  'witness-quorum': { type: 'string', arg: 'K', help: 'how many of the --witness keys must have cosigned (default: all)' },
};
const CHECKPOINT_FILE_OPTION = {
  'checkpoint-file': { type: 'string', arg: 'FILE', help: 'the last trusted checkpoint (env DATAPILOT_CHECKPOINT_FILE)' },
};

// ---- settings: flags, then environment, then config file --------------------------------------

const CONFIG_KEYS = ['url', 'token', 'timeout_ms', 'deadline_ms', 'trusted_keys', 'checkpoint_file'];

async function loadConfig(flag) {
  const explicit = flag ?? process.env.DATAPILOT_CONFIG;
  const xdg = process.env.XDG_CONFIG_HOME || join(homedir(), '.config');
  const file = explicit ?? join(xdg, 'datapilot', 'config.json');
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    // The default file is optional; one named by flag or variable must exist.
    if (explicit === undefined && e.code === 'ENOENT') return {};
    throw new UsageError(`config file ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
  let cfg;
  try {
    cfg = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`config file ${file}: not JSON (${e.message})`);
  }
  if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) throw new UsageError(`config file ${file}: expected a JSON object`);
  for (const k of Object.keys(cfg)) {
    if (!CONFIG_KEYS.includes(k)) throw new UsageError(`config file ${file}: unknown key '${k}' (known: ${CONFIG_KEYS.join(', ')})`);
  }
  if (cfg.token !== undefined && process.platform !== 'win32' && ((await stat(file)).mode & 0o077) !== 0) {
    // Like ssh with a private key: a secret others can read is refused, not used.
    throw new UsageError(`config file ${file} holds a token but others can read it: chmod 600 '${file}'`);
  }
  return cfg;
}

function number(value, what) {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${what} must be a positive whole number, got '${value}'`);
  return n;
}

/** The settings of one invocation (flags > environment > config file). */
async function settings(values) {
  const cfg = await loadConfig(values.config);
  const env = process.env;
  const keys =
    values['trusted-key'] ??
    (env.DATAPILOT_TRUSTED_KEYS ? env.DATAPILOT_TRUSTED_KEYS.split(/[\s,]+/).filter(Boolean) : undefined) ??
    cfg.trusted_keys ??
    [];
  return {
    values,
    url: values.url ?? (env.DATAPILOT_URL || undefined) ?? cfg.url,
    token: values.token ?? (env.DATAPILOT_TOKEN || undefined) ?? cfg.token,
    timeoutMs: number(values['timeout-ms'] ?? env.DATAPILOT_TIMEOUT_MS ?? cfg.timeout_ms, '--timeout-ms'),
    deadlineMs: number(values['deadline-ms'] ?? env.DATAPILOT_DEADLINE_MS ?? cfg.deadline_ms, '--deadline-ms'),
    stallTimeoutMs: number(values['stall-timeout-ms'] ?? env.DATAPILOT_STALL_TIMEOUT_MS ?? cfg.stall_timeout_ms, '--stall-timeout-ms'),
    trustedKeys: keys,
    checkpointFile: values['checkpoint-file'] ?? values['last-checkpoint'] ?? (env.DATAPILOT_CHECKPOINT_FILE || undefined) ?? cfg.checkpoint_file,
    json: values.json === true || values.field !== undefined,
    field: values.field,
    progress: !values['no-progress'],
  };
}

function client(ctx, token = ctx.token) {
  if (!ctx.url) throw new UsageError('no server: set DATAPILOT_URL (or pass --url)');
  if (!token) throw new UsageError('no token: set DATAPILOT_TOKEN (or pass --token, or "token" in the config file)');
  return new DataPilot({
    baseUrl: ctx.url,
    token,
    timeoutMs: ctx.timeoutMs,
    deadlineMs: ctx.deadlineMs,
    stallTimeoutMs: ctx.stallTimeoutMs,
    userAgent: 'datapilot-cli',
  });
}

/** The run a run command acts on, and a client with the least privilege at hand. */
function runClient(ctx) {
  const runId = ctx.values.run ?? (process.env.DATAPILOT_RUN_ID || undefined);
  if (!runId) throw new UsageError('no run: pass --run ID or set DATAPILOT_RUN_ID (see run-start)');
  const token = ctx.values.token ?? (process.env.DATAPILOT_RUN_TOKEN || undefined) ?? ctx.token;
  return { runId, dp: client(ctx, token) };
}

// ---- output ---------------------------------------------------------------------------------

function fieldOf(json, path) {
  let v = json;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object' || !(part in v)) throw new UsageError(`--field ${path}: no such field in the result`);
    v = v[part];
  }
  return v;
}

function out(ctx, json, text) {
  if (ctx.field !== undefined) {
    const v = fieldOf(json, ctx.field);
    process.stdout.write(`${typeof v === 'string' ? v : JSON.stringify(v)}\n`);
  } else if (ctx.json) {
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  } else if (text !== undefined && text !== '') {
    process.stdout.write(`${text}\n`);
  }
}

const MIB = 1024 * 1024;
const size = (n) => (n >= MIB ? `${(n / MIB).toFixed(1)} MiB` : `${n} B`);

/**
 * Progress on stderr: a bar (cli-progress) when stderr is a terminal, else a plain line at most
 * every DATAPILOT_PROGRESS_INTERVAL_MS (default 10 s), so CI logs show long transfers moving
 * without a line per chunk. `update(label, done, total)`; `stop()`.
 */
/** `n` as a count (`1,234,567`) or, for unit 'bytes', a size. */
const amount = (n, unit) => (unit === 'bytes' ? size(n) : `${Math.round(n).toLocaleString('en-US')} ${unit}`);

/** `1m 05s` */
const duration = (s) => (!Number.isFinite(s) ? '?' : s >= 60 ? `${Math.floor(s / 60)}m ${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`);

/**
 * Progress on stderr: a bar on a terminal, a plain line every DATAPILOT_PROGRESS_INTERVAL_MS
 * (10 s) otherwise, nothing with --no-progress. update(label, done, total, { unit, detail }):
 * `done`/`total` in `unit` ('bytes' or a word such as 'files'), with the rate and the time
 * left computed from the start of the phase; `detail` is shown as is (e.g. bytes hashed).
 */
async function progress(ctx) {
  if (!ctx.progress) return { update() {}, stop() {} };
  let phase = null;
  let t0 = 0;
  const measure = (label, done, total, unit) => {
    if (label !== phase) {
      phase = label;
      t0 = Date.now();
    }
    const secs = (Date.now() - t0) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const rateText = unit === 'bytes' ? `${size(rate)}/s` : `${Math.round(rate).toLocaleString('en-US')} ${unit}/s`;
    return { rateText, eta: rate > 0 ? duration((total - done) / rate) : '?' };
  };
  if (process.stderr.isTTY && process.env.TERM !== 'dumb') {
    // Loaded only for terminals: CI runs never pay for it.
    const { default: cliProgress } = await import('cli-progress');
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: '{label} [{bar}] {percentage}% {done}/{all}{detail} | {rate} | ETA {eta}',
        hideCursor: true,
        barsize: 30,
        fps: 10,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = null;
    return {
      update(label, done, total, { unit = 'bytes', detail } = {}) {
        const { rateText, eta } = measure(label, done, total, unit);
        const payload = { label, done: amount(done, unit), all: amount(total, unit), detail: detail ? ` (${detail})` : '', rate: rateText, eta };
        if (started !== label) {
          if (started !== null) bar.stop();
          bar.start(Math.max(total, 1), done, payload);
          started = label;
        } else {
          bar.setTotal(Math.max(total, 1));
          bar.update(done, payload);
        }
      },
      stop() {
        if (started !== null) bar.stop();
        started = null;
      },
    };
  }
  const every = number(process.env.DATAPILOT_PROGRESS_INTERVAL_MS, 'DATAPILOT_PROGRESS_INTERVAL_MS') ?? 10_000;
  let last = Date.now();
  return {
    update(label, done, total, { unit = 'bytes', detail } = {}) {
      const now = Date.now();
      if (now - last < every) return;
      last = now;
      const { rateText, eta } = measure(label, done, total, unit);
      const pct = total > 0 ? ` (${Math.floor((100 * done) / total)}%)` : '';
      process.stderr.write(`datapilot: ${label}: ${amount(done, unit)} of ${amount(total, unit)}${pct}${detail ? `, ${detail}` : ''}, ${rateText}, ${eta} left\n`);
    },
    stop() {},
  };
}

/** hashDirectory's options from the digest/register flags. */
function treeOptions(ctx, bar) {
  return {
    ignore: !ctx.values['no-ignore'],
    followSymlinks: ctx.values['follow-symlinks'] === true || ctx.values['symlinks-outside-root'] === true,
    symlinksOutsideRoot: ctx.values['symlinks-outside-root'] === true,
    onProgress: (p) => bar.update('hashing', p.filesHashed, p.totalFiles, { unit: 'files', detail: size(p.bytesHashed) }),
  };
}

const TREE_OPTIONS = {
  'follow-symlinks': { type: 'boolean', help: 'hash the files symbolic links point to (default: a symlink is an error naming it); links must stay inside DIR' },
  'symlinks-outside-root': { type: 'boolean', help: 'with --follow-symlinks: also follow links that leave DIR (Hugging Face snapshots, DVC caches)' },
  'no-ignore': { type: 'boolean', help: 'hash every file: no .datapilotignore, .git/ included' },
  'list-files': { type: 'string', arg: 'FILE', help: 'write the hashed paths to FILE (one per line, DPM-1 order), for the coreutils re-check' },
};

/** Writes the file list, and says on stderr how coreutils re-checks the id. */
async function recheck(ctx, dir, d) {
  const list = ctx.values['list-files'];
  if (list) await writeFile(list, d.files.map((f) => `${f.path}\n`).join(''));
  if (ctx.json || ctx.field !== undefined || !ctx.progress) return;
  const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
  const plain = d.excluded === 0 && !ctx.values['follow-symlinks'] && !ctx.values['symlinks-outside-root'];
  const line = plain
    ? `cd ${q(dir)} && find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum`
    : list
      ? `cd ${q(dir)} && xargs -d '\\n' -a ${q(resolve(list))} sha256sum | sha256sum`
      : `(rerun with --list-files FILE, then) cd ${q(dir)} && xargs -d '\\n' -a FILE sha256sum | sha256sum`;
  process.stderr.write(`datapilot: re-check with coreutils: ${line}\n`);
}

// ---- secrets --------------------------------------------------------------------------------

const SAFE_VALUE = /^[A-Za-z0-9_.:@+\-]+$/;

/** Writes `export NAME='value'` lines to a file only its owner can read (created or replaced). */
async function writeExportFile(file, vars) {
  await mkdir(dirname(file), { recursive: true });
  const lines = Object.entries(vars).map(([k, v]) => `export ${k}='${v}'\n`).join('');
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, lines, { mode: 0o600 });
  await chmod(tmp, 0o600); // the umask cannot loosen it, and an old file's mode is not kept
  await rename(tmp, file);
}

/** GitHub Actions: masks each secret in later log output, then hands the variables to later steps. */
async function writeGithubEnv(vars, secrets) {
  if (process.env.GITHUB_ACTIONS === 'true') {
    // Workflow commands are read by the runner from stdout and never shown in the log.
    for (const s of secrets) process.stdout.write(`::add-mask::${s}\n`);
  }
  await appendFile(process.env.GITHUB_ENV, Object.entries(vars).map(([k, v]) => `${k}=${v}\n`).join(''));
}

/** A dotenv file (e.g. a GitLab `artifacts:reports:dotenv`): non-secret values only. */
async function writeDotenv(file, vars) {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, Object.entries(vars).map(([k, v]) => `${k}=${v}\n`).join(''));
}

// ---- helpers --------------------------------------------------------------------------------

function noPositionals(positionals, command) {
  if (positionals.length > 0) throw new UsageError(`${command} takes no positional argument (got '${positionals[0]}')`);
}

function one(positionals, what) {
  if (positionals.length !== 1) throw new UsageError(`expected exactly one ${what}`);
  return positionals[0];
}

function oneOf(value, allowed, flag) {
  if (value === undefined) throw new UsageError(`${flag} is required (${allowed.join(' or ')})`);
  if (!allowed.includes(value)) throw new UsageError(`${flag} must be ${allowed.join(' or ')}, got '${value}'`);
  return value;
}

/** `K=V` flags as an object (undefined when none). */
function pairs(list, flag) {
  if (!list?.length) return undefined;
  const o = {};
  for (const item of list) {
    const i = item.indexOf('=');
    if (i <= 0) throw new UsageError(`${flag} takes KEY=VALUE, got '${item}'`);
    o[item.slice(0, i)] = item.slice(i + 1);
  }
  return o;
}

async function findDataset(dp, name) {
  // One request by name (listDatasets?name=), not a walk over every dataset.
  const it = dp.listDatasets({ name });
  try {
    const [ds] = (await it.nextPage()).items;
    return ds;
  } finally {
    it.free?.();
  }
}

async function findOrCreateDataset(dp, name) {
  const found = await findDataset(dp, name);
  if (found) return found;
  try {
    return await dp.createDataset({ name });
  } catch (e) {
    // Someone else created it in between.
    if (isDataPilotError(e) && e.code === 'already_exists') {
      const again = await findDataset(dp, name);
      if (again) return again;
    }
    throw e;
  }
}

/** `DATASET@DIGEST` (dataset by name) as `{ dataset_id, digest }`. */
async function versionRef(dp, spec, flag) {
  const at = spec?.lastIndexOf('@') ?? -1;
  if (at <= 0) throw new UsageError(`${flag} takes DATASET@DIGEST, got '${spec ?? ''}'`);
  const name = spec.slice(0, at);
  const ds = await findDataset(dp, name);
  if (!ds) throw new Error(`no dataset named '${name}'`);
  return { dataset_id: ds.id, digest: spec.slice(at + 1) };
}

/** A regular file's size, or an error that names the path. */
async function regularFile(file) {
  let s;
  try {
    s = await stat(file);
  } catch (e) {
    throw new Error(`${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
  if (!s.isFile()) throw new Error(`${file}: not a regular file`);
  return s.size;
}

/** Writes bytes to FILE (via FILE.part, then rename: a partial file never looks complete) or `-`. */
async function writeOutput(file, bytes) {
  if (file === '-') {
    await new Promise((resolve, reject) => process.stdout.write(bytes, (e) => (e ? reject(e) : resolve())));
    return;
  }
  const tmp = `${file}.part`;
  await writeFile(tmp, bytes);
  await rename(tmp, file);
}

/**
 * Writes a verified download stream to `file` (or stdout for `-`): into `file.<pid>.part` next
 * to it, renamed to `file` only after the stream ended (which it does only once verified); on
 * any error the part file is removed and `file` is untouched. On stdout the bytes before an
 * error are already written; the command then fails with a non-zero exit.
 */
async function writeStream(file, stream) {
  const { Readable } = await import('node:stream');
  const { pipeline } = await import('node:stream/promises');
  const { createWriteStream } = await import('node:fs');
  if (file === '-') {
    await pipeline(Readable.fromWeb(stream), process.stdout, { end: false });
    return;
  }
  const tmp = `${file}.${process.pid}.part`;
  try {
    await pipeline(Readable.fromWeb(stream), createWriteStream(tmp, { flush: true }));
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

function outputArg(ctx) {
  const o = ctx.values.output;
  if (!o) throw new UsageError('-o FILE is required (- for stdout)');
  if (o === '-' && process.stdout.isTTY) throw new UsageError('refusing to write binary data to a terminal: redirect stdout or pass -o FILE');
  if (o === '-' && ctx.json) throw new UsageError('-o - writes the bytes to stdout: it cannot be combined with --json or --field');
  return o;
}

function requireKeys(ctx) {
  if (ctx.trustedKeys.length === 0) {
    throw new UsageError('no trusted key: pass --trusted-key KEY or set DATAPILOT_TRUSTED_KEYS (pin the key out of band; `datapilot keys` helps bootstrap it)');
  }
  return ctx.trustedKeys;
}

async function readTextIfExists(file) {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if (e.code === 'ENOENT') return undefined;
    throw new Error(`${file}: ${e.message}`);
  }
}

// ---- checkpoints ------------------------------------------------------------------------------

/**
 * Opens the server's current checkpoint with the pinned keys and, when a trusted one is stored
 * in `file`, checks that the new tree extends it (RFC 9162 consistency proof): a smaller tree is
 * a rollback, the same size with another root or a bad proof a fork. Both throw a
 * VerificationError (exit 3) and nothing is saved.
 */
/** `--witness VKEY... [--witness-quorum K]` as `{ witnesses, witnessQuorum }`. */
function witnessPolicy(ctx) {
  const witnesses = ctx.values.witness ?? [];
  const quorumText = ctx.values['witness-quorum'];
  if (quorumText !== undefined && !/^(0|[1-9][0-9]*)$/.test(quorumText)) {
    throw new UsageError(`--witness-quorum must be a whole number, got ${JSON.stringify(quorumText)}`);
  }
  if (quorumText !== undefined && witnesses.length === 0) throw new UsageError('--witness-quorum needs --witness VKEY');
  return { witnesses, witnessQuorum: quorumText === undefined ? undefined : Number(quorumText) };
}

async function checkCheckpoint(ctx, file) {
  const keys = requireKeys(ctx);
  const dp = client(ctx);
  const note = await dp.getCheckpoint();
  const policy = witnessPolicy(ctx);
  const { witnesses } = policy;
  let current;
  try {
    current = await verifyCheckpoint(note, keys, policy);
  } catch (e) {
    if (isDataPilotError(e) && e.code === 'verification_failed') throw new VerificationError(`the server's checkpoint does not verify with the trusted keys${witnesses.length ? ' and witnesses' : ''}: ${e.message}`);
    throw e;
  }
  const storedNote = await readTextIfExists(file);
  if (storedNote === undefined) return { note, current, previous: null, consistent: null };
  let previous;
  try {
    previous = await verifyCheckpoint(storedNote, keys);
  } catch (e) {
    if (isDataPilotError(e) && e.code === 'verification_failed') throw new VerificationError(`${file} does not verify with the trusted keys: ${e.message}`);
    throw e;
  }
  if (current.tree_size < previous.tree_size) {
    throw new VerificationError(`rollback: the server's tree has ${current.tree_size} entries, ${file} trusts ${previous.tree_size}`);
  }
  if (current.tree_size === previous.tree_size) {
    if (current.root_hash !== previous.root_hash) throw new VerificationError(`fork: tree size ${current.tree_size} with another root than ${file}`);
    return { note, current, previous, consistent: true };
  }
  const proof = await dp.getConsistencyProof(previous.tree_size, { to: current.tree_size });
  const ok = previous.tree_size === 0 || verifyConsistency({
    oldSize: previous.tree_size,
    newSize: current.tree_size,
    oldRoot: previous.root_hash,
    newRoot: current.root_hash,
    proof: proof.hashes,
  });
  if (!ok) throw new VerificationError(`fork: no valid consistency proof from ${file} (size ${previous.tree_size}) to size ${current.tree_size}`);
  return { note, current, previous, consistent: true };
}

function checkpointFile(ctx) {
  const file = ctx.values.file ?? ctx.checkpointFile;
  if (!file) throw new UsageError('--file FILE is required (or set DATAPILOT_CHECKPOINT_FILE)');
  return file;
}

function cpJson(cp) {
  return cp && { origin: cp.origin, tree_size: cp.tree_size, root_hash: cp.root_hash };
}

// ---- commands ---------------------------------------------------------------------------------
// Each: summary, usage, options, json (the --json shape, documented in the package README too),
// run(ctx, positionals).

const COMMANDS = {
  digest: {
    summary: 'DPM-1 dataset id of a directory',
    usage: 'digest DIR [--follow-symlinks] [--symlinks-outside-root] [--no-ignore] [--list-files FILE]',
    options: TREE_OPTIONS,
    json: '{ digest, file_count, total_bytes, excluded }',
    async run(ctx, pos) {
      const dir = one(pos, 'directory');
      const bar = await progress(ctx);
      const d = await hashDirectory(dir, treeOptions(ctx, bar)).finally(() => bar.stop());
      out(ctx, { digest: d.digest, file_count: d.file_count, total_bytes: d.total_bytes, excluded: d.excluded }, d.digest);
      await recheck(ctx, dir, d);
    },
  },

  register: {
    summary: 'hash DIR and register it as a version of dataset NAME (created if missing)',
    usage: 'register DIR --dataset NAME [--note TEXT] [--follow-symlinks] [--symlinks-outside-root] [--no-ignore]',
    options: { dataset: { type: 'string', arg: 'NAME', help: 'dataset name' }, note: { type: 'string', arg: 'TEXT', help: 'version note' }, ...TREE_OPTIONS },
    json: '{ dataset_id, created, version: DatasetVersion }',
    async run(ctx, pos) {
      const dir = one(pos, 'directory');
      if (!ctx.values.dataset) throw new UsageError('--dataset NAME is required');
      const dp = client(ctx);
      const bar = await progress(ctx);
      let d;
      let reg;
      try {
        d = await hashDirectory(dir, treeOptions(ctx, bar));
        const ds = await findOrCreateDataset(dp, ctx.values.dataset);
        reg = await dp.registerDatasetVersion(ds.id, { digest: d.digest, files: d.files, note: ctx.values.note }, {
          onProgress: (p) => bar.update('registering', p.filesSent, p.files, { unit: 'files', detail: `part ${p.partsDone}/${p.parts}` }),
        });
        reg.dataset = ds;
      } finally {
        bar.stop();
      }
      out(
        ctx,
        { dataset_id: reg.dataset.id, created: reg.created, version: reg.version },
        `${reg.created ? 'registered' : 'already registered'} ${reg.dataset.name}@${reg.version.digest} (${reg.version.file_count} files, gates ${reg.version.gate_status})`,
      );
      await recheck(ctx, dir, d);
    },
  },

  gate: {
    summary: 'record a quality gate result of a dataset version',
    usage: 'gate DATASET@DIGEST --gate NAME --status passed|failed [--detail K=V...]',
    options: {
      gate: { type: 'string', arg: 'NAME', help: 'gate name (as the policy names it)' },
      status: { type: 'string', arg: 'STATUS', help: 'passed or failed' },
      detail: { type: 'string', multiple: true, arg: 'K=V', help: 'detail (repeatable)' },
    },
    json: '{ result: GateResult, gate_status }',
    async run(ctx, pos) {
      const spec = one(pos, 'DATASET@DIGEST');
      if (!ctx.values.gate) throw new UsageError('--gate NAME is required');
      const status = oneOf(ctx.values.status, ['passed', 'failed'], '--status');
      const details = pairs(ctx.values.detail, '--detail');
      const dp = client(ctx);
      const ref = await versionRef(dp, spec, 'gate');
      const r = await dp.recordGateResult(ref.dataset_id, ref.digest, { gate: ctx.values.gate, status, details });
      const version = await dp.getDatasetVersion(ref.dataset_id, ref.digest);
      out(ctx, { result: r, gate_status: version.gate_status }, `gate ${r.gate} ${r.status} on ${spec} (gates now ${version.gate_status})`);
    },
  },

  'run-start': {
    summary: 'start a run; hands DATAPILOT_RUN_ID and DATAPILOT_RUN_TOKEN to later steps',
    usage:
      'run-start --input DATASET@DIGEST [--input ...] --git-commit SHA --image-digest sha256:HEX\n' +
      '          [--name NAME] [--param K=V...] [--export-file FILE] [--dotenv-report FILE] [--print-env]',
    details:
      'Where the variables go: --export-file FILE (export lines for `. FILE`, mode 0600; removed\n' +
      'first, so it never holds a previous run), $GITHUB_ENV in GitHub Actions (the token masked\n' +
      'with ::add-mask:: first), --dotenv-report FILE (DATAPILOT_RUN_ID only: GitLab keeps dotenv\n' +
      'reports as artifacts), or stdout as export lines with --print-env (for eval; on failure it\n' +
      'prints `unset ...; (exit N)`, so `eval "$(datapilot run-start --print-env ...)"` fails too).\n' +
      'Without one of them run-start refuses to start a run whose token would be lost.',
    options: {
      input: { type: 'string', multiple: true, arg: 'DATASET@DIGEST', help: 'input dataset version (repeatable)' },
      'git-commit': { type: 'string', arg: 'SHA', help: '40 or 64 hex' },
      'image-digest': { type: 'string', arg: 'DIGEST', help: 'sha256:<64 hex>' },
      name: { type: 'string', arg: 'NAME', help: 'run name (default "ci run")' },
      param: { type: 'string', multiple: true, arg: 'K=V', help: 'parameter (repeatable)' },
      'export-file': { type: 'string', arg: 'FILE', help: 'write export lines (secret, 0600)' },
      'dotenv-report': { type: 'string', arg: 'FILE', help: 'write DATAPILOT_RUN_ID=... (not secret)' },
      'print-env': { type: 'boolean', help: 'print export lines (with the token) on stdout' },
    },
    json: '{ run: Run, run_token_expires_at, exported_to: [destinations] } (never the token)',
    async run(ctx, pos) {
      noPositionals(pos, 'run-start');
      const v = ctx.values;
      const github = process.env.GITHUB_ENV ? true : false;
      if (!v['export-file'] && !github && !v['print-env']) {
        throw new UsageError('the run token needs somewhere to go: pass --export-file FILE (then `. FILE`), or --print-env for eval; in GitHub Actions $GITHUB_ENV is used');
      }
      if (v['print-env'] && ctx.json) throw new UsageError('--print-env prints shell lines: it cannot be combined with --json or --field');
      if (!v.input?.length) throw new UsageError('at least one --input DATASET@DIGEST is required');
      if (!v['git-commit']) throw new UsageError('--git-commit SHA is required');
      if (!v['image-digest']) throw new UsageError('--image-digest sha256:HEX is required');
      const params = pairs(v.param, '--param');
      // A failed run-start must not leave a previous run's variables to be sourced.
      if (v['export-file']) await rm(v['export-file'], { force: true });
      const dp = client(ctx);
      const inputs = [];
      for (const spec of v.input) inputs.push(await versionRef(dp, spec, '--input'));
      const run = await dp.createRun({
        name: v.name ?? 'ci run',
        inputs,
        git_commit: v['git-commit'],
        image_digest: v['image-digest'],
        params,
      });
      const vars = { DATAPILOT_RUN_ID: run.runId, DATAPILOT_RUN_TOKEN: run.runToken };
      for (const val of Object.values(vars)) if (!SAFE_VALUE.test(val)) throw new Error('the server returned a run id or token with unexpected characters');
      const exported = [];
      if (v['export-file']) {
        await writeExportFile(v['export-file'], vars);
        exported.push(v['export-file']);
      }
      if (github) {
        await writeGithubEnv(vars, [run.runToken]);
        exported.push('GITHUB_ENV');
      }
      if (v['dotenv-report']) {
        await writeDotenv(v['dotenv-report'], { DATAPILOT_RUN_ID: run.runId });
        exported.push(v['dotenv-report']);
      }
      if (v['print-env']) {
        process.stdout.write(`export DATAPILOT_RUN_ID='${run.runId}'\nexport DATAPILOT_RUN_TOKEN='${run.runToken}'\n`);
        return;
      }
      out(
        ctx,
        { run: run.run, run_token_expires_at: run.runTokenExpiresAt, exported_to: exported },
        `started run ${run.runId} (variables in ${exported.join(', ')})`,
      );
    },
  },

  metrics: {
    summary: 'append metric points from a JSON-lines file: {"name":"loss","step":1,"value":0.5}',
    usage: 'metrics FILE.jsonl [--run ID]',
    options: { ...RUN_OPTION },
    json: '{ run_id, points, batches: [MetricBatch] }',
    async run(ctx, pos) {
      const file = one(pos, 'JSON-lines file');
      const { runId, dp } = runClient(ctx);
      const points = await readPoints(file);
      const batches = [];
      // The contract's batch limit.
      for (let i = 0; i < points.length; i += 10_000) batches.push(await dp.appendMetrics(runId, { points: points.slice(i, i + 10_000) }));
      out(ctx, { run_id: runId, points: points.length, batches }, `appended ${points.length} metric points to ${runId}`);
    },
  },

  upload: {
    summary: 'upload an artifact of the run (streamed, any size)',
    usage: 'upload FILE [--name NAME] [--run ID]',
    options: { name: { type: 'string', arg: 'NAME', help: 'artifact name (default: the file name)' }, ...RUN_OPTION },
    json: 'Artifact',
    async run(ctx, pos) {
      const file = one(pos, 'file');
      await regularFile(file);
      const { runId, dp } = runClient(ctx);
      const name = ctx.values.name ?? basename(file);
      const bar = await progress(ctx);
      const a = await dp
        .uploadArtifact(runId, name, await openFileBlob(file), {
          onProgress: (p) => bar.update(p.phase === 'hashing' ? `hashing ${name}` : `uploading ${name}`, p.bytes, p.totalBytes),
          // A transfer: limited by the stall timeout (the client's), with no deadline unless
          // --deadline-ms sets one.
          deadlineMs: ctx.deadlineMs,
        })
        .finally(() => bar.stop());
      out(ctx, a, `uploaded ${a.name} to ${runId} (${a.size} bytes, sha256 ${a.sha256})`);
    },
  },

  'run-finish': {
    summary: 'seal the run (with the dataset versions it produced)',
    usage: 'run-finish --status succeeded|failed [--produced DATASET@DIGEST...] [--run ID]',
    options: {
      status: { type: 'string', arg: 'STATUS', help: 'succeeded or failed' },
      produced: { type: 'string', multiple: true, arg: 'DATASET@DIGEST', help: 'output version (repeatable)' },
      ...RUN_OPTION,
    },
    json: 'Run',
    async run(ctx, pos) {
      noPositionals(pos, 'run-finish');
      const status = oneOf(ctx.values.status, ['succeeded', 'failed'], '--status');
      const { runId, dp } = runClient(ctx);
      // Datasets are looked up with the API token: a run token may only touch its run.
      const outputs = [];
      for (const spec of ctx.values.produced ?? []) outputs.push(await versionRef(client(ctx), spec, '--produced'));
      const run = await dp.finishRun(runId, outputs.length ? { status, outputs } : { status });
      out(ctx, run, `run ${run.id} ${run.status}`);
    },
  },

  export: {
    summary: "download a run's or a dataset version's evidence bundle",
    usage: 'export (--run ID | --dataset DATASET@DIGEST) -o FILE|- [--tree-size N]',
    options: {
      run: { type: 'string', arg: 'ID', help: 'the run' },
      dataset: { type: 'string', arg: 'DATASET@DIGEST', help: 'the dataset version' },
      output: { type: 'string', short: 'o', arg: 'FILE', help: 'output file, - for stdout' },
      'tree-size': { type: 'string', arg: 'N', help: 'ledger size to export at (default: current)' },
    },
    json: '{ file, bytes }',
    async run(ctx, pos) {
      noPositionals(pos, 'export');
      const { run, dataset } = ctx.values;
      if (!run === !dataset) throw new UsageError('export takes exactly one of --run ID and --dataset DATASET@DIGEST');
      const output = outputArg(ctx);
      const treeSize = number(ctx.values['tree-size'], '--tree-size');
      const dp = client(ctx);
      let bytes;
      if (run) {
        bytes = await dp.exportRunEvidence(run, { treeSize });
      } else {
        const ref = await versionRef(dp, dataset, '--dataset');
        bytes = await dp.exportDatasetVersionEvidence(ref.dataset_id, ref.digest, { treeSize });
      }
      await writeOutput(output, bytes);
      if (output !== '-') out(ctx, { file: output, bytes: bytes.length }, `wrote ${output} (${bytes.length} bytes)`);
    },
  },

  verify: {
    summary: 'verify an evidence bundle with pinned keys (and consistency with the last trusted checkpoint)',
    usage: 'verify BUNDLE.zip [--trusted-key KEY...] [--checkpoint-file FILE] [--witness VKEY... [--witness-quorum K]]',
    details:
      'With --checkpoint-file (and a server URL) the bundle\'s checkpoint must extend the trusted\n' +
      'one (consistency proof from the server); a missing file is a first run: nothing to compare.\n' +
      'With --witness (and a server URL) the bundle\'s tree must be a prefix of the server\'s\n' +
      'current checkpoint, cosigned by --witness-quorum (default: all) of the witnesses.\n' +
      'Exit 3 when the bundle does not verify.',
    options: { ...KEYS_OPTION, ...CHECKPOINT_FILE_OPTION, 'last-checkpoint': { type: 'string', arg: 'FILE', help: 'same as --checkpoint-file' }, ...WITNESS_OPTIONS },
    json: 'VerificationReport { ok, checks: [{ name, passed, reason }], summary }',
    async run(ctx, pos) {
      const file = one(pos, 'bundle file');
      const trustedKeys = requireKeys(ctx);
      let bytes;
      try {
        bytes = await readFile(file);
      } catch (e) {
        throw new Error(`${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
      }
      const options = { trustedKeys };
      const last = ctx.checkpointFile ? await readTextIfExists(ctx.checkpointFile) : undefined;
      const policy = witnessPolicy(ctx);
      if (policy.witnesses.length > 0) Object.assign(options, policy);
      let report;
      if (last !== undefined || policy.witnesses.length > 0) {
        if (last !== undefined) options.lastCheckpoint = last;
        // Online: the consistency proof from the trusted checkpoint to the bundle's, and for a
        // witness policy the server's cosigned checkpoint and the proof from the bundle to it.
        report = await client(ctx).verifyEvidenceBundle(bytes, options);
      } else {
        report = await verifyEvidenceBundle(bytes, options);
      }
      if (ctx.json) out(ctx, report);
      else for (const c of report.checks) process.stdout.write(`${c.passed ? 'ok  ' : 'FAIL'} ${c.name}: ${c.reason}\n`);
      if (!report.ok) {
        const first = report.checks.find((c) => !c.passed);
        throw new VerificationError(`${file} does not verify: ${first.name}: ${first.reason}`);
      }
    },
  },

  checkpoint: {
    group: ['save', 'check'],
    summary: 'keep the last trusted checkpoint in a file; refuse a rollback or fork',
  },
  'checkpoint save': {
    summary: "verify the server's checkpoint against FILE (consistency), then store it in FILE",
    usage: 'checkpoint save --file FILE [--trusted-key KEY...] [--witness VKEY... [--witness-quorum K]]',
    details: 'Exit 3 on a rollback (smaller tree), a fork (same size, other root; or no valid\nconsistency proof), a checkpoint that does not verify, or fewer witness cosignatures than\n--witness-quorum; FILE is then left as it was.',
    options: { file: { type: 'string', arg: 'FILE', help: 'checkpoint file (env DATAPILOT_CHECKPOINT_FILE)' }, ...KEYS_OPTION, ...WITNESS_OPTIONS },
    json: '{ file, saved, previous: Checkpoint|null, current: Checkpoint }',
    async run(ctx, pos) {
      noPositionals(pos, 'checkpoint save');
      const file = checkpointFile(ctx);
      const r = await checkCheckpoint(ctx, file);
      await mkdir(dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, r.note);
      await rename(tmp, file);
      out(
        ctx,
        { file, saved: true, previous: cpJson(r.previous), current: cpJson(r.current) },
        `saved checkpoint ${r.current.tree_size} to ${file}${r.previous ? ` (extends ${r.previous.tree_size})` : ' (first)'}`,
      );
    },
  },
  'checkpoint check': {
    summary: "check that the server's checkpoint extends the one in FILE, without saving",
    usage: 'checkpoint check --file FILE [--trusted-key KEY...] [--witness VKEY... [--witness-quorum K]]',
    options: { file: { type: 'string', arg: 'FILE', help: 'checkpoint file (env DATAPILOT_CHECKPOINT_FILE)' }, ...KEYS_OPTION, ...WITNESS_OPTIONS },
    json: '{ file, saved: false, previous: Checkpoint|null, current: Checkpoint }',
    async run(ctx, pos) {
      noPositionals(pos, 'checkpoint check');
      const file = checkpointFile(ctx);
      const r = await checkCheckpoint(ctx, file);
      out(
        ctx,
        { file, saved: false, previous: cpJson(r.previous), current: cpJson(r.current) },
        r.previous ? `checkpoint ${r.current.tree_size} extends ${r.previous.tree_size} in ${file}` : `checkpoint ${r.current.tree_size} verifies (${file} does not exist yet)`,
      );
    },
  },

  keys: {
    summary: "the ledger's verifier keys (to bootstrap a pin, not to trust)",
    usage: 'keys',
    options: {},
    json: 'VerifierKeys { keys: [{ verifier, ... }] }',
    async run(ctx, pos) {
      noPositionals(pos, 'keys');
      const k = await client(ctx).listVerifierKeys();
      out(ctx, k, k.keys.map((x) => x.verifier).join('\n'));
    },
  },

  runs: { group: ['list', 'get'], summary: 'list runs, or show one' },
  'runs list': {
    summary: 'list runs (newest pages first, as the server orders them)',
    usage: 'runs list [--limit N]',
    options: { limit: { type: 'string', arg: 'N', help: 'at most N runs (default 50)' } },
    json: '[Run]',
    async run(ctx, pos) {
      noPositionals(pos, 'runs list');
      const limit = number(ctx.values.limit, '--limit') ?? 50;
      const runs = [];
      for await (const r of client(ctx).listRuns({ limit: Math.min(limit, 500) })) {
        runs.push(r);
        if (runs.length >= limit) break;
      }
      out(ctx, runs, runs.map((r) => `${r.id}  ${r.status.padEnd(9)}  ${r.created_at}  ${r.name}`).join('\n'));
    },
  },
  'runs get': {
    summary: 'show a run',
    usage: 'runs get ID',
    options: {},
    json: 'Run',
    async run(ctx, pos) {
      const id = one(pos, 'run id');
      const r = await client(ctx).getRun(id);
      out(ctx, r, [`${r.id}  ${r.status}  ${r.name}`, `inputs: ${r.inputs.map((i) => `${i.dataset_id}@${i.digest}`).join(', ')}`, `git ${r.git_commit}  image ${r.image_digest}`].join('\n'));
    },
  },

  download: {
    summary: 'download an artifact of a run (checked against its SHA-256)',
    usage: 'download --run ID --artifact ID|NAME -o FILE|-',
    options: {
      ...RUN_OPTION,
      artifact: { type: 'string', arg: 'ID|NAME', help: 'artifact id or name' },
      output: { type: 'string', short: 'o', arg: 'FILE', help: 'output file, - for stdout' },
    },
    json: '{ file, bytes, sha256, artifact: Artifact }',
    async run(ctx, pos) {
      noPositionals(pos, 'download');
      if (!ctx.values.artifact) throw new UsageError('--artifact ID|NAME is required');
      const output = outputArg(ctx);
      const runId = ctx.values.run ?? (process.env.DATAPILOT_RUN_ID || undefined);
      if (!runId) throw new UsageError('--run ID is required');
      const dp = client(ctx, ctx.values.token ?? ctx.token ?? process.env.DATAPILOT_RUN_TOKEN);
      let artifact;
      for await (const a of dp.listArtifacts(runId, { limit: 500 })) {
        if (a.id === ctx.values.artifact || a.name === ctx.values.artifact) {
          artifact = a;
          break;
        }
      }
      if (!artifact) throw new Error(`run ${runId} has no artifact '${ctx.values.artifact}'`);
      const bar = await progress(ctx);
      try {
        // Streamed, and checked against the sha256 the run recorded while it streams: the
        // stream ends only once every byte matched (its last chunk is held back until then).
        const { stream } = await dp.downloadArtifactStream(runId, artifact.id, {
          onProgress: (p) => bar.update(`downloading ${artifact.name}`, p.bytes, p.totalBytes),
          deadlineMs: ctx.deadlineMs,
        });
        await writeStream(output, stream);
      } catch (e) {
        if (isDataPilotError(e) && e.kind === 'verification') throw new VerificationError(`${artifact.name}: ${e.message}`);
        throw e;
      } finally {
        bar.stop();
      }
      if (output !== '-') out(ctx, { file: output, bytes: artifact.size, sha256: artifact.sha256, artifact }, `wrote ${output} (${artifact.size} bytes, sha256 ${artifact.sha256})`);
    },
  },

  lineage: {
    summary: 'the lineage graph around a run or a dataset version',
    usage: 'lineage (--run ID | --dataset DATASET@DIGEST)',
    options: { run: { type: 'string', arg: 'ID', help: 'the run' }, dataset: { type: 'string', arg: 'DATASET@DIGEST', help: 'the dataset version' } },
    json: 'Lineage { scope, nodes, edges }',
    async run(ctx, pos) {
      noPositionals(pos, 'lineage');
      const { run, dataset } = ctx.values;
      if (!run === !dataset) throw new UsageError('lineage takes exactly one of --run ID and --dataset DATASET@DIGEST');
      const dp = client(ctx);
      let l;
      if (run) l = await dp.getRunLineage(run);
      else {
        const ref = await versionRef(dp, dataset, '--dataset');
        l = await dp.getDatasetVersionLineage(ref.dataset_id, ref.digest);
      }
      out(ctx, l, (l.edges ?? []).map((e) => `${e.from} -${e.kind}-> ${e.to}`).join('\n'));
    },
  },

  audit: { group: ['list', 'get'], summary: 'audit events (auditor, admin)' },
  'audit list': {
    summary: 'list audit events, oldest first',
    usage: 'audit list [--subject SUBJECT] [--action ACTION] [--limit N]',
    options: {
      subject: { type: 'string', arg: 'SUBJECT', help: 'e.g. run:run_...' },
      action: { type: 'string', arg: 'ACTION', help: 'e.g. run.create' },
      limit: { type: 'string', arg: 'N', help: 'at most N events (default 100)' },
    },
    json: '[AuditEvent]',
    async run(ctx, pos) {
      noPositionals(pos, 'audit list');
      const limit = number(ctx.values.limit, '--limit') ?? 100;
      const events = [];
      for await (const e of client(ctx).listAuditEvents({ subject: ctx.values.subject, action: ctx.values.action, limit: Math.min(limit, 500) })) {
        events.push(e);
        if (events.length >= limit) break;
      }
      out(ctx, events, events.map((e) => `${e.seq}  ${e.time ?? ''}  ${e.action}  ${e.subject}`).join('\n'));
    },
  },
  'audit get': {
    summary: 'show one audit event',
    usage: 'audit get SEQ',
    options: {},
    json: 'AuditEvent',
    async run(ctx, pos) {
      const seq = number(one(pos, 'sequence number'), 'SEQ');
      const e = await client(ctx).getAuditEvent(seq);
      out(ctx, e, JSON.stringify(e, null, 2));
    },
  },

  token: { group: ['create', 'list', 'revoke'], summary: 'API tokens (admin)' },
  'token create': {
    summary: 'create an API token (e.g. an engineer token for CI)',
    usage: 'token create --name NAME --role viewer|engineer|auditor|admin [--expires-in SECONDS]\n             (--export-file FILE | --show-secret)',
    details: 'The secret is shown once. --export-file writes `export DATAPILOT_TOKEN=...` (mode 0600);\n--show-secret prints it on stdout (in --json as "secret"); in GitHub Actions it is masked.',
    options: {
      name: { type: 'string', arg: 'NAME', help: 'token name' },
      role: { type: 'string', arg: 'ROLE', help: 'viewer, engineer, auditor or admin' },
      'expires-in': { type: 'string', arg: 'SECONDS', help: 'lifetime (default: no expiry)' },
      'export-file': { type: 'string', arg: 'FILE', help: 'write the secret as an export line (0600)' },
      'show-secret': { type: 'boolean', help: 'print the secret on stdout' },
    },
    json: '{ token: ApiToken, secret (only with --show-secret), exported_to }',
    async run(ctx, pos) {
      noPositionals(pos, 'token create');
      const v = ctx.values;
      if (!v.name) throw new UsageError('--name NAME is required');
      const role = oneOf(v.role, ['viewer', 'engineer', 'auditor', 'admin'], '--role');
      if (!v['export-file'] && !v['show-secret']) throw new UsageError('the secret is shown once: pass --export-file FILE or --show-secret');
      const created = await client(ctx).createToken({ name: v.name, role, expires_in_seconds: number(v['expires-in'], '--expires-in') });
      if (!SAFE_VALUE.test(created.secret)) throw new Error('the server returned a token with unexpected characters');
      if (process.env.GITHUB_ACTIONS === 'true') process.stdout.write(`::add-mask::${created.secret}\n`);
      const exported = [];
      if (v['export-file']) {
        await writeExportFile(v['export-file'], { DATAPILOT_TOKEN: created.secret });
        exported.push(v['export-file']);
      }
      const json = { token: created.token, exported_to: exported };
      if (v['show-secret']) json.secret = created.secret;
      out(ctx, json, v['show-secret'] ? created.secret : `created ${created.token.id} (${role}); secret in ${exported.join(', ')}`);
    },
  },
  'token list': {
    summary: 'list API tokens (never their secrets)',
    usage: 'token list',
    options: {},
    json: '[ApiToken]',
    async run(ctx, pos) {
      noPositionals(pos, 'token list');
      const tokens = [];
      for await (const t of client(ctx).listTokens({ limit: 500 })) tokens.push(t);
      out(ctx, tokens, tokens.map((t) => `${t.id}  ${t.role.padEnd(8)}  ${t.revoked_at ? 'revoked' : 'active '}  ${t.name}`).join('\n'));
    },
  },
  'token revoke': {
    summary: 'revoke an API token',
    usage: 'token revoke ID',
    options: {},
    json: 'ApiToken',
    async run(ctx, pos) {
      const id = one(pos, 'token id');
      const t = await client(ctx).revokeToken(id);
      out(ctx, t, `revoked ${t.id} (${t.name})`);
    },
  },

  policy: { group: ['get', 'set'], summary: 'the gate policy' },
  'policy get': {
    summary: 'show the current policy',
    usage: 'policy get',
    options: {},
    json: 'Policy',
    async run(ctx, pos) {
      noPositionals(pos, 'policy get');
      const p = await client(ctx).getPolicy();
      out(ctx, p, `policy v${p.version}: required gates [${p.required_gates.join(', ')}], run tokens live ${p.run_token_ttl_seconds} s`);
    },
  },
  'policy set': {
    summary: 'replace the policy (admin); makes a new, audited version',
    usage: 'policy set (--require-gate NAME... | --no-required-gates) [--run-token-ttl SECONDS]',
    options: {
      'require-gate': { type: 'string', multiple: true, arg: 'NAME', help: 'gate every run input must pass (repeatable)' },
      'no-required-gates': { type: 'boolean', help: 'require no gates' },
      'run-token-ttl': { type: 'string', arg: 'SECONDS', help: 'run token lifetime (default: the server\'s, 86400)' },
    },
    json: 'Policy',
    async run(ctx, pos) {
      noPositionals(pos, 'policy set');
      const gates = ctx.values['require-gate'] ?? [];
      if (gates.length === 0 && !ctx.values['no-required-gates']) throw new UsageError('name the gates with --require-gate NAME, or pass --no-required-gates');
      if (gates.length > 0 && ctx.values['no-required-gates']) throw new UsageError('--require-gate and --no-required-gates exclude each other');
      const p = await client(ctx).updatePolicy({ required_gates: gates, run_token_ttl_seconds: number(ctx.values['run-token-ttl'], '--run-token-ttl') });
      out(ctx, p, `policy v${p.version}: required gates [${p.required_gates.join(', ')}]`);
    },
  },

  whoami: {
    summary: 'the principal the token authenticates as',
    usage: 'whoami',
    options: {},
    json: 'WhoAmI { subject, role, ... }',
    async run(ctx, pos) {
      noPositionals(pos, 'whoami');
      const me = await client(ctx).whoAmI();
      out(ctx, me, `${me.subject} (${me.role})`);
    },
  },

  completion: {
    summary: 'print a shell completion script (bash, zsh or fish)',
    usage: 'completion bash|zsh|fish',
    details: 'bash: `source <(datapilot completion bash)`; zsh: `source <(datapilot completion zsh)`;\nfish: `datapilot completion fish | source`.',
    options: {},
    json: '(not JSON)',
    noConfig: true,
    async run(ctx, pos) {
      const shell = oneOf(one(pos, 'shell'), ['bash', 'zsh', 'fish'], 'completion');
      process.stdout.write(completionScript(shell));
    },
  },
};

/** Metric points from a JSON-lines file (blank lines skipped; errors name the line). */
async function readPoints(file) {
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
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

// ---- help and completion ----------------------------------------------------------------------

const runnable = () => Object.entries(COMMANDS).filter(([, c]) => c.run);

function optionLines(options) {
  return Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.arg ? ` ${o.arg}` : ''}`;
    return `  ${flag.padEnd(34)} ${o.help ?? ''}`;
  });
}

function mainHelp() {
  const lines = [`datapilot ${sdkVersion()}: DataPilot from CI jobs`, '', 'Commands:'];
  for (const [name, c] of runnable()) lines.push(`  ${name.padEnd(18)} ${c.summary}`);
  lines.push(
    '',
    '`datapilot help COMMAND` (or COMMAND --help) for its options and --json shape.',
    '',
    'Options of every command:',
    ...optionLines(GLOBAL),
    '  --version                          the version',
    '',
    'Settings: flags, then the environment (DATAPILOT_URL, DATAPILOT_TOKEN, DATAPILOT_RUN_ID,',
    'DATAPILOT_RUN_TOKEN, DATAPILOT_TRUSTED_KEYS, DATAPILOT_CHECKPOINT_FILE, DATAPILOT_TIMEOUT_MS,',
    'DATAPILOT_DEADLINE_MS), then the config file (JSON: url, token (file mode 0600 only),',
    'timeout_ms, deadline_ms, trusted_keys, checkpoint_file).',
    '',
    'Exit status: 0 ok, 1 failed or refused, 2 usage or configuration, 3 verification failed,',
    '75 retryable (network, timeout, 429, 502-504: run the step again later).',
  );
  return lines.join('\n');
}

function commandHelp(name) {
  const c = COMMANDS[name];
  if (c.group) {
    return [`datapilot ${name}: ${c.summary}`, '', ...c.group.map((s) => `  datapilot ${COMMANDS[`${name} ${s}`].usage.padEnd(40)} ${COMMANDS[`${name} ${s}`].summary}`)].join('\n');
  }
  return [
    `Usage: datapilot ${c.usage}`,
    '',
    c.summary,
    ...(c.details ? ['', c.details] : []),
    '',
    'Options:',
    ...optionLines(c.options),
    '',
    'Options of every command: --url --token --config --timeout-ms --deadline-ms --json --field --no-progress',
    `--json: ${c.json}`,
    'Exit status: 0 ok, 1 failed, 2 usage, 3 verification failed, 75 retryable.',
  ].join('\n');
}

function completionScript(shell) {
  const top = Object.keys(COMMANDS).filter((n) => !n.includes(' ')).concat('help');
  const subs = Object.fromEntries(Object.entries(COMMANDS).filter(([, c]) => c.group).map(([n, c]) => [n, c.group]));
  const flagsOf = (n) => Object.keys({ ...GLOBAL, ...(COMMANDS[n]?.options ?? {}) }).map((f) => `--${f}`);
  if (shell === 'bash') {
    const cases = Object.keys(COMMANDS)
      .filter((n) => COMMANDS[n].run)
      .map((n) => `    "${n}") opts="${flagsOf(n).join(' ')}" ;;`)
      .join('\n');
    const subCases = Object.entries(subs).map(([n, s]) => `    ${n}) subs="${s.join(' ')}" ;;`).join('\n');
    return `# bash completion for datapilot (source <(datapilot completion bash))
_datapilot() {
  local cur=\${COMP_WORDS[COMP_CWORD]} cmd="" sub="" subs="" opts="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case \${COMP_WORDS[i]} in -*) ;; *) if [ -z "$cmd" ]; then cmd=\${COMP_WORDS[i]}; elif [ -z "$sub" ]; then sub=\${COMP_WORDS[i]}; fi ;; esac
  done
  if [ -z "$cmd" ]; then COMPREPLY=($(compgen -W "${top.join(' ')}" -- "$cur")); return; fi
  case $cmd in
${subCases}
  esac
  if [ -n "$subs" ] && [ -z "$sub" ]; then COMPREPLY=($(compgen -W "$subs" -- "$cur")); return; fi
  local key=$cmd; [ -n "$subs" ] && key="$cmd $sub"
  case $key in
${cases}
  esac
  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -o filenames -F _datapilot datapilot
`;
  }
  if (shell === 'zsh') {
    // zsh runs bash completion functions through bashcompinit.
    return `# zsh completion for datapilot (source <(datapilot completion zsh))
autoload -U +X bashcompinit && bashcompinit
${completionScript('bash').split('\n').slice(1).join('\n')}`;
  }
  const lines = ['# fish completion for datapilot (datapilot completion fish | source)', 'complete -c datapilot -f'];
  for (const n of top) {
    const summary = (COMMANDS[n]?.summary ?? 'help of a command').replace(/'/g, "\\'");
    lines.push(`complete -c datapilot -n '__fish_use_subcommand' -a '${n}' -d '${summary}'`);
  }
  for (const [n, s] of Object.entries(subs)) lines.push(`complete -c datapilot -n '__fish_seen_subcommand_from ${n}' -a '${s.join(' ')}'`);
  for (const [n, c] of Object.entries(COMMANDS).filter(([, c]) => c.run)) {
    const first = n.split(' ')[0];
    for (const f of Object.keys({ ...GLOBAL, ...c.options })) lines.push(`complete -c datapilot -n '__fish_seen_subcommand_from ${first}' -l '${f}' -r`);
  }
  return `${lines.join('\n')}\n`;
}

// ---- main ---------------------------------------------------------------------------------------

function toParseArgs(options) {
  // parseArgs refuses keys set to undefined, so only the ones an option has are copied.
  const pick = (o) => Object.fromEntries(['type', 'multiple', 'short'].filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
  return Object.fromEntries(Object.entries(options).map(([k, o]) => [k, pick(o)]));
}

function fail(message, code) {
  // One line, always: newlines in server text would break log parsers.
  process.stderr.write(`datapilot: ${String(message).replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(code);
}

function exitCodeOf(e) {
  if (e instanceof UsageError) return EXIT.usage;
  if (e instanceof VerificationError) return EXIT.verification;
  if (isDataPilotError(e)) {
    if (e.code === 'verification_failed') return EXIT.verification;
    if (e.code === 'invalid_request') return EXIT.usage; // the SDK refused the arguments
    return e.retryable ? EXIT.retryable : EXIT.failed;
  }
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EAI_AGAIN', 'EPIPE'].includes(e?.code)) return EXIT.retryable;
  return EXIT.failed;
}

function messageOf(e) {
  if (isDataPilotError(e)) {
    const rid = e.requestId && !e.message.includes(e.requestId) ? ` (request id ${e.requestId})` : '';
    return `${e.message}${rid}`;
  }
  return e?.message ?? String(e);
}

async function main() {
  const argv = process.argv.slice(2);
  // First pass: every option any command takes, to find the command among the positionals.
  const all = { ...GLOBAL, version: { type: 'boolean' } };
  for (const c of Object.values(COMMANDS)) Object.assign(all, c.options ?? {});
  let first;
  try {
    first = parseArgs({ args: argv, allowPositionals: true, options: toParseArgs(all) });
  } catch (e) {
    fail(`${e.message} (try --help)`, EXIT.usage);
  }
  if (first.values.version) return void process.stdout.write(`${sdkVersion()}\n`);
  let [name, ...rest] = first.positionals;
  if (name === 'help') {
    const topic = rest.length > 1 && COMMANDS[`${rest[0]} ${rest[1]}`] ? `${rest[0]} ${rest[1]}` : rest[0];
    if (topic === undefined) return void process.stdout.write(`${mainHelp()}\n`);
    if (!COMMANDS[topic]) fail(`unknown command '${topic}' (try --help)`, EXIT.usage);
    return void process.stdout.write(`${commandHelp(topic)}\n`);
  }
  if (name === undefined) {
    if (first.values.help) return void process.stdout.write(`${mainHelp()}\n`);
    fail('no command (try --help)', EXIT.usage);
  }
  if (!COMMANDS[name]) fail(`unknown command '${name}' (try --help)`, EXIT.usage);
  if (COMMANDS[name].group) {
    const sub = rest[0];
    if (sub === undefined && first.values.help) return void process.stdout.write(`${commandHelp(name)}\n`);
    if (!COMMANDS[name].group.includes(sub)) fail(`${name} takes ${COMMANDS[name].group.join(', ')}${sub === undefined ? '' : `, not '${sub}'`} (try datapilot help ${name})`, EXIT.usage);
    name = `${name} ${sub}`;
    rest = rest.slice(1);
  }
  const command = COMMANDS[name];
  if (first.values.help) return void process.stdout.write(`${commandHelp(name)}\n`);
  // Second pass: only this command's options are allowed.
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: toParseArgs({ ...GLOBAL, ...command.options }) });
  } catch (e) {
    fail(`${e.message.replace(/^Unknown option/, `${name}: unknown option`)} (try datapilot help ${name})`, EXIT.usage);
  }
  const positionals = parsed.positionals.slice(name.split(' ').length);
  const printEnv = name === 'run-start' && parsed.values['print-env'];
  try {
    const ctx = command.noConfig ? { values: parsed.values, json: false, progress: false } : await settings(parsed.values);
    await command.run(ctx, positionals);
  } catch (e) {
    const code = exitCodeOf(e);
    // `eval "$(datapilot run-start --print-env ...)"` must fail too: eval of an empty string
    // succeeds, and a stale DATAPILOT_RUN_ID would send the next step's writes to the wrong run.
    if (printEnv) process.stdout.write(`unset DATAPILOT_RUN_ID DATAPILOT_RUN_TOKEN; (exit ${code})\n`);
    fail(code === EXIT.usage && e instanceof UsageError ? `${e.message} (try datapilot help ${name})` : messageOf(e), code);
  }
}

await main();
