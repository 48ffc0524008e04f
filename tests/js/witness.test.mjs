// Witness policies in the npm package (issue 12): verifyCheckpoint(note, keys, { witnesses,
// witnessQuorum }), bundles held to the server's witnessed checkpoint (the `witnessed` check of
// verifyEvidenceBundle, offline and through the client), and the CLI's `checkpoint check
// --witness` and `verify BUNDLE --witness`, against the reference server
// submitting its checkpoints to a witness. The witness here is written with node:crypto, from
// C2SP tlog-cosignature alone (an implementation independent of the Rust one the server and SDK
// share); it cosigns whatever the log sends, since the client's side is what is tested.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { createServer } from 'node:http';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataPilot, datasetDigest, isDataPilotError, verifyCheckpoint, verifyEvidenceBundle } from '@animus/datapilot';
import { ADMIN_TOKEN, startServer } from './support.mjs';

/** A cosignature/v1 witness key: { name, vkey, cosign(text) -> signature line }. */
function witnessKey(name) {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
  const id = createHash('sha256')
    .update(Buffer.concat([Buffer.from(`${name}\n`), Buffer.from([0x04]), pub]))
    .digest()
    .subarray(0, 4);
  const vkey = `${name}+${id.toString('hex')}+${Buffer.concat([Buffer.from([0x04]), pub]).toString('base64')}`;
  return {
    name,
    vkey,
    cosign(text, time = Math.floor(Date.now() / 1000)) {
      const ts = Buffer.alloc(8);
      ts.writeBigUInt64BE(BigInt(time));
      const sig = sign(null, Buffer.from(`cosignature/v1\ntime ${time}\n${text}`), privateKey);
      return `\u2014 ${name} ${Buffer.concat([id, ts, sig]).toString('base64')}\n`;
    },
  };
}

const textOf = (note) => note.slice(0, note.indexOf('\n\n') + 1);

let server;
let witnessHttp;
let keys;
let bundle;
const w1 = witnessKey('witness.js/w1');
const w2 = witnessKey('witness.js/w2');

before(async () => {
  // The tlog-witness add-checkpoint call: "old N", proof lines, an empty line, the note.
  witnessHttp = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const note = body.slice(body.indexOf('\n\n') + 2);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(w1.cosign(textOf(note)));
    });
  });
  await new Promise((r) => witnessHttp.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${witnessHttp.address().port}`;
  server = await startServer(['--witness', `${url}=${w1.vkey}`]);
  const dp = new DataPilot({ baseUrl: server.url, token: ADMIN_TOKEN });
  keys = (await dp.listVerifierKeys()).keys.map((k) => k.verifier);
  const ds = await dp.createDataset({ name: 'witnessed' });
  const files = [{ path: 'a.txt', sha256: createHash('sha256').update('a').digest('hex'), size: 1 }];
  const digest = datasetDigest(files);
  await dp.registerDatasetVersion(ds.id, { digest, files });
  bundle = await dp.exportDatasetVersionEvidence(ds.id, digest);
});

const witnessedCheck = (report) => report.checks.find((c) => c.name === 'witnessed');

after(async () => {
  await server?.stop();
  witnessHttp?.close();
});

test('verifyCheckpoint requires k of n witness cosignatures when given a policy', async () => {
  const dp = new DataPilot({ baseUrl: server.url, token: ADMIN_TOKEN });
  const note = await dp.getCheckpoint();
  const ok = await verifyCheckpoint(note, keys, { witnesses: [w1.vkey], witnessQuorum: 1 });
  assert.deepEqual(ok.cosigned_by, ['witness.js/w1']);
  // Default quorum: all the witnesses given.
  await assert.rejects(verifyCheckpoint(note, keys, { witnesses: [w1.vkey, w2.vkey] }), (e) => isDataPilotError(e) && e.code === 'verification_failed' && /1 of the required 2/.test(e.message));
  assert.deepEqual((await verifyCheckpoint(note, keys, { witnesses: [w1.vkey, w2.vkey], witnessQuorum: 1 })).cosigned_by, ['witness.js/w1']);
  // Adding w2's cosignature satisfies 2 of 2.
  const both = note + w2.cosign(textOf(note));
  assert.equal((await verifyCheckpoint(both, keys, { witnesses: [w1.vkey, w2.vkey] })).cosigned_by.length, 2);
  // Without the witness's line, or with a forged one, the policy fails; without a policy the
  // log's signature alone is checked, as before.
  const bare = textOf(note) + '\n' + note.slice(note.indexOf('\n\n') + 2).split('\n').filter((l) => l && !l.startsWith('\u2014 witness.js/')).map((l) => `${l}\n`).join('');
  await assert.rejects(verifyCheckpoint(bare, keys, { witnesses: [w1.vkey] }), (e) => isDataPilotError(e) && e.code === 'verification_failed');
  assert.deepEqual((await verifyCheckpoint(bare, keys)).cosigned_by, []);
  const forged = bare + w1.cosign(textOf(note).replace(/\n\d+\n/, '\n1\n'));
  await assert.rejects(verifyCheckpoint(forged, keys, { witnesses: [w1.vkey] }), (e) => isDataPilotError(e) && e.code === 'verification_failed' && /does not verify/.test(e.message));
  await assert.rejects(verifyCheckpoint(note, keys, { witnesses: ['not a vkey'] }), (e) => isDataPilotError(e) && e.code === 'invalid_request');
});

test('a bundle is held to the witnessed checkpoint: through the client and offline', async () => {
  const dp = new DataPilot({ baseUrl: server.url, token: ADMIN_TOKEN });
  // Without a policy there is no witnessed check.
  const plain = await verifyEvidenceBundle(bundle, { trustedKeys: keys });
  assert.equal(plain.ok, true);
  assert.equal(witnessedCheck(plain), undefined);
  const size = plain.summary.tree_size;
  // Grow the log so the witnessed checkpoint is later than the bundle: the client fetches the
  // server's checkpoint and the consistency proof from the bundle's size to it.
  await dp.createDataset({ name: 'witnessed-later' });
  let r = await dp.verifyEvidenceBundle(bundle, { trustedKeys: keys, witnesses: [w1.vkey], witnessQuorum: 1 });
  assert.equal(r.ok, true, JSON.stringify(r.checks));
  assert.match(witnessedCheck(r).reason, /prefix of the one at size \d+ cosigned by 1 of the 1 trusted witness\(es\) \(witness\.js\/w1\)/);
  r = await dp.verifyEvidenceBundle(bundle, { trustedKeys: keys, witnesses: [w1.vkey, w2.vkey] });
  assert.equal(r.ok, false);
  assert.match(witnessedCheck(r).reason, /1 of the required 2/);
  // Offline with the note and proof the caller fetched; a wrong proof or a note without the
  // witness's line fails the check; witnesses without a note are a bad argument.
  const note = await dp.getCheckpoint();
  const noteSize = (await verifyCheckpoint(note, keys)).tree_size;
  assert.ok(noteSize > size);
  const { hashes } = await dp.getConsistencyProof(size, { to: noteSize });
  r = await verifyEvidenceBundle(bundle, { trustedKeys: keys, witnesses: [w1.vkey], witnessedCheckpoint: note, witnessProof: hashes });
  assert.equal(r.ok, true, JSON.stringify(r.checks));
  r = await verifyEvidenceBundle(bundle, { trustedKeys: keys, witnesses: [w1.vkey], witnessedCheckpoint: note, witnessProof: [] });
  assert.equal(r.ok, false);
  assert.match(witnessedCheck(r).reason, /not a prefix/);
  r = await verifyEvidenceBundle(bundle, { trustedKeys: keys, witnesses: [w1.vkey], witnessedCheckpoint: plain.summary.checkpoint });
  assert.equal(r.ok, false);
  assert.match(witnessedCheck(r).reason, /0 of the required 1/);
  await assert.rejects(verifyEvidenceBundle(bundle, { trustedKeys: keys, witnesses: [w1.vkey] }), (e) => isDataPilotError(e) && e.code === 'invalid_request' && /witnessedCheckpoint/.test(e.message));
  for (const verify of [(b, o) => verifyEvidenceBundle(b, o), (b, o) => dp.verifyEvidenceBundle(b, o)]) {
    await assert.rejects(verify(bundle, { trustedKeys: keys, witnessedCheckpoint: note }), (e) => isDataPilotError(e) && e.code === 'invalid_request' && /needs witnesses/.test(e.message));
  }
});

test('the CLI checks a witness policy before trusting the checkpoint', () => {
  const dir = mkdtempSync(join(tmpdir(), 'datapilot-witness-'));
  const cli = (args) =>
    spawnSync(join('node_modules', '.bin', 'datapilot'), args, {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, DATAPILOT_URL: server.url, DATAPILOT_TOKEN: ADMIN_TOKEN, DATAPILOT_TRUSTED_KEYS: keys.join(' ') },
    });
  const file = join(dir, 'cp.txt');
  let r = cli(['checkpoint', 'check', '--file', file, '--witness', w1.vkey]);
  assert.equal(r.status, 0, r.stderr);
  r = cli(['checkpoint', 'check', '--file', file, '--witness', w1.vkey, '--witness', w2.vkey]);
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, /witness/);
  r = cli(['checkpoint', 'save', '--file', file, '--witness', w1.vkey, '--witness', w2.vkey, '--witness-quorum', '1']);
  assert.equal(r.status, 0, r.stderr);
  r = cli(['checkpoint', 'check', '--file', file, '--witness', w1.vkey, '--witness-quorum', 'two']);
  assert.equal(r.status, 2, r.stderr);
  // verify BUNDLE --witness: the bundle's tree must be a prefix of the cosigned checkpoint.
  const zip = join(dir, 'bundle.zip');
  writeFileSync(zip, bundle);
  r = cli(['verify', zip, '--witness', w1.vkey]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^ok {3}witnessed: .*witness\.js\/w1/m);
  r = cli(['verify', zip, '--witness', w1.vkey, '--witness', w2.vkey]);
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, /does not verify: witnessed: witnessed checkpoint: 1 of the required 2/);
  r = cli(['verify', zip, '--witness-quorum', '1']);
  assert.equal(r.status, 2, r.stderr);
});
