// The lineage graph as SVG, in a plain layered layout (no library: nothing to load, nothing
// for the CSP to allow). Layers follow the edges: a node's layer is one more than the
// deepest node pointing at it (dataset version → run → produced version → …); the git commit
// and image of a run sit in the run's layer + 1 like its outputs. Within a layer, nodes are
// sorted by kind and label. Every node is a focusable button (Tab, Enter/Space) that calls
// `onSelect(node)`; the SVG has a title and a text description for screen readers.

const NS = "http://www.w3.org/2000/svg";
const W = 190; // node width
const H = 34; // node height
const GX = 70; // gap between layers
const GY = 14; // gap between nodes of a layer
const KIND_ORDER = ["dataset_version", "run", "artifact", "git_commit", "image"];

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children) e.append(c);
  return e;
}

/** Layer of every node: longest path from a node without incoming edges (cycles are cut). */
export function layers(graph) {
  const incoming = new Map(graph.nodes.map((n) => [n.id, []]));
  for (const e of graph.edges) incoming.get(e.to)?.push(e.from);
  const layer = new Map();
  const visiting = new Set();
  const depth = (id) => {
    if (layer.has(id)) return layer.get(id);
    if (visiting.has(id)) return 0;
    visiting.add(id);
    const d = Math.max(-1, ...(incoming.get(id) ?? []).map(depth)) + 1;
    visiting.delete(id);
    layer.set(id, d);
    return d;
  };
  for (const n of graph.nodes) depth(n.id);
  return layer;
}

/**
 * Renders `graph` ({ nodes: [{ id, kind, label }], edges: [{ from, to, kind }] }) into a new
 * <svg>; `focusId` is drawn highlighted; `onSelect(node)` runs on click or Enter/Space.
 */
export function renderLineage(graph, { focusId, onSelect, title }) {
  const layer = layers(graph);
  const columns = [];
  for (const n of graph.nodes) (columns[layer.get(n.id)] ??= []).push(n);
  for (const col of columns) {
    col?.sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) || a.label.localeCompare(b.label));
  }
  const pos = new Map();
  let rows = 0;
  columns.forEach((col, x) => {
    (col ?? []).forEach((n, y) => pos.set(n.id, { x: 10 + x * (W + GX), y: 10 + y * (H + GY) }));
    rows = Math.max(rows, col?.length ?? 0);
  });
  const width = 20 + columns.length * W + Math.max(0, columns.length - 1) * GX;
  const height = 20 + rows * H + Math.max(0, rows - 1) * GY;
  const desc = `${graph.nodes.length} nodes and ${graph.edges.length} edges in ${columns.length} layers.`;
  const root = svg(
    "svg",
    { class: "lineage", viewBox: `0 0 ${width} ${height}`, width, height, role: "group", "aria-label": title },
    svg("title", {}, document.createTextNode(title)),
    svg("desc", {}, document.createTextNode(desc)),
    svg(
      "defs",
      {},
      svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" })),
    ),
  );
  for (const e of graph.edges) {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + W;
    const y1 = a.y + H / 2;
    const x2 = b.x;
    const y2 = b.y + H / 2;
    const mx = (x1 + x2) / 2;
    root.append(
      svg("path", { class: `edge edge-${e.kind}`, d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`, "marker-end": "url(#arrow)" },
        svg("title", {}, document.createTextNode(`${e.from} ${e.kind} ${e.to}`))),
    );
  }
  graph.nodes.forEach((n) => {
    const p = pos.get(n.id);
    const label = n.label.length > 26 ? `${n.label.slice(0, 25)}…` : n.label;
    const kind = n.kind.replace("_", " ");
    const g = svg(
      "g",
      {
        class: `node node-${n.kind}${n.id === focusId ? " focus" : ""}`,
        transform: `translate(${p.x} ${p.y})`,
        tabindex: 0,
        role: "button",
        // Named from its content, the two visible lines (an aria-label or -labelledby over
        // two <text> elements trips axe's label-content-name-mismatch; a <title> with the
        // full id would be text missing from the name).
        "aria-current": n.id === focusId ? "true" : null,
        "data-node": n.id,
      },
      svg("rect", { width: W, height: H, rx: 6 }),
      svg("text", { x: 8, y: 13, class: "node-kind" }, document.createTextNode(kind)),
      svg("text", { x: 8, y: 27, class: "node-label" }, document.createTextNode(label)),
    );
    const pick = () => onSelect?.(n);
    g.addEventListener("click", pick);
    g.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        pick();
      }
    });
    root.append(g);
  });
  return root;
}
