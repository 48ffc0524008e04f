// CommonJS consumer: require() resolves the package's "require" condition.
const dp = require('@animus/datapilot');
let isError = false;
try {
  new dp.DataPilot({ baseUrl: 'not a url' });
} catch (e) {
  isError = dp.isDataPilotError(e) && e.code === 'invalid_request';
}
const key = 'datapilot.local/ledger+5f52be1c+AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB';
(async () => {
  // The verifier module loads on the first call (from the CommonJS glue next to the core's).
  const pending = dp.verifyEvidenceBundle(new Uint8Array([80, 75, 1, 2]), { trustedKeys: [key] });
  const report = await pending;
  const rejected = await dp.verifyCheckpoint('not a note\n', [key]).then(
    () => 'resolved',
    (e) => (dp.isDataPilotError(e) ? e.code : String(e)),
  );
  process.stdout.write(JSON.stringify({
    version: dp.sdkVersion(),
    digest: dp.datasetDigest([{ path: 'a', sha256: '0'.repeat(64), size: 1 }]),
    isError,
    verify: { promise: pending instanceof Promise, ok: report.ok, rejected },
  }));
})();
