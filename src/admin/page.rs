//! `/status`: the status page, one HTML document with its style inline and
//! no script, font or image from anywhere (it works air-gapped, and the
//! Content-Security-Policy sent with it forbids anything else). It reloads
//! itself every few seconds.
//!
//! Every text that comes from outside (backend names, addresses, PHP's
//! settings, error messages) goes through [`Esc`].

use std::fmt::{self, Display, Write};

use crate::admin::view::{BackendView, ReadAheadView, StatusDoc};
use crate::session::verdict::{ClusterReport, Verdict};

/// Seconds between automatic reloads of the page.
pub const REFRESH_SECONDS: u32 = 5;

/// The policy sent with the page: nothing but its own inline style.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Text escaped for HTML element content and quoted attribute values.
pub struct Esc<'a>(pub &'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// Escapes `s` for HTML.
pub fn escape(s: &str) -> String {
    Esc(s).to_string()
}

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em; color: #1d2125; background: #fafbfc; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
.meta { color: #5b6470; margin-bottom: 1em; }
.summary { display: flex; flex-wrap: wrap; gap: .6em 2em; padding: .7em 1em; border-radius: 6px; border: 1px solid #d0d7de; background: #fff; }
.summary.ok { border-left: 6px solid #2da44e; }
.summary.fail { border-left: 6px solid #cf222e; }
.summary.none { border-left: 6px solid #8c959f; }
.summary ul.notes { flex-basis: 100%; margin: 0; color: #5b6470; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: .93em; }
th, td { border: 1px solid #d0d7de; padding: .3em .45em; text-align: left; vertical-align: top; }
th { background: #f0f3f6; font-weight: 600; white-space: nowrap; }
thead tr.sub th { font-weight: 500; font-size: .9em; white-space: normal; }
th.group { text-align: center; }
td code.addr { white-space: nowrap; word-break: normal; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.state-down { background: #ffebe9; }
tr.drained { background: #fff4d6; }
tr.drained td.name { border-left: 6px solid #bf8700; }
tr.state-down td.name { border-left: 6px solid #cf222e; }
tr.state-up td.name { border-left: 6px solid #2da44e; }
tr.details td { border-top: none; font-size: .92em; }
tr.details ul { margin: 0; }
.consequence { font-weight: 600; }
li.fails .consequence { color: #cf222e; }
li.warns .consequence { color: #9a6700; }
li.harmless, li.overruled { color: #5b6470; }
li.overruled .consequence { text-decoration: line-through; }
.summary ul.warnings { flex-basis: 100%; margin: 0; color: #9a6700; }
.badge { display: inline-block; padding: .05em .5em; border-radius: 1em; font-size: .9em; font-weight: 600; white-space: nowrap; }
.badge.up { background: #dafbe1; color: #116329; }
.badge.down { background: #cf222e; color: #fff; }
.badge.drained { background: #bf8700; color: #fff; }
.verdict { font-weight: 600; }
.verdict.ok { color: #116329; }
.verdict.warning, .verdict.unknown { color: #9a6700; }
.verdict.bad { color: #cf222e; }
ul { margin: .2em 0 0; padding-left: 1.2em; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f0f3f6; padding: 0 .25em; border-radius: 3px; word-break: break-all; }
.muted { color: #8c959f; }
footer { margin-top: 1.5em; color: #5b6470; font-size: .9em; }
"#;

/// The whole page.
/// The whole page; `host` (the request's Host) makes the footer's example
/// commands copyable.
pub fn render(doc: &StatusDoc<'_>, host: Option<&str>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail.
    let _ = write_page(&mut out, doc, host.unwrap_or("ADMIN"));
    out
}

fn write_page(out: &mut String, doc: &StatusDoc<'_>, host: &str) -> fmt::Result {
    let up = doc.backends.iter().filter(|b| b.state == "up").count();
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>fpmlb: {up}/{} backends up</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        doc.backends.len()
    )?;
    write!(
        out,
        "<h1>fpmlb status</h1>\n<div class=\"meta\">fpmlb {} · up {} · {up} of {} backends take requests · \
         this page reloads every {REFRESH_SECONDS} s · <a href=\"status.json\">status.json</a> · \
         <a href=\"metrics\">metrics</a></div>\n",
        Esc(doc.version),
        Uptime(doc.uptime_seconds),
        doc.backends.len()
    )?;
    write_session_summary(out, doc.session)?;
    write_backends(out, doc)?;
    write_read_ahead(out, &doc.read_ahead)?;
    writeln!(
        out,
        "<div class=\"summary none\" id=\"compression\"><div title=\"compression.max_memory: past it, a response takes a cheaper coding, or none\">compressors: {} of {}; for want of it, {} responses took a cheaper coding, {} none</div></div>",
        Size(doc.compression.memory_bytes),
        Size(doc.compression.memory_budget_bytes),
        doc.compression.cheaper_coding_for_memory,
        doc.compression.uncompressed_for_memory,
    )?;
    write_store(out, doc.session)?;
    write!(
        out,
        "<footer>Drain a backend (no new requests; requests in flight finish): \
         <code>curl -X POST -H 'Authorization: Bearer TOKEN' http://{}/backends/NAME/drain</code>; \
         back in rotation: <code>…/backends/NAME/enable</code>. \
         The read pages (this one, status.json, metrics) need no token.</footer>\n</body>\n</html>\n",
        Esc(host)
    )?;
    Ok(())
}

/// The cluster's session verdict and the expected store.
fn write_session_summary(out: &mut String, report: Option<&ClusterReport>) -> fmt::Result {
    let Some(report) = report else {
        out.push_str(
            "<div class=\"summary none\" id=\"session\"><div>Sessions: <span class=\"verdict unknown\">not checked</span> \
             (no session check has finished yet, or <code>health.probe_script</code> is not set)</div></div>\n",
        );
        return Ok(());
    };
    let class = if report.is_ok() { "ok" } else { "fail" };
    write!(
        out,
        "<div class=\"summary {class}\" id=\"session\">\n<div>Sessions: <span class=\"verdict {}\" id=\"cluster-verdict\">{}</span></div>\n",
        if report.is_ok() { "ok" } else { "bad" },
        Esc(report.verdict)
    )?;
    match &report.expected {
        Some(e) => write!(
            out,
            "<div>Expected store: <code>{}</code> at <code>{}</code> <span class=\"muted\">({})</span></div>\n\
             <div>Session cookie: <code>{}</code></div>\n",
            Esc(&e.save_handler),
            Esc(&e.save_path),
            Esc(&e.source),
            Esc(&e.session_name)
        )?,
        None => out.push_str("<div>Expected store: <span class=\"muted\">undecided</span></div>\n"),
    }
    if !report.warnings.is_empty() {
        out.push_str("<ul class=\"warnings\">");
        for w in &report.warnings {
            write!(
                out,
                "<li><span class=\"consequence\">{}</span>: {}</li>",
                Esc(w.consequence.words()),
                Esc(&w.text)
            )?;
        }
        out.push_str("</ul>\n");
    }
    if !report.notes.is_empty() {
        out.push_str("<ul class=\"notes\">");
        for n in &report.notes {
            write!(out, "<li>{}</li>", Esc(n))?;
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</div>\n");
    Ok(())
}

fn write_backends(out: &mut String, doc: &StatusDoc<'_>) -> fmt::Result {
    out.push_str(
        "<h2>Backends</h2>\n<table id=\"backends\">\n<thead><tr>\
         <th rowspan=\"2\">Backend</th><th rowspan=\"2\">Address</th><th rowspan=\"2\">State</th>\
         <th rowspan=\"2\">Session</th><th rowspan=\"2\">Weight</th><th rowspan=\"2\">Requests</th>\
         <th rowspan=\"2\" title=\"5xx responses + failures (connect, reset, timeout)\">Errors</th>\
         <th rowspan=\"2\" title=\"mean time to the response head\">Latency</th>\
         <th class=\"group\" colspan=\"3\" title=\"fpmlb's FastCGI connections to the pool\">Connections</th>\
         <th class=\"group\" colspan=\"4\" title=\"from php-fpm's status page\">php-fpm pool</th></tr>\n\
         <tr class=\"sub\"><th>in use</th><th>idle</th><th>cap</th>\
         <th>processes active / idle / total</th><th>listen queue (max)</th><th>max children reached</th><th>slow requests</th>\
         </tr></thead>\n<tbody>\n",
    );
    for b in &doc.backends {
        write_row(out, b)?;
    }
    out.push_str("</tbody>\n</table>\n");
    Ok(())
}

/// The badge text of a backend's state.
pub fn state_badge(b: &BackendView<'_>) -> String {
    match (b.state, b.drained_by) {
        ("drained", Some("operator")) => "drained (operator)".to_string(),
        ("drained", _) => match &b.session {
            Some(s) if s.verdict.fails() => {
                format!("drained (session {})", s.verdict.as_str().replace('_', " "))
            }
            _ => "drained (session check)".to_string(),
        },
        (state, _) => state.to_string(),
    }
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok",
        Verdict::Warning => "warning",
        Verdict::Unknown => "unknown",
        _ => "bad",
    }
}

fn write_row(out: &mut String, b: &BackendView<'_>) -> fmt::Result {
    let mut class = format!("state-{}", b.state);
    if let Some(by) = b.drained_by {
        write!(class, " drained drained-{by}")?;
    }
    write!(
        out,
        "<tr class=\"backend {class}\" data-backend=\"{}\" data-state=\"{}\" data-drained-by=\"{}\">",
        Esc(&b.name),
        b.state,
        b.drained_by.unwrap_or("")
    )?;
    write!(
        out,
        "<td class=\"name\"><strong>{}</strong></td><td><code class=\"addr\">{}</code></td>",
        Esc(&b.name),
        Esc(&b.address)
    )?;
    let badge_class = b.state;
    write!(
        out,
        "<td class=\"state\"><span class=\"badge {badge_class}\">{}</span>",
        Esc(&state_badge(b))
    )?;
    if b.state == "down" && !b.enabled {
        out.push_str(" <span class=\"muted\">(also drained by operator)</span>");
    }
    out.push_str("</td>");
    write_session_cell(out, b)?;
    write!(out, "<td class=\"num\">{}</td>", b.weight)?;
    write!(
        out,
        "<td class=\"num\" title=\"2xx {} · 3xx {} · 4xx {} · 5xx {}\">{}</td>",
        b.responses.s2xx, b.responses.s3xx, b.responses.s4xx, b.responses.s5xx, b.requests
    )?;
    write!(
        out,
        "<td class=\"num\" title=\"5xx {} + failures {}\">{}</td>",
        b.responses.s5xx, b.failures, b.errors
    )?;
    match b.latency_mean_ms {
        Some(ms) => write!(out, "<td class=\"num\">{ms:.1} ms</td>")?,
        None => out.push_str("<td class=\"num muted\">–</td>"),
    }
    let c = &b.connections;
    write!(out, "<td class=\"num\">{}", c.in_use)?;
    if c.waiting > 0 {
        write!(
            out,
            " <span class=\"badge down\">+{} waiting</span>",
            c.waiting
        )?;
    }
    write!(
        out,
        "</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
        c.idle, c.cap
    )?;
    match &b.pool {
        Some(p) => write!(
            out,
            "<td class=\"num\" title=\"pm = {}\">{} / {} / {}</td><td class=\"num\">{} <span class=\"muted\">({})</span></td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td>",
            Esc(&p.process_manager),
            p.active_processes,
            p.idle_processes,
            p.total_processes,
            p.listen_queue,
            p.max_listen_queue,
            p.max_children_reached,
            p.slow_requests
        )?,
        None => out.push_str(
            "<td class=\"muted\" colspan=\"4\">no status page read (<code>health.status_path</code>)</td>",
        ),
    }
    out.push_str("</tr>\n");
    write_details_row(out, b, &class)
}

fn write_session_cell(out: &mut String, b: &BackendView<'_>) -> fmt::Result {
    let Some(s) = &b.session else {
        out.push_str("<td class=\"session muted\">–</td>");
        return Ok(());
    };
    write!(
        out,
        "<td class=\"session\"><span class=\"verdict {}\">{}</span>",
        verdict_class(s.verdict),
        s.verdict.as_str()
    )?;
    out.push_str("</td>");
    Ok(())
}

/// Columns of the backends table (for the details row).
const COLUMNS: usize = 15;

/// The row under a backend with what its session check found, when it found
/// anything, and the passive watch's figures.
fn write_details_row(out: &mut String, b: &BackendView<'_>, class: &str) -> fmt::Result {
    let session = b
        .session
        .as_ref()
        .filter(|s| !(s.differences.is_empty() && s.problems.is_empty() && s.warnings.is_empty()));
    let resets = b.session_resets;
    if session.is_none() && resets.resets == 0 {
        return Ok(());
    }
    write!(
        out,
        "<tr class=\"details {class}\" data-details-for=\"{}\"><td class=\"name\"></td><td colspan=\"{}\"><ul>",
        Esc(&b.name),
        COLUMNS - 1
    )?;
    if let Some(s) = session {
        for d in s.differences {
            // Worst first, in words: what it does to sessions, then why.
            let class = if d.overruled {
                "overruled"
            } else if d.consequence.fails() {
                "fails"
            } else if d.consequence.warns() {
                "warns"
            } else {
                "harmless"
            };
            write!(
                out,
                "<li class=\"difference {class}\" data-consequence=\"{}\"><span class=\"consequence\">{}</span>: <code class=\"setting\">{}</code> expected <code>{}</code>, found <code>{}</code> — {}",
                d.consequence.as_str(),
                Esc(d.consequence.words()),
                Esc(&d.setting),
                Esc(&d.expected),
                Esc(&d.found),
                Esc(&d.effect)
            )?;
            if let Some(e) = &d.evidence {
                write!(out, " <span class=\"muted\">({})</span>", Esc(e))?;
            }
            out.push_str("</li>");
        }
        for p in s.problems {
            write!(out, "<li class=\"problem\">{}</li>", Esc(p))?;
        }
        for w in s.warnings {
            write!(out, "<li class=\"warning\">{}</li>", Esc(w))?;
        }
    }
    if resets.resets > 0 {
        write!(
            out,
            "<li class=\"resets\">{} of {} requests with a session cookie got a new session</li>",
            resets.resets, resets.with_cookie
        )?;
    }
    out.push_str("</ul></td></tr>\n");
    Ok(())
}

/// Responses read ahead of their clients: what happened to them, and the
/// memory and temp files they hold now.
fn write_read_ahead(out: &mut String, r: &ReadAheadView) -> fmt::Result {
    write!(
        out,
        "<h2>Responses read ahead</h2>\n<div class=\"summary none\" id=\"read-ahead\">\n\
         <div title=\"longer than what came with their head, read-ahead allowed\">streamed: {}</div>\
         <div title=\"the client lagged: read ahead of it, the php-fpm worker freed at the end\">read ahead: {}</div>\
         <div>spilled to a temp file: {}</div>\
         <div title=\"a limit was hit: the response went at its client's pace for a while, holding its worker\">waited for the client: {}</div>\n\
         <div>in memory: {} of {}</div><div>in temp files: {} of {}</div><div>written to temp files: {}</div>",
        r.streamed,
        r.read_ahead,
        r.spilled,
        r.waited,
        Size(r.memory_bytes),
        Size(r.memory_budget_bytes),
        Size(r.temp_file_bytes),
        Size(r.temp_file_budget_bytes),
        Size(r.temp_file_bytes_written),
    )?;
    if r.temp_file_failures > 0 {
        write!(
            out,
            "<div class=\"verdict bad\">temp file failures: {} (see the log)</div>",
            r.temp_file_failures
        )?;
    }
    out.push_str("\n</div>\n");
    Ok(())
}

/// The store servers as fpmlb sees them.
fn write_store(out: &mut String, report: Option<&ClusterReport>) -> fmt::Result {
    let Some(report) = report else { return Ok(()) };
    if report.store.is_empty() {
        return Ok(());
    }
    out.push_str(
        "<h2>Session store</h2>\n<table id=\"store\">\n<thead><tr><th>Server</th><th>State</th><th>Round trip</th><th>Detail</th></tr></thead>\n<tbody>\n",
    );
    for s in &report.store {
        write!(
            out,
            "<tr class=\"{}\"><td><code>{}</code></td><td><span class=\"badge {}\">{}</span></td>",
            if s.ok { "state-up" } else { "state-down" },
            Esc(&s.server),
            if s.ok { "up" } else { "down" },
            if s.ok { "ok" } else { "failing" }
        )?;
        match s.latency_ms {
            Some(ms) => write!(out, "<td class=\"num\">{ms:.3} ms</td>")?,
            None => out.push_str("<td class=\"num muted\">–</td>"),
        }
        writeln!(out, "<td>{}</td></tr>", Esc(&s.detail))?;
    }
    out.push_str("</tbody>\n</table>\n");
    Ok(())
}

/// An uptime in words: `3d 4h`, `2h 5m`, `42s`.
struct Uptime(u64);

impl Display for Uptime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
        if d > 0 {
            write!(f, "{d}d {h}h")
        } else if h > 0 {
            write!(f, "{h}h {m}m")
        } else if m > 0 {
            write!(f, "{m}m {}s", s % 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

/// A size in bytes, in binary units: `512 B`, `1.5 MiB`, `4.0 GiB`.
struct Size(u64);

impl Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut v = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while v >= 1024.0 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        write!(f, "{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<b a="1">Tom & 'Jerry'</b>"#),
            "&lt;b a=&quot;1&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/b&gt;"
        );
        assert_eq!(escape("plain é"), "plain é");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn uptime_in_words() {
        assert_eq!(Uptime(42).to_string(), "42s");
        assert_eq!(Uptime(125).to_string(), "2m 5s");
        assert_eq!(Uptime(7500).to_string(), "2h 5m");
        assert_eq!(Uptime(3 * 86_400 + 4 * 3600).to_string(), "3d 4h");
    }

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(Size(0).to_string(), "0 B");
        assert_eq!(Size(1023).to_string(), "1023 B");
        assert_eq!(Size(1536).to_string(), "1.5 KiB");
        assert_eq!(Size(64 << 20).to_string(), "64.0 MiB");
        assert_eq!(Size(4 << 30).to_string(), "4.0 GiB");
    }
}
