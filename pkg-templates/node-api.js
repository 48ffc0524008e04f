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

  return { hashDirectory, openFileBlob };
}
