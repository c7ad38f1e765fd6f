//! `fpmlb import-nginx`: an nginx config tree in, fpmlb YAML and a list of
//! notes out. Pure: no file is read here (see `load`), nothing is written.
//!
//! What it does, in order:
//!
//! 1. find the `http` context (or take the file as one, for a site file) and
//!    its `upstream`s and `server`s;
//! 2. find the servers with a PHP location (a `location` whose block, or a
//!    nested one, has `fastcgi_pass`). The first one is imported (or the one
//!    `--server` names); servers identical to it but for `listen` and
//!    `ssl_*` add their listeners; servers that only `return 30x https://…`
//!    become `redirect_https` listeners. fpmlb serves one site per instance,
//!    so another PHP server is named in a note with the `--server` that
//!    imports it into its own file;
//! 3. translate the directives that apply to that PHP location, with nginx's
//!    inheritance (http, then server, then location: the innermost level
//!    that has a directive wins; for array directives such as
//!    `fastcgi_param`, the innermost level that has any replaces the others),
//!    and the server's other locations into `locations:`;
//! 4. list every directive it did not translate, with its file and line.
//!
//! The YAML uses SCHEMA.md's keys. Those of issues 13 and 14 (listener maps,
//! `tls`, `real_ip`, `compression`, `static`, `error_pages`, `locations`,
//! `backends[].backup`/`group`) are written commented out with `--compat`,
//! for a loader that does not know them yet.

mod draft;
mod fastcgi;
mod frontend;
mod locations;
mod server;
mod upstream;
mod yaml;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;

use super::load::{Included, Loaded};
use super::tree::Directive;

/// What the operator asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Write only the keys this fpmlb's loader knows; comment out the rest.
    pub compat: bool,
    /// Import the PHP server with this `server_name`, or this 1-based number
    /// among the PHP servers, instead of the first.
    pub server: Option<String>,
}

/// How a note is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoteKind {
    /// fpmlb has no equivalent: the directive is not in the output.
    Untranslated,
    /// Translated, but fpmlb behaves differently in the way said.
    Differs,
    /// Translated into keys this fpmlb lacks, written commented out.
    Compat,
    /// Worth knowing; nothing lost.
    Info,
}

impl NoteKind {
    fn label(self) -> &'static str {
        match self {
            NoteKind::Untranslated => "not translated",
            NoteKind::Differs => "differs",
            NoteKind::Compat => "--compat",
            NoteKind::Info => "note",
        }
    }
}

/// One thing the operator should read about the import.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Note {
    pub kind: NoteKind,
    /// `file:line` of the directive, relative to the prefix when under it.
    pub at: Option<String>,
    /// The directive as written (`add_header X-Frame-Options SAMEORIGIN`).
    pub directive: String,
    pub message: String,
}

impl Note {
    /// `file:line  directive: message`, on one line.
    #[must_use]
    pub fn line(&self) -> String {
        let mut s = String::new();
        if let Some(at) = &self.at {
            s.push_str(at);
            s.push_str("  ");
        }
        if !self.directive.is_empty() {
            s.push_str(&self.directive);
            s.push_str(": ");
        }
        s.push_str(&self.message);
        yaml::comment_text(&s)
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.label(), self.line())
    }
}

/// The result of an import.
#[derive(Debug, Clone)]
pub struct Import {
    /// The fpmlb config, notes at the top as comments.
    pub yaml: String,
    pub notes: Vec<Note>,
    /// Directives translated (with or without a `Differs` note).
    pub translated: usize,
}

impl Import {
    /// Notes of one kind.
    #[must_use]
    pub fn count(&self, kind: NoteKind) -> usize {
        self.notes.iter().filter(|n| n.kind == kind).count()
    }
}

/// Why no config could be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError(pub String);

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ImportError {}

/// Translates `loaded` into an fpmlb config.
///
/// # Errors
///
/// No server passes PHP to FastCGI, `--server` names none, the PHP
/// location's `fastcgi_pass` cannot be translated, or (`--compat`) no
/// cleartext listener remains.
pub fn import(loaded: &Loaded, options: &Options) -> Result<Import, ImportError> {
    let mut cx = Cx {
        l: loaded,
        compat: options.compat,
        notes: Vec::new(),
        handled: HashSet::new(),
        noted: HashSet::new(),
        translated: 0,
    };
    cx.include_notes();
    let (main, http) = split_contexts(&loaded.directives);
    for d in &main {
        cx.untranslated(d, directive_reason(&d.name));
        cx.mark_tree(d);
    }
    let (draft, source) = server::translate(&mut cx, &http, options)?;
    for d in &http {
        cx.sweep(d);
    }
    let mut w = yaml::Writer::default();
    draft::header(&mut w, &source, &cx.notes, options.compat);
    draft.write(&mut w, options.compat);
    Ok(Import {
        yaml: w.finish(),
        notes: cx.notes,
        translated: cx.translated,
    })
}

/// The main context's own directives, and the directives of the http
/// context: the `http` block's, or the whole file's when it has no `http`
/// block (a site file, included from `http` by nginx.conf).
fn split_contexts(top: &[Directive]) -> (Vec<&Directive>, Vec<&Directive>) {
    let has_http = top.iter().any(|d| d.name == "http" && d.block.is_some());
    if !has_http {
        return (Vec::new(), top.iter().collect());
    }
    let mut main = Vec::new();
    let mut http = Vec::new();
    for d in top {
        if d.name == "http" && d.block.is_some() {
            http.extend(d.children());
        } else {
            main.push(d);
        }
    }
    (main, http)
}

/// The translation's state: notes, and which directives were dealt with.
pub(super) struct Cx<'a> {
    pub l: &'a Loaded,
    pub compat: bool,
    pub notes: Vec<Note>,
    /// Addresses of the directives translated or noted (the tree is not
    /// changed while they are held, so an address names one directive).
    handled: HashSet<usize>,
    /// The notes given, so that a note is given once (a lookup, where a
    /// scan of `notes` made 200 000 directives cost minutes).
    noted: HashSet<Note>,
    translated: usize,
}

fn key(d: &Directive) -> usize {
    std::ptr::from_ref(d) as usize
}

impl<'a> Cx<'a> {
    /// `file:line` of `d`.
    pub fn at(&self, d: &Directive) -> String {
        self.l.at(d.at)
    }

    /// `directive (file:line)`, for trailing comments of the YAML.
    pub fn why(&self, d: &Directive) -> String {
        /// Longer directives are cut: the comment points at the line.
        const LONGEST: usize = 60;
        let mut head = d.head();
        if head.chars().count() > LONGEST {
            head = head.chars().take(LONGEST - 3).collect::<String>() + "...";
        }
        format!("{head} ({})", self.at(d))
    }

    pub fn is_handled(&self, d: &Directive) -> bool {
        self.handled.contains(&key(d))
    }

    /// `d` is translated.
    pub fn done(&mut self, d: &Directive) {
        if self.handled.insert(key(d)) {
            self.translated += 1;
        }
    }

    /// `d` and everything in its block count as dealt with (by a note on `d`).
    pub fn mark_tree(&mut self, d: &Directive) {
        self.handled.insert(key(d));
        for c in d.children() {
            self.mark_tree(c);
        }
    }

    pub fn note(&mut self, kind: NoteKind, d: &Directive, message: impl Into<String>) {
        if kind == NoteKind::Untranslated {
            self.handled.insert(key(d));
        } else {
            self.done(d);
        }
        let note = Note {
            kind,
            at: Some(self.at(d)),
            directive: d.head(),
            message: message.into(),
        };
        if self.noted.insert(note.clone()) {
            self.notes.push(note);
        }
    }

    pub fn untranslated(&mut self, d: &Directive, message: impl Into<String>) {
        self.note(NoteKind::Untranslated, d, message);
    }

    pub fn differs(&mut self, d: &Directive, message: impl Into<String>) {
        self.note(NoteKind::Differs, d, message);
    }

    pub fn info(&mut self, d: &Directive, message: impl Into<String>) {
        self.note(NoteKind::Info, d, message);
    }

    /// A note about no directive in particular.
    pub fn general(&mut self, kind: NoteKind, message: impl Into<String>) {
        self.notes.push(Note {
            kind,
            at: None,
            directive: String::new(),
            message: message.into(),
        });
    }

    /// Lists `d` and, inside its block, every directive nobody dealt with.
    pub fn sweep(&mut self, d: &Directive) {
        if !self.is_handled(d) {
            self.untranslated(d, directive_reason(&d.name));
            if d.block.is_some() {
                self.mark_tree(d);
                return;
            }
        }
        for c in d.children() {
            self.sweep(c);
        }
    }

    /// Notes on includes that read nothing or were found by the fallback.
    fn include_notes(&mut self) {
        for inc in &self.l.includes {
            let at = Some(self.l.at(inc.at));
            let directive = format!("include {}", inc.pattern);
            let (kind, message) = match &inc.outcome {
                Included::Missing(looked) => (
                    NoteKind::Info,
                    format!(
                        "not found (looked at {}); fastcgi_params, fastcgi.conf and \
                         snippets/fastcgi-php.conf are what fpmlb sends anyway",
                        looked
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                Included::NoMatch => continue,
                Included::Files(_) if inc.beside_includer => (
                    NoteKind::Info,
                    format!(
                        "found next to the including file, not under the prefix {} where nginx \
                         looks (give --prefix)",
                        self.l.prefix.display()
                    ),
                ),
                Included::Files(_) => continue,
            };
            self.notes.push(Note {
                kind,
                at,
                directive,
                message,
            });
        }
    }
}

/// Why a directive nobody translated has no fpmlb equivalent.
fn directive_reason(name: &str) -> &'static str {
    match name {
        "add_header" | "more_set_headers" | "more_clear_headers" => {
            "fpmlb adds no response headers"
        }
        "charset" | "source_charset" => "fpmlb adds no charset to Content-Type",
        "types" | "default_type" => "fpmlb's MIME table is built in",
        "access_log"
        | "error_log"
        | "log_format"
        | "log_not_found"
        | "rewrite_log"
        | "log_subrequest"
        | "open_log_file_cache" => {
            "logging: fpmlb logs to its own output (log.level, log.access_log)"
        }
        "limit_req" | "limit_req_zone" | "limit_conn" | "limit_conn_zone" | "limit_rate"
        | "limit_req_status" | "limit_conn_status" => "fpmlb has no rate or connection limits",
        "auth_basic" | "auth_basic_user_file" | "auth_request" | "satisfy" => {
            "fpmlb does no HTTP authentication"
        }
        "allow" | "deny" => "fpmlb has no client address rules",
        "rewrite" | "if" | "set" | "map" | "break" | "geo" | "split_clients" => {
            "fpmlb has no rewriting"
        }
        "autoindex" | "autoindex_exact_size" | "autoindex_localtime" | "autoindex_format" => {
            "fpmlb never lists directories"
        }
        "user"
        | "worker_processes"
        | "pid"
        | "events"
        | "load_module"
        | "daemon"
        | "master_process"
        | "env"
        | "pcre_jit"
        | "thread_pool"
        | "worker_rlimit_nofile"
        | "worker_cpu_affinity"
        | "worker_priority"
        | "worker_shutdown_timeout"
        | "timer_resolution"
        | "lock_file"
        | "working_directory"
        | "debug_points" => "an nginx process setting (fpmlb: systemd unit, log.*)",
        "stream" | "mail" => "not HTTP: fpmlb only balances HTTP to FastCGI",
        "sendfile"
        | "tcp_nopush"
        | "tcp_nodelay"
        | "types_hash_max_size"
        | "types_hash_bucket_size"
        | "server_names_hash_bucket_size"
        | "server_names_hash_max_size"
        | "keepalive_requests"
        | "reset_timedout_connection"
        | "aio"
        | "directio"
        | "output_buffers"
        | "postpone_output"
        | "client_header_buffer_size"
        | "large_client_header_buffers"
        | "lingering_close"
        | "lingering_time"
        | "lingering_timeout"
        | "variables_hash_max_size"
        | "variables_hash_bucket_size"
        | "map_hash_max_size"
        | "map_hash_bucket_size" => "an nginx tuning setting; fpmlb has its own",
        "open_file_cache"
        | "open_file_cache_valid"
        | "open_file_cache_min_uses"
        | "open_file_cache_errors" => {
            "fpmlb's static.open_file_cache (on by default: valid 1s, max 1000; misses are not held)"
        }
        "server_tokens"
        | "server_name_in_redirect"
        | "port_in_redirect"
        | "absolute_redirect"
        | "msie_padding"
        | "msie_refresh" => "fpmlb has no such setting",
        "resolver" | "resolver_timeout" => "fpmlb uses the system resolver (resolve_interval)",
        "send_timeout" | "client_body_timeout" => "fpmlb has no such client timeout",
        "fastcgi_buffers"
        | "fastcgi_buffer_size"
        | "fastcgi_busy_buffers_size"
        | "fastcgi_temp_path"
        | "fastcgi_temp_file_write_size" => {
            "fpmlb holds up to response_buffer_size (1m) of a response in memory, then an \
             anonymous temp file in $TMPDIR: no buffer or temp file settings"
        }
        // Translated where they apply to a PHP location (server.rs,
        // locations.rs); what is left is elsewhere.
        "fastcgi_buffering" | "fastcgi_max_temp_file_size" | "fastcgi_request_buffering" => {
            "outside a PHP location (one with fastcgi_pass) it changes nothing fpmlb imports"
        }
        "fastcgi_hide_header" | "fastcgi_pass_header" | "fastcgi_ignore_headers" => {
            "fpmlb passes the script's response headers as they are"
        }
        "fastcgi_intercept_errors" => "fpmlb passes PHP's error responses as they are",
        "fastcgi_next_upstream"
        | "fastcgi_next_upstream_tries"
        | "fastcgi_next_upstream_timeout" => {
            "fpmlb's retries are fixed (README, \"Behaviour under failure\")"
        }
        "fastcgi_ignore_client_abort"
        | "fastcgi_socket_keepalive"
        | "fastcgi_bind"
        | "fastcgi_limit_rate"
        | "fastcgi_force_ranges"
        | "fastcgi_store"
        | "fastcgi_store_access"
        | "fastcgi_pass_request_body"
        | "fastcgi_pass_request_headers"
        | "fastcgi_catch_stderr" => "no such setting in fpmlb",
        n if n.starts_with("fastcgi_cache") || n.starts_with("proxy_cache") => {
            "fpmlb has no response cache"
        }
        n if n.starts_with("ssl_") => "TLS settings other than certificates are fpmlb's defaults",
        n if n.starts_with("proxy_")
            || n.starts_with("uwsgi_")
            || n.starts_with("scgi_")
            || n.starts_with("grpc_")
            || n.starts_with("memcached_") =>
        {
            "fpmlb passes requests to FastCGI only"
        }
        n if n.starts_with("gzip") => "fpmlb has no such compression setting",
        n if n.ends_with("_by_lua") || n.ends_with("_by_lua_block") || n.starts_with("lua_") => {
            "no scripting in fpmlb"
        }
        _ => "no fpmlb equivalent",
    }
}

/// The value a `Scope` found, and every directive of that name it passed over.
pub(super) struct Found<'a> {
    pub all: Vec<&'a Directive>,
}

/// Directive levels from the outermost (http) to the innermost (a location),
/// to look values up with nginx's inheritance.
#[derive(Clone)]
pub(super) struct Scope<'a> {
    levels: Vec<Vec<&'a Directive>>,
}

impl<'a> Scope<'a> {
    pub fn new(http: &[&'a Directive]) -> Self {
        Scope {
            levels: vec![http.to_vec()],
        }
    }

    /// This scope with one more level inside it.
    #[must_use]
    pub fn with(&self, body: &'a [Directive]) -> Self {
        let mut s = self.clone();
        s.levels.push(body.iter().collect());
        s
    }

    /// The innermost level's directives named `name`, and every one of that
    /// name in the scope (the outer ones are overridden: translated by the
    /// inner ones).
    fn lookup(&self, name: &str) -> (Vec<&'a Directive>, Found<'a>) {
        let mut all = Vec::new();
        let mut inner = Vec::new();
        for level in &self.levels {
            let here: Vec<&'a Directive> =
                level.iter().copied().filter(|d| d.name == name).collect();
            if !here.is_empty() {
                all.extend(here.iter().copied());
                inner = here;
            }
        }
        (inner, Found { all })
    }

    /// The effective directive of a simple directive (the last at the
    /// innermost level); outer ones are marked translated.
    pub fn one(&self, cx: &mut Cx<'_>, name: &str) -> Option<&'a Directive> {
        let (inner, found) = self.lookup(name);
        let last = inner.last().copied();
        for d in found.all {
            if last.is_some_and(|l| !std::ptr::eq(l, d)) {
                cx.done(d);
            }
        }
        last
    }

    /// The effective directives of an array directive (`fastcgi_param`,
    /// `error_page`...); outer ones are marked translated.
    pub fn all(&self, cx: &mut Cx<'_>, name: &str) -> Vec<&'a Directive> {
        let (inner, found) = self.lookup(name);
        for d in found.all {
            if !inner.iter().any(|i| std::ptr::eq(*i, d)) {
                cx.done(d);
            }
        }
        inner
    }
}
