// Real directory trees (issue 10): a dataset directory with an ignore file, a .git/ folder,
// symbolic links inside and outside the root (as Hugging Face snapshots and DVC caches have),
// a loop and a dangling link. The Node API and the CLI apply one policy, give one id, and
// coreutils gives the same id over the file list the CLI wrote. The demo page's part of the
// same check is in tests/e2e (the same tree, built by buildTree in tree-fixture.mjs).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashDirectory, DirectoryError } from '@animus/datapilot';
import { buildTree } from './tree-fixture.mjs';

const BIN = join('node_modules', '.bin', 'datapilot');

let work;
let tree;

before(() => {
  work = mkdtempSync(join(tmpdir(), 'datapilot-tree-'));
  tree = buildTree(work);
});
after(() => rmSync(work, { recursive: true, force: true }));

function run(args) {
  const r = spawnSync(BIN, [...args, '--no-progress'], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

function coreutils(dir, listFile) {
  return `sha256:${execFileSync('sh', ['-c', `cd "$1" && xargs -d '\\n' -a "$2" sha256sum | sha256sum`, 'sh', dir, listFile], { encoding: 'utf8' }).split(' ')[0]}`;
}

test('symlinks are refused by default, naming the first one', async () => {
  await assert.rejects(hashDirectory(tree.root), (e) => {
    assert.ok(e instanceof DirectoryError);
    assert.equal(e.code, 'symlink');
    assert.equal(e.path, tree.firstLink);
    assert.match(e.message, /--follow-symlinks/);
    return true;
  });
  const r = run(['digest', tree.root]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.split('\n').length, 1, `one readable line: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`symbolic link ${tree.firstLink}`));
});

test('following stays inside the root unless asked', async () => {
  await assert.rejects(hashDirectory(tree.root, { followSymlinks: true }), (e) => e.code === 'symlink_outside_root' && e.path === tree.outsideLink);
  const r = run(['digest', tree.root, '--follow-symlinks']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /points outside the directory/);
});

test('CLI, Node API and coreutils agree on the id of the tree, with the ignore file and .git/ left out', async () => {
  const node = await hashDirectory(tree.root, { followSymlinks: true, symlinksOutsideRoot: true });
  const list = join(work, 'files.txt');
  const r = run(['digest', tree.root, '--symlinks-outside-root', '--list-files', list, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const cliOut = JSON.parse(r.stdout);
  assert.equal(cliOut.digest, node.digest);
  assert.equal(cliOut.file_count, node.file_count);
  const paths = readFileSync(list, 'utf8').trimEnd().split('\n');
  assert.deepEqual(paths, tree.expected, 'exactly the files the policy keeps, in DPM-1 order');
  assert.ok(!paths.some((p) => p.startsWith('.git/')), '.git/ is left out');
  assert.ok(paths.includes('.datapilotignore'), 'the ignore file is part of the version');
  assert.ok(cliOut.excluded > 0);
  assert.equal(coreutils(tree.root, list), node.digest, 'coreutils over the same list');
  // Without a list file, the human output says how to re-check.
  const human = spawnSync(BIN, ['digest', tree.root, '--symlinks-outside-root'], {
    encoding: 'utf8',
    env: { ...process.env, DATAPILOT_PROGRESS_INTERVAL_MS: '1' },
  });
  assert.equal(human.stdout.trim(), node.digest);
  assert.match(human.stderr, /re-check with coreutils/);
  assert.match(human.stderr, /hashing: .*files/);
});

test('a loop and a dangling link are errors naming them; --no-ignore hashes .git/ too', async () => {
  const loop = join(tree.root, 'data', 'loop');
  symlinkSync('..', loop);
  try {
    await assert.rejects(hashDirectory(tree.root, { followSymlinks: true, symlinksOutsideRoot: true }), (e) => e.code === 'symlink_loop' && e.path === 'data/loop');
  } finally {
    unlinkSync(loop);
  }
  const dangling = join(tree.root, 'dangling');
  symlinkSync(join(work, 'nothing-here'), dangling);
  try {
    await assert.rejects(hashDirectory(tree.root, { followSymlinks: true, symlinksOutsideRoot: true }), (e) => e.code === 'dangling_symlink' && e.path === 'dangling');
  } finally {
    unlinkSync(dangling);
  }
  const all = await hashDirectory(tree.root, { followSymlinks: true, symlinksOutsideRoot: true, ignore: false });
  assert.ok(all.files.some((f) => f.path === '.git/HEAD'));
  assert.equal(all.excluded, 0);
});

test('a directory of many files hashes on worker threads to the same id as one thread and coreutils', async () => {
  const dir = join(work, 'many');
  for (let d = 0; d < 10; d++) mkdirSync(join(dir, `d${d}`), { recursive: true });
  for (let i = 0; i < 5000; i++) writeFileSync(join(dir, `d${i % 10}`, `f${i}.txt`), `file ${i}\n`);
  // Larger than one read (1 MiB) and than a progress step of the workers (64 MiB is too big
  // for a test: 3 MiB checks the chunked path).
  writeFileSync(join(dir, 'big.bin'), Buffer.alloc(3 * 1024 * 1024 + 7, 7));
  const reports = [];
  const threaded = await hashDirectory(dir, { onProgress: (p) => reports.push(p) });
  const single = await hashDirectory(dir, { threads: 1 });
  assert.equal(threaded.digest, single.digest);
  assert.equal(threaded.file_count, 5001);
  const last = reports.at(-1);
  assert.equal(last.filesHashed, 5001);
  assert.equal(last.bytesHashed, threaded.total_bytes);
  const find = execFileSync('sh', ['-c', `cd "$1" && find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum`, 'sh', dir], { encoding: 'utf8' });
  assert.equal(threaded.digest, `sha256:${find.split(' ')[0]}`);
  // An abort stops the workers.
  const ctl = new AbortController();
  const p = hashDirectory(dir, { signal: ctl.signal });
  ctl.abort();
  await assert.rejects(p);
});

