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
}

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
.sub{color:#57606a}";

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

    // Lineage.
    o.push_str(
        "<h2>Lineage</h2><h3>Nodes</h3><table><tr><th>Kind</th><th>Label</th><th>Id</th></tr>",
    );
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

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<script>alert('x')&\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&amp;&quot;&lt;/script&gt;"
        );
    }
}
