// @animus/datapilot for browsers, workers and bundlers (ESM). Call `await init()` once before
// anything else: it loads and instantiates the core wasm module (later calls return the same
// promise); until then every export throws a DataPilotError `not_initialised` (except
// isDataPilotError, which is plain JS). The evidence verifier is a second wasm module, loaded on
// the first `verifyEvidenceBundle`/`verifyCheckpoint` call (or by `initVerifier()`).
//
// Where the modules come from (wasm-source.js): the files next to this entry, which Vite and
// webpack emit (they see the `new URL(..., import.meta.url)` below), else the package's inlined
// copies, which esbuild and Rollup bundle. The URL expressions must stay literal for that.
import initWasm, { DataPilot } from './dist/web.js';
import { makeVerifierApi } from './verifier-api.js';
import { initFailed, wasmSource } from './wasm-source.js';

export * from './dist/web.js';
// Plain JS, so a `catch` block can tell the SDK's errors apart even when init() failed.
export { isDataPilotError } from './wasm-source.js';

let ready;

/**
 * Loads the core wasm module once. `input` is optional: a URL, Response, bytes or a compiled
 * WebAssembly.Module (default: `dist/datapilot_bg.wasm` as the bundler emitted it, else the
 * package's inlined copy).
 */
export function init(input) {
  if (ready === undefined) {
    const source =
      input !== undefined
        ? Promise.resolve(input)
        : wasmSource(
            'datapilot_bg.wasm',
            () => new URL('./dist/datapilot_bg.wasm', import.meta.url),
            () => import('./dist/datapilot_bg.wasm.js'),
          );
    ready = source
      .then((s) => initWasm({ module_or_path: s }))
      .then(
        () => undefined,
        (e) => {
          ready = undefined;
          throw initFailed('datapilot_bg.wasm', e);
        },
      );
  }
  return ready;
}

const verifier = makeVerifierApi(async (input) => {
  try {
    const source =
      input ??
      (await wasmSource(
        'verifier_bg.wasm',
        () => new URL('./dist/verifier_bg.wasm', import.meta.url),
        () => import('./dist/verifier_bg.wasm.js'),
      ));
    const glue = await import('./dist/verifier-web.js');
    await glue.default({ module_or_path: source });
    return glue;
  } catch (e) {
    throw initFailed('verifier_bg.wasm', e);
  }
}, DataPilot);

/**
 * Loads the verifier wasm module once (the verify functions call it themselves; call it early
 * to preload, or to pass where the module is). `input` as for `init`; default:
 * `dist/verifier_bg.wasm` as the bundler emitted it, else the package's inlined copy.
 */
export function initVerifier(input) {
  return verifier.loadVerifier(input).then(() => undefined);
}

export const verifyEvidenceBundle = verifier.verifyEvidenceBundle;
export const verifyCheckpoint = verifier.verifyCheckpoint;
