// Node-only helpers of @animus/datapilot, shared by the ESM and CommonJS entries (the build
// appends the module-format trailer). They take Node's modules as arguments so this file has
// no imports of its own.
//
// hashDirectory walks the directory with the dataset rules every client shares (the wasm
// core's IgnoreRules: the root .datapilotignore in gitignore syntax, .git/ ignored by default;
// symbolic links refused unless followed; docs/formats.md), hashes every file with node:crypto
// (OpenSSL) and assembles the DPM-1 manifest in the wasm core (DigestBuilder.addFile), so it
// gives the id the browser, the Rust SDK and coreutils give for the same files.
//
// Small files dominate real datasets (images, text shards), so they are read with one
// synchronous open/read/close each into a reused buffer, in batches between which the event
// loop runs (progress, AbortSignal); only files larger than SMALL_FILE_BYTES are streamed.

/** Files up to this size are read in one call; larger ones are streamed in chunks. */
const SMALL_FILE_BYTES = 1 << 20;
/** From this many files on, hashing runs on worker threads (their start costs ~50 ms). */
const WORKER_MIN_FILES = 4096;
/** Most hashing threads: beyond this the disk, not the CPU, is the limit. */
const MAX_WORKERS = 4;
/** Paths handed to a worker at a time. */
const WORKER_BATCH = 256;

// A hashing thread: gets batches of absolute paths, answers [sha256 hex, size] per path (or
// [null, error message]); reports the bytes of large files as it goes ({ bytes }).
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const buf = Buffer.allocUnsafe(${SMALL_FILE_BYTES} + 1);
const oneShot = typeof crypto.hash === 'function';
parentPort.on('message', (paths) => {
  const out = [];
  for (const abs of paths) {
    try {
      const fd = fs.openSync(abs, 'r');
      let h;
      let size = 0;
      try {
        // A file that fits the buffer is read and hashed in one call each (crypto.hash skips
        // the Hash object: a third of the CPU time on 64-byte files).
        const first = fs.readSync(fd, buf, 0, buf.length, null);
        if (first <= ${SMALL_FILE_BYTES}) {
          const bytes = buf.subarray(0, first);
          out.push([oneShot ? crypto.hash('sha256', bytes, 'hex') : crypto.createHash('sha256').update(bytes).digest('hex'), first]);
          continue;
        }
        h = crypto.createHash('sha256').update(buf.subarray(0, first));
        size = first;
        for (;;) {
          const n = fs.readSync(fd, buf, 0, buf.length, null);
          if (n === 0) break;
          h.update(n === buf.length ? buf : buf.subarray(0, n));
          size += n;
          if (Math.floor(size / (64 << 20)) > Math.floor((size - n) / (64 << 20))) parentPort.postMessage({ bytes: 64 << 20 });
        }
      } finally {
        fs.closeSync(fd);
      }
      out.push([h.digest('hex'), size]);
    } catch (e) {
      out.push([null, e.message]);
    }
  }
  parentPort.postMessage(out);
});
`;
/** Files read between two turns of the event loop. */
const BATCH_FILES = 512;
/** Least time between two progress reports, in milliseconds. */
const PROGRESS_INTERVAL_MS = 100;
const IGNORE_FILE = '.datapilotignore';

function makeNodeApi({ fs, fsp, path, crypto, os, workerThreads, DigestBuilder, IgnoreRules }) {
  class DirectoryError extends Error {
    constructor(message, code, filePath) {
      super(message);
      this.name = 'DirectoryError';
      this.code = code;
      this.path = filePath;
    }
  }

  function rulesFor(root, ignore) {
    if (ignore === false) return null;
    let bytes;
    try {
      bytes = fs.readFileSync(path.join(root, IGNORE_FILE));
    } catch (e) {
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return IgnoreRules.defaults();
      throw e;
    }
    return IgnoreRules.fromFile(bytes);
  }

  function inside(rootReal, real) {
    return real === rootReal || real.startsWith(rootReal.endsWith(path.sep) ? rootReal : rootReal + path.sep);
  }

  /**
   * The files below root that a dataset version covers, as [relative '/'-path, absolute
   * path], plus what was left out. Symbolic links: refused (naming the first, in path order)
   * unless followSymlinks; followed links must stay inside the root unless
   * symlinksOutsideRoot; a link loop or a dangling link is an error.
   */
  function listFiles(root, { rules, followSymlinks, symlinksOutsideRoot }) {
    const rootReal = fs.realpathSync(root);
    const out = [];
    const links = [];
    let excluded = 0;
    const ignored = (rel, isDir) => rules !== null && rules.isIgnored(rel, isDir);
    // [relative path, absolute path, real paths of the directories above (loop check)]
    const stack = [['', root, [rootReal]]];
    while (stack.length > 0) {
      const [rel, abs, above] = stack.pop();
      for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
        const name = e.name.normalize('NFC');
        const childRel = rel === '' ? name : `${rel}/${name}`;
        const childAbs = path.join(abs, e.name);
        let isDir = e.isDirectory();
        let isFile = e.isFile();
        let real = null;
        if (e.isSymbolicLink()) {
          try {
            real = fs.realpathSync(childAbs);
            const st = fs.statSync(real);
            isDir = st.isDirectory();
            isFile = st.isFile();
          } catch {
            if (ignored(childRel, false)) { excluded++; continue; }
            throw new DirectoryError(`symbolic link ${childRel} points to nothing (a dangling link); remove it or ignore it in ${IGNORE_FILE}`, 'dangling_symlink', childRel);
          }
          if (ignored(childRel, isDir)) { excluded++; continue; }
          if (!followSymlinks) { links.push(childRel); continue; }
          if (!symlinksOutsideRoot && !inside(rootReal, real)) {
            throw new DirectoryError(`symbolic link ${childRel} points outside the directory (to ${real}); pass symlinksOutsideRoot (CLI: --symlinks-outside-root) to hash what it points to`, 'symlink_outside_root', childRel);
          }
        } else if (ignored(childRel, isDir)) {
          excluded++;
          continue;
        }
        if (isDir) {
          const dirReal = real ?? path.join(above[above.length - 1], e.name);
          if (above.includes(dirReal)) {
            throw new DirectoryError(`symbolic link ${childRel} makes a loop (it points to a directory above it)`, 'symlink_loop', childRel);
          }
          stack.push([childRel, childAbs, [...above, dirReal]]);
        } else if (isFile) {
          out.push([childRel, childAbs]);
        }
        // Sockets, FIFOs and devices are left out, as `find -type f` does.
      }
    }
    if (links.length > 0) {
      links.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      throw new DirectoryError(
        `symbolic link ${links[0]} in the dataset${links.length > 1 ? ` (and ${links.length - 1} more)` : ''}: symlinks are refused by default; pass followSymlinks (CLI: --follow-symlinks) to hash the files they point to, or ignore them in ${IGNORE_FILE}`,
        'symlink',
        links[0],
      );
    }
    return { files: out, excluded };
  }

  /** SHA-256 hex of a buffer: crypto.hash (Node >= 20.12) where there, else a Hash object. */
  const oneShotHash = typeof crypto.hash === 'function'
    ? (bytes) => crypto.hash('sha256', bytes, 'hex')
    : (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');

  async function hashLargeFile(abs, onBytes, signal) {
    const hash = crypto.createHash('sha256');
    let size = 0;
    for await (const chunk of fs.createReadStream(abs, { highWaterMark: SMALL_FILE_BYTES, signal })) {
      hash.update(chunk);
      size += chunk.length;
      onBytes(chunk.length);
    }
    return [hash.digest('hex'), size];
  }

  /**
   * Hashes `files` ([rel, abs]) on worker threads; resolves to [sha256, size] per file.
   * Large files are reported in 64 MiB steps, the rest a batch at a time.
   */
  function hashOnWorkers(files, progress, report, signal) {
    const count = Math.min(MAX_WORKERS, Math.max(1, (os.availableParallelism?.() ?? os.cpus().length)));
    const results = new Array(files.length);
    let next = 0;
    let running = 0;
    const workers = [];
    return new Promise((resolve, reject) => {
      let failed = false;
      const fail = (e) => {
        if (failed) return;
        failed = true;
        for (const w of workers) w.terminate();
        reject(e);
      };
      const onAbort = () => fail(signal.reason ?? new Error('aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      const feed = (w) => {
        if (failed) return;
        if (next >= files.length) {
          w.terminate();
          if (--running === 0) {
            signal?.removeEventListener('abort', onAbort);
            resolve(results);
          }
          return;
        }
        const start = next;
        next = Math.min(files.length, next + WORKER_BATCH);
        w.batch = start;
        w.postMessage(files.slice(start, next).map(([, abs]) => abs));
      };
      for (let i = 0; i < count; i++) {
        const w = new workerThreads.Worker(WORKER_SOURCE, { eval: true });
        workers.push(w);
        running++;
        w.on('error', fail);
        w.on('message', (m) => {
          if (!Array.isArray(m)) {
            progress.bytesHashed += m.bytes;
            report(false);
            return;
          }
          for (let k = 0; k < m.length; k++) {
            const [sha, size] = m[k];
            const [rel] = files[w.batch + k];
            if (sha === null) return fail(new DirectoryError(`${rel}: ${size}`, 'io_error', rel));
            results[w.batch + k] = m[k];
            progress.bytesHashed += size % (64 << 20);
            progress.filesHashed += 1;
            progress.path = rel;
          }
          report(false);
          feed(w);
        });
        feed(w);
      }
    });
  }

  /** Files handed to the wasm builder per addFiles call. */
  const ADD_BATCH = 8192;

  /**
   * Files on their way into a DigestBuilder, ADD_BATCH at a time through addFiles: one wasm
   * call per batch instead of one per file (paths NUL-joined: no path holds a NUL).
   */
  class PackedFiles {
    constructor(builder) {
      this.builder = builder;
      this.paths = [];
      this.shas = [];
      this.sizes = [];
    }

    push(path, sha256, size) {
      this.paths.push(path);
      this.shas.push(sha256);
      this.sizes.push(size);
      if (this.paths.length >= ADD_BATCH) this.flush();
    }

    flush() {
      if (this.paths.length === 0) return;
      this.builder.addFiles(this.paths.join('\0'), this.shas.join(''), Float64Array.from(this.sizes));
      this.paths = [];
      this.shas = [];
      this.sizes = [];
    }
  }

  /** hashDirectory's result from DigestBuilder#finishPacked. */
  function unpack(packed, excluded) {
    const paths = packed.paths.split('\0');
    const { sha256s, sizes } = packed;
    const files = new Array(paths.length);
    for (let i = 0; i < paths.length; i++) {
      files[i] = { path: paths[i], sha256: sha256s.slice(64 * i, 64 * i + 64), size: sizes[i] };
    }
    return { digest: packed.digest, files, total_bytes: packed.total_bytes, file_count: files.length, excluded };
  }

  /**
   * The DPM-1 digest of a directory. Options: onProgress({ phase: 'hashing', bytesHashed,
   * filesHashed, totalFiles, path }), signal, ignore (default true: the root .datapilotignore
   * and .git/), followSymlinks, symlinksOutsideRoot. Resolves to { digest, files, total_bytes,
   * file_count, excluded }.
   */
  async function hashDirectory(dir, options = {}) {
    const { onProgress, signal } = options;
    if (onProgress !== undefined && typeof onProgress !== 'function') {
      throw new TypeError('onProgress must be a function');
    }
    const root = path.resolve(dir);
    const rules = rulesFor(root, options.ignore);
    let listing;
    try {
      listing = listFiles(root, {
        rules,
        followSymlinks: options.followSymlinks === true,
        symlinksOutsideRoot: options.symlinksOutsideRoot === true,
      });
    } finally {
      rules?.free();
    }
    const { files, excluded } = listing;
    if (files.length === 0) {
      throw new DirectoryError(
        excluded > 0
          ? `nothing to hash in ${dir}: every file is excluded by ${IGNORE_FILE} or the default rules (.git/)`
          : `nothing to hash in ${dir}: it has no files (an empty directory has no DPM-1 id)`,
        'empty',
        dir,
      );
    }
    const progress = { phase: 'hashing', bytesHashed: 0, filesHashed: 0, totalFiles: files.length, path: '' };
    let lastReport = 0;
    const report = (force) => {
      if (!onProgress) return;
      const now = Date.now();
      if (force || now - lastReport >= PROGRESS_INTERVAL_MS) {
        lastReport = now;
        onProgress({ ...progress });
      }
    };
    const builder = new DigestBuilder();
    const buf = Buffer.allocUnsafe(SMALL_FILE_BYTES + 1);
    try {
      if (workerThreads && files.length >= WORKER_MIN_FILES && options.threads !== 1) {
        const results = await hashOnWorkers(files, progress, report, signal);
        const added = new PackedFiles(builder);
        for (let i = 0; i < files.length; i++) added.push(files[i][0], results[i][0], results[i][1]);
        added.flush();
        report(true);
        return unpack(builder.finishPacked(), excluded);
      }
      const added = new PackedFiles(builder);
      for (let i = 0; i < files.length; i++) {
        if (i % BATCH_FILES === 0) {
          signal?.throwIfAborted();
          report(false);
          await new Promise((r) => setImmediate(r));
        }
        const [rel, abs] = files[i];
        let sha;
        let size;
        const fd = fs.openSync(abs, 'r');
        try {
          const n = fs.readSync(fd, buf, 0, buf.length, 0);
          if (n <= SMALL_FILE_BYTES) {
            sha = oneShotHash(buf.subarray(0, n));
            size = n;
          }
        } finally {
          fs.closeSync(fd);
        }
        if (sha === undefined) {
          [sha, size] = await hashLargeFile(abs, (b) => {
            progress.bytesHashed += b;
            report(false);
          }, signal);
        } else {
          progress.bytesHashed += size;
        }
        added.push(rel, sha, size);
        progress.filesHashed = i + 1;
        progress.path = rel;
      }
      added.flush();
      report(true);
      return unpack(builder.finishPacked(), excluded);
    } finally {
      builder.free();
    }
  }

  /** openFileBlob: from this size on, not fs.openAsBlob (see there). */
  const LARGE_FILE_BYTES = 2 ** 31;
  /** Bytes a FileRangeBlob stream reads at a time. */
  const STREAM_CHUNK_BYTES = 1 << 20;

  /**
   * A file-backed Blob (streamed by fetch, never read whole): for uploadArtifact. Node's
   * fs.openAsBlob reports the size of a file of 4 GiB or more modulo 2^32 and returns empty
   * slices across the 2 GiB mark (nodejs/node#52585, open in Node 20-23), so from 2 GiB up the
   * Blob is a FileRangeBlob, which reads the file itself.
   */
  async function openFileBlob(file) {
    const st = await fsp.stat(file);
    if (st.isFile() && st.size >= LARGE_FILE_BYTES) return new FileRangeBlob(file, 0, st.size);
    return fs.openAsBlob(file);
  }

  /** A Blob over bytes [start, end) of a file: size, slice, arrayBuffer and stream read it. */
  class FileRangeBlob extends Blob {
    #file;
    #start;
    #end;
    constructor(file, start, end) {
      super([]);
      this.#file = file;
      this.#start = start;
      this.#end = end;
    }
    get size() {
      return this.#end - this.#start;
    }
    get type() {
      return '';
    }
    slice(start = 0, end = this.size) {
      const at = (i) => Math.min(Math.max(i < 0 ? this.size + i : i, 0), this.size);
      const [s, e] = [at(start), at(end)];
      return new FileRangeBlob(this.#file, this.#start + s, this.#start + Math.max(s, e));
    }
    async arrayBuffer() {
      const buf = new Uint8Array(this.size);
      const fh = await fsp.open(this.#file);
      try {
        let done = 0;
        while (done < buf.length) {
          const { bytesRead } = await fh.read(buf, done, buf.length - done, this.#start + done);
          if (bytesRead === 0) throw new Error(`${this.#file}: file shrank while reading`);
          done += bytesRead;
        }
      } finally {
        await fh.close();
      }
      return buf.buffer;
    }
    stream() {
      const [file, end] = [this.#file, this.#end];
      let pos = this.#start;
      let fh;
      return new ReadableStream({
        async pull(controller) {
          fh ??= await fsp.open(file);
          const n = Math.min(STREAM_CHUNK_BYTES, end - pos);
          if (n <= 0) {
            await fh.close();
            controller.close();
            return;
          }
          const buf = new Uint8Array(n);
          const { bytesRead } = await fh.read(buf, 0, n, pos);
          if (bytesRead === 0) {
            await fh.close();
            controller.error(new Error(`${file}: file shrank while reading`));
            return;
          }
          pos += bytesRead;
          controller.enqueue(bytesRead === n ? buf : buf.subarray(0, bytesRead));
        },
        async cancel() {
          await fh?.close();
        },
      });
    }
  }

  return { hashDirectory, openFileBlob, DirectoryError };
}
