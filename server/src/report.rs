//! `report.html`: the human page of an evidence bundle.
//!
//! Written for a compliance reviewer who opens the bundle without tools: what the bundle is
//! about, which signed ledger state it proves against, the lineage as tables, the gate results
//! and the policy in force, and every audit event. Self-contained on purpose (inline CSS, no
//! scripts, no external URL) so it renders offline and cannot phone home, and every value is
//! HTML-escaped because it comes from API input. It is a convenience view: the signed members
//! next to it are the evidence, and the report says how to verify them.

use std::fmt::Write;

use datapilot::model::evidence::Predicate;
use datapilot::model::lineage::Lineage;
use datapilot::model::queries::RunMetricSummary;
use serde_json::Value;

use crate::model::Policy;

/// Everything the report shows.
#[derive(Debug)]
pub struct ReportInput<'a> {
    pub predicate: &'a Predicate,
    pub verifier: &'a str,
    pub lineage: &'a Lineage,
    pub events: &'a [(u64, Vec<u8>)],
    pub policy: &'a Policy,
    /// The metrics of the lineage's runs at the bundle's tree size (at most
    /// [`METRIC_RUNS`] runs, series downsampled to [`METRIC_POINTS`] buckets).
    pub metrics: &'a [RunMetricSummary],
}

/// At most this many runs of the lineage get their metric curves drawn (by run id).
pub const METRIC_RUNS: usize = 8;
/// Buckets per drawn series (each the mean, min and max of consecutive points).
pub const METRIC_POINTS: u32 = 120;
/// At most this many metric names get a chart (by name); the table lists every one.
const METRIC_CHARTS: usize = 12;

/// Escape text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1b1f24}\
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}\
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#f6f8fa}td.k{width:14rem;font-weight:600;background:#f6f8fa}code,.m{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;word-break:break-all}\
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.note{background:#fff8c5;border:1px solid #d4a72c;padding:.6rem .8rem;border-radius:4px}\
.sub{color:#57606a}figure.metric{margin:.8rem 0}figure.metric figcaption{font-size:12px}.key{margin-left:.8rem;white-space:nowrap}";

fn kv(out: &mut String, k: &str, v: &str) {
    let _ = write!(
        out,
        "<tr><td class=\"k\">{}</td><td class=\"m\">{}</td></tr>",
        esc(k),
        esc(v)
    );
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Render the report.
pub fn render(r: &ReportInput) -> String {
    let p = r.predicate;
    let scope_kind = match p.scope.kind.as_str() {
        "run" => "Run",
        _ => "Dataset version",
    };
    let mut o = String::new();
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    let _ = write!(
        o,
        "<title>DataPilot evidence: {} {}</title>",
        esc(scope_kind),
        esc(&p.scope.id)
    );
    let _ = write!(o, "<style>{STYLE}</style></head><body>");
    let _ = write!(
        o,
        "<h1>DataPilot evidence bundle</h1><p class=\"sub\">{} <code>{}</code></p>",
        esc(scope_kind),
        esc(&p.scope.id)
    );

    o.push_str("<h2>Scope and signed ledger state</h2><table>");
    kv(&mut o, "Scope kind", p.scope.kind.as_str());
    kv(&mut o, "Scope id", &p.scope.id);
    kv(&mut o, "Ledger origin", &p.origin);
    kv(&mut o, "Tree size", &p.tree_size.to_string());
    kv(&mut o, "Root hash (base64)", &p.root_hash);
    kv(
        &mut o,
        "Exported at (time of the last ledger event)",
        &p.exported_at,
    );
    kv(&mut o, "Exporter", &p.exporter);
    kv(&mut o, "Signing key (note verifier)", r.verifier);
    o.push_str("</table>");
    o.push_str("<p class=\"note\">This page is a readable summary, not the evidence itself. Verify the bundle \
        offline with a verifier key pinned from a trusted source (not from this file): the DSSE signature of \
        <code>evidence.dsse.json</code>, the SHA-256 of every member it lists, the checkpoint signature in \
        <code>ledger/checkpoint.txt</code> (its size and root must equal the values above), the inclusion proof \
        of every line of <code>audit.jsonl</code>, and that every lineage edge names an event of the slice. \
        <code>datapilot verify</code> and the demo page do all of this.</p>");

    let events: Vec<(u64, Value)> = r
        .events
        .iter()
        .map(|(seq, leaf)| (*seq, serde_json::from_slice(leaf).unwrap_or(Value::Null)))
        .collect();

    // Gates and policy.
    o.push_str("<h2>Policy in force</h2><table>");
    kv(&mut o, "Policy version", &r.policy.version.to_string());
    let gates = if r.policy.required_gates.is_empty() {
        "(none)".to_string()
    } else {
        r.policy.required_gates.join(", ")
    };
    kv(&mut o, "Required gates", &gates);
    kv(
        &mut o,
        "Run token lifetime (s)",
        &r.policy.run_token_ttl_seconds.to_string(),
    );
    kv(&mut o, "Updated at", &r.policy.updated_at);
    kv(&mut o, "Updated by", &r.policy.updated_by);
    o.push_str("</table>");

    o.push_str("<h2>Quality gate results</h2>");
    let gate_rows: Vec<&(u64, Value)> = events
        .iter()
        .filter(|(_, e)| s(e, "action") == "gate.record")
        .collect();
    if gate_rows.is_empty() {
        o.push_str("<p>No gate results were recorded for the dataset versions in scope.</p>");
    } else {
        o.push_str("<table><tr><th>Seq</th><th>Time</th><th>Dataset version</th><th>Gate</th><th>Status</th><th>Recorded by</th></tr>");
        for (seq, e) in gate_rows {
            let data = e.get("data").cloned().unwrap_or(Value::Null);
            let status = s(&data, "status");
            let class = if status == "passed" { "ok" } else { "bad" };
            let actor = e
                .get("actor")
                .map(|a| format!("{}:{}", s(a, "kind"), s(a, "id")))
                .unwrap_or_default();
            let _ = write!(
                o,
                "<tr><td>{seq}</td><td class=\"m\">{}</td><td class=\"m\">{}</td><td>{}</td><td class=\"{class}\">{}</td><td class=\"m\">{}</td></tr>",
                esc(s(e, "time")),
                esc(s(e, "subject").trim_start_matches("dataset_version:")),
                esc(s(&data, "gate")),
                esc(status),
                esc(&actor)
            );
        }
        o.push_str("</table>");
    }

    // Lineage: the picture, then the same graph as tables.
    o.push_str("<h2>Lineage</h2>");
    o.push_str(&lineage_svg(r.lineage));
    o.push_str("<h3>Nodes</h3><table><tr><th>Kind</th><th>Label</th><th>Id</th></tr>");
    for n in &r.lineage.nodes {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td class=\"m\">{}</td></tr>",
            esc(n.kind.as_str()),
            esc(&n.label),
            esc(&n.id)
        );
    }
    o.push_str("</table><h3>Edges</h3><table><tr><th>From</th><th>Relation</th><th>To</th><th>Backed by event</th></tr>");
    for e in &r.lineage.edges {
        let _ = write!(
            o,
            "<tr><td class=\"m\">{}</td><td>{}</td><td class=\"m\">{}</td><td>seq {}</td></tr>",
            esc(&e.from),
            esc(e.kind.as_str()),
            esc(&e.to),
            e.seq
        );
    }
    o.push_str("</table>");

    metrics_section(&mut o, r.metrics);

    // Audit slice.
    let _ = write!(o, "<h2>Audit events ({})</h2>", events.len());
    o.push_str("<table><tr><th>Seq</th><th>Time</th><th>Actor</th><th>Action</th><th>Subject</th><th>Data</th></tr>");
    for (seq, e) in &events {
        let actor = e
            .get("actor")
            .map(|a| format!("{}:{} ({})", s(a, "kind"), s(a, "id"), s(a, "role")))
            .unwrap_or_default();
        let data = e.get("data").map(|d| d.to_string()).unwrap_or_default();
        let _ = write!(
            o,
            "<tr><td>{seq}</td><td class=\"m\">{}</td><td class=\"m\">{}</td><td>{}</td><td class=\"m\">{}</td><td class=\"m\">{}</td></tr>",
            esc(s(e, "time")),
            esc(&actor),
            esc(s(e, "action")),
            esc(s(e, "subject")),
            esc(&data)
        );
    }
    o.push_str("</table></body></html>\n");
    o
}

/// The lineage graph as an inline SVG in a plain layered layout, the demo page's (demo-web/
/// graph.js): a node's column is one more than the deepest node with an edge into it, rows in
/// kind then label order, edges as curves with arrows. Deterministic (the bundle is), no script,
/// no external reference; each node's full id is its tooltip, the tables below list them all.
pub fn lineage_svg(lineage: &Lineage) -> String {
    use std::collections::BTreeMap;
    const W: usize = 190;
    const H: usize = 34;
    const GX: usize = 70;
    const GY: usize = 14;
    let kind_rank = |k: &str| {
        ["dataset_version", "run", "artifact", "git_commit", "image"]
            .iter()
            .position(|x| *x == k)
            .unwrap_or(9)
    };
    let mut incoming: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in &lineage.edges {
        incoming
            .entry(e.to.as_str())
            .or_default()
            .push(e.from.as_str());
    }
    fn depth<'a>(
        id: &'a str,
        incoming: &BTreeMap<&'a str, Vec<&'a str>>,
        memo: &mut BTreeMap<&'a str, usize>,
        visiting: &mut Vec<&'a str>,
    ) -> usize {
        if let Some(d) = memo.get(id) {
            return *d;
        }
        if visiting.contains(&id) {
            return 0; // a cycle (never in a lineage graph): cut it
        }
        visiting.push(id);
        let d = incoming
            .get(id)
            .map(|from| {
                from.iter()
                    .map(|f| depth(f, incoming, memo, visiting) + 1)
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        visiting.pop();
        memo.insert(id, d);
        d
    }
    let mut memo = BTreeMap::new();
    let mut columns: Vec<Vec<&datapilot::model::lineage::LineageNode>> = Vec::new();
    for n in &lineage.nodes {
        let d = depth(n.id.as_str(), &incoming, &mut memo, &mut Vec::new());
        if columns.len() <= d {
            columns.resize(d + 1, Vec::new());
        }
        columns[d].push(n);
    }
    let mut pos: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut rows = 0;
    for (x, col) in columns.iter_mut().enumerate() {
        col.sort_by(|a, b| {
            (kind_rank(a.kind.as_str()), &a.label, &a.id).cmp(&(
                kind_rank(b.kind.as_str()),
                &b.label,
                &b.id,
            ))
        });
        for (y, n) in col.iter().enumerate() {
            pos.insert(n.id.as_str(), (10 + x * (W + GX), 10 + y * (H + GY)));
        }
        rows = rows.max(col.len());
    }
    let width = 20 + columns.len() * W + columns.len().saturating_sub(1) * GX;
    let height = 20 + rows * H + rows.saturating_sub(1) * GY;
    let mut o = String::new();
    let _ = write!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"lineage\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"Lineage graph: {} nodes, {} edges\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#7a8796\"/></marker></defs>",
        lineage.nodes.len(),
        lineage.edges.len()
    );
    for e in &lineage.edges {
        let (Some(&(ax, ay)), Some(&(bx, by))) = (pos.get(e.from.as_str()), pos.get(e.to.as_str()))
        else {
            continue;
        };
        let (x1, y1, x2, y2) = (ax + W, ay + H / 2, bx, by + H / 2);
        let mx = (x1 + x2) / 2;
        let stroke = match e.kind.as_str() {
            "input" => "#1f5fbf",
            "produced" => "#17703a",
            _ => "#7a8796",
        };
        let _ = write!(
            o,
            "<path d=\"M {x1} {y1} C {mx} {y1}, {mx} {y2}, {x2} {y2}\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"><title>{} {} {} (seq {})</title></path>",
            esc(&e.from),
            esc(e.kind.as_str()),
            esc(&e.to),
            e.seq
        );
    }
    for n in &lineage.nodes {
        let (x, y) = pos[n.id.as_str()];
        let (fill, stroke) = match n.kind.as_str() {
            "run" => ("#e8f0fe", "#1f5fbf"),
            "dataset_version" => ("#e6f4ea", "#17703a"),
            "artifact" => ("#fff4e0", "#8a5a00"),
            _ => ("#ffffff", "#5a6675"),
        };
        let label: String = if n.label.chars().count() > 26 {
            n.label.chars().take(25).chain(['…']).collect()
        } else {
            n.label.clone()
        };
        let _ = write!(
            o,
            "<g transform=\"translate({x} {y})\"><title>{}</title><rect width=\"{W}\" height=\"{H}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\"/>\
             <text x=\"8\" y=\"13\" font-size=\"10\" fill=\"#5a6675\">{}</text><text x=\"8\" y=\"27\" font-size=\"12\" font-family=\"ui-monospace,Menlo,monospace\" fill=\"#1b2430\">{}</text></g>",
            esc(&n.id),
            esc(&n.kind.as_str().replace('_', " ")),
            esc(&label)
        );
    }
    o.push_str("</svg>");
    o
}

/// Strokes and dash patterns told apart without colour (as demo-web/charts.js).
const SERIES_STYLE: [(&str, &str); 8] = [
    ("#1f5fbf", ""),
    ("#c2410c", "6 3"),
    ("#17703a", "2 3"),
    ("#7c3aed", "8 3 2 3"),
    ("#0e7490", "4 4"),
    ("#a16207", "1 2"),
    ("#be185d", "10 4"),
    ("#334155", "3 2 1 2"),
];

/// A number short enough for an axis label, formatted the same everywhere (the bundle is
/// byte-deterministic).
fn num(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".into()
        } else {
            s.into()
        }
    }
}

/// "Metrics": one chart per metric name with a curve per run (the bucket means; a light band
/// from bucket min to max when there is one run), then a table of count, last, min and max per
/// run and metric that says the same in text.
fn metrics_section(o: &mut String, runs: &[RunMetricSummary]) {
    let mut names: Vec<&str> = runs
        .iter()
        .flat_map(|r| r.metrics.iter().map(|m| m.name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return;
    }
    o.push_str("<h2>Metrics</h2><p class=\"sub\">Curves of the runs in the lineage as logged up to this bundle's tree size: each point is the mean of consecutive points (the band: their min and max). The ledger holds each batch's digest; the points are the server's copy.</p>");
    for name in names.iter().take(METRIC_CHARTS) {
        o.push_str(&metric_svg(name, runs));
    }
    if names.len() > METRIC_CHARTS {
        let _ = write!(
            o,
            "<p class=\"sub\">{} more metrics in the table only.</p>",
            names.len() - METRIC_CHARTS
        );
    }
    o.push_str("<table><tr><th>Run</th><th>Metric</th><th>Points</th><th>Last (step)</th><th>Min</th><th>Max</th></tr>");
    for r in runs {
        for m in &r.metrics {
            let _ = write!(
                o,
                "<tr><td class=\"m\">{} ({})</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td></tr>",
                esc(&r.run_name),
                esc(&r.run_id),
                esc(&m.name),
                m.count,
                num(m.last),
                m.last_step,
                num(m.min),
                num(m.max)
            );
        }
    }
    o.push_str("</table>");
}

/// One metric across `runs` as an inline SVG line chart (no script, deterministic).
pub fn metric_svg(name: &str, runs: &[RunMetricSummary]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 220.0;
    const L: f64 = 64.0; // left margin: value labels
    const R: f64 = 12.0;
    const T: f64 = 12.0;
    const B: f64 = 34.0; // bottom margin: step labels
    let series: Vec<(&RunMetricSummary, &datapilot::model::queries::MetricSummary)> = runs
        .iter()
        .filter_map(|r| r.metrics.iter().find(|m| m.name == name).map(|m| (r, m)))
        .collect();
    let (mut s0, mut s1, mut v0, mut v1) = (u64::MAX, 0u64, f64::INFINITY, f64::NEG_INFINITY);
    for (_, m) in &series {
        for p in &m.series {
            s0 = s0.min(p.step);
            s1 = s1.max(p.step);
            v0 = v0.min(p.min);
            v1 = v1.max(p.max);
        }
    }
    if s0 > s1 {
        (s0, s1, v0, v1) = (0, 1, 0.0, 1.0);
    }
    if s1 == s0 {
        s1 = s0 + 1;
    }
    if v1 <= v0 {
        let pad = if v0 == 0.0 { 1.0 } else { v0.abs() / 10.0 };
        (v0, v1) = (v0 - pad, v1 + pad);
    }
    let x = |step: u64| L + (step - s0) as f64 / (s1 - s0) as f64 * (W - L - R);
    let y = |v: f64| T + (v1 - v) / (v1 - v0) * (H - T - B);
    let mut o = String::new();
    let _ = write!(
        o,
        "<figure class=\"metric\"><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"Metric {}: {} run(s), steps {s0} to {s1}, values {} to {}\">",
        esc(name),
        series.len(),
        num(v0),
        num(v1)
    );
    // Axes and their extremes.
    let _ = write!(
        o,
        "<path d=\"M {L} {T} V {:.1} H {:.1}\" fill=\"none\" stroke=\"#8c959f\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#57606a\">{}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#57606a\">{}</text>\
         <text x=\"{L}\" y=\"{:.1}\" font-size=\"10\" fill=\"#57606a\">step {s0}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#57606a\">step {s1}</text>",
        H - B,
        W - R,
        L - 6.0,
        T + 8.0,
        esc(&num(v1)),
        L - 6.0,
        H - B,
        esc(&num(v0)),
        H - B + 14.0,
        W - R,
        H - B + 14.0,
    );
    for (i, (r, m)) in series.iter().enumerate() {
        let (stroke, dash) = SERIES_STYLE[i % SERIES_STYLE.len()];
        if series.len() == 1 && m.series.len() > 1 {
            // The min-max band: up along the maxima, back along the minima.
            let mut d = String::new();
            for (k, p) in m.series.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1} {:.1} ",
                    if k == 0 { "M " } else { "L " },
                    x(p.step),
                    y(p.max)
                );
            }
            for p in m.series.iter().rev() {
                let _ = write!(d, "L {:.1} {:.1} ", x(p.step), y(p.min));
            }
            let _ = write!(
                o,
                "<path d=\"{}Z\" fill=\"{stroke}\" fill-opacity=\"0.12\" stroke=\"none\"/>",
                d
            );
        }
        let pts: Vec<String> = m
            .series
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.step), y(p.value)))
            .collect();
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{dash}\"")
        };
        let _ = write!(
            o,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"1.8\"{dash}><title>{} ({}): {} points, last {} at step {}</title></polyline>",
            pts.join(" "),
            esc(&r.run_name),
            esc(&r.run_id),
            m.count,
            esc(&num(m.last)),
            m.last_step
        );
        if m.series.len() == 1 {
            let p = &m.series[0];
            let _ = write!(
                o,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{stroke}\"/>",
                x(p.step),
                y(p.value)
            );
        }
    }
    o.push_str("</svg><figcaption>");
    let _ = write!(o, "<strong>{}</strong>", esc(name));
    for (i, (r, _)) in series.iter().enumerate() {
        let (stroke, dash) = SERIES_STYLE[i % SERIES_STYLE.len()];
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{dash}\"")
        };
        let _ = write!(
            o,
            " <span class=\"key\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"28\" height=\"8\" aria-hidden=\"true\"><line x1=\"0\" y1=\"4\" x2=\"28\" y2=\"4\" stroke=\"{stroke}\" stroke-width=\"2\"{dash}/></svg> {} <code>{}</code></span>",
            esc(&r.run_name),
            esc(&r.run_id)
        );
    }
    o.push_str("</figcaption></figure>");
    o
}

#[cfg(test)]
mod tests {
    use super::{esc, lineage_svg, metric_svg, num};
    use datapilot::model::lineage::Lineage;

    #[test]
    fn lineage_picture_is_layered_escaped_and_deterministic() {
        // raw -> run -> model, the run built from a commit: three columns.
        let g: Lineage = serde_json::from_value(serde_json::json!({
            "nodes": [
                { "id": "dataset_version:ds_1@sha256:aa", "kind": "dataset_version", "label": "raw<1>" },
                { "id": "run:run_1", "kind": "run", "label": "train" },
                { "id": "dataset_version:ds_2@sha256:bb", "kind": "dataset_version", "label": "model" },
                { "id": "git_commit:abc", "kind": "git_commit", "label": "abc" }
            ],
            "edges": [
                { "from": "dataset_version:ds_1@sha256:aa", "to": "run:run_1", "kind": "input", "seq": 3 },
                { "from": "run:run_1", "to": "dataset_version:ds_2@sha256:bb", "kind": "produced", "seq": 5 },
                { "from": "run:run_1", "to": "git_commit:abc", "kind": "built_from", "seq": 3 }
            ]
        }))
        .unwrap();
        let svg = lineage_svg(&g);
        assert_eq!(svg, lineage_svg(&g));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("raw&lt;1&gt;") && !svg.contains("raw<1>"));
        // Columns: raw at x 10, the run at 270, model and commit at 530 (model first by kind).
        assert!(svg.contains(
            "<g transform=\"translate(10 10)\"><title>dataset_version:ds_1@sha256:aa</title>"
        ));
        assert!(svg.contains("<g transform=\"translate(270 10)\"><title>run:run_1</title>"));
        assert!(svg.contains(
            "<g transform=\"translate(530 10)\"><title>dataset_version:ds_2@sha256:bb</title>"
        ));
        assert!(svg.contains("<g transform=\"translate(530 58)\"><title>git_commit:abc</title>"));
        assert_eq!(svg.matches("marker-end=").count(), 3, "one curve per edge");
        assert!(!svg.contains("<script") && !svg.contains("href"));
    }

    #[test]
    fn metric_charts_overlay_runs_escaped_and_deterministic() {
        let runs: Vec<datapilot::model::queries::RunMetricSummary> =
            serde_json::from_value(serde_json::json!([
                { "run_id": "run_a", "run_name": "a<b>", "metrics": [
                    { "name": "loss", "count": 3, "last_step": 2, "last": 0.25, "min": 0.25, "max": 1.0,
                      "series": [ { "step": 0, "value": 1.0, "min": 1.0, "max": 1.0 },
                                  { "step": 1, "value": 0.5, "min": 0.5, "max": 0.5 },
                                  { "step": 2, "value": 0.25, "min": 0.25, "max": 0.25 } ] } ] },
                { "run_id": "run_b", "run_name": "b", "metrics": [
                    { "name": "loss", "count": 1, "last_step": 4, "last": 2.0, "min": 2.0, "max": 2.0,
                      "series": [ { "step": 4, "value": 2.0, "min": 2.0, "max": 2.0 } ] } ] }
            ]))
            .unwrap();
        let svg = metric_svg("loss", &runs);
        assert_eq!(svg, metric_svg("loss", &runs));
        assert_eq!(svg.matches("<polyline").count(), 2, "one curve per run");
        // Steps 0..4 map to x 64..628 and values 0.25..2 to y 186..12: run a's first point.
        assert!(
            svg.contains("points=\"64.0,111.4 205.0,161.1 346.0,186.0\""),
            "{svg}"
        );
        assert!(
            svg.contains("<circle cx=\"628.0\" cy=\"12.0\""),
            "run b's single point"
        );
        assert!(svg.contains("a&lt;b&gt;") && !svg.contains("a<b>"));
        assert!(
            svg.contains("stroke-dasharray=\"6 3\""),
            "the second run is dashed"
        );
        assert!(!svg.contains("<script") && !svg.contains("href"));
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(-0.0), "0");
        assert_eq!(num(1.5e-7), "1.500e-7");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<script>alert('x')&\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&amp;&quot;&lt;/script&gt;"
        );
    }
}
