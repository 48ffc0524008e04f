// The dashboard's Web Worker: init() and a call inside a worker (module worker).
import { DataPilot, hashBlob, init } from '@animus/datapilot';

self.onmessage = async (m) => {
  try {
    await init();
    const me = await new DataPilot({ baseUrl: m.data.server, token: m.data.token }).whoAmI();
    const d = await hashBlob(new Blob(['dashboard\n']));
    self.postMessage({ role: me.role, digest: d.sha256 });
  } catch (e) {
    self.postMessage({ error: String(e?.message ?? e) });
  }
};
