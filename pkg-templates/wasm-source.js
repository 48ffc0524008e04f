// Where the web entry (index.web.js) gets its two wasm modules from, and its init errors.
//
// First the file next to the package's entry: `new URL('./dist/x_bg.wasm', import.meta.url)`,
// written out literally in index.web.js, which Vite and webpack 5 see at build time and turn
// into an emitted asset with the right URL. esbuild and Rollup (without a plugin) leave the
// expression alone, so the URL points next to the bundle, where nothing was copied (a 404, or
// a dev server's index.html); a bundle without `import.meta` (IIFE) has no URL at all. Then
// the package's base64 copy of the same bytes (dist/x_bg.wasm.js, an ES module every bundler
// bundles), imported only in that case, so a bundle that found its file never loads it.

const BRAND = Symbol.for('@animus/datapilot/error');

/** Whether `value` is an error thrown by this SDK (any copy of it; works before `init()`). */
export function isDataPilotError(value) {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && Boolean(value[BRAND]);
}

/** A DataPilotError of kind `init` (the shape of the core's errors, branded the same way). */
export function initError(code, message, cause) {
  const e = new Error(message, cause === undefined ? undefined : { cause });
  e.name = 'DataPilotError';
  Object.assign(e, {
    kind: 'init',
    code,
    status: null,
    requestId: null,
    retryable: false,
    sent: 'no',
    detail: null,
    errors: [],
    retryAfterMs: null,
  });
  e[BRAND] = true;
  return e;
}

/** A failed instantiation as an `init_failed` error, with the likely cause when it is known. */
export function initFailed(name, e) {
  if (isDataPilotError(e)) return e;
  const text = String(e?.message ?? e);
  const csp = /Content Security Policy|unsafe-eval|CSP/i.test(text)
    ? " (the page's Content-Security-Policy must allow 'wasm-unsafe-eval' in script-src)"
    : '';
  return initError('init_failed', `could not load ${name}: ${text}${csp}`, e);
}

const isWasm = (b) => b.length >= 4 && b[0] === 0 && b[1] === 0x61 && b[2] === 0x73 && b[3] === 0x6d;

function fromBase64(s) {
  if (typeof Uint8Array.fromBase64 === 'function') return Uint8Array.fromBase64(s);
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * The module `name` as something wasm-bindgen's initialiser takes: the Response of `url()`
 * when it is the wasm file (streamed compile), its bytes when served with another type, else
 * the bytes of `inlined()` (a dynamic import of the base64 copy). Rejects with `init_failed`
 * naming everything tried.
 */
export async function wasmSource(name, url, inlined) {
  const tried = [];
  let where;
  try {
    where = url();
  } catch (e) {
    tried.push(`no URL next to the bundle (${e?.message ?? e})`);
  }
  if (where !== undefined) {
    try {
      const resp = await fetch(where);
      const type = resp.headers.get('content-type') ?? '';
      if (!resp.ok) {
        tried.push(`${where} answered ${resp.status}`);
      } else if (/^application\/wasm\b/i.test(type)) {
        return resp;
      } else {
        const bytes = new Uint8Array(await resp.arrayBuffer());
        if (isWasm(bytes)) return bytes;
        tried.push(`${where} is not a wasm module (${type || 'no content type'})`);
      }
    } catch (e) {
      tried.push(`${where}: ${e?.message ?? e}`);
    }
  }
  try {
    return fromBase64((await inlined()).default);
  } catch (e) {
    tried.push(`the inlined copy: ${e?.message ?? e}`);
  }
  throw initError(
    'init_failed',
    `could not load ${name}: ${tried.join('; ')}. Serve the package's dist/${name} and pass its URL ` +
      `(init(url) for the core module, initVerifier(url) for the verifier)`,
  );
}
