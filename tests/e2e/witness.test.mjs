// Witness policies in a browser (issue 12): the npm package's browser build (as the server's
// demo site serves it, /sdk.js) in Debian's Chromium requires k of n witness cosignatures for a
// checkpoint (verifyCheckpoint) and for a bundle (the client's verifyEvidenceBundle, which
// fetches the server's cosigned checkpoint and the consistency proof from the bundle's size).
// The server submits its checkpoints to a witness written here on node:crypto (C2SP
// tlog-cosignature; it cosigns what the log sends: the client's side is what is tested).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { createServer } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SERVER_BIN = process.env.DATAPILOT_SERVER_BIN || path.join(ROOT, "target/debug/datapilot-server");
const SITE_DIR = process.env.DATAPILOT_SITE_DIR || path.join(ROOT, "target/site");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
];
const TOKEN = "dpt_e2eWitnessToken0123456789ab";

/** A cosignature/v1 witness key: { vkey, cosign(checkpoint text) -> signature line }. */
function witnessKey(name) {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const pub = publicKey.export({ format: "der", type: "spki" }).subarray(12);
  const id = createHash("sha256").update(Buffer.concat([Buffer.from(`${name}\n`), Buffer.from([0x04]), pub])).digest().subarray(0, 4);
  return {
    vkey: `${name}+${id.toString("hex")}+${Buffer.concat([Buffer.from([0x04]), pub]).toString("base64")}`,
    cosign(text) {
      const time = Math.floor(Date.now() / 1000);
      const ts = Buffer.alloc(8);
      ts.writeBigUInt64BE(BigInt(time));
      const sig = sign(null, Buffer.from(`cosignature/v1\ntime ${time}\n${text}`), privateKey);
      return `\u2014 ${name} ${Buffer.concat([id, ts, sig]).toString("base64")}\n`;
    },
  };
}

test("a browser requires k of n witness cosignatures for checkpoints and bundles", { timeout: 120_000 }, async (t) => {
  const work = await mkdtemp(path.join(tmpdir(), "datapilot-e2e-witness-"));
  const cleanup = [];
  t.after(async () => {
    for (const f of cleanup.reverse()) await f();
    await rm(work, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  });
  const w1 = witnessKey("witness.e2e/w1");
  const w2 = witnessKey("witness.e2e/w2");
  // tlog-witness add-checkpoint: "old N", proof lines, an empty line, the note.
  const witness = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const note = body.slice(body.indexOf("\n\n") + 2);
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(w1.cosign(note.slice(0, note.indexOf("\n\n") + 1)));
    });
  });
  await new Promise((r) => witness.listen(0, "127.0.0.1", r));
  cleanup.push(() => new Promise((r) => witness.close(r)));
  const witnessUrl = `http://127.0.0.1:${witness.address().port}`;

  const server = spawn(SERVER_BIN, [
    "--data-dir", path.join(work, "data"), "--listen", "127.0.0.1:0", "--static-dir", SITE_DIR, "--log", "warn",
    "--witness", `${witnessUrl}=${w1.vkey}`,
  ], { env: { ...process.env, DATAPILOT_BOOTSTRAP_TOKEN: TOKEN }, stdio: ["ignore", "pipe", "inherit"] });
  cleanup.push(() => server.kill("SIGKILL"));
  const base = await new Promise((resolve, reject) => {
    let out = "";
    server.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) resolve(m[1]);
    });
    server.on("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });

  const context = await chromium.launchPersistentContext(path.join(work, "profile"), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  cleanup.push(() => Promise.race([context.close(), new Promise((r) => setTimeout(r, 10_000).unref())]));
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`${base}/`);

  const got = await page.evaluate(async ({ token, w1, w2 }) => {
    const sdk = await import("/sdk.js");
    await sdk.init();
    const dp = new sdk.DataPilot({ baseUrl: location.origin, token });
    // The pin is taken from the server here only because this is a test.
    const keys = (await dp.listVerifierKeys()).keys.map((k) => k.verifier);
    const ds = await dp.createDataset({ name: "witnessed-in-a-browser" });
    const files = [{ path: "a.txt", sha256: "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb", size: 1 }];
    const digest = sdk.datasetDigest(files);
    await dp.registerDatasetVersion(ds.id, { digest, files });
    const bundle = await dp.exportDatasetVersionEvidence(ds.id, digest);
    await dp.createDataset({ name: "later" }); // the witnessed checkpoint is then later than the bundle
    const witnessed = (r) => r.checks.find((c) => c.name === "witnessed");
    const one = await dp.verifyEvidenceBundle(bundle, { trustedKeys: keys, witnesses: [w1], witnessQuorum: 1 });
    const two = await dp.verifyEvidenceBundle(bundle, { trustedKeys: keys, witnesses: [w1, w2] });
    const cp = await sdk.verifyCheckpoint(await dp.getCheckpoint(), keys, { witnesses: [w1, w2], witnessQuorum: 1 });
    let refused = "";
    try {
      await sdk.verifyCheckpoint(await dp.getCheckpoint(), keys, { witnesses: [w1, w2] });
    } catch (e) {
      refused = `${e.code}: ${e.message}`;
    }
    return {
      oneOk: one.ok, oneReason: witnessed(one)?.reason,
      twoOk: two.ok, twoReason: witnessed(two)?.reason,
      cosignedBy: cp.cosigned_by, refused,
    };
  }, { token: TOKEN, w1: w1.vkey, w2: w2.vkey });

  assert.equal(got.oneOk, true, got.oneReason);
  assert.match(got.oneReason, /prefix of the one at size \d+ cosigned by 1 of the 1 trusted witness\(es\) \(witness\.e2e\/w1\)/);
  assert.equal(got.twoOk, false);
  assert.match(got.twoReason, /1 of the required 2/);
  assert.deepEqual(got.cosignedBy, ["witness.e2e/w1"]);
  assert.match(got.refused, /^verification_failed: .*1 of the required 2/);
});
