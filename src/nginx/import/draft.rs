//! The fpmlb config being built from an nginx server, and how it is written
//! as YAML: the keys of SCHEMA.md (issues 13 and 14), each with the nginx
//! directive it came from as a trailing comment. With `--compat`, the keys
//! this fpmlb's loader does not know yet are written commented out.

use super::yaml::{Writer, comment_text, scalar};
use super::{Note, NoteKind};

/// A value and the nginx directive(s) it came from (`root (site:12)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sourced<T> {
    pub value: T,
    pub why: String,
}

impl<T> Sourced<T> {
    pub fn new(value: T, why: impl Into<String>) -> Self {
        Sourced {
            value,
            why: why.into(),
        }
    }
}

/// An entry of `listen:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listener {
    pub address: String,
    pub tls: bool,
    pub proxy_protocol: bool,
    pub redirect_https: bool,
    pub why: String,
}

impl Listener {
    /// A plain string entry, which the loader reads today.
    fn plain(&self) -> bool {
        !self.tls && !self.proxy_protocol && !self.redirect_https
    }
}

/// An entry of `backends:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Backend {
    pub name: String,
    pub address: String,
    pub weight: Option<u32>,
    pub max_conns: Option<u32>,
    pub backup: bool,
    /// `None` is the default group `main`.
    pub group: Option<String>,
    /// nginx `down`: written commented out.
    pub down: bool,
    pub why: String,
}

impl Backend {
    /// A backend with nginx's defaults for everything but these.
    pub fn new(name: String, address: String, group: Option<&str>, why: String) -> Self {
        Backend {
            name,
            address,
            weight: None,
            max_conns: None,
            backup: false,
            group: group.map(str::to_owned),
            down: false,
            why,
        }
    }
}

/// `tls:`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Tls {
    /// (cert, key, why)
    pub certificates: Vec<(String, String, String)>,
    pub hsts: Option<Sourced<String>>,
}

/// `real_ip:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RealIp {
    pub trusted_proxies: Vec<String>,
    pub header: Option<Sourced<String>>,
    pub why: String,
}

/// `compression:` (from gzip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Compression {
    /// `gzip off`: nothing compressed (fpmlb compresses by default).
    pub off: bool,
    pub types: Option<Sourced<Vec<String>>>,
    pub min_size: Option<Sourced<String>>,
    pub level: Option<Sourced<u32>>,
    pub why: String,
}

/// `static:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Static {
    pub root: Sourced<String>,
    pub index: Option<Sourced<Vec<String>>>,
    pub precompressed: Option<Sourced<bool>>,
}

/// One rule of a location entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Rule {
    Deny(u16),
    Return {
        status: u16,
        url: Option<String>,
    },
    Internal,
    Alias(String),
    FrontController(String),
    CacheControl(String),
    Scripts(Vec<String>),
    Backends(String),
    MaxBodySize(String),
    ResponseBuffering(bool),
    /// (read|send, duration)
    Timeouts(Vec<(&'static str, String)>),
    Params(Vec<(String, String)>),
}

/// An entry of `locations:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Location {
    /// `"= /x"`, `"^~ /x"`, `"/x"`, `"~ re"`, `"~* re"`.
    pub matcher: String,
    pub rules: Vec<(Rule, String)>,
    /// Said above the entry (e.g. why an entry without rules is kept).
    pub comment: Option<String>,
    pub why: String,
}

/// The whole fpmlb config.
#[derive(Debug, Clone, Default)]
pub(super) struct Draft {
    pub listen: Vec<Listener>,
    pub document_root: Option<Sourced<String>>,
    pub index: Option<Sourced<String>>,
    pub front_controller: Option<Sourced<String>>,
    pub server_name: Option<Sourced<String>>,
    pub https: Option<Sourced<bool>>,
    pub max_body_size: Option<Sourced<String>>,
    pub body_buffer_size: Option<Sourced<String>>,
    pub request_buffering: Option<Sourced<bool>>,
    pub response_buffering: Option<Sourced<bool>>,
    pub response_max_temp_file: Option<Sourced<String>>,
    /// (name, value, why)
    pub params: Vec<(String, String, String)>,
    pub balance: Option<Sourced<&'static str>>,
    pub max_fails: Option<Sourced<u32>>,
    pub fail_timeout: Option<Sourced<String>>,
    /// (key under `timeouts:`, value)
    pub timeouts: Vec<(&'static str, Sourced<String>)>,
    pub access_log: Option<Sourced<bool>>,
    pub backends: Vec<Backend>,
    pub tls: Option<Tls>,
    pub real_ip: Option<RealIp>,
    pub compression: Option<Compression>,
    pub static_files: Option<Static>,
    /// (status, page, why)
    pub error_pages: Vec<(u16, String, String)>,
    pub locations: Vec<Location>,
}

/// The header: where the config came from and every note.
pub(super) fn header(w: &mut Writer, source: &[String], notes: &[Note], compat: bool) {
    w.comment(
        0,
        &format!(
            "fpmlb configuration imported from nginx by `fpmlb import-nginx{}` (fpmlb {})",
            if compat { " --compat" } else { "" },
            env!("CARGO_PKG_VERSION")
        ),
    );
    for line in source {
        w.comment(0, line);
    }
    for (kind, title) in [
        (
            NoteKind::Untranslated,
            "not translated: fpmlb has no equivalent; each needs a look",
        ),
        (
            NoteKind::Differs,
            "translated, but fpmlb behaves differently",
        ),
        (
            NoteKind::Compat,
            "left out by --compat: written commented out below, for when this fpmlb knows the keys",
        ),
        (NoteKind::Info, "for information"),
    ] {
        let of_kind: Vec<&Note> = notes.iter().filter(|n| n.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        w.comment(0, "");
        w.comment(0, &format!("{} {title}:", of_kind.len()));
        for n in of_kind {
            w.comment(0, &format!("  {}", n.line()));
        }
    }
    w.blank();
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| scalar(s)).collect();
    format!("[{}]", quoted.join(", "))
}

impl Draft {
    /// Writes the config; `compat` comments out what the loader lacks today.
    pub fn write(&self, w: &mut Writer, compat: bool) {
        self.write_listen(w, compat);
        if let Some(v) = &self.document_root {
            w.key(0, "document_root", &scalar(&v.value), &v.why);
        }
        for (key, v) in [
            ("index", &self.index),
            ("front_controller", &self.front_controller),
            ("server_name", &self.server_name),
        ] {
            if let Some(v) = v {
                w.key(0, key, &scalar(&v.value), &v.why);
            }
        }
        if let Some(v) = &self.https {
            w.key(0, "https", &v.value.to_string(), &v.why);
        }
        for (key, v) in [
            ("max_body_size", &self.max_body_size),
            ("body_buffer_size", &self.body_buffer_size),
        ] {
            if let Some(v) = v {
                w.key(0, key, &scalar(&v.value), &v.why);
            }
        }
        for (key, v) in [
            ("request_buffering", &self.request_buffering),
            ("response_buffering", &self.response_buffering),
        ] {
            if let Some(v) = v {
                w.key(0, key, &v.value.to_string(), &v.why);
            }
        }
        if let Some(v) = &self.response_max_temp_file {
            w.key(0, "response_max_temp_file", &scalar(&v.value), &v.why);
        }
        if !self.params.is_empty() {
            w.line(0, "params:");
            for (name, value, why) in &self.params {
                w.key(1, &scalar(name), &scalar(value), why);
            }
        }
        if let Some(v) = &self.balance {
            w.key(0, "balance", v.value, &v.why);
        }
        if let Some(v) = &self.max_fails {
            w.key(0, "max_fails", &v.value.to_string(), &v.why);
        }
        if let Some(v) = &self.fail_timeout {
            w.key(0, "fail_timeout", &scalar(&v.value), &v.why);
        }
        if !self.timeouts.is_empty() {
            w.line(0, "timeouts:");
            for (key, v) in &self.timeouts {
                w.key(1, key, &scalar(&v.value), &v.why);
            }
        }
        if let Some(v) = &self.access_log {
            w.line(0, "log:");
            w.key(1, "access_log", &v.value.to_string(), &v.why);
        }
        self.write_issue_13(w, compat);
        self.write_issue_14(w, compat);
        self.write_backends(w, compat);
        self.write_locations(w, compat);
    }

    fn write_listen(&self, w: &mut Writer, compat: bool) {
        w.line(0, "listen:");
        for l in &self.listen {
            let addr = scalar(&l.address);
            if l.plain() {
                w.item(1, &addr, &l.why);
                continue;
            }
            let mut map = format!("{{address: {addr}");
            for (on, key) in [
                (l.tls, "tls"),
                (l.proxy_protocol, "proxy_protocol"),
                (l.redirect_https, "redirect_https"),
            ] {
                if on {
                    map.push_str(&format!(", {key}: true"));
                }
            }
            map.push('}');
            w.commented = compat;
            w.item(1, &map, &l.why);
            w.commented = false;
        }
    }

    /// TLS, real IP, compression.
    fn write_issue_13(&self, w: &mut Writer, compat: bool) {
        if self.tls.is_none() && self.real_ip.is_none() && self.compression.is_none() {
            return;
        }
        if compat {
            w.comment(0, "--compat: issue 13's keys (tls, real_ip, compression):");
        }
        w.commented = compat;
        if let Some(tls) = &self.tls {
            w.line(0, "tls:");
            if !tls.certificates.is_empty() {
                w.line(1, "certificates:");
                for (cert, key, why) in &tls.certificates {
                    w.key(2, "- cert", &scalar(cert), why);
                    w.line(3, &format!("key: {}", scalar(key)));
                }
            }
            if let Some(v) = &tls.hsts {
                w.key(1, "hsts", &scalar(&v.value), &v.why);
            }
        }
        if let Some(r) = &self.real_ip {
            w.line(0, "real_ip:");
            w.key(1, "trusted_proxies", &list(&r.trusted_proxies), &r.why);
            if let Some(h) = &r.header {
                w.key(1, "header", &scalar(&h.value), &h.why);
            }
        }
        if let Some(c) = &self.compression {
            w.line(0, &format!("compression:  # {}", comment_text(&c.why)));
            w.line(
                1,
                if c.off {
                    "encodings: []"
                } else {
                    "encodings: [gzip]"
                },
            );
            if let Some(t) = &c.types {
                w.key(1, "types", &list(&t.value), &t.why);
            }
            if let Some(m) = &c.min_size {
                w.key(1, "min_size", &scalar(&m.value), &m.why);
            }
            if let Some(l) = &c.level {
                w.key(1, "levels", &format!("{{gzip: {}}}", l.value), &l.why);
            }
        }
        w.commented = false;
    }

    /// Static files and error pages.
    fn write_issue_14(&self, w: &mut Writer, compat: bool) {
        if self.static_files.is_none() && self.error_pages.is_empty() {
            return;
        }
        if compat {
            w.comment(0, "--compat: issue 14's keys (static, error_pages):");
        }
        w.commented = compat;
        if let Some(s) = &self.static_files {
            w.line(0, "static:");
            w.key(1, "root", &scalar(&s.root.value), &s.root.why);
            if let Some(i) = &s.index {
                w.key(1, "index", &list(&i.value), &i.why);
            }
            if let Some(p) = &s.precompressed {
                w.key(1, "precompressed", &p.value.to_string(), &p.why);
            }
        }
        if !self.error_pages.is_empty() {
            w.line(0, "error_pages:");
            for (status, page, why) in &self.error_pages {
                w.key(1, &status.to_string(), &scalar(page), why);
            }
        }
        w.commented = false;
    }

    fn write_backends(&self, w: &mut Writer, compat: bool) {
        w.line(0, "backends:");
        for b in &self.backends {
            let left_out = if b.down {
                Some("nginx `down`: left out")
            } else if compat && b.backup {
                Some("--compat: a backup server (issue 14's backends[].backup)")
            } else if compat && b.group.is_some() {
                Some("--compat: another backend group (issue 14's backends[].group)")
            } else {
                None
            };
            if let Some(why) = left_out {
                w.comment(1, why);
            }
            w.commented = left_out.is_some();
            w.key(1, "- name", &scalar(&b.name), &b.why);
            w.line(2, &format!("address: {}", scalar(&b.address)));
            if let Some(weight) = b.weight {
                w.line(2, &format!("weight: {weight}"));
            }
            if let Some(m) = b.max_conns {
                w.line(2, &format!("max_conns: {m}"));
            }
            if b.backup {
                w.line(2, "backup: true");
            }
            if let Some(g) = &b.group {
                w.line(2, &format!("group: {}", scalar(g)));
            }
            w.commented = false;
        }
    }

    fn write_locations(&self, w: &mut Writer, compat: bool) {
        if self.locations.is_empty() {
            return;
        }
        if compat {
            w.comment(0, "--compat: issue 14's locations:");
        }
        w.commented = compat;
        w.line(0, "locations:");
        for loc in &self.locations {
            if let Some(c) = &loc.comment {
                w.comment(1, c);
            }
            w.key(1, "- match", &scalar(&loc.matcher), &loc.why);
            for (rule, why) in &loc.rules {
                let (key, value) = rule_yaml(rule);
                w.key(2, key, &value, why);
            }
        }
        w.commented = false;
    }
}

pub(super) fn rule_yaml(rule: &Rule) -> (&'static str, String) {
    match rule {
        Rule::Deny(status) => ("deny", status.to_string()),
        Rule::Return { status, url } => (
            "return",
            match url {
                Some(url) => format!("{{status: {status}, url: {}}}", scalar(url)),
                None => format!("{{status: {status}}}"),
            },
        ),
        Rule::Internal => ("internal", "true".to_owned()),
        Rule::Alias(p) => ("alias", scalar(p)),
        Rule::FrontController(p) => ("front_controller", scalar(p)),
        Rule::CacheControl(v) => ("cache_control", scalar(v)),
        Rule::Scripts(s) => ("scripts", list(s)),
        Rule::Backends(g) => ("backends", scalar(g)),
        Rule::MaxBodySize(s) => ("max_body_size", scalar(s)),
        Rule::ResponseBuffering(on) => ("response_buffering", on.to_string()),
        Rule::Timeouts(t) => (
            "timeouts",
            format!(
                "{{{}}}",
                t.iter()
                    .map(|(k, v)| format!("{k}: {}", scalar(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Rule::Params(p) => (
            "params",
            format!(
                "{{{}}}",
                p.iter()
                    .map(|(k, v)| format!("{}: {}", scalar(k), scalar(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    }
}
