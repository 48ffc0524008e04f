// DataPilot demo page: register dataset versions, gate and start runs, export and verify
// evidence bundles, with the SDK's WebAssembly build. No framework, no build step.
//
// Rules (docs/demo-web.md):
// - Nothing is loaded from outside: the SDK comes from ./sdk.js on this server (assembled by
//   `./x site`), and the only network calls are the SDK's to the base URL the user chose.
// - The API token lives in the `client` object in this module's memory only: never in web
//   storage (local or session), cookies, the URL, the DOM or the console. The token field is
//   cleared as soon as the client is made (the e2e test asserts all of this).

import { initExplorer } from "./explore.js";

const $ = (id) => document.getElementById(id);

/** The SDK module (set once loaded). */
let sdk = null;

/** Session state. The token is inside `client` and nowhere else. */
const state = {
  client: null, // DataPilot client (holds the token)
  keysClient: null, // token-less client for the public /v1/keys
  policy: null,
  datasets: [],
  hashed: null, // { digest, files, total_bytes } from hashFiles
  version: null, // { dataset_id, digest } selected
  run: null, // Run (latest started here)
  lastBundle: null, // { bytes, name }
  hashAbort: null,
  role: null, // whoAmI role: a viewer or auditor gets no write controls
  verified: null, // { bytes, name } of the bundle on screen, re-verified when the keys change
};

/** Roles that may write datasets, gates and runs (the server refuses the others anyway). */
const canWrite = () => state.role === "engineer" || state.role === "admin";

// ---- small helpers ---------------------------------------------------------------------------

/** Removes anything that looks like a secret before it reaches the page. */
function redact(text) {
  return String(text ?? "").replace(/\b(dpt|dpr)_[A-Za-z0-9]+/g, "$1_…(redacted)");
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function show(target, ...nodes) {
  const t = typeof target === "string" ? $(target) : target;
  t.replaceChildren(...nodes);
}

function fmtBytes(n) {
  if (!Number.isFinite(n)) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

function short(digest) {
  const hex = String(digest).replace(/^sha256:/, "");
  return `sha256:${hex.slice(0, 12)}…`;
}

/** A key/value list. */
function facts(pairs) {
  const dl = el("dl", { class: "facts" });
  for (const [k, v, cls] of pairs) {
    if (v === undefined || v === null || v === "") continue;
    dl.append(el("dt", { text: k }), el("dd", { class: cls || null }, v));
  }
  return dl;
}

function success(title, ...rest) {
  return el("div", { class: "msg ok", role: "status" }, el("strong", { text: title }), ...rest);
}

/** An error as shown inline: code, message, status and request id (never a token). */
function errorBox(err, context) {
  const isDp = sdk && sdk.isDataPilotError(err);
  // Not from the SDK: a check of this page's own (an empty field…), said as such, not "ERROR error".
  const code = isDp ? err.code : err?.name === "AbortError" ? "aborted" : "check_input";
  const message = isDp ? err.detail || err.message : err?.message || String(err);
  const box = el(
    "div",
    { class: "msg err", role: "alert", "data-code": code },
    el("p", { class: "err-head" }, el("span", { class: "badge bad" }, "error"), " ", el("code", { class: "err-code", text: code }), context ? ` — ${context}` : ""),
    el("p", { class: "err-detail", text: redact(message) }),
  );
  if (isDp && err.kind === "transport") {
    // The browser's own words ("Failed to fetch") say nothing about what to do.
    box.insertBefore(
      el("p", { class: "err-plain", text: `The server at ${$("base-url").value || location.origin} did not answer: check that it is running and reachable, then try again.` }),
      box.children[1],
    );
  }
  if (isDp) {
    const meta = [];
    if (err.status) meta.push(["HTTP status", String(err.status)]);
    if (err.requestId) meta.push(["Request id", err.requestId, "mono"]);
    if (err.retryable) meta.push(["Retry", "may succeed later"]);
    if (meta.length) box.append(facts(meta));
    if (Array.isArray(err.errors) && err.errors.length) {
      const ul = el("ul", { class: "field-errors" });
      for (const fe of err.errors) ul.append(el("li", {}, el("code", { text: fe.field }), " ", redact(fe.message)));
      box.append(ul);
    }
  }
  return box;
}

/** The footer's versions and ledger size (refreshed after every action). */
async function updateFooter() {
  const c = state.client ?? state.keysClient;
  if (!c || !sdk) return;
  try {
    const h = await c.getHealth();
    $("versions").textContent = `SDK ${sdk.sdkVersion()} · server ${h.version} · ledger size ${h.tree_size}`;
  } catch {
    $("versions").textContent = `SDK ${sdk.sdkVersion()}`;
  }
}

/** A transport error means the server is gone (or unreachable): the pill must not say Connected. */
function noteConnectionLost(err) {
  if (state.client && sdk?.isDataPilotError(err) && (err.kind === "transport" || err.kind === "timeout")) {
    const pill = $("conn-pill");
    pill.textContent = "Connection lost: the server did not answer";
    pill.className = "pill pill-off";
  }
}

/** Runs an action with its button disabled and errors shown in `out`. */
async function act(button, out, context, fn) {
  const was = button ? button.disabled : false;
  if (button) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
  }
  try {
    return await fn();
  } catch (err) {
    show(out, errorBox(err, context));
    noteConnectionLost(err);
    return undefined;
  } finally {
    if (button) {
      button.disabled = was;
      button.removeAttribute("aria-busy");
    }
    refreshControls();
    if (state.client) updateFooter();
  }
}

function download(bytes, name) {
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/zip" }));
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// ---- enabling and labelling controls ---------------------------------------------------------

/**
 * Results belong to what they were about: when the chosen version changes, the gate result
 * shown for the old one goes, and when the version or the run changes, so does the exported
 * bundle's box (it named the old scope). Called from refreshControls, which runs after every
 * change of selection or action.
 */
function clearStaleResults() {
  const version = state.version ? `${state.version.dataset_id}@${state.version.digest}` : "";
  const run = state.run?.id ?? "";
  const was = state.shownFor ?? { version, run };
  if (was.version !== version) show("gate-out");
  if (was.version !== version || was.run !== run) show("export-out");
  // The registration box names one version, the run box one run: each goes when it no longer
  // names the one chosen.
  const reg = $("register-out");
  if (reg.dataset.version && reg.dataset.version !== state.version?.digest) {
    show(reg);
    delete reg.dataset.version;
  }
  if (was.run !== run && !run) show("run-out");
  state.shownFor = { version, run };
}

/**
 * Boxes that show what a server said to one signed-in identity: cleared when the page
 * disconnects or connects as someone else (or elsewhere), so no answer outlives its session.
 * The hash and the bundle verdict are the browser's own work and stay.
 */
function clearServerResults() {
  for (const id of ["new-dataset-out", "register-out", "gate-out", "run-out", "export-out"]) show(id);
  delete $("register-out").dataset.version;
}

function refreshControls() {
  clearStaleResults();
  const connected = !!state.client;
  const dataset = $("dataset-select").value;
  const writer = connected && canWrite();
  $("dataset-select").disabled = !connected;
  $("new-dataset-name").disabled = !writer;
  $("new-dataset-btn").disabled = !writer;
  $("register-btn").disabled = !(writer && dataset && state.hashed);
  $("version-select").disabled = !(connected && dataset);
  $("gate-btn").disabled = !(writer && state.version);
  $("run-btn").disabled = !(writer && state.version);
  $("finish-btn").disabled = !(writer && state.run && state.run.status === "running");
  $("finish-failed-btn").disabled = $("finish-btn").disabled;
  $("read-only-note").hidden = !connected || writer;
  $("scope-run").disabled = !(connected && state.run);
  $("scope-version").disabled = !(connected && state.version);
  $("scope-run-label").textContent = state.run ? `Run ${state.run.id} (${state.run.name})` : "Run (start one first)";
  $("scope-version-label").textContent = state.version
    ? `Dataset version ${short(state.version.digest)} of ${datasetName(state.version.dataset_id)}`
    : "Dataset version (register or pick one first)";
  if (!document.querySelector('input[name="scope"]:checked:not(:disabled)')) {
    const first = !$("scope-run").disabled ? $("scope-run") : !$("scope-version").disabled ? $("scope-version") : null;
    if (first) first.checked = true;
  }
  $("export-btn").disabled = !document.querySelector('input[name="scope"]:checked:not(:disabled)');
  $("verify-last-btn").hidden = !state.lastBundle;
  const pill = $("conn-pill");
  pill.className = connected ? "pill pill-on" : "pill pill-off";
}

function datasetName(id) {
  return state.datasets.find((d) => d.id === id)?.name ?? id;
}

// ---- 1. connect ------------------------------------------------------------------------------

async function connect(ev) {
  ev.preventDefault();
  const out = $("connect-out");
  const baseUrl = $("base-url").value.trim();
  const tokenInput = $("token");
  const token = tokenInput.value.trim();
  // Clear the field at once: the secret now lives only in `client`.
  tokenInput.value = "";
  if (!token) {
    show(out, errorBox(new Error("Enter an API token (dpt_…)."), "connect"));
    tokenInput.focus();
    return;
  }
  await act($("connect-btn"), out, "connect", async () => {
    const client = new sdk.DataPilot({ baseUrl, token, timeoutMs: 30_000 });
    const me = await client.whoAmI();
    const identity = `${client.baseUrl} ${me.subject} ${me.role}`;
    if (state.identity && state.identity !== identity) {
      clearServerResults();
      state.run = null;
    }
    state.identity = identity;
    if (state.client && state.client !== client) state.client.free?.();
    state.client = client;
    state.role = me.role;
    $("conn-pill").textContent = `Connected as ${me.subject} (${me.role})`;
    const origin = new URL(client.baseUrl).origin;
    show(
      out,
      success(
        "Connected.",
        facts([
          ["Server", client.baseUrl, "mono"],
          ["Signed in as", me.subject],
          ["Role", me.role],
          ["Token id", me.token_id || null, "mono"],
        ]),
        origin !== location.origin
          ? el("p", { class: "hint warn", text: `Note: API calls go to ${origin}, not to the server that served this page.` })
          : null,
      ),
    );
    $("disconnect-btn").hidden = false;
    $("connect-btn").textContent = "Reconnect";
    if (client.baseUrl !== state.keysClient?.baseUrl) {
      state.keysClient = new sdk.DataPilot({ baseUrl: client.baseUrl });
      await loadKeys();
    }
    await Promise.all([loadPolicy(), loadDatasets()]);
    await explorer.refresh();
  });
}

function disconnect() {
  state.client?.free?.();
  state.client = null;
  state.identity = null;
  state.run = null;
  state.version = null;
  state.datasets = [];
  clearServerResults();
  $("conn-pill").textContent = "Not connected";
  $("disconnect-btn").hidden = true;
  $("connect-btn").textContent = "Connect";
  show("connect-out", el("p", { class: "hint", text: "Disconnected; the token was dropped from memory." }));
  show("dataset-select", el("option", { value: "", text: "Connect first" }));
  show("version-select", el("option", { value: "", text: "Pick a dataset first" }));
  refreshControls();
  $("token").focus();
}

async function loadPolicy() {
  try {
    state.policy = await state.client.getPolicy();
    const gates = state.policy.required_gates;
    $("policy-hint").textContent = gates.length
      ? `Policy v${state.policy.version}: a run input must have passed ${gates.join(", ")}.`
      : `Policy v${state.policy.version}: no gates required.`;
    show("gate-names", ...gates.map((g) => el("option", { value: g })));
    if (!$("gate-name").value && gates.length) $("gate-name").value = gates[0];
  } catch (err) {
    $("policy-hint").textContent = `Policy not readable (${sdk.isDataPilotError(err) ? err.code : err.message}).`;
  }
}

// ---- 2. datasets and versions ----------------------------------------------------------------

async function loadDatasets(selectId) {
  const it = state.client.listDatasets({ limit: 500 });
  try {
    state.datasets = await it.all();
  } finally {
    it.free?.();
  }
  const sel = $("dataset-select");
  const keep = selectId || sel.value;
  sel.replaceChildren(
    el("option", { value: "", text: state.datasets.length ? "— choose a dataset —" : "No datasets yet: create one" }),
    ...state.datasets.map((d) => el("option", { value: d.id, text: `${d.name} (${d.id})` })),
  );
  if (keep && state.datasets.some((d) => d.id === keep)) sel.value = keep;
  else if (state.datasets.length === 1) sel.value = state.datasets[0].id;
  await loadVersions();
}

async function loadVersions(selectDigest) {
  const datasetId = $("dataset-select").value;
  const sel = $("version-select");
  if (!datasetId) {
    sel.replaceChildren(el("option", { value: "", text: "Pick a dataset first" }));
    state.version = null;
    refreshControls();
    return;
  }
  const it = state.client.listDatasetVersions(datasetId, { limit: 500 });
  let versions;
  try {
    versions = await it.all();
  } finally {
    it.free?.();
  }
  versions.reverse(); // newest first
  sel.replaceChildren(
    el("option", { value: "", text: versions.length ? "— choose a version —" : "No versions yet: register one above" }),
    ...versions.map((v) =>
      el("option", { value: v.digest, text: `${short(v.digest)} · ${v.file_count} files · gates ${v.gate_status ?? "?"} · ${v.created_at}` }),
    ),
  );
  const want = selectDigest || (state.version?.dataset_id === datasetId ? state.version.digest : "");
  if (want && versions.some((v) => v.digest === want)) sel.value = want;
  else if (versions.length) sel.value = versions[0].digest;
  state.version = sel.value ? { dataset_id: datasetId, digest: sel.value } : null;
  explorer.setVersion(state.version);
  refreshControls();
}

async function createDataset(ev) {
  ev.preventDefault();
  // Said next to the name field it is about, not under the Register button.
  const out = $("new-dataset-out");
  const name = $("new-dataset-name").value.trim();
  if (!/^[a-z0-9][a-z0-9._-]{0,127}$/.test(name)) {
    show(out, errorBox(new Error("A dataset name is 1–128 of a-z, 0-9, '.', '_', '-', starting with a letter or digit."), "create dataset"));
    $("new-dataset-name").focus();
    return;
  }
  await act($("new-dataset-btn"), out, "create dataset", async () => {
    const ds = await state.client.createDataset({ name });
    $("new-dataset-name").value = "";
    await loadDatasets(ds.id);
    show(out, success(`Dataset “${ds.name}” created.`, facts([["Id", ds.id, "mono"]])));
    $("dataset-select").focus();
  });
}

/** Hashes `files` (a FileList or [{ path, file }]) with progress. */
async function hashSelection(files, label) {
  const out = $("digest-out");
  state.hashed = null;
  show("register-out");
  state.hashAbort?.abort();
  const abort = new AbortController();
  state.hashAbort = abort;
  const bar = $("hash-bar");
  const text = $("hash-text");
  $("hash-progress").hidden = false;
  $("hash-cancel").hidden = false;
  $("hash-label").textContent = `Hashing ${label}…`;
  bar.value = 0;
  text.textContent = "";
  let pending = null;
  const started = performance.now();
  const paint = () => {
    const p = pending;
    pending = null;
    if (!p) return;
    bar.max = Math.max(p.totalBytes, 1);
    bar.value = p.bytesHashed;
    const secs = (performance.now() - started) / 1000;
    const rate = secs > 0 ? p.bytesHashed / secs : 0;
    const eta = rate > 0 && p.totalBytes > p.bytesHashed ? ` · ${Math.ceil((p.totalBytes - p.bytesHashed) / rate)} s left` : "";
    text.textContent = `${p.filesHashed} / ${p.totalFiles} files · ${fmtBytes(p.bytesHashed)} / ${fmtBytes(p.totalBytes)} · ${fmtBytes(rate)}/s${eta}${p.path ? ` · ${p.path}` : ""}`;
  };
  const onProgress = (p) => {
    if (!pending) requestAnimationFrame(paint);
    pending = p;
  };
  show(out, el("p", { class: "hint", text: "Hashing in the browser (SHA-256, streamed in chunks)…" }));
  await act(null, out, "hash", async () => {
    const t0 = performance.now();
    let result;
    try {
      result = await sdk.hashFiles(files, { onProgress, signal: abort.signal });
    } catch (err) {
      if (abort.signal.aborted) return; // cancelled: said below, not as an error
      throw err;
    }
    pending = {
      bytesHashed: result.total_bytes,
      totalBytes: result.total_bytes,
      filesHashed: result.files.length,
      totalFiles: result.files.length,
      path: "",
    };
    paint();
    state.hashed = result;
    const secs = (performance.now() - t0) / 1000;
    show(
      out,
      success(
        "Dataset hashed.",
        facts([
          ["DPM-1 id", result.digest, "mono digest"],
          ["Files", String(result.files.length)],
          ["Left out", result.excluded ? `${result.excluded} (by .datapilotignore or .git/)` : "nothing"],
          ["Total size", `${fmtBytes(result.total_bytes)} (${result.total_bytes} bytes)`],
          ["Hashed in", `${secs.toFixed(2)} s`],
        ]),
      ),
    );
    $("hash-label").textContent = `Hashed ${label}.`;
  });
  // Only the latest selection speaks: an older one cancelled by a newer choice stays quiet.
  if (state.hashAbort !== abort) {
    refreshControls();
    return;
  }
  state.hashAbort = null;
  $("hash-cancel").hidden = true;
  if (abort.signal.aborted && !state.hashed) {
    // Cancelled by the person: a note, not a red error.
    show(out, el("p", { class: "hint", role: "status", "data-code": "cancelled", text: "Hashing cancelled; nothing was hashed. Choose or drop the folder again to hash it." }));
    $("hash-label").textContent = `Hashing ${label} cancelled.`;
  } else if (!state.hashed) $("hash-label").textContent = `Hashing ${label} stopped.`;
  refreshControls();
}

async function register(ev) {
  ev.preventDefault();
  const out = $("register-out");
  const datasetId = $("dataset-select").value;
  if (!datasetId || !state.hashed) return;
  const note = $("version-note").value.trim();
  await act($("register-btn"), out, "register version", async () => {
    const req = { digest: state.hashed.digest, files: state.hashed.files };
    if (note) req.note = note;
    // A manifest over 50,000 files goes up in parts: the phase is shown as it advances.
    const onProgress = (p) => {
      if (p.parts > 1) show(out, el("p", { class: "hint", role: "status", text: `Registering: part ${p.partsDone} of ${p.parts} (${p.filesSent.toLocaleString()} of ${p.files.toLocaleString()} files sent)…` }));
    };
    const { version, created } = await state.client.registerDatasetVersion(datasetId, req, { onProgress });
    state.version = { dataset_id: datasetId, digest: version.digest };
    explorer.setVersion(state.version);
    await loadVersions(version.digest);
    show(
      out,
      el(
        "div",
        { class: `msg ${created ? "ok" : "info"}`, role: "status", "data-created": String(created) },
        el("span", { class: `badge ${created ? "good" : "neutral"}`, id: "register-status", text: created ? "new" : "already registered" }),
        " ",
        el("strong", {
          text: created
            ? "New version registered (HTTP 201)."
            : "Already registered: this exact content is an existing version (HTTP 200); nothing new was written.",
        }),
        facts([
          ["Dataset", `${datasetName(datasetId)} (${datasetId})`],
          ["Version", version.digest, "mono digest"],
          ["Files", String(version.file_count)],
          ["Size", fmtBytes(version.total_bytes)],
          ["Gates", version.gate_status ?? null, "gate-status"],
          ["Registered", version.created_at],
        ]),
      ),
    );
    $("register-out").dataset.version = version.digest;
  });
}

// ---- 3. gates and runs -----------------------------------------------------------------------

async function recordGate(ev) {
  ev.preventDefault();
  const out = $("gate-out");
  const gate = $("gate-name").value.trim();
  const status = document.querySelector('input[name="gate-status"]:checked').value;
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(gate)) {
    show(out, errorBox(new Error("A gate name is 1–128 of A-Z, a-z, 0-9, '.', '_', '-'."), "record gate"));
    $("gate-name").focus();
    return;
  }
  const v = state.version;
  await act($("gate-btn"), out, "record gate", async () => {
    const r = await state.client.recordGateResult(v.dataset_id, v.digest, { gate, status, details: { source: "demo-web" } });
    await loadVersions(v.digest);
    // The registration box above shows this version's gate status: keep it current.
    const shown = $("register-out").dataset.version === v.digest && $("register-out").querySelector("dd.gate-status");
    if (shown) shown.textContent = (await state.client.getDatasetVersion(v.dataset_id, v.digest)).gate_status;
    show(
      out,
      success(
        `Gate “${r.gate}” recorded as ${r.status}.`,
        facts([
          ["Result id", r.id, "mono"],
          ["Version", short(r.digest), "mono"],
        ]),
      ),
    );
  });
}

async function startRun(ev) {
  ev.preventDefault();
  const out = $("run-out");
  const name = $("run-name").value.trim() || "demo run";
  const git_commit = $("git-commit").value.trim().toLowerCase();
  const image_digest = $("image-digest").value.trim().toLowerCase();
  if (!/^([0-9a-f]{40}|[0-9a-f]{64})$/.test(git_commit)) {
    show(out, errorBox(new Error("The git commit is 40 or 64 hex characters."), "start run"));
    $("git-commit").focus();
    return;
  }
  if (!/^sha256:[0-9a-f]{64}$/.test(image_digest)) {
    show(out, errorBox(new Error("The image digest is sha256: and 64 hex characters."), "start run"));
    $("image-digest").focus();
    return;
  }
  const input = { ...state.version };
  await act($("run-btn"), out, "start run", async () => {
    try {
      const handle = await state.client.createRun({ name, inputs: [input], git_commit, image_digest });
      // The run token is not shown or kept: this page finishes runs with the API token.
      state.run = handle.run;
      handle.free?.();
      $("scope-run").checked = true; // export this run next
      show(
        out,
        success(
          "Run started.",
          facts([
            ["Run id", state.run.id, "mono"],
            ["Status", state.run.status],
            ["Input", `${datasetName(input.dataset_id)} @ ${short(input.digest)}`],
          ]),
        ),
      );
    } catch (err) {
      if (sdk.isDataPilotError(err) && err.code === "gate_not_passed") {
        const box = errorBox(err, "run refused by policy");
        box.prepend(el("p", { class: "refused", text: "Run refused: the input dataset version has not passed the quality gates the policy requires." }));
        show(out, box);
        return;
      }
      throw err;
    }
  });
}

async function finishRun(status) {
  const out = $("run-out");
  await act($(status === "failed" ? "finish-failed-btn" : "finish-btn"), out, "finish run", async () => {
    state.run = await state.client.finishRun(state.run.id, { status });
    show(out, success("Run finished and sealed.", facts([["Run id", state.run.id, "mono"], ["Status", state.run.status]])));
    await updateFooter();
  });
}

// ---- 4. export --------------------------------------------------------------------------------

async function exportBundle(ev) {
  ev.preventDefault();
  const out = $("export-out");
  const scope = document.querySelector('input[name="scope"]:checked')?.value;
  await act($("export-btn"), out, "export evidence", async () => {
    let bytes;
    let name;
    if (scope === "run") {
      bytes = await state.client.exportRunEvidence(state.run.id);
      name = `evidence-${state.run.id}.zip`;
    } else {
      const v = state.version;
      bytes = await state.client.exportDatasetVersionEvidence(v.dataset_id, v.digest);
      name = `evidence-${v.dataset_id}-${v.digest.replace(/^sha256:/, "").slice(0, 16)}.zip`;
    }
    state.lastBundle = { bytes, name };
    download(bytes, name);
    show(
      out,
      success(
        "Evidence bundle exported and downloaded.",
        facts([
          ["File", name, "mono"],
          ["Size", fmtBytes(bytes.length)],
          ["SHA-256", sdk.sha256Hex(bytes), "mono digest"],
        ]),
        el("p", { class: "hint", text: "The same scope and ledger size always give the same bytes, so anyone can re-export and compare the SHA-256." }),
      ),
    );
  });
}

// ---- 5. verify --------------------------------------------------------------------------------

/** What loadKeys last put in the trusted keys field (replaced only if the user left it). */
let keysAutofilled = "";

async function loadKeys() {
  const ta = $("trusted-keys");
  try {
    const keys = await state.keysClient.listVerifierKeys();
    if (!ta.value.trim() || ta.value === keysAutofilled) {
      keysAutofilled = keys.keys.map((k) => k.verifier).join("\n");
      ta.value = keysAutofilled;
    }
    $("keys-source").textContent = `The key above was pre-filled from ${state.keysClient.baseUrl}/v1/keys (origin ${keys.origin}).`;
  } catch (err) {
    $("keys-source").textContent = `Could not read /v1/keys (${sdk.isDataPilotError(err) ? err.code : err.message}); paste the pinned key.`;
  }
}

async function verifyBytes(bytes, name) {
  const out = $("verify-out");
  const trustedKeys = $("trusted-keys").value.split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
  const lastCheckpoint = $("last-checkpoint").value.trim();
  show(out, el("p", { class: "hint", text: `Verifying ${name}…` }));
  await act(null, out, "verify", async () => {
    if (!trustedKeys.length) throw new Error("Paste at least one trusted verifier key.");
    let report;
    if (lastCheckpoint) {
      const note = lastCheckpoint.endsWith("\n") ? lastCheckpoint : `${lastCheckpoint}\n`;
      if (!state.client) throw new Error("The rollback check fetches a consistency proof: connect first, or clear the checkpoint field.");
      report = await state.client.verifyEvidenceBundle(bytes, { trustedKeys, lastCheckpoint: note });
    } else {
      report = await sdk.verifyEvidenceBundle(bytes, { trustedKeys });
    }
    renderReport(report, name, bytes);
    state.verified = { bytes, name };
  });
}

function renderReport(report, name, bytes) {
  const failed = report.checks.filter((c) => !c.passed).length;
  const head = el(
    "div",
    { class: `verdict ${report.ok ? "ok" : "bad"}`, role: "status", id: "verdict", "data-ok": String(report.ok) },
    el("span", { class: "verdict-icon", "aria-hidden": "true", text: report.ok ? "✓" : "✗" }),
    el(
      "div",
      {},
      el("strong", { text: report.ok ? "Bundle verified: every check passed." : `Bundle NOT verified: ${failed} of ${report.checks.length} checks failed.` }),
      el("p", { class: "small mono", text: `${name} · ${fmtBytes(bytes.length)} · sha256 ${sdk.sha256Hex(bytes)}` }),
    ),
  );
  const list = el("ol", { class: "checks", "aria-label": "Verification checks" });
  for (const c of report.checks) {
    list.append(
      el(
        "li",
        { class: c.passed ? "pass" : "fail", "data-check": c.name, "data-passed": String(c.passed) },
        el("span", { class: `badge ${c.passed ? "good" : "bad"}`, text: c.passed ? "pass" : "fail" }),
        " ",
        el("code", { class: "check-name", text: c.name }),
        el("span", { class: "reason", text: redact(c.reason) }),
      ),
    );
  }
  const s = report.summary || {};
  const summary = facts([
    ["Scope", s.scope, "mono"],
    ["Ledger origin", s.origin, "mono"],
    ["Tree size", s.tree_size != null ? String(s.tree_size) : null],
    ["Root hash", s.root_hash, "mono digest"],
    ["Exported at", s.exported_at],
    ["Exporter", s.exporter],
    ["Audit events proven", s.events != null ? String(s.events) : null],
  ]);
  const parts = [head, el("h3", { text: "Checks" }), list];
  if (summary.childElementCount) {
    parts.push(el("h3", { text: report.ok ? "What the bundle proves" : "What the bundle claims (not trusted)" }), summary);
  }
  if (report.ok && s.checkpoint) {
    parts.push(
      el(
        "details",
        {},
        el("summary", { text: "Signed checkpoint (keep it as your next “last trusted checkpoint”)" }),
        el("pre", { class: "mono small", text: s.checkpoint }),
      ),
    );
  }
  show("verify-out", ...parts);
}

async function verifyFile(file) {
  if (!file) return;
  const bytes = new Uint8Array(await file.arrayBuffer());
  await verifyBytes(bytes, file.name);
}

// ---- drag and drop -----------------------------------------------------------------------------

function dropzone(zone, onDrop) {
  let depth = 0;
  zone.addEventListener("dragenter", (e) => {
    e.preventDefault();
    depth += 1;
    zone.classList.add("over");
  });
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  });
  zone.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove("over");
  });
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    zone.classList.remove("over");
    onDrop(e);
  });
}

// ---- start -------------------------------------------------------------------------------------

/** Section 6 (explore.js): lists, lineage graph, metric curves, audit timeline. */
// Section 6's failures also turn the pill to "Connection lost" when the server is gone.
const explorer = initExplorer({
  getClient: () => state.client,
  errorBox: (err, what) => {
    noteConnectionLost(err);
    return errorBox(err, what);
  },
});

function wire() {
  $("base-url").value = location.origin;
  $("connect-form").addEventListener("submit", connect);
  $("disconnect-btn").addEventListener("click", disconnect);
  $("new-dataset-form").addEventListener("submit", createDataset);
  $("dataset-select").addEventListener("change", () => {
    state.version = null;
    act(null, $("register-out"), "list versions", () => loadVersions());
  });
  $("version-select").addEventListener("change", (e) => {
    const d = $("dataset-select").value;
    state.version = e.target.value ? { dataset_id: d, digest: e.target.value } : null;
    explorer.setVersion(state.version);
    refreshControls();
  });
  $("dir-input").addEventListener("change", (e) => {
    const files = [...(e.target.files ?? [])];
    // Cleared at once, as the zip chooser is: choosing the same folder again (after its files
    // changed, or after a cancel) fires change and hashes it again instead of doing nothing.
    e.target.value = "";
    if (!files.length) {
      // An empty folder (or one whose files the browser left out): say so, as a drop does.
      state.hashed = null;
      show("register-out");
      show("digest-out", errorBox(new Error("Nothing to hash: the chosen folder has no files."), "choose folder"));
      refreshControls();
      return;
    }
    const top = files[0].webkitRelativePath?.split("/")[0] || "selection";
    hashSelection(files, `“${top}” (${files.length} files)`);
  });
  $("hash-cancel").addEventListener("click", () => state.hashAbort?.abort());
  dropzone($("drop-dir"), (e) => {
    // filesFromDataTransfer must be called synchronously inside the drop handler.
    const pending = sdk.filesFromDataTransfer(e.dataTransfer);
    act(null, $("digest-out"), "read dropped folder", async () => {
      const files = await pending;
      if (!files.length) throw new Error("Nothing to hash: drop a folder with at least one file.");
      await hashSelection(files, `the dropped folder (${files.length} files)`);
    });
  });
  $("register-form").addEventListener("submit", register);
  $("gate-form").addEventListener("submit", recordGate);
  $("run-form").addEventListener("submit", startRun);
  $("finish-btn").addEventListener("click", () => finishRun("succeeded"));
  $("finish-failed-btn").addEventListener("click", () => finishRun("failed"));
  $("export-form").addEventListener("submit", exportBundle);
  for (const r of document.querySelectorAll('input[name="scope"]')) r.addEventListener("change", refreshControls);
  $("zip-input").addEventListener("change", (e) => {
    const file = e.target.files?.[0];
    // Cleared at once, so choosing the same file again (say, after changing the key) verifies again.
    e.target.value = "";
    verifyFile(file);
  });
  // A verdict always belongs to the keys on screen: changing them re-verifies the bundle shown.
  $("trusted-keys").addEventListener("change", () => {
    if (state.verified) verifyBytes(state.verified.bytes, state.verified.name);
  });
  $("verify-last-btn").addEventListener("click", () => {
    if (state.lastBundle) verifyBytes(state.lastBundle.bytes, state.lastBundle.name);
  });
  dropzone($("drop-zip"), (e) => {
    const file = [...(e.dataTransfer.files || [])].find((f) => f.name.endsWith(".zip")) || e.dataTransfer.files?.[0];
    verifyFile(file);
  });
  // Stray drops elsewhere must not navigate away (and drop the in-memory token).
  for (const t of ["dragover", "drop"]) window.addEventListener(t, (e) => e.preventDefault());
}

async function main() {
  wire();
  refreshControls();
  try {
    sdk = await import("./sdk.js");
    await sdk.init();
  } catch (err) {
    show(
      "boot",
      el(
        "div",
        { class: "msg err", role: "alert" },
        el("strong", { text: "The DataPilot SDK could not be loaded." }),
        el("p", { text: `${redact(err?.message || err)} — serve the page assembled by ./x site (target/site), which includes the WebAssembly build.` }),
      ),
    );
    return;
  }
  $("boot").hidden = true;
  state.keysClient = new sdk.DataPilot({ baseUrl: location.origin });
  await updateFooter();
  await loadKeys();
  document.body.classList.add("ready"); // initialised (the browser test waits for this)
  // The evidence verifier is a second wasm module. The page works without it; fetch it now, in
  // the background, so a bundle can still be verified after the network is gone. (A failure
  // here is reported by the first verification, which loads it again.)
  sdk.initVerifier().then(
    () => {
      document.body.dataset.verifier = "ready";
    },
    () => {},
  );
  $("token").focus();
}

main();
