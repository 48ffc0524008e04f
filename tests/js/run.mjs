#!/usr/bin/env node
// Runs the npm package tests the way a user gets the package: the packed tarball (npm pack of
// pkg/, see scripts/build-pkg.mjs) installed into a fresh temp project, with these test files
// copied next to it, under node:test. The tests start their own reference server
// (DATAPILOT_SERVER_BIN, default target/debug/datapilot-server).
//
//   node tests/js/run.mjs TARBALL.tgz [NAME.test.mjs...]
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const tarball = resolve(process.argv[2] ?? '');
if (!process.argv[2]) {
  console.error('usage: node tests/js/run.mjs TARBALL.tgz');
  process.exit(2);
}
const project = mkdtempSync(join(tmpdir(), 'datapilot-js-'));
try {
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { '@animus/datapilot': `file:${tarball}` } }),
  );
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', '--offline'], { cwd: project, stdio: 'inherit' });
  for (const f of readdirSync(here)) {
    if (f.endsWith('.test.mjs') || f.endsWith('-fixture.mjs') || f === 'support.mjs' || f === 'consumer.ts' || f === 'consumer.cjs') {
      copyFileSync(join(here, f), join(project, f));
    }
  }
  const serverBin = resolve(process.env.DATAPILOT_SERVER_BIN ?? join(repo, 'target', 'debug', 'datapilot-server'));
  const env = {
    ...process.env,
    DATAPILOT_REPO: repo,
    DATAPILOT_TARBALL: tarball,
    DATAPILOT_SERVER_BIN: serverBin,
    // For faults.test.mjs: built next to the server by `cargo build --workspace --bins`.
    DATAPILOT_FAULT_PROXY_BIN: resolve(process.env.DATAPILOT_FAULT_PROXY_BIN ?? join(dirname(serverBin), 'datapilot-fault-proxy')),
  };
  // Optional test file names after the tarball run only those (e.g. faults.test.mjs).
  const only = process.argv.slice(3);
  const files = readdirSync(project)
    .filter((f) => f.endsWith('.test.mjs') && (only.length === 0 || only.includes(f)))
    .sort();
  if (files.length === 0) throw new Error(`no test files match ${only.join(' ')}`);
  // DATAPILOT_TEST_NAME_PATTERN runs only the tests whose names match (node --test-name-pattern).
  const pattern = process.env.DATAPILOT_TEST_NAME_PATTERN ? [`--test-name-pattern=${process.env.DATAPILOT_TEST_NAME_PATTERN}`] : [];
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...pattern, ...files], { cwd: project, env, stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
} finally {
  if (!process.env.KEEP_TEST_PROJECT) rmSync(project, { recursive: true, force: true });
  else console.error(`kept ${project}`);
}
