// @animus/datapilot for browsers, workers and bundlers (ESM). Call `await init()` once before
// anything else: it fetches and instantiates the core wasm module (later calls return the same
// promise). The evidence verifier is a second wasm module, fetched on the first
// `verifyEvidenceBundle`/`verifyCheckpoint` call (or by `initVerifier()`).
import initWasm, { DataPilot } from './dist/web.js';
import { makeVerifierApi } from './verifier-api.js';

export * from './dist/web.js';

let ready;

/**
 * Loads the core wasm module once. `input` is optional: a URL, Response, bytes or a compiled
 * WebAssembly.Module (default: `datapilot_bg.wasm` next to this file, which bundlers resolve).
 */
export function init(input) {
  if (ready === undefined) {
    ready = initWasm(input === undefined ? undefined : { module_or_path: input }).then(
      () => undefined,
      (e) => {
        ready = undefined;
        throw e;
      },
    );
  }
  return ready;
}

const verifier = makeVerifierApi(async (input) => {
  const glue = await import('./dist/verifier-web.js');
  await glue.default({ module_or_path: input ?? new URL('./dist/verifier_bg.wasm', import.meta.url) });
  return glue;
}, DataPilot);

/**
 * Loads the verifier wasm module once (the verify functions call it themselves; call it early
 * to preload, or to pass where the module is). `input` as for `init`; default:
 * `dist/verifier_bg.wasm` next to this file.
 */
export function initVerifier(input) {
  return verifier.loadVerifier(input).then(() => undefined);
}

export const verifyEvidenceBundle = verifier.verifyEvidenceBundle;
export const verifyCheckpoint = verifier.verifyCheckpoint;
