// Browser test of the demo page (docs/demo-web.md): the real reference server on 127.0.0.1
// with a temp data dir serves target/site/ (`./x site`), and Debian's Chromium, driven by
// playwright-core, goes through the whole page: connect, register a generated directory,
// a run refused by the gate policy, record the gate, start and finish the run, export its
// evidence bundle, verify it (every check passes) and a tampered copy (a check fails).
// Along the way: no request leaves 127.0.0.1, the token is in no web storage, cookie or DOM
// text, and the page becomes ready with the core wasm module alone (it fetches the verifier
// module afterwards, in the background).
//
//   DATAPILOT_SERVER_BIN  server binary (default target/debug/datapilot-server)
//   DATAPILOT_SITE_DIR    assembled site (default target/site)
//   CHROMIUM              browser (default /usr/bin/chromium)
//
// Run: ./x site && node --test tests/e2e/demo.test.mjs   (./x test runs it as stage e2e-demo)

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SERVER_BIN = process.env.DATAPILOT_SERVER_BIN || path.join(ROOT, "target/debug/datapilot-server");
const SITE_DIR = process.env.DATAPILOT_SITE_DIR || path.join(ROOT, "target/site");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SCREENSHOT = path.join(ROOT, "target/e2e/demo.png");

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-dev-shm-usage",
];

// The worked example of docs/formats.md section 1 (its DPM-1 id is pinned there).
const DATASET = [
  ["README.md", "DataPilot example\n"],
  ["train/data.csv", "id,label\n1,cat\n2,dog\n"],
  ["train/.keep", ""],
  ["donn\u00e9es/\u00e9.csv", "x,y\n1,2\n"],
];
const DATASET_DIGEST = "sha256:afe734752faaa535f81c97db93a1cd2d5a7bbc8984872803a09287cb9d6ff8f3";

const sha256 = (b) => createHash("sha256").update(b).digest("hex");

/** DPM-1, independently of the SDK: sha256 over "<hex>  <path>\n" sorted by path bytes. */
function dpm1(files) {
  const lines = files
    .map(([p, c]) => [Buffer.from(p.normalize("NFC")), sha256(Buffer.from(c))])
    .sort((a, b) => Buffer.compare(a[0], b[0]))
    .map(([p, h]) => `${h}  ${p.toString()}\n`)
    .join("");
  return `sha256:${sha256(Buffer.from(lines))}`;
}

/** Starts the server; resolves once it prints its address. */
async function startServer(dataDir, token) {
  const child = spawn(
    SERVER_BIN,
    ["--data-dir", dataDir, "--listen", "127.0.0.1:0", "--static-dir", SITE_DIR, "--log", "warn"],
    { env: { ...process.env, DATAPILOT_BOOTSTRAP_TOKEN: token }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const base = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`server did not start in 30 s:\n${stderr}`)), 30_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${stderr}`));
    });
  });
  return { child, base, stderr: () => stderr };
}

const TEST_TIMEOUT_MS = 240_000;

/** SIGTERM, then SIGKILL if the server has not exited after 5 s. */
async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

test("demo page: register, gate, run, export and verify in Chromium", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  for (const [what, p] of [["server binary", SERVER_BIN], ["site (./x site)", path.join(SITE_DIR, "sdk.js")], ["Chromium", CHROMIUM]]) {
    assert.ok(existsSync(p), `${what} not found at ${p}`);
  }
  const work = await mkdtemp(path.join(tmpdir(), "datapilot-e2e-"));
  t.after(() => rm(work, { recursive: true, force: true }));

  // A secret with a recognisable body, to search for it afterwards.
  const token = `dpt_${randomBytes(24).toString("hex")}`;
  const server = await startServer(path.join(work, "data"), token);
  t.after(() => stop(server.child));
  // Last resort: a wedged browser or server must not keep `./x test` waiting forever.
  const watchdog = setTimeout(() => {
    console.error(`e2e: still running after ${TEST_TIMEOUT_MS + 30_000} ms; killing the server and exiting`);
    server.child.kill("SIGKILL");
    process.exit(1);
  }, TEST_TIMEOUT_MS + 30_000);
  watchdog.unref();
  const { base } = server;

  // The policy requires a gate, so a run on an unchecked version is refused.
  const put = await fetch(`${base}/v1/policy`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ required_gates: ["pii-scan"] }),
  });
  assert.equal(put.status, 200, await put.text());

  // The dataset directory, and its digest computed here without the SDK.
  const dir = path.join(work, "cats");
  for (const [rel, content] of DATASET) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), content);
  }
  assert.equal(dpm1(DATASET), DATASET_DIGEST);

  const context = await chromium.launchPersistentContext(path.join(work, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    acceptDownloads: true,
    viewport: { width: 1100, height: 900 },
  });
  t.after(() => Promise.race([context.close(), new Promise((r) => setTimeout(r, 10_000).unref())]));

  // Observe every request; anything not for the test server is aborted and recorded.
  const origin = new URL(base).origin;
  const requests = [];
  const blocked = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`)) return route.continue();
    blocked.push(url);
    return route.abort("blockedbyclient");
  });
  context.on("request", (r) => requests.push(r.url()));
  const pageErrors = [];
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(30_000);
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("console", (m) => {
    // Chromium logs every 4xx answer ("Failed to load resource"); the 401 and 422 are expected.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) pageErrors.push(`console: ${m.text()}`);
  });

  await page.goto(`${base}/`);
  await page.waitForSelector("body.ready", { timeout: 30_000 });
  // The page is ready with the core wasm module; it then fetches the verifier module in the
  // background (so verification works offline afterwards), once, from the same server.
  const wasmLoads = () => requests.filter((u) => u.endsWith(".wasm")).map((u) => u.split("/").pop());
  assert.equal(wasmLoads()[0], "datapilot_bg.wasm", "the core module loads first");
  await page.waitForSelector('body[data-verifier="ready"]', { timeout: 30_000 });
  assert.deepEqual(wasmLoads(), ["datapilot_bg.wasm", "verifier_bg.wasm"], "then the verifier module");

  // The verifier key is pre-filled from /v1/keys, with the pinning note.
  const keys = await (await fetch(`${base}/v1/keys`)).json();
  assert.equal(await page.inputValue("#trusted-keys"), keys.keys.map((k) => k.verifier).join("\n"));
  assert.match(await page.textContent("#pin-note"), /out of band/);
  assert.equal(await page.inputValue("#base-url"), origin);

  // 1. Connect: a wrong token first (error shown inline with code and request id).
  await page.fill("#token", "dpt_wrongwrongwrongwrongwrong");
  await page.click("#connect-btn");
  const bad = page.locator('#connect-out [data-code="unauthenticated"]');
  await bad.waitFor();
  assert.match(await bad.textContent(), /Request id\s*req_/);
  await page.fill("#token", token);
  await page.keyboard.press("Enter");
  await page.locator("#conn-pill", { hasText: "Connected as" }).waitFor();
  assert.equal(await page.inputValue("#token"), "", "the token field is cleared after connecting");
  assert.match(await page.textContent("#connect-out"), /admin/);

  // 2. Create a dataset, hash the directory, register it (new, then already registered).
  // A name the page refuses itself: said next to the name field, as check_input.
  await page.fill("#new-dataset-name", "Not A Name");
  await page.click("#new-dataset-btn");
  const badName = page.locator('#new-dataset-out [data-code="check_input"]');
  await badName.waitFor();
  assert.match(await badName.textContent(), /A dataset name is/);
  assert.equal(await page.locator("#register-out .msg").count(), 0, "not under the Register button");
  await page.fill("#new-dataset-name", "cats-train");
  await page.click("#new-dataset-btn");
  await page.locator("#new-dataset-out", { hasText: "created" }).waitFor();
  assert.match(await page.locator("#dataset-select option:checked").textContent(), /cats-train/);

  // An empty folder from the chooser says so (as a drop does) instead of doing nothing. The
  // chooser hands the page an empty FileList then; a change event with no files is the same.
  await page.evaluate(() => document.getElementById("dir-input").dispatchEvent(new Event("change")));
  const empty = page.locator('#digest-out [data-code="check_input"]');
  await empty.waitFor();
  assert.match(await empty.textContent(), /Nothing to hash: the chosen folder has no files/);
  assert.doesNotMatch(await empty.textContent(), /ERROR error/);

  // Cancelling a hash is a note, not a red error: a 2 GiB sparse file (no disk used) keeps the
  // hash busy long enough to press Cancel.
  const big = path.join(work, "big");
  await mkdir(big);
  await writeFile(path.join(big, "zeros.bin"), "");
  await truncate(path.join(big, "zeros.bin"), 2 * 1024 ** 3);
  await page.setInputFiles("#dir-input", big);
  await page.locator("#hash-cancel:visible").click();
  const cancelled = page.locator('#digest-out [data-code="cancelled"]');
  await cancelled.waitFor();
  assert.match(await cancelled.textContent(), /Hashing cancelled/);
  assert.equal(await page.locator("#digest-out .msg.err").count(), 0, "no red error after a cancel");
  assert.match(await page.textContent("#hash-label"), /cancelled/);
  assert.ok(await page.isDisabled("#register-btn"), "nothing to register after a cancel");

  await page.setInputFiles("#dir-input", dir);
  const digestOut = page.locator("#digest-out .msg.ok");
  await digestOut.waitFor();
  const digestText = await digestOut.textContent();
  assert.ok(digestText.includes(DATASET_DIGEST), `page shows the DPM-1 id: ${digestText}`);
  assert.match(digestText, /Files\s*4(?!\d)/);
  assert.equal(await page.getAttribute("#hash-bar", "value"), String(await page.getAttribute("#hash-bar", "max")));
  // The chooser is cleared once read, so a browser fires change when the same folder is chosen
  // again (it fires none for an unchanged value) and the page hashes it afresh.
  assert.equal(await page.inputValue("#dir-input"), "", "folder chooser cleared after reading");

  // The same folder dragged onto the drop zone. A real drag is dispatched through CDP with the
  // directory's path, so Chromium gives the page FileSystemDirectoryEntry items, as for a user's
  // drag from the file manager (a synthetic DataTransfer has no entries):
  // filesFromDataTransfer walks the tree and the page gets the same DPM-1 id.
  const dropZone = page.locator("#drop-dir");
  await dropZone.scrollIntoViewIfNeeded();
  const zone = await dropZone.boundingBox();
  const cdp = await context.newCDPSession(page);
  const drag = { items: [], files: [dir], dragOperationsMask: 1 };
  for (const type of ["dragEnter", "dragOver", "drop"]) {
    await cdp.send("Input.dispatchDragEvent", { type, x: zone.x + zone.width / 2, y: zone.y + zone.height / 2, data: drag });
  }
  await page.locator("#hash-label", { hasText: "Hashed the dropped folder (4 files)" }).waitFor();
  const droppedText = await page.locator("#digest-out .msg.ok").textContent();
  assert.ok(droppedText.includes(DATASET_DIGEST), `dropped folder gives the DPM-1 id: ${droppedText}`);
  assert.match(droppedText, /Files\s*4(?!\d)/);
  await cdp.detach();

  await page.click("#register-btn");
  await page.locator("#register-status", { hasText: "new" }).waitFor();
  assert.match(await page.textContent("#register-out"), /201/);
  await page.click("#register-btn");
  await page.locator("#register-status", { hasText: "already registered" }).waitFor();
  assert.match(await page.textContent("#register-out"), /200/);
  assert.equal(await page.textContent("#register-out dd.gate-status"), "pending");
  assert.equal(await page.inputValue("#version-select"), DATASET_DIGEST);

  // A checkpoint from now, older than the bundle exported below (the rollback check's input).
  const older = await fetch(`${base}/v1/ledger/checkpoint`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(older.status, 200);
  const olderNote = await older.text();

  // 3. A run on the ungated version is refused with gate_not_passed, shown clearly.
  await page.fill("#git-commit", "a".repeat(40));
  await page.fill("#image-digest", `sha256:${"b".repeat(64)}`);
  await page.click("#run-btn");
  const refused = page.locator('#run-out [data-code="gate_not_passed"]');
  await refused.waitFor();
  const refusedText = await refused.textContent();
  assert.match(refusedText, /Run refused/);
  assert.match(refusedText, /gate_not_passed/);
  assert.match(refusedText, /422/);
  assert.match(refusedText, /req_/);

  // Record the gate (the name is pre-filled from the policy), then the run starts.
  assert.equal(await page.inputValue("#gate-name"), "pii-scan");
  await page.click("#gate-btn");
  await page.locator("#gate-out", { hasText: "recorded as passed" }).waitFor();
  assert.equal(await page.textContent("#register-out dd.gate-status"), "passed", "the registration box shows the new gate status");
  await page.click("#run-btn");
  await page.locator("#run-out", { hasText: "Run started." }).waitFor();
  const runId = (await page.textContent("#run-out")).match(/run_[0-9A-Z]{26}/)?.[0];
  assert.ok(runId, "run id shown");
  await page.click("#finish-btn");
  await page.locator("#run-out", { hasText: "Run finished and sealed." }).waitFor();

  // The SDK in the page: an artifact upload of a Blob reports the bytes sent as the browser
  // sends them (XHR upload progress; fetch has none), and arrives intact.
  const upload = await page.evaluate(
    async ({ token, digest }) => {
      const sdk = await import("/sdk.js");
      await sdk.init();
      const c = new sdk.DataPilot({ baseUrl: location.origin, token });
      const [ds] = await c.listDatasets().all();
      const run = await c.createRun({
        name: "upload-progress",
        inputs: [{ dataset_id: ds.id, digest }],
        git_commit: "c".repeat(40),
        image_digest: `sha256:${"d".repeat(64)}`,
      });
      const bytes = new Uint8Array(12 * 1024 * 1024 + 7).map((_, i) => i % 251);
      const events = [];
      const a = await run.uploadArtifact("weights.bin", new Blob([bytes]), {
        onProgress: (p) => events.push({ phase: p.phase, bytes: p.bytes, total: p.totalBytes }),
      });
      const back = await run.downloadArtifact(a.id);
      await run.finish({ status: "succeeded" });
      return { size: a.size, sha256: a.sha256, back: back.sha256, events };
    },
    { token, digest: DATASET_DIGEST },
  );
  assert.equal(upload.size, 12 * 1024 * 1024 + 7);
  assert.equal(upload.back, upload.sha256);
  const sent = upload.events.filter((e) => e.phase === "uploading" && e.bytes > 0).map((e) => e.bytes);
  assert.ok(sent.length >= 1, `upload progress: ${JSON.stringify(upload.events)}`);
  assert.deepEqual(sent, [...sent].sort((x, y) => x - y), "bytes sent only grow");
  assert.equal(sent.at(-1), upload.size, "the last report is the whole body");
  assert.equal(upload.events.at(-1).phase, "done");

  // 4. Export the run's evidence bundle: a .zip download.
  assert.ok(await page.isChecked("#scope-run"));
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-btn")]);
  assert.equal(download.suggestedFilename(), `evidence-${runId}.zip`);
  const bundlePath = path.join(work, download.suggestedFilename());
  await download.saveAs(bundlePath);
  const bundle = await readFile(bundlePath);
  assert.equal(bundle.subarray(0, 2).toString(), "PK");
  await page.locator("#export-out", { hasText: sha256(bundle) }).waitFor();
  // Deterministic: the server gives the same bytes for the same scope and tree size.
  const again = await fetch(`${base}/v1/runs/${runId}/evidence`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(again.status, 200);
  assert.equal(sha256(Buffer.from(await again.arrayBuffer())), sha256(bundle));

  // 5. Verify the bundle in the browser: every named check passes.
  await page.setInputFiles("#zip-input", bundlePath);
  await page.locator('#verdict[data-ok="true"]').waitFor();
  const checks = await page.$$eval("#verify-out .checks li", (lis) =>
    lis.map((li) => ({ name: li.dataset.check, passed: li.dataset.passed === "true", text: li.textContent })),
  );
  assert.ok(checks.length >= 6, `named checks: ${JSON.stringify(checks)}`);
  assert.deepEqual(checks.filter((c) => !c.passed), []);
  for (const c of checks) assert.match(c.name, /^[a-z_.]+$/);
  assert.match(await page.textContent("#verify-out"), new RegExp(`run:${runId}`));
  await mkdir(path.dirname(SCREENSHOT), { recursive: true });
  await page.locator("#verify-out").screenshot({ path: SCREENSHOT.replace(/\.png$/, "-verified.png") });

  // With the last trusted checkpoint (an older one, from the server), the consistency check
  // joins the list and passes.
  await page.click("#rollback summary");
  await page.fill("#last-checkpoint", olderNote);
  await page.click("#verify-last-btn");
  await page.locator('#verify-out li[data-check="consistency"]').waitFor();
  assert.equal(await page.getAttribute('#verify-out li[data-check="consistency"]', "data-passed"), "true");
  assert.equal(await page.getAttribute("#verdict", "data-ok"), "true");
  await page.fill("#last-checkpoint", "");

  // Dropping a bundle on the drop zone verifies it too.
  await page.evaluate(() => document.getElementById("verify-out").replaceChildren());
  await page.evaluate((b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], "dropped.zip", { type: "application/zip" }));
    document.getElementById("drop-zip").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, bundle.toString("base64"));
  await page.locator('#verdict[data-ok="true"]', { hasText: "every check passed" }).waitFor();
  assert.match(await page.textContent("#verdict"), /dropped\.zip/);

  // The file inputs are reachable from the keyboard.
  for (const id of ["dir-input", "zip-input"]) {
    await page.focus(`#${id}`);
    assert.equal(await page.evaluate(() => document.activeElement.id), id);
  }

  // The dataset version's bundle exports and verifies too.
  await page.check("#scope-version");
  const [download2] = await Promise.all([page.waitForEvent("download"), page.click("#export-btn")]);
  assert.match(download2.suggestedFilename(), /^evidence-ds_[0-9A-Z]{26}-afe734752faaa535\.zip$/);
  const versionBundlePath = path.join(work, download2.suggestedFilename());
  await download2.saveAs(versionBundlePath);
  await page.setInputFiles("#zip-input", versionBundlePath);
  await page.locator('#verdict[data-ok="true"]', { hasText: "evidence-ds_" }).waitFor();
  assert.match(await page.textContent("#verify-out"), new RegExp(`dataset_version:ds_[0-9A-Z]{26}@${DATASET_DIGEST}`));

  // A tampered copy (one byte flipped in the middle) fails, with a reason.
  const tampered = Buffer.from(bundle);
  tampered[Math.floor(tampered.length / 2)] ^= 0x01;
  const tamperedPath = path.join(work, "tampered.zip");
  await writeFile(tamperedPath, tampered);
  await page.setInputFiles("#zip-input", tamperedPath);
  await page.locator('#verdict[data-ok="false"]').waitFor();
  const failed = await page.$$eval('#verify-out .checks li[data-passed="false"]', (lis) =>
    lis.map((li) => li.textContent),
  );
  assert.ok(failed.length >= 1, "a failed check is listed");
  assert.match(await page.textContent("#verdict"), /NOT verified/);

  // 6. Explore: two runs with a loss curve (through the SDK in the page), then the pictures.
  const curveRuns = await page.evaluate(
    async ({ token, digest }) => {
      const sdk = await import("/sdk.js");
      const c = new sdk.DataPilot({ baseUrl: location.origin, token });
      const [ds] = await c.listDatasets().all();
      const ids = [];
      for (const [k, name] of [[1, "curve-a"], [2, "curve-b"]]) {
        const run = await c.createRun({ name, inputs: [{ dataset_id: ds.id, digest }], git_commit: "e".repeat(40), image_digest: `sha256:${"f".repeat(64)}` });
        await run.appendMetrics({ points: Array.from({ length: 50 }, (_, s) => ({ name: "loss", step: s, value: k / (s + 1) })) });
        await run.finish({ status: "succeeded" });
        ids.push(run.runId);
      }
      return ids;
    },
    { token, digest: DATASET_DIGEST },
  );
  await page.click("#ex-refresh");
  await page.locator(`#ex-runs tr[data-run="${curveRuns[1]}"]`).waitFor();
  assert.equal(await page.getAttribute("#ex-runs tbody tr:first-child", "data-run"), curveRuns[1], "newest run first");
  // The status filter narrows the list.
  await page.selectOption("#ex-status", "running");
  await page.locator("#ex-runs", { hasText: "No runs match" }).waitFor();
  await page.selectOption("#ex-status", "");
  await page.locator(`#ex-runs tr[data-run="${curveRuns[0]}"]`).waitFor();
  // Open a run: its lineage graph (the run highlighted), its loss curve and its audit timeline.
  await page.click(`#ex-runs button.ex-open[data-run="${curveRuns[0]}"]`);
  await page.locator(`#ex-lineage svg g.node.focus[data-node="run:${curveRuns[0]}"]`).waitFor();
  await page.locator("#ex-metrics svg.chart polyline.line").first().waitFor();
  assert.equal(await page.locator("#ex-metrics svg.chart polyline.line").count(), 1);
  assert.match(await page.getAttribute("#ex-metrics svg.chart", "aria-label"), /loss: curve-a\. curve-a: 50 points, last 0\.02 at step 49/);
  await page.locator("#ex-audit code", { hasText: "run.create" }).first().waitFor();
  await page.locator("#ex-audit code", { hasText: "metrics.append" }).first().waitFor();
  // Click through the graph: the input version node moves the picture to the version, whose
  // graph shows every run on it; from there, the keyboard (Tab to a node, Enter) moves to a run.
  await page.click("#ex-lineage svg g.node-dataset_version");
  await page.locator('#ex-lineage[data-focus^="dataset_version:"]').waitFor();
  for (const id of curveRuns) await page.locator(`#ex-lineage svg g.node-run[data-node="run:${id}"]`).waitFor();
  await page.focus(`#ex-lineage svg g.node-run[data-node="run:${curveRuns[1]}"]`);
  await page.keyboard.press("Enter");
  await page.locator(`#ex-lineage[data-focus="run:${curveRuns[1]}"]`).waitFor();
  await page.locator("#ex-lineage-title", { hasText: "Lineage of curve-b" }).waitFor();
  // Overlay the two curves.
  await page.check(`#ex-runs input.ex-pick[value="${curveRuns[0]}"]`);
  await page.check(`#ex-runs input.ex-pick[value="${curveRuns[1]}"]`);
  await page.click("#ex-compare");
  await page.locator("#ex-metrics figcaption", { hasText: "loss of 2 runs, overlaid" }).waitFor();
  assert.equal(await page.locator("#ex-metrics svg.chart polyline.line").count(), 2);
  await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, "-explore.png"), fullPage: true });

  // Accessibility: axe-core (from the test's npm tools, injected by the test, never served
  // with the page) finds no serious or critical violation on the whole page as it now stands.
  const axeSource = await readFile(createRequire(path.join(ROOT, "tests/bundlers/package.json")).resolve("axe-core/axe.min.js"), "utf8");
  await page.evaluate(axeSource);
  const axe = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const serious = axe.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => `${n.target.join(" ")} [${n.failureSummary}] ${n.html.slice(0, 200)}`).join(", ")}`);
  assert.deepEqual(serious, [], "axe-core: serious accessibility violations");

  // Results belong to what they were about: choosing no version clears the gate result and
  // the exported bundle's box (both named the old version or run).
  assert.match(await page.textContent("#gate-out"), /recorded as passed/);
  assert.match(await page.textContent("#export-out"), /evidence-/);
  await page.selectOption("#version-select", "");
  assert.equal(await page.textContent("#gate-out"), "", "the old gate result is gone");
  assert.equal(await page.textContent("#export-out"), "", "the old bundle's box is gone");
  assert.equal(await page.textContent("#register-out"), "", "the old registration's box is gone");
  await page.selectOption("#version-select", DATASET_DIGEST);

  // A run can be finished as failed too; a viewer gets the write controls turned off.
  assert.ok(await page.isVisible("#finish-failed-btn"));
  const viewer = await (
    await fetch(`${base}/v1/tokens`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "e2e viewer", role: "viewer" }),
    })
  ).json();
  await page.fill("#token", viewer.secret);
  await page.click("#connect-btn");
  await page.locator("#conn-pill", { hasText: "(viewer)" }).waitFor();
  await page.locator("#read-only-note").waitFor();
  // What the server told the admin session does not stay on screen for the viewer's.
  assert.match(await page.textContent("#connect-out"), /viewer/);
  for (const id of ["new-dataset-out", "register-out", "gate-out", "run-out", "export-out"]) {
    assert.equal(await page.textContent(`#${id}`), "", `#${id} cleared for the new identity`);
  }
  for (const id of ["new-dataset-btn", "run-btn", "gate-btn", "register-btn", "finish-btn", "finish-failed-btn"]) {
    assert.ok(await page.isDisabled(`#${id}`), `#${id} is off for a viewer`);
  }
  assert.match(await page.textContent("#versions"), /ledger size \d+/);

  // Air gap: every request went to the test server on 127.0.0.1.
  assert.deepEqual(blocked, [], "no request left 127.0.0.1");
  const outside = requests.filter((u) => !u.startsWith(`${origin}/`) && !/^(blob|data):/.test(u));
  assert.deepEqual(outside, []);
  assert.ok(requests.some((u) => u.endsWith(".wasm")), "the wasm came from the server");
  assert.deepEqual(wasmLoads(), ["datapilot_bg.wasm", "verifier_bg.wasm"], "each wasm module loaded once");

  // The token is in no storage, cookie or page text.
  const stored = await page.evaluate(() => ({
    local: JSON.stringify({ ...localStorage }),
    session: JSON.stringify({ ...sessionStorage }),
    cookie: document.cookie,
    html: document.documentElement.outerHTML,
    inputs: [...document.querySelectorAll("input, textarea")].map((e) => e.value).join("\n"),
  }));
  const secretBody = token.slice(4);
  for (const [where, value] of Object.entries(stored)) {
    assert.ok(!value.includes(secretBody), `token found in ${where}`);
  }
  assert.equal(stored.local, "{}");
  assert.equal(stored.session, "{}");
  assert.equal((await context.cookies()).length, 0);

  assert.deepEqual(pageErrors, [], "no page errors");

  // Screenshot of the final state (the tampered bundle's report) for a human look.
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  // The server goes away: the pill stops saying Connected, and the error says in plain words
  // that the server did not answer (not only the browser's "Failed to fetch").
  await stop(server.child);
  await page.click("#ex-refresh");
  await page.locator("#conn-pill", { hasText: "Connection lost" }).waitFor();
  const dead = page.locator('#ex-out [data-code="transport_error"]');
  await dead.waitFor();
  assert.match(await dead.textContent(), /did not answer: check that it is running/);
});
