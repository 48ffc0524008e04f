// @animus/datapilot for Node (ESM). The wasm module is loaded synchronously at import.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { DigestBuilder } from './dist/node.mjs';
import { makeNodeApi } from './node-api.mjs';

export * from './dist/node.mjs';

const api = makeNodeApi({ fs, fsp, path, crypto, DigestBuilder });

/** Directory digest with node:crypto; see the README. */
export const hashDirectory = api.hashDirectory;
/** A file-backed Blob for uploadArtifact. */
export const openFileBlob = api.openFileBlob;

/** Nothing to do in Node (the module is ready at import); kept so code can call it anywhere. */
export function init() {
  return Promise.resolve();
}
