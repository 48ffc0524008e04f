//! TypeScript for what `tsify` does not generate from `src/model`.
//!
//! - The closed string vocabularies: the core's `string_enum!` types serialize as bare strings
//!   (with an `Other` variant for values from newer servers), which a derive cannot see. Their
//!   literal unions are listed here and checked against the contract by
//!   `tests/js/typings-drift.mjs`, so they cannot drift silently either.
//! - Option bags of the JS API (camelCase, as JS options are), the `ListIterator` interface
//!   every list returns, and the `DataPilotError` interface.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_VOCABULARIES: &str = r#"
/** A role. `run` and `system` appear only in `whoAmI` and audit actors. */
export type Role = "viewer" | "engineer" | "auditor" | "admin" | "run" | "system";
/** Kind of principal behind an audit event. */
export type ActorKind = "token" | "run" | "gateway" | "system";
/** Aggregate quality gate status of a dataset version. */
export type GateStatus = "pending" | "passed" | "failed";
/** Outcome of one gate evaluation. */
export type GateOutcome = "passed" | "failed";
/** Lifecycle status of a run. */
export type RunStatus = "running" | "succeeded" | "failed";
/** Kind of a lineage node. */
export type NodeKind = "dataset_version" | "run" | "git_commit" | "image" | "artifact";
/** Kind of a lineage edge. */
export type EdgeKind = "input" | "built_from" | "executed_in" | "produced";
/** An audit action. */
export type AuditAction = "ledger.init" | "dataset.create" | "dataset_version.register" | "gate.record" | "policy.update" | "run.create" | "run.finish" | "run.token_reissue" | "metrics.append" | "artifact.upload" | "token.create" | "token.revoke";
/** A secret (`dpt_…` API token or `dpr_…` run token). Keep it in memory only. */
export type Secret = string;
/** Any JSON value (audit event data holds no floats). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };
"#;

#[wasm_bindgen(typescript_custom_section)]
const TS_OPTIONS: &str = r#"
/** Options of `new DataPilot(...)`. */
export interface DataPilotOptions {
  /** Absolute server URL, e.g. `https://datapilot.corp.example` (the SDK appends `/v1/...`). */
  baseUrl: string;
  /** API token (`dpt_...`) or run token (`dpr_...`). Kept in memory only. */
  token?: string;
  /** Per-attempt timeout in milliseconds (default 30000). */
  timeoutMs?: number;
  /** Whole-call deadline in milliseconds, retries and waits included (default 60000). */
  deadlineMs?: number;
  /** Attempts per call including the first, 1-10 (default 4; 1 disables retries). */
  maxAttempts?: number;
  /** Artifact uploads and downloads: give an attempt up when nothing moved for this many
   * milliseconds (default 60000). Transfers ignore `timeoutMs`/`deadlineMs` given here; they
   * have no deadline unless the call sets one. */
  stallTimeoutMs?: number;
  /** Product token appended to the Node `User-Agent` (browsers send their own). */
  userAgent?: string;
}

/** One named check of a bundle verification (the core's `Check`). */
export type VerificationCheck = Check;

/** Options every call takes. */
export interface CallOptions {
  /** Aborts the call (the promise rejects with `signal.reason`). */
  signal?: AbortSignal;
  /** Per-attempt timeout in milliseconds for this call. */
  timeoutMs?: number;
  /** Whole-call deadline in milliseconds for this call, retries and waits included. */
  deadlineMs?: number;
}

/** Options of writes (`POST`). */
export interface WriteOptions extends CallOptions {
  /** The `Idempotency-Key`; a fresh one per call when omitted (reused on its retries). */
  idempotencyKey?: string;
}

/** Options of `registerDatasetVersion`. */
export interface RegisterOptions extends WriteOptions {
  /** Files per request; a larger manifest is sent in parts of this many (1-100000, default 50000). */
  partFiles?: number;
  /** Continue the manifest upload an earlier process started (its `uploadId` from `onProgress`). */
  resumeUploadId?: string;
  /** Called when the upload starts and after each part. */
  onProgress?: (progress: RegistrationProgress) => void;
}

/** Progress of `registerDatasetVersion`. Keep `uploadId` to resume after a crash. */
export interface RegistrationProgress {
  phase: "registering";
  /** The manifest upload, or `null` for a manifest sent in one request. */
  uploadId: string | null;
  partsDone: number;
  parts: number;
  filesSent: number;
  files: number;
}

/** Options of list operations. */
export interface ListOptions extends CallOptions {
  /** Page size, 1-500 (server default 50). */
  limit?: number;
  /** Resume from a saved `cursor` (made by the same list with the same options). */
  cursor?: string;
  /** `"asc"` (oldest first, the default) or `"desc"` (newest first). */
  order?: "asc" | "desc";
}

/** Options of calls that read the ledger at a tree size (default: the current size). */
export interface TreeSizeOptions extends CallOptions {
  treeSize?: number;
}

/** Options of `getConsistencyProof`. */
export interface ConsistencyProofOptions extends CallOptions {
  /** Newer tree size (default: the current size). */
  to?: number;
}

/** Options of `listMetrics`. */
export interface ListMetricsOptions extends ListOptions {
  /** Only this metric. */
  name?: string;
}

/** Options of `listRuns`: the list options and filters (a run matches every one given). */
export interface ListRunsOptions extends ListOptions {
  /** Runs that consumed this dataset version, `"<datasetId>@<digest>"`. */
  input?: string;
  /** Runs that produced this dataset version, `"<datasetId>@<digest>"`. */
  output?: string;
  status?: RunStatus;
  /** Token id of the creator (`tok_...`). */
  createdBy?: string;
  /** RFC 3339; inclusive. */
  createdAfter?: string;
  /** RFC 3339; exclusive. */
  createdBefore?: string;
  gitCommit?: string;
  /** `sha256:<hex>`. */
  imageDigest?: string;
}

/** Options of `listDatasets`. */
export interface ListDatasetsOptions extends ListOptions {
  /** Only the dataset with this name (zero or one item). */
  name?: string;
}

/** Options of `getLineage`. */
export interface LineageOptions extends CallOptions {
  /** Default `"both"`. */
  direction?: "upstream" | "downstream" | "both";
  /** Run generations to walk, 1-10 (default 1). */
  depth?: number;
}

/** Options of `getMetricSummary` and `compareMetrics`. */
export interface MetricSummaryOptions extends CallOptions {
  /** Only this metric (`getMetricSummary`). */
  name?: string;
  /** Most buckets per series, 1-2000 (server default 200). */
  points?: number;
}

/** Options of `listAuditEvents`. */
export interface ListAuditEventsOptions extends ListOptions {
  /** Only events with this subject, e.g. `run:run_...`. */
  subject?: string;
  /** Only events with this action, e.g. `run.create`. */
  action?: string;
}

/** Options of `listLedgerEntries`. */
export interface ListLedgerEntriesOptions extends ListOptions {
  /** First leaf index (first page only). */
  start?: number;
}

/** Progress of a hashing call, reported after every chunk and every file. */
export interface HashProgress {
  bytesHashed: number;
  totalBytes: number;
  filesHashed: number;
  totalFiles: number;
  /** The file being hashed. */
  path: string;
}

/** Options of the hashing functions. */
export interface HashOptions {
  /** Called after every chunk. */
  onProgress?: (progress: HashProgress) => void;
  /** Bytes per read, 1 KiB-256 MiB (default 4 MiB). */
  chunkSize?: number;
  /** Stops hashing between chunks. */
  signal?: AbortSignal;
  /** Apply the root `.datapilotignore` and the default rules (`.git/` ignored); default true. */
  ignore?: boolean;
}

/** A file of a dataset with its manifest path. */
export interface DatasetFile {
  /** Relative `/`-separated path. */
  path: string;
  file: Blob;
}

/** Options of artifact transfers: no deadline unless `deadlineMs` is given here, and an
 * attempt is given up after `stallTimeoutMs` without progress. */
export interface TransferOptions extends CallOptions {
  /** Give an attempt up when nothing moved for this many milliseconds (default: the client's,
   * 60000). */
  stallTimeoutMs?: number;
}

/** Options of `downloadArtifactStream`. */
export interface DownloadStreamOptions extends TransferOptions {
  /** `{ phase: "downloading", bytes, totalBytes }` about every MiB and at the last byte. */
  onProgress?: (progress: DownloadProgress) => void;
}

/** Progress of an artifact download. */
export interface DownloadProgress {
  phase: "downloading";
  bytes: number;
  totalBytes: number;
}

/** A download in progress (`downloadArtifactStream`). Read `stream`; it ends only after
 * every byte matched the recorded `sha256` and `size` (the last chunk is held back until
 * then) and errors with a `DataPilotError` (kind `verification`, `timeout` or `transport`)
 * otherwise. `stream.cancel()` aborts the download. */
export interface ArtifactDownloadStream {
  stream: ReadableStream<Uint8Array>;
  artifact: Artifact;
  /** The recorded SHA-256 the bytes are checked against. */
  sha256: string;
  size: number;
}

/** Options of `uploadArtifact`. */
export interface UploadOptions extends WriteOptions {
  /** Give an attempt up when nothing moved for this many milliseconds (default: the
   * client's, 60000). Uploads have no deadline unless `deadlineMs` is given. */
  stallTimeoutMs?: number;
  /** SHA-256 (64 hex) of the data; computed by streaming the data when omitted. */
  sha256?: string;
  /** Progress of hashing and of the upload. A `Blob` upload reports the bytes sent: in Node
   * it is streamed through a counter (about every MiB), in browsers and workers it goes
   * through `XMLHttpRequest`, whose upload events `fetch` lacks. */
  onProgress?: (progress: UploadProgress) => void;
}

/** Progress of an artifact upload. */
export interface UploadProgress {
  phase: "hashing" | "uploading" | "done";
  bytes: number;
  totalBytes: number;
}

/** Options of `verifyEvidenceBundle`. */
export interface VerifyBundleOptions {
  /** Pinned note verifier keys (`<name>+<hex id>+<base64 key>`). */
  trustedKeys: string[];
  /** The checkpoint note you trusted last: adds the `consistency` check (rollback / fork). */
  lastCheckpoint?: string;
  /** Base64 consistency proof from `lastCheckpoint`'s size to the bundle's. The client's
   * `verifyEvidenceBundle` fetches it; offline callers pass it. */
  consistencyProof?: string[];
  /** Trusted witness keys (C2SP cosignature/v1 vkeys `<name>+<hex id>+<base64(0x04 || key)>`):
   * adds the `witnessed` check (the bundle's tree is a prefix of a checkpoint these witnesses
   * cosigned). Offline, `witnessedCheckpoint` is then required. */
  witnesses?: string[];
  /** How many of `witnesses` must have cosigned (default: all). */
  witnessQuorum?: number;
  /** A checkpoint note with witness cosignatures at the bundle's size or later (the server's
   * current `/checkpoint`). The client's `verifyEvidenceBundle` fetches it when not given. */
  witnessedCheckpoint?: string;
  /** Base64 consistency proof from the bundle's size to `witnessedCheckpoint`'s (empty when
   * equal). The client's `verifyEvidenceBundle` fetches it. */
  witnessProof?: string[];
}

/** The witness policy of `verifyCheckpoint`: C2SP cosignature/v1 witness keys
 * (`<name>+<hex id>+<base64(0x04 || key)>`) and how many of them must have cosigned
 * (default: all). */
export interface CheckpointPolicy {
  witnesses?: string[];
  witnessQuorum?: number;
}

/** Options of `DataPilot#verifyEvidenceBundle` (fetches the consistency proof). */
export interface OnlineVerifyOptions extends CallOptions {
  trustedKeys: string[];
  lastCheckpoint?: string;
  /** Trusted witness keys: the server's current checkpoint (or `witnessedCheckpoint`) must be
   * cosigned by `witnessQuorum` of them (default: all) and extend the bundle's tree. */
  witnesses?: string[];
  witnessQuorum?: number;
  witnessedCheckpoint?: string;
}

/** The result of `registerDatasetVersion`. */
export interface Registration {
  version: DatasetVersion;
  /** `false` when the same digest was already registered (the existing version). */
  created: boolean;
}

/** Downloaded artifact content (checked against the server's `X-Content-SHA256`). */
export interface DownloadedArtifact {
  bytes: Uint8Array;
  sha256: string | null;
}

/** The pager every list operation returns: `for await (const item of client.listRuns())`. */
export interface ListIterator<T> extends AsyncIterableIterator<T> {
  next(): Promise<IteratorResult<T, undefined>>;
  /** The next whole page, `undefined` after the last one. */
  nextPage(): Promise<Page<T> | undefined>;
  /** Every remaining item. */
  all(): Promise<T[]>;
  /** The cursor of the next page (save it to resume with `{ cursor }`), `null` at the end. */
  readonly cursor: string | null;
  [Symbol.asyncIterator](): ListIterator<T>;
  /** Frees the wasm memory now instead of at garbage collection. */
  free(): void;
}

/** The error every SDK call rejects with (except aborts, which reject with `signal.reason`). */
export interface DataPilotError extends Error {
  name: "DataPilotError";
  kind: "api" | "transport" | "timeout" | "invalid_request" | "decode" | "verification" | "init";
  /** The server's problem code (`gate_not_passed`, `not_found`, ...) or a local one
   * (`invalid_request`, `transport_error`, `timeout`, `decode_error`, `verification_failed`;
   * in browsers `not_initialised`, a call before `init()` resolved, and `init_failed`, a wasm
   * module that did not load). */
  code: string;
  /** HTTP status when the server answered. */
  status: number | null;
  /** The request id to quote to operators. */
  requestId: string | null;
  /** Whether repeating the call (same idempotency key) could succeed. */
  retryable: boolean;
  /** Whether the request could have taken effect. */
  sent: "no" | "maybe" | "yes";
  /** The problem's detail. */
  detail: string | null;
  /** Field errors of a `validation_failed` problem. */
  errors: { field: string; message: string }[];
  /** The server's `Retry-After` in milliseconds. */
  retryAfterMs: number | null;
}

/** Whether `value` is an error thrown by this SDK (either module format; works before `init()`). */
export function isDataPilotError(value: unknown): value is DataPilotError;
"#;
