/** Options of `hashDirectory`. */
export interface DirectoryHashOptions {
  /** Called at most every 100 ms and at the end. */
  onProgress?: (progress: DirectoryHashProgress) => void;
  /** Stops hashing. */
  signal?: AbortSignal;
  /** Apply the root `.datapilotignore` (gitignore syntax) and the default rules (`.git/`
   * ignored); default true. */
  ignore?: boolean;
  /** Hash what symbolic links point to (default: a symlink is refused, naming it). */
  followSymlinks?: boolean;
  /** With `followSymlinks`: also follow links that leave the directory (Hugging Face
   * snapshots, DVC caches). */
  symlinksOutsideRoot?: boolean;
  /** `1` hashes on the calling thread only; otherwise directories of 4,096 files and more
   * are hashed on up to 4 worker threads. */
  threads?: number;
}

/** Progress of `hashDirectory`. */
export interface DirectoryHashProgress {
  phase: "hashing";
  bytesHashed: number;
  filesHashed: number;
  totalFiles: number;
  /** The file hashed last. */
  path: string;
}

/** The result of `hashDirectory`. */
export interface DirectoryDigest extends DatasetDigest {
  file_count: number;
  /** Files and directories left out by the ignore rules. */
  excluded: number;
}

/** Why `hashDirectory` refused a directory. */
export declare class DirectoryError extends Error {
  readonly name: "DirectoryError";
  /** `symlink`, `symlink_outside_root`, `symlink_loop`, `dangling_symlink` or `empty`. */
  readonly code: string;
  /** The path (relative to the directory) it is about. */
  readonly path: string;
}

/**
 * The DPM-1 digest of a directory: every regular file below `dir` that the dataset rules keep
 * (the root `.datapilotignore`, `.git/` ignored; symlinks refused unless followed), hashed
 * with node:crypto and assembled by the same core as the browser and the Rust SDK.
 */
export function hashDirectory(dir: string, options?: DirectoryHashOptions): Promise<DirectoryDigest>;

/** A file-backed `Blob` (`fs.openAsBlob`), streamed by `uploadArtifact` instead of read whole. */
export function openFileBlob(path: string): Promise<Blob>;

/** Resolves at once in Node (the wasm module is ready at import); call it anywhere. */
export function init(): Promise<void>;

/** Loads the evidence verifier wasm module now (the verify functions load it on first use). */
export function initVerifier(): Promise<void>;
