// The tiny dashboard each bundler builds from the packed package (tests/bundlers/run.mjs): what
// an internal dashboard does first. It reads the server, token and bundle location from the
// page's query string, and publishes what happened as JSON in <pre id="result"> (and
// data-state="done" or "failed" on <body>), which the test reads.
import { DataPilot, hashBlob, init, isDataPilotError, verifyEvidenceBundle } from '@animus/datapilot';

const q = new URLSearchParams(location.search);
const out = {};

function typed(e) {
  return { isDataPilotError: isDataPilotError(e), name: e?.name, kind: e?.kind, code: e?.code, message: String(e?.message ?? e) };
}

async function main() {
  // Before init: a typed error that says what to do, and isDataPilotError already works.
  try {
    new DataPilot({ baseUrl: q.get('server') });
    out.beforeInit = 'no error';
  } catch (e) {
    out.beforeInit = typed(e);
  }
  await init();
  const dp = new DataPilot({ baseUrl: q.get('server'), token: q.get('token') });
  const me = await dp.whoAmI();
  out.whoAmI = { role: me.role };
  const page = await dp.listRuns({ order: 'desc', limit: 20 }).nextPage();
  out.runs = page.items.map((r) => r.name);
  out.digest = (await hashBlob(new Blob(['dashboard\n']))).sha256;
  const bundle = new Uint8Array(await (await fetch(q.get('bundle'))).arrayBuffer());
  const report = await verifyEvidenceBundle(bundle, { trustedKeys: JSON.parse(q.get('keys')) });
  out.verified = report.ok;
  // The same SDK in a Web Worker built from the same source by the same bundler.
  out.worker = await new Promise((resolve) => {
    const w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    w.onmessage = (m) => resolve(m.data);
    w.onerror = (e) => resolve({ error: String(e.message ?? e) });
    w.postMessage({ server: q.get('server'), token: q.get('token') });
  });
  // A server on another origin that does not allow this page's: the error says CORS.
  if (q.get('foreign')) {
    try {
      await new DataPilot({ baseUrl: q.get('foreign'), token: q.get('token'), maxAttempts: 1 }).whoAmI();
      out.foreign = 'no error';
    } catch (e) {
      out.foreign = typed(e);
    }
  }
}

main().then(
  () => {
    document.getElementById('result').textContent = JSON.stringify(out);
    document.body.dataset.state = 'done';
  },
  (e) => {
    out.error = typed(e);
    document.getElementById('result').textContent = JSON.stringify(out);
    document.body.dataset.state = 'failed';
  },
);
