/**
 * Loads the wasm module once (later calls return the same promise). `input` defaults to
 * `datapilot_bg.wasm` next to the module, which bundlers resolve.
 */
export function init(input?: InitInput | Promise<InitInput>): Promise<void>;
