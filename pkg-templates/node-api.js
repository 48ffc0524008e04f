// Node-only helpers of @animus/datapilot, shared by the ESM and CommonJS entries (the build
// appends the module-format trailer). They take Node's modules as arguments so this file has
// no imports of its own.
//
// hashDirectory streams every regular file through node:crypto's SHA-256 (OpenSSL, about 5x
// the speed of portable wasm sha2 in Node) and feeds the results to the same DPM-1 core the
// browser path uses (DigestBuilder.addFile), so both give the same id for the same files.

function makeNodeApi({ fs, fsp, path, crypto, DigestBuilder }) {
  /** Lists regular files below root as [relative '/'-path, absolute path] (like `find -type f`). */
  async function listFiles(root, signal) {
    const out = [];
    const stack = [['', root]];
    while (stack.length > 0) {
      const [rel, abs] = stack.pop();
      signal?.throwIfAborted();
      const entries = await fsp.readdir(abs, { withFileTypes: true });
      for (const e of entries) {
        const childRel = rel === '' ? e.name : `${rel}/${e.name}`;
        const childAbs = path.join(abs, e.name);
        // Symlinks, sockets and devices are skipped, as `find -type f` does.
        if (e.isDirectory()) stack.push([childRel, childAbs]);
        else if (e.isFile()) out.push([childRel, childAbs]);
      }
    }
    return out;
  }

  async function hashFile(abs, highWaterMark, onChunk, signal) {
    const hash = crypto.createHash('sha256');
    let size = 0;
    const stream = fs.createReadStream(abs, { highWaterMark, signal });
    for await (const chunk of stream) {
      hash.update(chunk);
      size += chunk.length;
      onChunk(chunk.length);
    }
    return [hash.digest('hex'), size];
  }

  /**
   * The DPM-1 digest of a directory: every regular file below `dir`, hashed with node:crypto
   * (`concurrency` files at a time), assembled by the wasm DPM-1 core.
   */
  async function hashDirectory(dir, options = {}) {
    const { onProgress, signal } = options;
    const concurrency = Math.max(1, Math.min(16, options.concurrency ?? 2));
    const highWaterMark = options.chunkSize ?? 1 << 20;
    if (onProgress !== undefined && typeof onProgress !== 'function') {
      throw new TypeError('onProgress must be a function');
    }
    const root = path.resolve(dir);
    const files = await listFiles(root, signal);
    const sizes = await Promise.all(files.map(([, abs]) => fsp.stat(abs).then((s) => s.size)));
    const progress = {
      bytesHashed: 0,
      totalBytes: sizes.reduce((a, b) => a + b, 0),
      filesHashed: 0,
      totalFiles: files.length,
      path: '',
    };
    const builder = new DigestBuilder();
    try {
      const results = new Array(files.length);
      let next = 0;
      const worker = async () => {
        while (next < files.length) {
          const i = next++;
          const [rel, abs] = files[i];
          results[i] = await hashFile(abs, highWaterMark, (n) => {
            progress.bytesHashed += n;
            progress.path = rel;
            onProgress?.({ ...progress });
          }, signal);
          progress.filesHashed += 1;
          progress.path = rel;
          onProgress?.({ ...progress });
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
      files.forEach(([rel], i) => builder.addFile(rel, results[i][0], results[i][1]));
      return builder.finish();
    } finally {
      builder.free();
    }
  }

  /** A file-backed Blob (streamed by fetch, never read whole): for uploadArtifact. */
  function openFileBlob(file) {
    return fs.openAsBlob(file);
  }

  return { hashDirectory, openFileBlob };
}
