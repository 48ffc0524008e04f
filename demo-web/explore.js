// Section 6 of the demo page, "Explore": what exists and how it hangs together, as pictures.
// A browsable, filterable list of runs (newest first) and datasets; for the selected run or
// dataset version its lineage graph (graph.js; click or Enter on a node to move there), its
// metric curves (charts.js; tick runs to overlay them) and its audit timeline. Everything
// goes through the SDK client of the connected session (`getClient()`); nothing is stored.

import { renderLineage } from "./graph.js";
import { renderChart } from "./charts.js";

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

const MAX_COMPARE = 10;

/** Wires section 6; `getClient()` is the connected client or null, `errorBox(err, what)` an error view. */
export function initExplorer({ getClient, errorBox }) {
  const selected = new Set(); // run ids ticked for the overlaid curves
  let focus = null; // { node: "run:…" | "dataset_version:…", label }

  const fail = (target, what) => (err) => $(target).replaceChildren(errorBox(err, what));

  async function loadRuns() {
    const c = getClient();
    if (!c) return;
    const opts = { order: "desc", limit: 20 };
    const status = $("ex-status").value;
    if (status) opts.status = status;
    if ($("ex-on-version").checked && $("ex-on-version").dataset.version) opts.input = $("ex-on-version").dataset.version;
    const page = await c.listRuns(opts).nextPage();
    const rows = (page?.items ?? []).map((r) =>
      el(
        "tr",
        { "data-run": r.id },
        el("td", {}, el("input", { type: "checkbox", class: "ex-pick", "aria-label": `Compare ${r.name} (${r.id})`, value: r.id, checked: selected.has(r.id) })),
        el("td", {}, el("button", { type: "button", class: "link ex-open", "data-run": r.id, text: r.name })),
        el("td", {}, el("span", { class: `badge ${r.status === "failed" ? "bad" : r.status === "succeeded" ? "good" : ""}`, text: r.status })),
        el("td", { class: "mono small", text: r.created_at.replace("T", " ").replace(/\.\d+Z$/, "Z") }),
        el("td", { class: "mono small", text: r.id }),
      ),
    );
    $("ex-runs").replaceChildren(
      rows.length
        ? el(
            "table",
            { class: "list" },
            el("caption", { text: `Latest ${rows.length} runs${status ? ` (${status})` : ""}, newest first` }),
            el("thead", {}, el("tr", {}, ...["Compare", "Run", "Status", "Created (UTC)", "Id"].map((h) => el("th", { scope: "col", text: h })))),
            el("tbody", {}, ...rows),
          )
        : el("p", { class: "hint", text: "No runs match." }),
    );
  }

  async function loadDatasets() {
    const c = getClient();
    if (!c) return;
    const page = await c.listDatasets({ order: "desc", limit: 20 }).nextPage();
    const items = page?.items ?? [];
    $("ex-datasets").replaceChildren(
      items.length
        ? el("ul", { class: "plain" }, ...items.map((d) => el("li", {}, el("button", { type: "button", class: "link ex-dataset", "data-dataset": d.id, text: d.name }), " ", el("span", { class: "mono small", text: d.id }))))
        : el("p", { class: "hint", text: "No datasets yet." }),
    );
  }

  async function showVersions(datasetId) {
    const c = getClient();
    const versions = await c.listDatasetVersions(datasetId, { order: "desc", limit: 10 }).nextPage();
    const li = document.querySelector(`button[data-dataset="${datasetId}"]`)?.parentElement;
    if (!li) return;
    li.querySelector("ul")?.remove();
    li.append(
      el("ul", { class: "plain nested" }, ...(versions?.items ?? []).map((v) =>
        el("li", {}, el("button", { type: "button", class: "link ex-version", "data-node": `dataset_version:${datasetId}@${v.digest}`, text: `${v.digest.slice(0, 19)}…` }), ` ${v.file_count} files, ${v.gate_status}`))),
    );
  }

  async function showLineage(node, label) {
    const c = getClient();
    focus = { node, label };
    const depth = Number($("ex-depth").value);
    const direction = $("ex-direction").value;
    const g = await c.getLineage(node, { direction, depth });
    const title = `Lineage of ${label}, ${direction}, ${depth} generation${depth > 1 ? "s" : ""}`;
    $("ex-lineage-title").textContent = title;
    $("ex-lineage").replaceChildren(
      renderLineage(g, {
        focusId: node,
        title,
        onSelect: (n) => {
          if (n.kind === "run" || n.kind === "dataset_version") {
            select(n.id, n.label);
          }
        },
      }),
    );
    $("ex-lineage").dataset.focus = node;
  }

  async function showRunDetails(runId) {
    const c = getClient();
    const s = await c.getMetricSummary(runId, { points: 200 });
    $("ex-metrics").replaceChildren(
      ...(s.metrics.length
        ? s.metrics.map((m) => el("figure", { class: "chart-box" }, renderChart(m.name, [{ label: s.run_name, summary: m }]), el("figcaption", { text: `${m.name} — ${m.count} points, last ${m.last} at step ${m.last_step}` })))
        : [el("p", { class: "hint", text: "This run has no metrics." })]),
    );
    const events = await c.listAuditEvents({ subject: `run:${runId}`, limit: 50 }).nextPage();
    $("ex-audit").replaceChildren(
      el("ol", { class: "timeline" }, ...(events?.items ?? []).map((e) =>
        el("li", {}, el("time", { datetime: e.time, text: e.time.replace("T", " ").replace(/\.\d+Z$/, "Z") }), " ", el("code", { text: e.action }), ` by ${e.actor?.id ?? "?"} (seq ${e.seq})`))),
    );
  }

  async function select(node, label) {
    $("ex-out").replaceChildren();
    try {
      await showLineage(node, label);
      if (node.startsWith("run:")) {
        await showRunDetails(node.slice(4));
      } else {
        $("ex-metrics").replaceChildren(el("p", { class: "hint", text: "Pick a run to see its metric curves." }));
        const [, ref] = node.split("dataset_version:");
        const [ds, digest] = ref.split("@");
        const events = await getClient().listAuditEvents({ subject: `dataset_version:${ds}@${digest}`, limit: 50 }).nextPage();
        $("ex-audit").replaceChildren(
          el("ol", { class: "timeline" }, ...(events?.items ?? []).map((e) =>
            el("li", {}, el("time", { datetime: e.time, text: e.time.replace("T", " ").replace(/\.\d+Z$/, "Z") }), " ", el("code", { text: e.action }), ` (seq ${e.seq})`))),
        );
      }
    } catch (err) {
      fail("ex-out", "explore")(err);
    }
  }

  async function compare() {
    const ids = [...selected].slice(0, MAX_COMPARE);
    if (ids.length < 1) {
      $("ex-out").replaceChildren(el("p", { class: "hint", text: "Tick one or more runs to compare." }));
      return;
    }
    const c = getClient();
    const name = $("ex-metric").value.trim() || "loss";
    const cmp = await c.compareMetrics(ids, name, { points: 200 });
    const series = cmp.runs.filter((r) => r.metrics.length).map((r) => ({ label: r.run_name, summary: r.metrics[0] }));
    $("ex-metrics").replaceChildren(
      series.length
        ? el("figure", { class: "chart-box" }, renderChart(name, series), el("figcaption", { text: `${name} of ${series.length} runs, overlaid` }))
        : el("p", { class: "hint", text: `None of the ticked runs has a metric named ${name}.` }),
    );
  }

  const guard = (fn, what) => () => fn().catch(fail("ex-out", what));
  $("ex-refresh").addEventListener("click", guard(async () => { await loadRuns(); await loadDatasets(); }, "list"));
  $("ex-status").addEventListener("change", guard(loadRuns, "list runs"));
  $("ex-on-version").addEventListener("change", guard(loadRuns, "list runs"));
  for (const id of ["ex-depth", "ex-direction"]) {
    $(id).addEventListener("change", () => focus && select(focus.node, focus.label));
  }
  $("ex-compare").addEventListener("click", guard(compare, "compare"));
  $("ex-runs").addEventListener("change", (ev) => {
    if (!ev.target.classList.contains("ex-pick")) return;
    if (ev.target.checked) selected.add(ev.target.value);
    else selected.delete(ev.target.value);
  });
  $("ex-runs").addEventListener("click", (ev) => {
    const b = ev.target.closest("button.ex-open");
    if (b) select(`run:${b.dataset.run}`, b.textContent);
  });
  $("ex-datasets").addEventListener("click", (ev) => {
    const d = ev.target.closest("button.ex-dataset");
    if (d) showVersions(d.dataset.dataset).catch(fail("ex-out", "list versions"));
    const v = ev.target.closest("button.ex-version");
    if (v) select(v.dataset.node, v.textContent);
  });

  return {
    /** After connecting (or anything that changed what exists): reload the lists. */
    refresh: () => Promise.all([loadRuns(), loadDatasets()]).catch(fail("ex-out", "list")),
    /** The version picked in section 2, as the "only runs on this version" filter. */
    setVersion: (v) => {
      const box = $("ex-on-version");
      box.dataset.version = v ? `${v.dataset_id}@${v.digest}` : "";
      box.disabled = !v;
      if (!v) box.checked = false;
    },
  };
}
