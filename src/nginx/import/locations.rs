//! A server's `location` blocks into `locations:` entries (SCHEMA.md), in
//! the server's order, with nginx's match modifiers kept: `deny`, `return`,
//! `internal`, `alias` (and a `root` of its own), `try_files` with a PHP
//! fallback, `expires` and `Cache-Control`, and, in PHP locations, the
//! params, timeouts, body limit, response buffering and backends that differ
//! from the main PHP location (whose settings are the top-level keys).
//!
//! An entry with no rule is kept (with a comment) so that nginx's
//! precedence holds: `location = /favicon.ico {}` stops the regexes from
//! matching that path. `location /` is left out when it has no rule: it is
//! the last resort of every match.

use super::draft::{Draft, Location, Rule, Sourced};
use super::server::flag_value;
use super::upstream::upstream_backends;
use super::{Cx, ImportError, NoteKind, Scope};
use crate::config::{parse_duration, parse_size};
use crate::nginx::tree::Directive;

/// A `location`'s modifier and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LocationMatch {
    Exact(String),
    /// `^~ /x`: a prefix that stops the regex search.
    PrefixNoRegex(String),
    Prefix(String),
    Regex {
        re: String,
        caseless: bool,
    },
    Named(String),
}

impl LocationMatch {
    /// Reads a `location`'s arguments as nginx does
    /// (`ngx_http_core_location`): two words are a modifier and a name; one
    /// word may start with `=`, `~` or `~*` glued to it (not `^~`).
    pub fn of(d: &Directive) -> Option<LocationMatch> {
        match d.args.as_slice() {
            [m, name] => match m.as_str() {
                "=" => Some(LocationMatch::Exact(name.clone())),
                "^~" => Some(LocationMatch::PrefixNoRegex(name.clone())),
                "~" => Some(LocationMatch::Regex {
                    re: name.clone(),
                    caseless: false,
                }),
                "~*" => Some(LocationMatch::Regex {
                    re: name.clone(),
                    caseless: true,
                }),
                _ => None,
            },
            [name] => {
                if let Some(rest) = name.strip_prefix('=') {
                    Some(LocationMatch::Exact(rest.to_owned()))
                } else if let Some(rest) = name.strip_prefix("~*") {
                    Some(LocationMatch::Regex {
                        re: rest.to_owned(),
                        caseless: true,
                    })
                } else if let Some(rest) = name.strip_prefix('~') {
                    Some(LocationMatch::Regex {
                        re: rest.to_owned(),
                        caseless: false,
                    })
                } else if let Some(rest) = name.strip_prefix('@') {
                    Some(LocationMatch::Named(rest.to_owned()))
                } else {
                    Some(LocationMatch::Prefix(name.clone()))
                }
            }
            _ => None,
        }
    }

    /// SCHEMA.md's `match:` text.
    fn schema(&self) -> Option<String> {
        match self {
            LocationMatch::Exact(p) => Some(format!("= {p}")),
            LocationMatch::PrefixNoRegex(p) => Some(format!("^~ {p}")),
            LocationMatch::Prefix(p) => Some(p.clone()),
            LocationMatch::Regex { re, caseless } => {
                Some(format!("{} {re}", if *caseless { "~*" } else { "~" }))
            }
            LocationMatch::Named(_) => None,
        }
    }

    fn is_regex(&self) -> bool {
        matches!(self, LocationMatch::Regex { .. })
    }
}

/// The regexes of PHP locations that take any script (fpmlb's routing).
const ANY_SCRIPT: &[&str] = &[
    "\\.php$",
    "\\.php(/|$)",
    "[^/]\\.php(/|$)",
    "\\.php(?:$|/)",
    "\\.php(?:/|$)",
    "^(.+\\.php)(/.*)?$",
    "^(.+\\.php)(/.+)?$",
    "^(.+\\.php)(.*)$",
    "^.+\\.php(/|$)",
    ".+\\.php(/|$)",
    "\\.php",
];

/// Whether a PHP location's regex takes any `.php` script.
pub(super) fn any_script(re: &str) -> bool {
    ANY_SCRIPT.contains(&re)
}

/// Whether such a regex leaves out `/x.php/path` (no PATH_INFO).
fn without_path_info(re: &str) -> bool {
    re == "\\.php$"
}

/// The scripts a restricted PHP regex allows: `^/index\.php(/|$)` is
/// `[/index.php]`, `^/(index|config)\.php(/|$)` two scripts.
fn restricted_scripts(re: &str) -> Option<Vec<String>> {
    let body = re.strip_prefix("^/")?;
    let (names, tail) = body.split_once("\\.php")?;
    if !matches!(
        tail,
        "(/|$)" | "$" | "(?:/|$)" | "(?:$|/)" | "(/.*)?$" | "(/.*)$"
    ) {
        return None;
    }
    let names: Vec<&str> = match names.strip_prefix('(').and_then(|n| n.strip_suffix(')')) {
        Some(group) => group.trim_start_matches("?:").split('|').collect(),
        None => vec![names],
    };
    let ok = |n: &&str| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'/'))
    };
    if !names.iter().all(ok) {
        return None;
    }
    Some(names.iter().map(|n| format!("/{n}.php")).collect())
}

/// What a `try_files` line does, in fpmlb's terms.
#[derive(Debug, PartialEq, Eq)]
enum TryFiles {
    /// `$uri [$uri/] /x.php[?$args]`: files, then the front controller.
    FrontController {
        script: String,
        query_kept: bool,
    },
    /// `$uri [$uri/] =404` (or `$fastcgi_script_name =404`): files or 404,
    /// which is what fpmlb does without a front controller.
    FilesOr404,
    Other,
}

fn try_files(args: &[String]) -> TryFiles {
    let Some((fallback, files)) = args.split_last() else {
        return TryFiles::Other;
    };
    let files_ok = files.iter().all(|f| {
        matches!(
            f.as_str(),
            "$uri" | "$uri/" | "$fastcgi_script_name" | "$uri/index.html"
        )
    });
    if !files_ok {
        return TryFiles::Other;
    }
    if fallback == "=404" {
        return TryFiles::FilesOr404;
    }
    let (path, query) = match fallback.find(['?', '$']) {
        Some(i) => fallback.split_at(i),
        None => (fallback.as_str(), ""),
    };
    if path.starts_with('/') && path.ends_with(".php") && !path.contains('$') {
        return TryFiles::FrontController {
            script: path.to_owned(),
            query_kept: matches!(
                query,
                "" | "?$query_string" | "?$args" | "$is_args$args" | "$is_args$query_string"
            ),
        };
    }
    TryFiles::Other
}

/// `expires` as a `Cache-Control` value, as nginx sends it.
fn expires(arg: &str) -> Option<String> {
    match arg {
        "max" => Some("max-age=315360000".to_owned()),
        "epoch" | "-1" => Some("no-cache".to_owned()),
        "off" => None,
        a => {
            let secs = parse_duration(a.trim_start_matches('+')).ok()?.as_secs();
            Some(format!("max-age={secs}"))
        }
    }
}

/// Translates the locations of `server` into `draft.locations`, and `location
/// /`'s `try_files` into `front_controller`.
pub(super) fn translate<'a>(
    cx: &mut Cx<'_>,
    draft: &mut Draft,
    http: &[&Directive],
    srv: &Scope<'a>,
    server: &'a Directive,
    main_php: &'a Directive,
    php: &[(Vec<&'a Directive>, &'a Directive)],
) -> Result<(), ImportError> {
    let main_match = LocationMatch::of(main_php);
    let main_pass = main_php
        .children()
        .iter()
        .find(|c| c.name == "fastcgi_pass")
        .and_then(|d| d.arg(0))
        .unwrap_or("");
    let has_other_regex = server.children().iter().any(|d| {
        d.name == "location"
            && !std::ptr::eq(d, main_php)
            && LocationMatch::of(d).is_some_and(|m| m.is_regex())
    });
    let scripts = match &main_match {
        Some(LocationMatch::Regex { re, .. }) if !any_script(re) => restricted_scripts(re),
        Some(LocationMatch::Exact(p)) if p.ends_with(".php") => Some(vec![p.clone()]),
        _ => None,
    };
    let main_scope = srv.with(main_php.children());
    if let Some(LocationMatch::Regex { re, .. }) = &main_match
        && !without_path_info(re)
        && re.contains("php")
        && main_scope.one(cx, "fastcgi_split_path_info").is_none()
    {
        cx.differs(
            main_php,
            "no fastcgi_split_path_info: nginx sends /script.php/more whole as SCRIPT_NAME \
             (php-fpm's fix_pathinfo then finds script.php); fpmlb sends SCRIPT_NAME=/script.php \
             and PATH_INFO=/more",
        );
    }
    if let Some(LocationMatch::Regex { re, .. }) = &main_match
        && without_path_info(re)
    {
        cx.differs(
            main_php,
            "this regex does not match /script.php/more (no PATH_INFO): nginx sends such URIs \
             to the other locations (front controller or 404); fpmlb runs script.php with \
             PATH_INFO=/more",
        );
    }

    let mut root_rules: Vec<(Rule, String)> = Vec::new();
    let mut root_entry_at: Option<usize> = None;
    for d in server.children().iter().filter(|d| d.name == "location") {
        let Some(block) = d.block.as_deref() else {
            continue;
        };
        let Some(m) = LocationMatch::of(d) else {
            cx.untranslated(d, "not a location nginx reads");
            cx.mark_tree(d);
            continue;
        };
        let Some(matcher) = m.schema() else {
            cx.untranslated(
                d,
                "a named location: fpmlb has no internal redirects to names",
            );
            cx.mark_tree(d);
            continue;
        };
        cx.done(d);
        let is_main = std::ptr::eq(d, main_php);
        let mut rules: Vec<(Rule, String)> = Vec::new();
        let scope = srv.with(block);
        for c in block {
            match c.name.as_str() {
                "location" => {
                    // The main PHP location may be nested: its settings are
                    // the top-level keys already.
                    let holds_main = php
                        .iter()
                        .any(|(outer, loc)| std::ptr::eq(*loc, main_php) && outer.contains(&d));
                    cx.untranslated(
                        c,
                        if holds_main || std::ptr::eq(c, main_php) {
                            "a nested location (its PHP settings are the top-level keys)"
                        } else {
                            "a nested location: fpmlb's locations do not nest"
                        },
                    );
                    cx.mark_tree(c);
                }
                "deny" if c.arg(0) == Some("all") => {
                    let allows: Vec<&Directive> =
                        block.iter().filter(|a| a.name == "allow").collect();
                    if allows.iter().any(|a| a.arg(0) != Some("all")) {
                        cx.differs(
                            c,
                            "fpmlb has no client address rules: it denies everyone here",
                        );
                        for a in allows {
                            cx.untranslated(a, "fpmlb has no client address rules");
                        }
                        rules.push((Rule::Deny(403), cx.why(c)));
                    } else if allows.is_empty() {
                        cx.done(c);
                        rules.push((Rule::Deny(403), cx.why(c)));
                    } else {
                        // `allow all; deny all;`: allow wins.
                        cx.done(c);
                        for a in allows {
                            cx.done(a);
                        }
                    }
                }
                "allow" if c.arg(0) == Some("all") && !block.iter().any(|x| x.name == "deny") => {
                    cx.done(c);
                }
                "return" => return_rule(cx, c, &mut rules),
                "internal" => {
                    cx.done(c);
                    rules.push((Rule::Internal, cx.why(c)));
                }
                "alias" => match c.arg(0) {
                    Some(p) if !p.contains('$') => {
                        cx.done(c);
                        rules.push((Rule::Alias(p.to_owned()), cx.why(c)));
                    }
                    _ => cx.untranslated(c, "an alias with variables"),
                },
                "root" if !is_main => {
                    let own = c.arg(0).unwrap_or("");
                    let same = draft
                        .static_files
                        .as_ref()
                        .is_some_and(|s| s.root.value == own.trim_end_matches('/'));
                    match &m {
                        _ if same => cx.done(c),
                        LocationMatch::Exact(p)
                        | LocationMatch::Prefix(p)
                        | LocationMatch::PrefixNoRegex(p)
                            if own.starts_with('/') && !own.contains('$') =>
                        {
                            cx.done(c);
                            let alias = format!("{}{p}", own.trim_end_matches('/'));
                            rules.push((Rule::Alias(alias), cx.why(c)));
                        }
                        _ => cx.untranslated(c, "a root of its own in a regex location"),
                    }
                }
                "try_files" if is_main => match try_files(&c.args) {
                    TryFiles::FilesOr404 => {
                        if cx.compat {
                            cx.differs(
                                c,
                                "fpmlb asks php-fpm, which answers a missing script with its \
                                 own 404 (with static.root, fpmlb answers it)",
                            );
                        } else {
                            cx.done(c);
                        }
                    }
                    _ => cx.untranslated(c, "fpmlb runs the script the URI names"),
                },
                "try_files" => match try_files(&c.args) {
                    TryFiles::FrontController { script, query_kept } => {
                        if query_kept {
                            cx.done(c);
                        } else {
                            cx.differs(c, "fpmlb passes the request's own query string");
                        }
                        if matcher == "/" {
                            draft.front_controller = Some(Sourced::new(script, cx.why(c)));
                        } else {
                            rules.push((Rule::FrontController(script), cx.why(c)));
                        }
                    }
                    TryFiles::FilesOr404 => cx.done(c),
                    TryFiles::Other => cx.untranslated(
                        c,
                        "fpmlb tries the file, the directory's index, then the front controller",
                    ),
                },
                "expires" => match c.arg(0).and_then(expires) {
                    Some(v) => {
                        cx.done(c);
                        rules.push((Rule::CacheControl(v), cx.why(c)));
                    }
                    None if c.arg(0) == Some("off") => cx.done(c),
                    None => cx.untranslated(c, "an expires fpmlb cannot write as Cache-Control"),
                },
                "add_header"
                    if c.arg(0)
                        .is_some_and(|h| h.eq_ignore_ascii_case("cache-control")) =>
                {
                    cx.done(c);
                    let v = c.arg(1).unwrap_or("").to_owned();
                    match rules
                        .iter_mut()
                        .find(|(r, _)| matches!(r, Rule::CacheControl(_)))
                    {
                        Some((Rule::CacheControl(old), why)) => {
                            *old = format!("{old}, {v}");
                            why.push_str(&format!("; {}", cx.why(c)));
                        }
                        _ => rules.push((Rule::CacheControl(v), cx.why(c))),
                    }
                }
                "gzip_static" if c.arg(0) == Some("on") => {
                    cx.done(c);
                    if let Some(s) = &mut draft.static_files
                        && s.precompressed.is_none()
                    {
                        s.precompressed = Some(Sourced::new(true, cx.why(c)));
                    }
                }
                "fastcgi_pass" if !is_main => {
                    if c.arg(0) == Some(main_pass) {
                        cx.done(c);
                    } else {
                        let group = c.arg(0).unwrap_or("other").to_owned();
                        // Upstream settings of a second group (balance,
                        // max_fails) have no place: fpmlb's are global.
                        let mut unused = Draft::default();
                        if let Ok(b) = upstream_backends(cx, http, c, Some(&group), &mut unused) {
                            let group = b.first().and_then(|x| x.group.clone()).unwrap_or(group);
                            if !draft
                                .backends
                                .iter()
                                .any(|x| x.group.as_ref() == Some(&group))
                            {
                                draft.backends.extend(b);
                            }
                            rules.push((Rule::Backends(group), cx.why(c)));
                        }
                    }
                }
                _ => {}
            }
        }
        if !is_main && block.iter().any(|c| c.name == "fastcgi_pass") {
            php_differences(cx, srv, main_php, d, &scope, &mut rules);
        }
        let rules = first_of_each(cx, rules);
        if matcher == "/" {
            root_rules.extend(rules);
            root_rules = first_of_each(cx, root_rules);
            if root_entry_at.is_none() && !root_rules.is_empty() {
                root_entry_at = Some(draft.locations.len());
                draft.locations.push(Location {
                    matcher,
                    rules: Vec::new(),
                    comment: None,
                    why: cx.why(d),
                });
            }
            continue;
        }
        let comment = if is_main {
            if rules.is_empty() && !has_other_regex {
                continue;
            }
            Some(
                "the PHP location: its settings are the top-level keys (kept for nginx's \
                 precedence)"
                    .to_owned(),
            )
        } else if rules.is_empty() {
            Some("no rule fpmlb has: kept so that nginx's precedence holds".to_owned())
        } else {
            None
        };
        if cx.compat && rules.iter().any(|(r, _)| guards(r)) {
            cx.note(
                NoteKind::Compat,
                d,
                "not enforced with --compat: this fpmlb has no locations",
            );
        }
        draft.locations.push(Location {
            matcher,
            rules,
            comment,
            why: cx.why(d),
        });
    }

    if let Some(scripts) = scripts {
        let why = cx.why(main_php);
        if cx.compat {
            cx.note(
                NoteKind::Compat,
                main_php,
                format!(
                    "only {} may run: issue 14's scripts allowlist, written commented out; this \
                     fpmlb runs every .php script under document_root",
                    scripts.join(", ")
                ),
            );
        }
        root_rules.push((Rule::Scripts(scripts), why));
    }
    if !root_rules.is_empty() {
        let at = root_entry_at.unwrap_or_else(|| {
            draft.locations.push(Location {
                matcher: "/".to_owned(),
                rules: Vec::new(),
                comment: Some("added for the PHP location's script allowlist".to_owned()),
                why: String::new(),
            });
            draft.locations.len() - 1
        });
        if let Some(loc) = draft.locations.get_mut(at) {
            loc.rules = root_rules;
        }
    }
    if cx.compat && !draft.locations.is_empty() {
        cx.general(
            NoteKind::Compat,
            format!(
                "{} location(s): issue 14's locations, written commented out",
                draft.locations.len()
            ),
        );
    }
    Ok(())
}

/// One rule per key, the first (nginx runs the first `return`; a second
/// `alias` is an nginx error); the others are noted.
fn first_of_each(cx: &mut Cx<'_>, rules: Vec<(Rule, String)>) -> Vec<(Rule, String)> {
    let mut kept: Vec<(Rule, String)> = Vec::with_capacity(rules.len());
    for (rule, why) in rules {
        let key = rule_key(&rule);
        if kept.iter().any(|(r, _)| rule_key(r) == key) {
            cx.general(
                NoteKind::Untranslated,
                format!("{why}: a second `{key}` in one location; the first is kept"),
            );
        } else {
            kept.push((rule, why));
        }
    }
    kept
}

fn rule_key(rule: &Rule) -> &'static str {
    super::draft::rule_yaml(rule).0
}

/// A rule that keeps requests out: not having it serves what nginx refused.
fn guards(rule: &Rule) -> bool {
    matches!(
        rule,
        Rule::Deny(_) | Rule::Return { .. } | Rule::Internal | Rule::Scripts(_)
    )
}

fn return_rule(cx: &mut Cx<'_>, c: &Directive, rules: &mut Vec<(Rule, String)>) {
    let (code, rest) = match (c.arg(0), c.arg(1)) {
        (Some(a), rest) if a.bytes().all(|b| b.is_ascii_digit()) => (a.parse::<u16>().ok(), rest),
        // `return URL`: a 302.
        (Some(url), None) if url.contains("://") || url.starts_with("$scheme") => {
            (Some(302), Some(url))
        }
        _ => (None, None),
    };
    let Some(code) = code else {
        cx.untranslated(c, "not a return fpmlb reads");
        return;
    };
    match (code, rest) {
        (403 | 404, None) => {
            cx.done(c);
            rules.push((Rule::Deny(code), cx.why(c)));
        }
        (301 | 302 | 303 | 307 | 308, Some(url)) => {
            if url.contains('$') {
                cx.differs(c, "the URL has nginx variables: check fpmlb expands them");
            } else {
                cx.done(c);
            }
            rules.push((
                Rule::Return {
                    status: code,
                    url: Some(url.to_owned()),
                },
                cx.why(c),
            ));
        }
        (444, _) => cx.untranslated(c, "closing the connection without an answer"),
        (400..=599, None) => {
            cx.done(c);
            rules.push((
                Rule::Return {
                    status: code,
                    url: None,
                },
                cx.why(c),
            ));
        }
        _ => cx.untranslated(
            c,
            "a return with a body: fpmlb returns a status or a redirect",
        ),
    }
}

/// Rules for what a second PHP location sets differently from the main one;
/// notes for what differs in settings fpmlb has at the top level only.
fn php_differences<'a>(
    cx: &mut Cx<'_>,
    srv: &Scope<'a>,
    main: &'a Directive,
    location: &'a Directive,
    scope: &Scope<'a>,
    rules: &mut Vec<(Rule, String)>,
) {
    let main_scope = srv.with(main.children());
    let value = |s: &Scope<'a>, cx: &mut Cx<'_>, name: &str| {
        s.one(cx, name)
            .map(|d| (d.arg(0).unwrap_or("").to_owned(), cx.why(d), d))
    };
    let mut timeouts = Vec::new();
    let mut why = Vec::new();
    for (name, key) in [
        ("fastcgi_read_timeout", "read"),
        ("fastcgi_send_timeout", "send"),
    ] {
        let here = value(scope, cx, name);
        let there = value(&main_scope, cx, name);
        if let Some((v, w, d)) = here {
            if there.as_ref().map(|t| &t.0) != Some(&v) && parse_duration(&v).is_ok() {
                timeouts.push((key, v));
                why.push(w);
            }
            cx.done(d);
        }
    }
    if !timeouts.is_empty() {
        rules.push((Rule::Timeouts(timeouts), why.join("; ")));
    }
    if let Some((v, w, d)) = value(scope, cx, "client_max_body_size") {
        let there = value(&main_scope, cx, "client_max_body_size").map(|t| t.0);
        if there.as_ref() != Some(&v) && parse_size(&v).is_ok() {
            rules.push((Rule::MaxBodySize(v.to_ascii_lowercase()), w));
        }
        cx.done(d);
    }
    // fastcgi_buffering: the location's own when it is not the top level's
    // (nginx's default, on, where neither sets it).
    let here = scope.one(cx, "fastcgi_buffering");
    let there = main_scope.one(cx, "fastcgi_buffering");
    let on = |d: Option<&Directive>| d.map_or(Some(true), flag_value);
    let top = on(there).unwrap_or(true);
    if let Some(d) = here {
        if on(here).is_some() {
            cx.done(d);
        } else {
            cx.untranslated(d, "not on or off");
        }
    }
    if let Some(v) = on(here)
        && v != top
    {
        let why = here.map_or_else(
            || "nginx's default fastcgi_buffering on".to_owned(),
            |d| cx.why(d),
        );
        rules.push((Rule::ResponseBuffering(v), why));
    }
    top_level_only(
        cx,
        (scope, &main_scope),
        location,
        "fastcgi_request_buffering",
        "request_buffering",
        |d| flag_value(d).map(u64::from),
        1,
    );
    top_level_only(
        cx,
        (scope, &main_scope),
        location,
        "fastcgi_max_temp_file_size",
        "response_max_temp_file",
        |d| parse_size(d.arg(0).unwrap_or("")).ok(),
        NGINX_MAX_TEMP_FILE,
    );
    let main_params: Vec<(String, String)> = main_scope
        .all(cx, "fastcgi_param")
        .iter()
        .map(|d| {
            (
                d.arg(0).unwrap_or("").to_owned(),
                d.arg(1).unwrap_or("").to_owned(),
            )
        })
        .collect();
    let mut extra = Vec::new();
    let mut why = Vec::new();
    for d in scope.all(cx, "fastcgi_param") {
        let p = (
            d.arg(0).unwrap_or("").to_owned(),
            d.arg(1).unwrap_or("").to_owned(),
        );
        if main_params.contains(&p) {
            cx.done(d);
        } else if p.1.contains('$') {
            cx.untranslated(
                d,
                "the value uses nginx variables, which fpmlb's params cannot",
            );
        } else {
            cx.done(d);
            why.push(cx.at(d));
            extra.push(p);
        }
    }
    if !extra.is_empty() {
        rules.push((
            Rule::Params(extra),
            format!("fastcgi_param ({})", why.join(", ")),
        ));
    }
    for name in [
        "fastcgi_split_path_info",
        "fastcgi_index",
        "fastcgi_keep_conn",
        "fastcgi_connect_timeout",
    ] {
        if let Some(d) = scope.one(cx, name) {
            cx.done(d);
        }
    }
}

/// nginx's `fastcgi_max_temp_file_size` when none is set: 1024m.
const NGINX_MAX_TEMP_FILE: u64 = 1024 << 20;

/// A setting fpmlb has at the top level only (taken from the main PHP
/// location): where a second PHP location's value differs, a note says the
/// top level's applies there. `value` reads a directive (None: a value
/// nginx refuses, noted); `default` is nginx's when none is set.
fn top_level_only<'a>(
    cx: &mut Cx<'_>,
    (scope, main_scope): (&Scope<'a>, &Scope<'a>),
    location: &'a Directive,
    name: &str,
    key: &str,
    value: impl Fn(&Directive) -> Option<u64>,
    default: u64,
) {
    let here = scope.one(cx, name);
    let there = main_scope.one(cx, name);
    let of = |d: Option<&Directive>| d.map_or(Some(default), &value);
    // The main location's value when it is one fpmlb took, else the default.
    let top = of(there).unwrap_or(default);
    let Some(v) = of(here) else {
        if let Some(d) = here {
            cx.untranslated(d, "not a value nginx takes");
        }
        return;
    };
    let message =
        format!("fpmlb has one {key}, the top level's (the main PHP location's), for every script");
    match here {
        Some(d) if v != top => cx.untranslated(d, message),
        Some(d) => cx.done(d),
        None if v != top => cx.general(
            NoteKind::Untranslated,
            format!(
                "{}: nginx's default {name} here; {message}",
                cx.why(location)
            ),
        ),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nginx::tree::{FileId, parse};

    fn loc(src: &str) -> Option<LocationMatch> {
        let t = parse(format!("location {src} {{}}").as_bytes(), FileId(0)).unwrap();
        LocationMatch::of(&t[0])
    }

    #[test]
    fn modifiers_as_nginx_reads_them() {
        assert_eq!(loc("= /x"), Some(LocationMatch::Exact("/x".into())));
        assert_eq!(loc("=/x"), Some(LocationMatch::Exact("/x".into())));
        assert_eq!(
            loc("^~ /x"),
            Some(LocationMatch::PrefixNoRegex("/x".into()))
        );
        // Glued, `^~` is part of the prefix, as in nginx.
        assert_eq!(loc("^~/x"), Some(LocationMatch::Prefix("^~/x".into())));
        assert_eq!(
            loc(r"~* \.(css|js)$"),
            Some(LocationMatch::Regex {
                re: r"\.(css|js)$".into(),
                caseless: true
            })
        );
        assert_eq!(
            loc(r"~\.php$"),
            Some(LocationMatch::Regex {
                re: r"\.php$".into(),
                caseless: false
            })
        );
        assert_eq!(loc("@php"), Some(LocationMatch::Named("php".into())));
        assert_eq!(loc("/"), Some(LocationMatch::Prefix("/".into())));
        assert_eq!(loc("!! /x"), None);
    }

    #[test]
    fn php_regexes() {
        assert!(any_script(r"[^/]\.php(/|$)"));
        assert!(any_script(r"\.php$"));
        assert!(!any_script(r"^/index\.php(/|$)"));
        assert_eq!(
            restricted_scripts(r"^/index\.php(/|$)"),
            Some(vec!["/index.php".to_owned()])
        );
        assert_eq!(
            restricted_scripts(r"^/(index|app_dev|config)\.php(/|$)"),
            Some(vec![
                "/index.php".to_owned(),
                "/app_dev.php".to_owned(),
                "/config.php".to_owned()
            ])
        );
        assert_eq!(restricted_scripts(r"^/(.+)\.php$"), None);
        assert_eq!(restricted_scripts(r"\.php$"), None);
    }

    #[test]
    fn try_files_forms() {
        let t = |s: &str| try_files(&s.split(' ').map(str::to_owned).collect::<Vec<_>>());
        assert_eq!(
            t("$uri $uri/ /index.php?$query_string"),
            TryFiles::FrontController {
                script: "/index.php".into(),
                query_kept: true
            }
        );
        assert_eq!(
            t("$uri /index.php$is_args$args"),
            TryFiles::FrontController {
                script: "/index.php".into(),
                query_kept: true
            }
        );
        assert_eq!(
            t("$uri $uri/ /index.php?q=$uri&$args"),
            TryFiles::FrontController {
                script: "/index.php".into(),
                query_kept: false
            }
        );
        assert_eq!(t("$uri $uri/ =404"), TryFiles::FilesOr404);
        assert_eq!(t("$fastcgi_script_name =404"), TryFiles::FilesOr404);
        assert_eq!(t("$uri @rewrite"), TryFiles::Other);
        assert_eq!(t("/maintenance.html $uri /index.php"), TryFiles::Other);
        assert_eq!(expires("max").as_deref(), Some("max-age=315360000"));
        assert_eq!(expires("30d").as_deref(), Some("max-age=2592000"));
        assert_eq!(expires("1y").as_deref(), Some("max-age=31536000"));
        assert_eq!(expires("epoch").as_deref(), Some("no-cache"));
        assert_eq!(expires("off"), None);
    }
}
