//! A cluster report for people: the text `fpmlb check` prints.
//! (JSON is the report's serde form.)

use std::fmt::Write;

use crate::session::verdict::ClusterReport;

/// The report as a table per node and a verdict read at a glance.
pub fn text(report: &ClusterReport) -> String {
    let mut out = String::new();
    let failing: Vec<&str> = report
        .nodes
        .iter()
        .filter(|n| n.verdict.fails())
        .map(|n| n.name.as_str())
        .collect();
    let headline = if report.is_ok() {
        format!("OK: all {} nodes share PHP sessions", report.nodes.len())
    } else if failing.is_empty() {
        "FAIL: the cluster could not be confirmed consistent".to_string()
    } else {
        format!(
            "FAIL: {} of {} nodes would lose sessions: {}",
            failing.len(),
            report.nodes.len(),
            failing.join(", ")
        )
    };
    let _ = writeln!(out, "fpmlb check: {headline}");
    if let Some(e) = &report.expected {
        let _ = writeln!(
            out,
            "expected: {} {} ({})",
            e.save_handler, e.save_path, e.source
        );
    }
    if !report.store.is_empty() {
        let _ = writeln!(out, "\nstore, as fpmlb sees it:");
        for s in &report.store {
            let latency = s
                .latency_ms
                .map_or("-".to_string(), |ms| format!("{ms:.2} ms"));
            let state = if s.ok { "ok" } else { "FAIL" };
            let _ = writeln!(
                out,
                "  {:<24} {:<5} {:>10}  {}",
                s.server, state, latency, s.detail
            );
        }
    }
    let name_w = report
        .nodes
        .iter()
        .map(|n| n.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let addr_w = report
        .nodes
        .iter()
        .map(|n| n.address.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        out,
        "\n{:<name_w$}  {:<addr_w$}  {:<18} {:<12} SAVE PATH",
        "NODE", "ADDRESS", "VERDICT", "HANDLER"
    );
    for n in &report.nodes {
        let _ = writeln!(
            out,
            "{:<name_w$}  {:<addr_w$}  {:<18} {:<12} {}",
            n.name,
            n.address,
            n.verdict.as_str(),
            n.save_handler.as_deref().unwrap_or("-"),
            n.save_path.as_deref().unwrap_or("-")
        );
        for d in &n.differences {
            let _ = writeln!(
                out,
                "    differs: {}: expected {}, found {}",
                d.setting, d.expected, d.found
            );
        }
        for p in &n.problems {
            let _ = writeln!(out, "    problem: {p}");
        }
        for w in &n.warnings {
            let _ = writeln!(out, "    warning: {w}");
        }
        for r in &n.round_trip {
            let _ = writeln!(out, "    round trip: {r}");
        }
    }
    if !report.notes.is_empty() {
        let _ = writeln!(out, "\nnotes:");
        for note in &report.notes {
            let _ = writeln!(out, "  - {note}");
        }
    }
    out
}
