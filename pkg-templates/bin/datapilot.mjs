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

function client(values) {
  const baseUrl = values.url ?? process.env.DATAPILOT_URL;
  if (!baseUrl) throw new UsageError('no server: pass --url or set DATAPILOT_URL');
  const token = values.token ?? process.env.DATAPILOT_TOKEN;
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
