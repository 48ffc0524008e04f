// The directory tree of the directory-rules tests (tree.test.mjs, and the demo page's e2e
// test): an ignore file, a .git/ folder, ignored files and folders, a symlink to a file and
// one to a folder inside the root, and one to a file outside it (as in a Hugging Face
// snapshot, whose files link to ../../blobs/).
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Builds the tree below `base`; returns { root, expected (sorted paths), firstLink, outsideLink }. */
export function buildTree(base) {
  const root = join(base, 'dataset');
  const blobs = join(base, 'blobs');
  const file = (p, content) => {
    mkdirSync(join(root, p, '..'), { recursive: true });
    writeFileSync(join(root, p), content);
  };
  mkdirSync(blobs, { recursive: true });
  writeFileSync(join(blobs, 'weights.bin'), 'weights outside the root\n');
  file('.datapilotignore', '# scratch\n*.tmp\ncache/\n!keep.tmp\n');
  file('.git/HEAD', 'ref: refs/heads/main\n');
  file('.git/objects/ab/cdef', 'object\n');
  file('README.md', 'a dataset\n');
  file('data/train/a.csv', 'x,y\n1,2\n');
  file('data/train/b.csv', 'x,y\n3,4\n');
  file('data/é.txt', 'nfc name\n');
  file('data/scratch.tmp', 'ignored\n');
  file('keep.tmp', 'kept by a negation\n');
  file('cache/c.bin', 'ignored folder\n');
  file('shared/labels.txt', 'cat\ndog\n');
  symlinkSync('shared/labels.txt', join(root, 'labels.txt'));
  symlinkSync('../shared', join(root, 'data', 'shared-dir'));
  symlinkSync(join(blobs, 'weights.bin'), join(root, 'model.bin'));
  const expected = [
    '.datapilotignore', 'README.md', 'data/shared-dir/labels.txt', 'data/train/a.csv', 'data/train/b.csv',
    'data/é.txt', 'keep.tmp', 'labels.txt', 'model.bin', 'shared/labels.txt',
  ].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return { root, expected, firstLink: 'data/shared-dir', outsideLink: 'model.bin' };
}
