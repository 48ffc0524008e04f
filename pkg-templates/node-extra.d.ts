/** Options of `hashDirectory`. */
export interface DirectoryHashOptions {
  /** Called after every chunk and every file. */
  onProgress?: (progress: HashProgress) => void;
  /** Files hashed at the same time (default 2, at most 16). */
  concurrency?: number;
  /** Bytes per read (default 1 MiB). */
  chunkSize?: number;
  /** Stops hashing. */
  signal?: AbortSignal;
}

/**
 * The DPM-1 digest of a directory: every regular file below `dir` (symlinks are skipped, as
 * `find -type f` does), hashed with node:crypto and assembled by the same core as the browser.
 */
export function hashDirectory(dir: string, options?: DirectoryHashOptions): Promise<DatasetDigest>;

/** A file-backed `Blob` (`fs.openAsBlob`), streamed by `uploadArtifact` instead of read whole. */
export function openFileBlob(path: string): Promise<Blob>;

/** Resolves at once in Node (the wasm module is ready at import); call it anywhere. */
export function init(): Promise<void>;

/** Loads the evidence verifier wasm module now (the verify functions load it on first use). */
export function initVerifier(): Promise<void>;
