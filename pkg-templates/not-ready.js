// Injected into the web glue (dist/web.js) by scripts/build-pkg.mjs, before its `let wasm`:
// until init() has loaded the core module, `wasm` is this stand-in, and whatever an export
// reads from it throws a DataPilotError that says what to do, instead of wasm-bindgen's
// "Cannot read properties of undefined". The error is branded like the core's errors, so
// isDataPilotError (plain JS in the entry) recognises it.
const NOT_READY = new Proxy(Object.freeze({}), {
  get() {
    const e = new Error(
      '@animus/datapilot is not initialised: call `await init()` (once, before anything else) and wait for it; ' +
        'if init() failed, its error says why the wasm module did not load',
    );
    e.name = 'DataPilotError';
    Object.assign(e, {
      kind: 'init',
      code: 'not_initialised',
      status: null,
      requestId: null,
      retryable: false,
      sent: 'no',
      detail: null,
      errors: [],
      retryAfterMs: null,
    });
    e[Symbol.for('@animus/datapilot/error')] = true;
    throw e;
  },
});
