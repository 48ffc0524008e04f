/**
 * Loads the wasm module once (later calls return the same promise). `input` defaults to
 * `datapilot_bg.wasm` next to the module, which bundlers resolve.
 */
export function init(input?: InitInput | Promise<InitInput>): Promise<void>;

/**
 * Loads the evidence verifier wasm module once (later calls return the same promise). The
 * verify functions load it on their first call; call this to preload it, or to say where it
 * is: `input` as for `init` (default: `dist/verifier_bg.wasm` next to the module).
 */
export function initVerifier(input?: InitInput | Promise<InitInput>): Promise<void>;
