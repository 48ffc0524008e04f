// The demo page's part of the directory-rules check (issue 10), on the tree of
// tests/js/tree-fixture.mjs (an ignore file, .git/, symlinks inside and outside the root).
//
// A browser never sees a symbolic link: Chromium leaves links out of folder drops and picks
// (checked below), so a page cannot follow them the way `--follow-symlinks` does. The same
// file list reaches the page when the links are materialized (`cp -rL`, what docs/formats.md
// tells browser users to do): that copy, dragged onto the page, must give the id the CLI and
// the Node API give the original with --symlinks-outside-root (tests/js/tree.test.mjs checks
// those against coreutils over the same list). Expected ids are computed here without the SDK.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { buildTree } from "../js/tree-fixture.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SERVER_BIN = process.env.DATAPILOT_SERVER_BIN || path.join(ROOT, "target/debug/datapilot-server");
const SITE_DIR = process.env.DATAPILOT_SITE_DIR || path.join(ROOT, "target/site");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
];

const sha256 = (b) => createHash("sha256").update(b).digest("hex");

test("a tree with an ignore file, .git/ and symlinks gets the CLI's id on the demo page", { timeout: 120_000 }, async (t) => {
  const work = await mkdtemp(path.join(tmpdir(), "datapilot-e2e-tree-"));
  // One cleanup, in order: the browser, the server, then the files they were writing.
  const cleanup = [];
  t.after(async () => {
    for (const f of cleanup.reverse()) await f();
    await rm(work, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  });
  const tree = buildTree(work);
  let lines = "";
  for (const p of tree.expected) lines += `${sha256(await readFile(path.join(tree.root, p)))}  ${p}\n`;
  const expected = `sha256:${sha256(Buffer.from(lines))}`;

  const server = spawn(SERVER_BIN, ["--data-dir", path.join(work, "data"), "--listen", "127.0.0.1:0", "--static-dir", SITE_DIR, "--log", "warn"], {
    env: { ...process.env, DATAPILOT_BOOTSTRAP_TOKEN: "dpt_e2eTreeToken0123456789abcd" },
    stdio: ["ignore", "pipe", "inherit"],
  });
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

  const context = await chromium.launchPersistentContext(path.join(work, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  cleanup.push(() => Promise.race([context.close(), new Promise((r) => setTimeout(r, 10_000).unref())]));
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`${base}/`);

  // A real drag of a folder, dispatched through CDP: Chromium itself reads the directory.
  const cdp = await context.newCDPSession(page);
  const dropZone = page.locator("#drop-dir");
  const dropped = async (dir) => {
    await dropZone.scrollIntoViewIfNeeded();
    const zone = await dropZone.boundingBox();
    const drag = { items: [], files: [dir], dragOperationsMask: 1 };
    await page.evaluate(() => document.querySelector("#digest-out").replaceChildren());
    for (const type of ["dragEnter", "dragOver", "drop"]) {
      await cdp.send("Input.dispatchDragEvent", { type, x: zone.x + zone.width / 2, y: zone.y + zone.height / 2, data: drag });
    }
    const done = page.locator("#digest-out .msg.ok");
    await done.waitFor();
    return done.textContent();
  };

  const copy = path.join(work, "materialized");
  execFileSync("cp", ["-rL", tree.root, copy]);
  const text = await dropped(copy);
  assert.ok(text.includes(expected), `the page gives the CLI's id ${expected}: ${text}`);
  assert.match(text, new RegExp(`Files\\s*${tree.expected.length}(?!\\d)`));
  assert.match(text, /Left out\s*4 \(by \.datapilotignore or \.git\/\)/);

  // The original folder: Chromium leaves its three links out (so would a folder pick).
  const links = new Set(["labels.txt", "model.bin", "data/shared-dir/labels.txt"]);
  let plain = "";
  for (const p of tree.expected.filter((p) => !links.has(p))) plain += `${sha256(await readFile(path.join(tree.root, p)))}  ${p}\n`;
  const original = await dropped(tree.root);
  assert.ok(original.includes(`sha256:${sha256(Buffer.from(plain))}`), `links are invisible to the page: ${original}`);
  await cdp.detach();
});
