// @animus/datapilot for browsers, workers and bundlers (ESM). Call `await init()` once before
// anything else: it fetches and instantiates the wasm module (later calls return the same
// promise).
import initWasm from './dist/web.js';

export * from './dist/web.js';

let ready;

/**
 * Loads the wasm module once. `input` is optional: a URL, Response, bytes or a compiled
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
