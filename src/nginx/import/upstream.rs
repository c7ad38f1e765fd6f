//! `fastcgi_pass` to backends: an `upstream` block's servers (weight,
//! max_fails, fail_timeout, backup, down, max_conns) and its settings
//! (least_conn, keepalive, keepalive_timeout), or one address.

use crate::config::{BackendAddress, parse_duration};
use crate::nginx::tree::Directive;

use super::draft::{Backend, Draft, Sourced};
use super::server::duration;
use super::{Cx, ImportError, NoteKind};

/// A backend name from an upstream or address: `[A-Za-z0-9_.-]`.
fn backend_name(base: &str) -> String {
    let name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "php".to_owned()
    } else {
        name
    }
}

/// The backends `fastcgi_pass` names: an upstream's servers, or one address.
/// `group` is `None` for the main group. Upstream settings (balance,
/// max_fails...) go to `draft` for the main group.
pub(super) fn upstream_backends(
    cx: &mut Cx<'_>,
    http: &[&Directive],
    pass: &Directive,
    group: Option<&str>,
    draft: &mut Draft,
) -> Result<Vec<Backend>, ImportError> {
    let target = pass.arg(0).unwrap_or("");
    if target.contains('$') {
        cx.untranslated(pass, "fastcgi_pass with variables");
        return Err(ImportError(format!(
            "{}: fastcgi_pass {target} uses variables; fpmlb needs the backend addresses",
            cx.at(pass)
        )));
    }
    let upstream = http
        .iter()
        .find(|d| d.name == "upstream" && d.arg(0) == Some(target) && d.block.is_some());
    let Some(upstream) = upstream else {
        // An address.
        let address = target.to_owned();
        if address.parse::<BackendAddress>().is_err() {
            cx.untranslated(pass, "not an address fpmlb takes (host:port or unix:/path)");
            return Err(ImportError(format!(
                "{}: fastcgi_pass {target}: not an upstream of this config nor an address",
                cx.at(pass)
            )));
        }
        cx.done(pass);
        return Ok(vec![Backend::new(
            group.map_or_else(|| "php".to_owned(), backend_name),
            address,
            group,
            cx.why(pass),
        )]);
    };
    cx.done(pass);
    cx.done(upstream);
    let servers: Vec<&Directive> = upstream
        .children()
        .iter()
        .filter(|d| d.name == "server")
        .collect();
    let base = backend_name(target);
    let mut out = Vec::new();
    // (max_fails, fail_timeout) of each server, nginx's defaults filled in.
    let mut health: Vec<(u32, String, bool, &Directive)> = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let Some(addr) = s.arg(0) else {
            cx.untranslated(s, "server without an address");
            continue;
        };
        let address = if addr.starts_with("unix:") || addr.contains(':') {
            addr.to_owned()
        } else {
            format!("{addr}:80")
        };
        if address.parse::<BackendAddress>().is_err() {
            cx.untranslated(s, "not an address fpmlb takes");
            continue;
        }
        let name = if servers.len() > 1 {
            format!("{base}-{}", i + 1)
        } else {
            base.clone()
        };
        let mut b = Backend::new(name, address, group, cx.why(s));
        let (mut max_fails, mut fail_timeout, mut explicit) = (1u32, "10s".to_owned(), false);
        let mut dropped = Vec::new();
        let mut differs = Vec::new();
        for p in &s.args[1..] {
            let (k, v) = p.split_once('=').unwrap_or((p.as_str(), ""));
            match (k, v.parse::<u32>()) {
                ("weight", Ok(w)) if w >= 1 => {
                    if w > crate::config::defaults::MAX_WEIGHT {
                        differs.push(format!(
                            "weight {w} above fpmlb's {}",
                            crate::config::defaults::MAX_WEIGHT
                        ));
                    }
                    b.weight = Some(w.min(crate::config::defaults::MAX_WEIGHT));
                }
                ("max_fails", Ok(n)) => {
                    max_fails = n;
                    explicit = true;
                }
                ("max_conns", Ok(0)) => {}
                ("max_conns", Ok(n)) => b.max_conns = Some(n),
                ("fail_timeout", _) if parse_duration(v).is_ok() => {
                    fail_timeout = v.to_owned();
                    explicit = true;
                }
                ("backup", _) if v.is_empty() => b.backup = true,
                ("down", _) if v.is_empty() => b.down = true,
                ("resolve", _) if v.is_empty() => {}
                _ => dropped.push(p.clone()),
            }
        }
        if !b.down {
            health.push((max_fails, fail_timeout, explicit, s));
        }
        if !dropped.is_empty() {
            differs.push(format!(
                "fpmlb has no server parameter {}",
                dropped.join(", ")
            ));
        }
        if b.backup && cx.compat {
            cx.note(
                NoteKind::Compat,
                s,
                "backup: issue 14's backends[].backup, written commented out",
            );
        } else if b.down {
            cx.info(s, "down: written commented out");
        } else if differs.is_empty() {
            cx.done(s);
        } else {
            cx.differs(s, differs.join("; "));
        }
        out.push(b);
    }
    if out.iter().all(|b| b.down) {
        return Err(ImportError(format!(
            "{}: upstream {target} has no server fpmlb can use",
            cx.at(upstream)
        )));
    }
    for d in upstream.children() {
        match d.name.as_str() {
            "server" => {}
            "keepalive" => cx.info(
                d,
                "fpmlb always keeps connections alive, and caps them per pool with \
                 backends[].max_conns (set it to the pool's pm.max_children; by default the \
                 pool's status page tells, else 8): nginx's keepalive is an idle cache, not a \
                 cap",
            ),
            "keepalive_timeout" if group.is_none() => {
                if let Some(v) = duration(cx, d) {
                    draft.timeouts.push(("idle", v));
                }
            }
            "least_conn" if group.is_none() => {
                draft.balance = Some(Sourced::new("least_conn", cx.why(d)));
                cx.done(d);
            }
            "zone" => cx.done(d),
            "ip_hash" | "hash" | "sticky" => cx.untranslated(
                d,
                "no sticky balancing in fpmlb: with sessions in a shared store any node serves \
                 any user (fpmlb checks they share it)",
            ),
            _ => cx.untranslated(d, "no fpmlb equivalent in an upstream"),
        }
    }
    if group.is_none()
        && let Some((first, rest)) = health.split_first()
    {
        let differ = rest
            .iter()
            .any(|(m, t, _, _)| *m != first.0 || parse_duration(t) != parse_duration(&first.1));
        if differ {
            cx.differs(
                first.3,
                "fpmlb has one max_fails/fail_timeout for every backend: this server's are used",
            );
        }
        if health.iter().any(|h| h.2) {
            draft.max_fails = Some(Sourced::new(first.0, cx.why(first.3)));
            draft.fail_timeout = Some(Sourced::new(first.1.clone(), cx.why(first.3)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn backend_names() {
        assert_eq!(super::backend_name("php backend!"), "php_backend_");
        assert_eq!(super::backend_name(""), "php");
    }
}
