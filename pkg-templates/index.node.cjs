'use strict';
// @animus/datapilot for Node (CommonJS). The core wasm module is loaded synchronously at require;
// the evidence verifier module on the first verification (or `initVerifier()`).
const wasm = require('./dist/node.cjs');
const { makeNodeApi } = require('./node-api.cjs');
const { makeVerifierApi } = require('./verifier-api.cjs');

const api = makeNodeApi({
  fs: require('node:fs'),
  fsp: require('node:fs/promises'),
  path: require('node:path'),
  crypto: require('node:crypto'),
  os: require('node:os'),
  workerThreads: require('node:worker_threads'),
  DigestBuilder: wasm.DigestBuilder,
  IgnoreRules: wasm.IgnoreRules,
});

const verifier = makeVerifierApi(() => require('./dist/verifier-node.cjs'), wasm.DataPilot);

module.exports = {
  ...wasm,
  hashDirectory: api.hashDirectory,
  openFileBlob: api.openFileBlob,
  DirectoryError: api.DirectoryError,
  init: () => Promise.resolve(),
  initVerifier: () => verifier.loadVerifier().then(() => undefined),
  verifyEvidenceBundle: verifier.verifyEvidenceBundle,
  verifyCheckpoint: verifier.verifyCheckpoint,
};
