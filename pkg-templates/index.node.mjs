// @animus/datapilot for Node (ESM). The core wasm module is loaded synchronously at import; the
// evidence verifier module on the first verification (or `initVerifier()`).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import * as os from 'node:os';
import * as workerThreads from 'node:worker_threads';
import { DataPilot, DigestBuilder, IgnoreRules } from './dist/node.mjs';
import { makeNodeApi } from './node-api.mjs';
import { makeVerifierApi } from './verifier-api.js';

export * from './dist/node.mjs';

const api = makeNodeApi({ fs, fsp, path, crypto, os, workerThreads, DigestBuilder, IgnoreRules });

/** Directory digest with node:crypto; see the README. */
export const hashDirectory = api.hashDirectory;
/** A file-backed Blob for uploadArtifact. */
export const openFileBlob = api.openFileBlob;
/** What hashDirectory rejects with for a directory it will not hash (code, path). */
export const DirectoryError = api.DirectoryError;

/** Nothing to do in Node (the module is ready at import); kept so code can call it anywhere. */
export function init() {
  return Promise.resolve();
}

const verifier = makeVerifierApi(() => import('./dist/verifier-node.mjs'), DataPilot);

/** Loads the verifier module now (the verify functions load it on their first call). */
export function initVerifier() {
  return verifier.loadVerifier().then(() => undefined);
}
export const verifyEvidenceBundle = verifier.verifyEvidenceBundle;
export const verifyCheckpoint = verifier.verifyCheckpoint;
