// CommonJS consumer: require() resolves the package's "require" condition.
const dp = require('@animus/datapilot');
let isError = false;
try {
  new dp.DataPilot({ baseUrl: 'not a url' });
} catch (e) {
  isError = dp.isDataPilotError(e) && e.code === 'invalid_request';
}
process.stdout.write(JSON.stringify({
  version: dp.sdkVersion(),
  digest: dp.datasetDigest([{ path: 'a', sha256: '0'.repeat(64), size: 1 }]),
  isError,
}));
