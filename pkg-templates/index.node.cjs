'use strict';
// @animus/datapilot for Node (CommonJS). The wasm module is loaded synchronously at require.
const wasm = require('./dist/node.cjs');
const { makeNodeApi } = require('./node-api.cjs');

const api = makeNodeApi({
  fs: require('node:fs'),
  fsp: require('node:fs/promises'),
  path: require('node:path'),
  crypto: require('node:crypto'),
  DigestBuilder: wasm.DigestBuilder,
});

module.exports = {
  ...wasm,
  hashDirectory: api.hashDirectory,
  openFileBlob: api.openFileBlob,
  init: () => Promise.resolve(),
};
