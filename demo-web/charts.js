// Metric curves as SVG line charts (no library). One chart per metric; several runs of the
// same metric are overlaid, each in its own colour and dash pattern (told apart without
// colour too) with a legend. Series come from getMetricSummary / compareMetrics: buckets of
// { step, value, min, max }; the min–max band is drawn under the mean line. Each chart has a
// title and a text summary (last, min, max per run) for screen readers.

const NS = "http://www.w3.org/2000/svg";
const W = 560;
const H = 220;
const PAD = { l: 56, r: 12, t: 12, b: 34 };
const STYLES = 6; // series-0 … series-5 in style.css

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children) e.append(c);
  return e;
}

const fmt = (v) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : String(+v.toPrecision(4)));

/**
 * One chart of metric `name` for `series`: [{ label, summary }] where `summary` is a
 * MetricSummary ({ count, last, min, max, series: [{ step, value, min, max }] }).
 */
export function renderChart(name, series) {
  const all = series.flatMap((s) => s.summary.series);
  const steps = all.map((p) => p.step);
  const x0 = Math.min(...steps);
  const x1 = Math.max(...steps, x0 + 1);
  const y0 = Math.min(...all.map((p) => p.min));
  const y1 = Math.max(...all.map((p) => p.max), y0 + 1e-12);
  const sx = (s) => PAD.l + ((s - x0) / (x1 - x0)) * (W - PAD.l - PAD.r);
  const sy = (v) => H - PAD.b - ((v - y0) / (y1 - y0)) * (H - PAD.t - PAD.b);
  const title = `${name}: ${series.map((s) => s.label).join(", ")}`;
  const desc = series
    .map((s) => `${s.label}: ${s.summary.count} points, last ${fmt(s.summary.last)} at step ${s.summary.last_step}, min ${fmt(s.summary.min)}, max ${fmt(s.summary.max)}`)
    .join("; ");
  const root = svg(
    "svg",
    { class: "chart", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": `${title}. ${desc}` },
    svg("title", {}, document.createTextNode(title)),
    svg("desc", {}, document.createTextNode(desc)),
    svg("line", { class: "axis", x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b }),
    svg("line", { class: "axis", x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: H - PAD.b }),
    svg("text", { class: "tick", x: PAD.l - 4, y: PAD.t + 8, "text-anchor": "end" }, document.createTextNode(fmt(y1))),
    svg("text", { class: "tick", x: PAD.l - 4, y: H - PAD.b, "text-anchor": "end" }, document.createTextNode(fmt(y0))),
    svg("text", { class: "tick", x: PAD.l, y: H - PAD.b + 14, "text-anchor": "start" }, document.createTextNode(`step ${x0}`)),
    svg("text", { class: "tick", x: W - PAD.r, y: H - PAD.b + 14, "text-anchor": "end" }, document.createTextNode(`step ${x1}`)),
  );
  series.forEach((s, i) => {
    const pts = s.summary.series;
    const cls = `series-${i % STYLES}`;
    if (pts.some((p) => p.min !== p.max)) {
      const band = [...pts.map((p) => `${sx(p.step)},${sy(p.max)}`), ...pts.slice().reverse().map((p) => `${sx(p.step)},${sy(p.min)}`)].join(" ");
      root.append(svg("polygon", { class: `band ${cls}`, points: band }));
    }
    root.append(svg("polyline", { class: `line ${cls}`, points: pts.map((p) => `${sx(p.step)},${sy(p.value)}`).join(" "), "data-run": s.label }));
  });
  // Legend under the axis.
  series.forEach((s, i) => {
    const x = PAD.l + i * 150;
    root.append(
      svg("line", { class: `line series-${i % STYLES}`, x1: x, y1: H - 8, x2: x + 18, y2: H - 8 }),
      svg("text", { class: "legend", x: x + 22, y: H - 4 }, document.createTextNode(s.label.length > 18 ? `${s.label.slice(0, 17)}…` : s.label)),
    );
  });
  return root;
}
