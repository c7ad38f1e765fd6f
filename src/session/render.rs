//! A cluster report for people: the text `fpmlb check` prints, and with
//! `--explain` every setting of every node and where it came from.
//! (JSON is the report's serde form.)

use std::fmt::Write;

use crate::session::compare::Difference;
use crate::session::verdict::{ClusterReport, NodeReport};

/// The report as a table per node and a verdict read at a glance; each difference
/// with what it does to sessions, in words.
pub fn text(report: &ClusterReport) -> String {
    let mut out = String::new();
    let failing: Vec<String> = report
        .nodes
        .iter()
        .filter(|n| n.verdict.fails())
        .map(|n| match n.worst().filter(|c| c.fails()) {
            Some(c) => format!("{} ({})", n.name, c.words()),
            None => format!("{} ({})", n.name, n.verdict.as_str()),
        })
        .collect();
    let warned = report
        .nodes
        .iter()
        .filter(|n| n.verdict == crate::session::verdict::Verdict::Warning)
        .count()
        + report.warnings.len();
    let headline = if report.is_ok() {
        let mut h = format!("OK: all {} nodes share PHP sessions", report.nodes.len());
        if warned > 0 {
            let _ = write!(
                h,
                " ({warned} warning{})",
                if warned == 1 { "" } else { "s" }
            );
        }
        h
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
        if let Some(l) = &report.listener {
            let _ = writeln!(
                out,
                "cookies judged for: {} (cookie {})",
                l.describe(),
                e.session_name
            );
        }
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
        let mut differences: Vec<&Difference> = n.differences.iter().collect();
        differences.sort_by_key(|d| (d.overruled, d.consequence));
        for d in differences {
            write_difference(&mut out, d);
        }
        for p in &n.problems {
            let _ = writeln!(out, "    problem: {p}");
        }
        for w in &n.warnings {
            let _ = writeln!(out, "    warning: {w}");
        }
        if let Some(l) = &n.locking {
            let _ = writeln!(out, "    locking: {}", l.settings);
            for m in &l.measured {
                let _ = writeln!(out, "      measured {m}");
            }
        }
        for r in &n.round_trip {
            let _ = writeln!(out, "    round trip: {r}");
        }
    }
    if !report.warnings.is_empty() {
        let _ = writeln!(out, "\nthe whole cluster:");
        for w in &report.warnings {
            let _ = writeln!(
                out,
                "  - {} ({}): {}",
                w.consequence.words(),
                w.consequence,
                w.text
            );
        }
    }
    if !report.notes.is_empty() {
        let _ = writeln!(out, "\nnotes:");
        for note in &report.notes {
            let _ = writeln!(out, "  - {note}");
        }
    }
    if report.nodes.iter().any(|n| !n.settings.is_empty()) {
        out.push_str(&explain(report));
    }
    out
}

fn write_difference(out: &mut String, d: &Difference) {
    let label = if d.overruled {
        "overruled"
    } else if d.consequence.fails() {
        "differs"
    } else if d.consequence.warns() {
        "warning"
    } else {
        "note"
    };
    let _ = writeln!(
        out,
        "    {label}: {}: expected {}, found {}",
        d.setting, d.expected, d.found
    );
    let verdict = if d.overruled {
        format!("not {} after all", d.consequence.words())
    } else {
        d.consequence.words().to_string()
    };
    let _ = writeln!(out, "      → {verdict}: {}", d.effect);
    if let Some(e) = &d.evidence {
        let _ = writeln!(out, "        shown by: {e}");
    }
}

/// `--explain`: per node, every session-relevant setting, its value, where it
/// came from, and what a difference does.
fn explain(report: &ClusterReport) -> String {
    let mut out = String::from("\nsettings, node by node (--explain):\n");
    for n in report.nodes.iter().filter(|n| !n.settings.is_empty()) {
        write_node_settings(&mut out, n);
    }
    out
}

fn write_node_settings(out: &mut String, n: &NodeReport) {
    let _ = write!(out, "\n{} ({})", n.name, n.address);
    if let Some(v) = &n.php_version {
        let _ = write!(out, ", PHP {v}");
    }
    out.push('\n');
    if let Some(files) = &n.ini_files {
        let _ = writeln!(
            out,
            "  php.ini: {}{}",
            files.php_ini.as_deref().unwrap_or("(none)"),
            match files.scanned.len() {
                0 => String::new(),
                k => format!(" and {k} scanned file{}", if k == 1 { "" } else { "s" }),
            }
        );
        if !files.user_ini.is_empty() {
            let _ = writeln!(out, "  .user.ini: {}", files.user_ini.join(", "));
        }
    }
    let key_w = n
        .settings
        .iter()
        .map(|s| s.setting.len())
        .max()
        .unwrap_or(7);
    let value_w = n
        .settings
        .iter()
        .map(|s| s.value.chars().count().min(40))
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(out, "  {:<key_w$}  {:<value_w$}  FROM", "SETTING", "VALUE");
    for s in &n.settings {
        let _ = write!(
            out,
            "  {:<key_w$}  {:<value_w$}  {}",
            s.setting, s.value, s.source
        );
        if let (Some(expected), Some(c)) = (&s.expected, s.consequence) {
            let _ = write!(out, "  [expected {expected}: {}]", c.words());
        }
        out.push('\n');
    }
}
