//! Choosing the PHP server and translating what applies to its PHP location:
//! listeners, root and index, FastCGI params and timeouts, body limits,
//! request and response buffering, upstreams, TLS, real IP, gzip and error
//! pages. Its other locations are `locations.rs`'s.

use crate::config::{parse_duration, parse_listen, parse_size};

use super::draft::{Draft, Listener, Sourced, Static};
use super::fastcgi::{self, Param, RootFrom};
use super::locations::{self, LocationMatch};
use super::upstream::upstream_backends;
use super::{Cx, ImportError, NoteKind, Options, Scope};
use crate::nginx::tree::Directive;

/// nginx's root when none is set: `html` under Debian's install prefix.
const DEFAULT_ROOT: &str = "/usr/share/nginx/html";

/// A `server` block and what matters for choosing it.
struct Server<'a> {
    d: &'a Directive,
    names: Vec<String>,
    /// Its locations with `fastcgi_pass`, each with the locations around it
    /// (outermost first).
    php: Vec<(Vec<&'a Directive>, &'a Directive)>,
    /// It only redirects to https (`return 301 https://...`).
    redirect: Option<&'a Directive>,
}

fn server_names(d: &Directive) -> Vec<String> {
    d.children()
        .iter()
        .filter(|c| c.name == "server_name")
        .flat_map(|c| c.args.iter().cloned())
        .collect()
}

/// Locations (nested ones too) whose own block has `fastcgi_pass`.
fn php_locations<'a>(
    body: &'a [Directive],
    outer: &mut Vec<&'a Directive>,
    out: &mut Vec<(Vec<&'a Directive>, &'a Directive)>,
) {
    for d in body
        .iter()
        .filter(|d| d.name == "location" && d.block.is_some())
    {
        if d.children().iter().any(|c| c.name == "fastcgi_pass") {
            out.push((outer.clone(), d));
        }
        outer.push(d);
        php_locations(d.children(), outer, out);
        outer.pop();
    }
}

/// Whether nginx sends files from the server's root: a request that no
/// location takes is served from it (the server's own static handler), and
/// so is one a location takes without passing it on or refusing it
/// (`try_files`, `expires`...). A `location /` that passes to PHP or
/// refuses takes every request no other location takes.
fn serves_files(server: &Directive) -> bool {
    let locations: Vec<&Directive> = server
        .children()
        .iter()
        .filter(|d| d.name == "location" && d.block.is_some())
        .collect();
    let answers = |loc: &Directive| {
        loc.children().iter().any(|c| {
            matches!(
                c.name.as_str(),
                "fastcgi_pass" | "proxy_pass" | "uwsgi_pass" | "scgi_pass" | "grpc_pass" | "return"
            ) || (c.name == "deny" && c.arg(0) == Some("all"))
        })
    };
    // `location /`, `^~ /`, or a regex any path matches.
    let catch_all = locations.iter().any(|l| {
        match l
            .args
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["/"] | ["^~", "/"] => true,
            ["~" | "~*", re] => matches!(*re, "^/" | "/" | ".*" | "^/.*" | "^"),
            _ => false,
        }
    });
    // An exact location (`= /favicon.ico`) serves its one path, never the
    // rest of the root: not a reason to serve the root.
    let exact = |l: &Directive| l.args.first().is_some_and(|m| m == "=");
    !catch_all || locations.iter().any(|l| !exact(l) && !answers(l))
}

/// A `return 301|302|303|307|308 https://...` at the server level, in a
/// server-level `if` (certbot's), or in `location /`.
fn https_redirect(d: &Directive) -> Option<&Directive> {
    let is_redirect = |r: &&Directive| {
        r.name == "return"
            && matches!(r.arg(0), Some("301" | "302" | "303" | "307" | "308"))
            && r.arg(1).is_some_and(|u| u.starts_with("https://"))
    };
    let server_level = d.children().iter().find(is_redirect);
    let nested = d
        .children()
        .iter()
        .filter(|c| {
            (c.name == "if") || (c.name == "location" && c.args.len() == 1 && c.args[0] == "/")
        })
        .flat_map(|c| c.children().iter())
        .find(is_redirect);
    server_level.or(nested)
}

/// Directives that may differ between two servers that are one site on
/// several listeners (http and https copies).
fn per_listener(d: &Directive) -> bool {
    d.name == "listen"
        || d.name == "http2"
        || d.name.starts_with("ssl")
        || (d.name == "add_header"
            && d.arg(0)
                .is_some_and(|h| h.eq_ignore_ascii_case("strict-transport-security")))
}

fn same_site(a: &Directive, b: &Directive) -> bool {
    let strip = |d: &Directive| -> Vec<Directive> {
        d.children()
            .iter()
            .filter(|c| !per_listener(c))
            .cloned()
            .collect()
    };
    strip(a) == strip(b)
}

fn names_meet(a: &[String], b: &[String]) -> bool {
    let wild = |n: &[String]| n.is_empty() || n.iter().any(|s| s == "_" || s.is_empty());
    wild(a) || wild(b) || a.iter().any(|x| b.contains(x))
}

/// Chooses the server, then translates it.
pub(super) fn translate(
    cx: &mut Cx<'_>,
    http: &[&Directive],
    options: &Options,
) -> Result<(Draft, Vec<String>), ImportError> {
    let servers: Vec<Server<'_>> = http
        .iter()
        .filter(|d| d.name == "server" && d.block.is_some())
        .map(|d| {
            let mut php = Vec::new();
            php_locations(d.children(), &mut Vec::new(), &mut php);
            let redirect = if php.is_empty() {
                https_redirect(d)
            } else {
                None
            };
            Server {
                d,
                names: server_names(d),
                php,
                redirect,
            }
        })
        .collect();
    let php_servers: Vec<&Server<'_>> = servers.iter().filter(|s| !s.php.is_empty()).collect();
    if php_servers.is_empty() {
        return Err(ImportError(format!(
            "no server passes requests to FastCGI: none of the {} server block(s) has a location \
             with fastcgi_pass (a static site or a proxy has nothing for fpmlb to do)",
            servers.len()
        )));
    }
    let chosen: &Server<'_> = match &options.server {
        None => php_servers[0],
        Some(want) => php_servers
            .iter()
            .enumerate()
            .find(|(i, s)| want == &(i + 1).to_string() || s.names.contains(want))
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                ImportError(format!(
                    "--server {want}: no PHP server has that server_name or number (the PHP \
                     servers: {})",
                    php_servers
                        .iter()
                        .enumerate()
                        .map(|(i, s)| format!("{} {}", i + 1, s.names.join(" ")))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
    };
    let l = cx.l;
    let show = |s: &Server<'_>| {
        format!(
            "the server at {} (server_name {})",
            l.at(s.d.at),
            if s.names.is_empty() {
                "none".to_owned()
            } else {
                s.names.join(" ")
            }
        )
    };
    let mut source = vec![format!(
        "from {}, {}",
        cx.l.show(crate::nginx::tree::FileId(0)),
        show(chosen)
    )];

    // Servers that add listeners to the chosen one.
    let mut listener_servers = vec![chosen.d];
    let mut redirects = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        if std::ptr::eq(s.d, chosen.d) {
            continue;
        }
        if !s.php.is_empty() && same_site(s.d, chosen.d) {
            source.push(format!("with the listeners of {} (the same site)", show(s)));
            listener_servers.push(s.d);
            continue;
        }
        if let Some(r) = s.redirect
            && names_meet(&s.names, &chosen.names)
        {
            source.push(format!("with the https redirect of {}", show(s)));
            redirects.push((s.d, r));
            continue;
        }
        let message = if s.php.is_empty() {
            "a server without PHP locations (static files or a proxy): not imported".to_owned()
        } else {
            let number = php_servers
                .iter()
                .position(|p| std::ptr::eq(p.d, s.d))
                .map_or(i + 1, |p| p + 1);
            format!(
                "another PHP site: fpmlb serves one site per instance; import it into its own \
                 file with --server {}",
                s.names
                    .iter()
                    .find(|n| !n.is_empty() && *n != "_")
                    .cloned()
                    .unwrap_or_else(|| number.to_string())
            )
        };
        cx.note(NoteKind::Untranslated, s.d, message);
        cx.mark_tree(s.d);
    }

    let mut t = Translation {
        draft: Draft::default(),
        http,
        copies: Vec::new(),
    };
    t.server(cx, chosen, &listener_servers, &redirects)?;
    Ok((t.draft, source))
}

pub(super) struct Translation<'a, 'h> {
    pub draft: Draft,
    pub http: &'h [&'a Directive],
    /// Servers that are the chosen one on other listeners.
    pub copies: Vec<&'a Directive>,
}

impl<'a> Translation<'a, '_> {
    fn server(
        &mut self,
        cx: &mut Cx<'_>,
        chosen: &Server<'a>,
        listener_servers: &[&'a Directive],
        redirects: &[(&'a Directive, &'a Directive)],
    ) -> Result<(), ImportError> {
        let srv = Scope::new(self.http).with(chosen.d.children());
        cx.done(chosen.d);
        for s in listener_servers {
            cx.done(s);
            // The copies' own directives are the chosen one's: only their
            // listeners and TLS lines are read.
            if !std::ptr::eq(*s, chosen.d) {
                for c in s.children().iter().filter(|c| !per_listener(c)) {
                    cx.mark_tree(c);
                }
            }
        }
        self.copies = listener_servers[1..].to_vec();
        self.listeners(cx, listener_servers, redirects)?;
        self.server_name(cx, chosen);

        // The main PHP location: the first one of the server's own level
        // whose regex takes any script, else the first one.
        let main = chosen
            .php
            .iter()
            .find(|(outer, loc)| {
                outer.is_empty()
                    && matches!(
                        LocationMatch::of(loc),
                        Some(LocationMatch::Regex { ref re, .. }) if locations::any_script(re)
                    )
            })
            .unwrap_or(&chosen.php[0]);
        let mut php = srv.clone();
        for o in &main.0 {
            php = php.with(o.children());
        }
        php = php.with(main.1.children());

        self.backends(cx, &php, main.1)?;
        self.root_and_params(cx, &srv, &php, serves_files(chosen.d))?;
        self.index(cx, &srv);
        self.limits_and_timeouts(cx, &srv, &php);
        self.tls_real_ip_compression(cx, &srv, &php);
        self.error_pages(cx, &srv);
        locations::translate(
            cx,
            &mut self.draft,
            self.http,
            &srv,
            chosen.d,
            main.1,
            &chosen.php,
        )?;
        unique_names(&mut self.draft.backends);
        Ok(())
    }

    fn listeners(
        &mut self,
        cx: &mut Cx<'_>,
        servers: &[&'a Directive],
        redirects: &[(&'a Directive, &'a Directive)],
    ) -> Result<(), ImportError> {
        let mut listeners: Vec<Listener> = Vec::new();
        let mut push = |l: Listener| {
            if !listeners.iter().any(|x| x.address == l.address) {
                listeners.push(l);
            }
        };
        for (s, redirect) in servers
            .iter()
            .map(|s| (*s, None))
            .chain(redirects.iter().map(|(s, r)| (*s, Some(*r))))
        {
            let ssl_on = s
                .children()
                .iter()
                .find(|c| c.name == "ssl" && c.arg(0) == Some("on"));
            if let Some(d) = ssl_on {
                cx.done(d);
            }
            let listens: Vec<&Directive> =
                s.children().iter().filter(|c| c.name == "listen").collect();
            if listens.is_empty() {
                cx.general(
                    NoteKind::Info,
                    format!(
                        "the server at {} has no listen: nginx's default is *:80 (as root), \
                         written as \":80\"",
                        cx.at(s)
                    ),
                );
                push(Listener {
                    address: ":80".into(),
                    tls: false,
                    proxy_protocol: false,
                    redirect_https: redirect.is_some(),
                    why: format!("nginx's default listen ({})", cx.at(s)),
                });
            }
            for d in listens {
                if let Some(l) = listener(cx, d, ssl_on.is_some(), redirect) {
                    push(l);
                }
            }
            if let Some(r) = redirect {
                cx.differs(
                    r,
                    "fpmlb answers 308 to https://host[:tls port]/uri on this listener \
                     (redirect_https), whatever the host",
                );
                cx.done(s);
                for c in s.children() {
                    if !cx.is_handled(c) && !matches!(c.name.as_str(), "listen" | "server_name") {
                        cx.mark_tree(c);
                    }
                    if c.name == "server_name" {
                        cx.done(c);
                    }
                }
            }
        }
        for l in &listeners {
            if !l.tls && !l.proxy_protocol && !l.redirect_https {
                continue;
            }
            if cx.compat {
                let what = if l.tls {
                    "TLS"
                } else if l.proxy_protocol {
                    "the PROXY protocol"
                } else {
                    "the https redirect"
                };
                cx.general(
                    NoteKind::Compat,
                    format!(
                        "listener {} needs issue 13 ({what}): written commented out",
                        l.address
                    ),
                );
            }
        }
        if cx.compat
            && !listeners
                .iter()
                .any(|l| !l.tls && !l.proxy_protocol && !l.redirect_https)
        {
            return Err(ImportError(
                "--compat: every listener of this server needs TLS, the PROXY protocol or is an \
                 https redirect, which this fpmlb cannot serve yet; import without --compat"
                    .to_owned(),
            ));
        }
        if !listeners.iter().any(|l| !l.redirect_https) {
            return Err(ImportError("no listener for the PHP server".to_owned()));
        }
        self.draft.listen = listeners;
        Ok(())
    }

    fn server_name(&mut self, cx: &mut Cx<'_>, chosen: &Server<'a>) {
        let Some(d) = chosen.d.children().iter().find(|c| c.name == "server_name") else {
            return;
        };
        let first = d.arg(0).unwrap_or("");
        let literal = !first.is_empty()
            && first != "_"
            && !first.contains(['*', '$', '~'])
            && !first.starts_with('.');
        if literal {
            self.draft.server_name = Some(Sourced::new(first.to_owned(), cx.why(d)));
            if d.args.len() > 1 {
                cx.differs(
                    d,
                    format!(
                        "fpmlb answers every host name; SERVER_NAME is {first}, as nginx sends \
                         the first name"
                    ),
                );
            } else {
                cx.done(d);
            }
        } else {
            cx.differs(
                d,
                "fpmlb answers every host name and sends the request's host as SERVER_NAME",
            );
        }
        for other in chosen
            .d
            .children()
            .iter()
            .filter(|c| c.name == "server_name")
            .skip(1)
        {
            cx.done(other);
        }
    }

    fn backends(
        &mut self,
        cx: &mut Cx<'_>,
        php: &Scope<'a>,
        location: &'a Directive,
    ) -> Result<(), ImportError> {
        let Some(pass) = php.one(cx, "fastcgi_pass") else {
            return Err(ImportError(format!(
                "the PHP location at {} has no fastcgi_pass",
                cx.at(location)
            )));
        };
        let backends = upstream_backends(cx, self.http, pass, None, &mut self.draft)?;
        self.draft.backends.extend(backends);
        Ok(())
    }

    fn root_and_params(
        &mut self,
        cx: &mut Cx<'_>,
        srv: &Scope<'a>,
        php: &Scope<'a>,
        serves_files: bool,
    ) -> Result<(), ImportError> {
        let root = php.one(cx, "root");
        if let Some(alias) = php.one(cx, "alias") {
            cx.untranslated(
                alias,
                "alias in the PHP location: fpmlb's document_root is one directory",
            );
        }
        let mut document_root = match root {
            Some(d) => match root_path(d.arg(0).unwrap_or("")) {
                Ok(path) => {
                    if path.1 {
                        cx.differs(
                            d,
                            format!(
                                "a relative root is under nginx's install prefix: {} on Debian",
                                path.0
                            ),
                        );
                    } else {
                        cx.done(d);
                    }
                    Sourced::new(path.0, cx.why(d))
                }
                Err(why) => {
                    cx.untranslated(d, why);
                    Sourced::new(DEFAULT_ROOT.to_owned(), "nginx's default root")
                }
            },
            None => {
                cx.general(
                    NoteKind::Info,
                    format!("no root: nginx's default on Debian is {DEFAULT_ROOT}"),
                );
                Sourced::new(DEFAULT_ROOT.to_owned(), "nginx's default root")
            }
        };
        let static_root = document_root.clone();

        // fastcgi_param lines, with nginx's inheritance.
        let params = php.all(cx, "fastcgi_param");
        let mut script_filename = false;
        for d in params {
            let (Some(name), value) = (d.arg(0), d.arg(1).unwrap_or("")) else {
                cx.untranslated(d, "fastcgi_param without a name");
                continue;
            };
            let if_not_empty = d.arg(2) == Some("if_not_empty");
            if name == "SCRIPT_FILENAME" {
                script_filename = true;
            }
            match fastcgi::classify(name, value, if_not_empty) {
                Param::Standard => cx.done(d),
                Param::Close(why) => cx.differs(d, why),
                Param::HttpsOn => {
                    self.draft.https = Some(Sourced::new(true, cx.why(d)));
                    cx.done(d);
                }
                Param::Root(RootFrom::DocumentRoot) => cx.done(d),
                Param::Root(RootFrom::RealpathRoot) => cx.differs(
                    d,
                    "$realpath_root resolves symlinks on the nginx host (a `current` release \
                     link): fpmlb sends document_root as written; point it at the real \
                     directory or keep the link the same on every node",
                ),
                Param::Root(RootFrom::Literal(dir)) => {
                    if dir != document_root.value {
                        cx.differs(
                            d,
                            format!(
                                "scripts are under {dir}, not under root {}: document_root \
                                 is {dir}",
                                document_root.value
                            ),
                        );
                        document_root = Sourced::new(dir, cx.why(d));
                    } else {
                        cx.done(d);
                    }
                }
                Param::Extra(v) => {
                    if if_not_empty {
                        cx.differs(d, "fpmlb sends the param even when empty");
                    } else {
                        cx.done(d);
                    }
                    self.draft.params.retain(|(n, _, _)| n != name);
                    self.draft.params.push((name.to_owned(), v, cx.why(d)));
                }
                Param::Untranslatable(why) => cx.untranslated(d, why),
            }
        }
        if !script_filename {
            cx.general(
                NoteKind::Info,
                "the PHP location sends no SCRIPT_FILENAME (php-fpm then cannot find the \
                 script); fpmlb always sends it",
            );
        }
        if let Some(d) = php.one(cx, "fastcgi_split_path_info") {
            match fastcgi::split_path_info(d.arg(0).unwrap_or("")) {
                Some(Ok(())) => cx.done(d),
                Some(Err(why)) => cx.differs(d, why),
                None => cx.untranslated(
                    d,
                    "fpmlb splits PATH_INFO after the first segment ending in .php",
                ),
            }
        }
        if let Some(d) = php.one(cx, "fastcgi_index") {
            if d.arg(0) == Some("index.php") {
                cx.done(d);
            } else {
                cx.differs(d, "fpmlb's index is the `index` directive's PHP script");
            }
        }
        for d in php.all(cx, "set") {
            if d.args.len() == 2 && d.args[0] == "$path_info" && d.args[1] == "$fastcgi_path_info" {
                cx.done(d);
            }
        }
        if let Some(d) = php.one(cx, "fastcgi_keep_conn") {
            cx.done(d);
        }
        self.draft.document_root = Some(document_root);
        let index = self.static_index(cx, srv);
        let precompressed = php
            .one(cx, "gzip_static")
            .or_else(|| srv.one(cx, "gzip_static"))
            .map(|d| {
                cx.done(d);
                Sourced::new(d.arg(0) == Some("on"), cx.why(d))
            });
        let root = srv
            .one(cx, "root")
            .and_then(|d| {
                root_path(d.arg(0).unwrap_or(""))
                    .ok()
                    .map(|p| Sourced::new(p.0, cx.why(d)))
            })
            .unwrap_or(static_root);
        if !serves_files {
            // nginx sends no file from the root: every location passes to
            // PHP or refuses. A static root here would serve the whole
            // application directory (composer.json, config, logs).
            cx.general(
                NoteKind::Info,
                format!(
                    "nginx serves no file from {}: every location passes to PHP or refuses, \
                     so no static root is written (an exact location's file, such as \
                     `= /favicon.ico`, is not served either)",
                    root.value
                ),
            );
            return Ok(());
        }
        if cx.compat {
            cx.general(
                NoteKind::Compat,
                format!(
                    "static files from {}: issue 14's static, written commented out (this \
                     fpmlb serves no files: 404)",
                    root.value
                ),
            );
        }
        self.draft.static_files = Some(Static {
            root,
            index,
            precompressed,
        });
        Ok(())
    }

    /// `index`: the first PHP script is fpmlb's `index`; the other names are
    /// static indexes.
    fn index(&mut self, cx: &mut Cx<'_>, srv: &Scope<'a>) {
        let Some(d) = srv.one(cx, "index") else {
            return;
        };
        match d.args.iter().find(|a| a.ends_with(".php")) {
            Some(php) if !php.contains(['/', '$']) && !php.starts_with('.') => {
                self.draft.index = Some(Sourced::new(php.clone(), cx.why(d)));
                cx.done(d);
            }
            Some(_) => {
                cx.untranslated(d, "an index script with a path, variables or a leading dot")
            }
            None => cx.differs(
                d,
                "no PHP script in index: nginx answers a directory with a static index \
                 file (or 403); fpmlb asks index.php",
            ),
        }
    }

    fn static_index(&mut self, cx: &mut Cx<'_>, srv: &Scope<'a>) -> Option<Sourced<Vec<String>>> {
        let d = srv.one(cx, "index")?;
        let names: Vec<String> = d
            .args
            .iter()
            .filter(|a| !a.ends_with(".php"))
            .cloned()
            .collect();
        (!names.is_empty()).then(|| Sourced::new(names, cx.why(d)))
    }

    fn limits_and_timeouts(&mut self, cx: &mut Cx<'_>, srv: &Scope<'a>, php: &Scope<'a>) {
        if let Some(d) = php.one(cx, "client_max_body_size") {
            self.draft.max_body_size = size(cx, d);
        }
        if let Some(d) = php.one(cx, "client_body_buffer_size") {
            self.draft.body_buffer_size = size(cx, d);
        }
        if let Some(d) = php.one(cx, "fastcgi_request_buffering") {
            self.draft.request_buffering = flag(cx, d);
            if flag_value(d) == Some(false) {
                cx.differs(d, REQUEST_STREAMING);
            }
        }
        if let Some(d) = php.one(cx, "fastcgi_buffering") {
            self.draft.response_buffering = flag(cx, d);
            if flag_value(d) == Some(false) {
                cx.info(d, RESPONSE_STREAMING);
            }
        }
        if let Some(d) = php.one(cx, "fastcgi_max_temp_file_size") {
            self.draft.response_max_temp_file = size(cx, d);
        }
        for (name, key, scope) in [
            ("fastcgi_connect_timeout", "connect", php),
            ("fastcgi_send_timeout", "send", php),
            ("fastcgi_read_timeout", "read", php),
            ("client_header_timeout", "client_header", srv),
            ("keepalive_timeout", "client_idle", srv),
        ] {
            let Some(d) = scope.one(cx, name) else {
                continue;
            };
            if let Some(v) = duration(cx, d) {
                if d.args.len() > 1 {
                    cx.differs(d, "fpmlb sends no Keep-Alive header (the second value)");
                }
                self.draft.timeouts.push((key, v));
            }
        }
        if let Some(d) = srv.one(cx, "access_log") {
            if d.arg(0) == Some("off") {
                self.draft.access_log = Some(Sourced::new(false, cx.why(d)));
                cx.done(d);
            } else {
                cx.differs(
                    d,
                    "fpmlb writes one access line per request to its own log (log.access_log)",
                );
            }
        }
    }
}

/// Backend names made unique (a group's upstream may be named like a
/// generated name of another's).
fn unique_names(backends: &mut [super::draft::Backend]) {
    let mut seen: Vec<String> = Vec::new();
    for b in backends {
        let mut name = b.name.clone();
        let mut n = 2;
        while seen.contains(&name) {
            name = format!("{}-{n}", b.name);
            n += 1;
        }
        b.name.clone_from(&name);
        seen.push(name);
    }
}

/// A listener from a `listen` directive; notes on what it cannot carry.
fn listener(
    cx: &mut Cx<'_>,
    d: &Directive,
    ssl_on: bool,
    redirect: Option<&Directive>,
) -> Option<Listener> {
    let Some(arg) = d.arg(0) else {
        cx.untranslated(d, "listen without an address");
        return None;
    };
    let address = match listen_address(arg) {
        Ok(a) => a,
        Err(why) => {
            cx.untranslated(d, why);
            return None;
        }
    };
    let mut l = Listener {
        address,
        tls: ssl_on,
        proxy_protocol: false,
        redirect_https: redirect.is_some(),
        why: cx.why(d),
    };
    let mut dropped = Vec::new();
    for p in &d.args[1..] {
        match p.as_str() {
            "ssl" => l.tls = true,
            "proxy_protocol" => l.proxy_protocol = true,
            "default_server" | "default" | "http2" | "ipv6only=on" | "bind" => {}
            other => dropped.push(other.to_owned()),
        }
    }
    if dropped.is_empty() {
        cx.done(d);
    } else {
        cx.differs(
            d,
            format!("fpmlb has no listen parameter {}", dropped.join(", ")),
        );
    }
    Some(l)
}

/// nginx's `listen` address in fpmlb's syntax.
fn listen_address(arg: &str) -> Result<String, &'static str> {
    if arg.starts_with("unix:") {
        return Err("fpmlb listens on TCP only");
    }
    let text = if arg.bytes().all(|b| b.is_ascii_digit()) {
        format!(":{arg}")
    } else if let Some(port) = arg.strip_prefix("*:") {
        format!(":{port}")
    } else if (arg.starts_with('[') && !arg.contains("]:")) || !arg.contains(':') {
        format!("{arg}:80")
    } else if let Some(port) = arg.strip_prefix("localhost:") {
        format!("127.0.0.1:{port}")
    } else {
        arg.to_owned()
    };
    parse_listen(&text).map_err(|_| "fpmlb listens on an IP address and port, not a host name")?;
    Ok(text)
}

/// `root` as an absolute path without a trailing `/`, and whether it was
/// relative (to nginx's install prefix).
fn root_path(arg: &str) -> Result<(String, bool), &'static str> {
    if arg.contains('$') {
        return Err("a root with variables (one site per host?): fpmlb has one document_root");
    }
    if arg.is_empty() {
        return Err("an empty root");
    }
    let (path, relative) = if arg.starts_with('/') {
        (arg.to_owned(), false)
    } else {
        (format!("/usr/share/nginx/{arg}"), true)
    };
    let trimmed = path.trim_end_matches('/');
    Ok((
        if trimmed.is_empty() {
            "/".to_owned()
        } else {
            trimmed.to_owned()
        },
        relative,
    ))
}

pub(super) fn size(cx: &mut Cx<'_>, d: &Directive) -> Option<Sourced<String>> {
    let v = d.arg(0).unwrap_or("");
    match parse_size(v) {
        Ok(_) => {
            cx.done(d);
            Some(Sourced::new(v.to_ascii_lowercase(), cx.why(d)))
        }
        Err(e) => {
            cx.untranslated(d, e);
            None
        }
    }
}

/// Said of `fastcgi_buffering off` for the whole site.
const RESPONSE_STREAMING: &str = "unsafe at the edge: every slow client holds a php-fpm worker \
     until it has read its page; only the scripts that stream need it: have them send \
     `X-Accel-Buffering: no`, or set response_buffering: false in their location";

/// What `request_buffering: false` streams, where nginx streams every body.
const REQUEST_STREAMING: &str = "fpmlb streams only a body with a Content-Length (a small one \
                                 is read whole first); a chunked body is still read whole";

/// nginx's `on`/`off` (any case, as nginx reads a flag).
pub(super) fn flag_value(d: &Directive) -> Option<bool> {
    match d.arg(0) {
        Some(a) if a.eq_ignore_ascii_case("on") => Some(true),
        Some(a) if a.eq_ignore_ascii_case("off") => Some(false),
        _ => None,
    }
}

/// A flag directive's value, or a note when it is neither `on` nor `off`.
fn flag(cx: &mut Cx<'_>, d: &Directive) -> Option<Sourced<bool>> {
    let Some(on) = flag_value(d) else {
        cx.untranslated(d, "not on or off");
        return None;
    };
    cx.done(d);
    Some(Sourced::new(on, cx.why(d)))
}

pub(super) fn duration(cx: &mut Cx<'_>, d: &Directive) -> Option<Sourced<String>> {
    let v = d.arg(0).unwrap_or("");
    match parse_duration(v) {
        Ok(t) if t.is_zero() => {
            cx.untranslated(d, "0 (off) is not a timeout fpmlb takes");
            None
        }
        Ok(_) => {
            cx.done(d);
            Some(Sourced::new(v.to_owned(), cx.why(d)))
        }
        Err(e) => {
            cx.untranslated(d, e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        for (nginx, fpmlb) in [
            ("80", Ok(":80")),
            ("*:8080", Ok(":8080")),
            ("[::]:80", Ok("[::]:80")),
            ("[::1]", Ok("[::1]:80")),
            ("127.0.0.1", Ok("127.0.0.1:80")),
            ("10.0.0.1:443", Ok("10.0.0.1:443")),
            ("localhost:8080", Ok("127.0.0.1:8080")),
        ] {
            assert_eq!(listen_address(nginx).as_deref(), fpmlb, "{nginx}");
        }
        assert!(listen_address("unix:/run/nginx.sock").is_err());
        assert!(listen_address("example.com:80").is_err());
        assert!(listen_address("99999").is_err());
    }

    #[test]
    fn roots() {
        assert_eq!(
            root_path("/var/www/html/"),
            Ok(("/var/www/html".into(), false))
        );
        assert_eq!(root_path("/"), Ok(("/".into(), false)));
        assert_eq!(
            root_path("html"),
            Ok(("/usr/share/nginx/html".into(), true))
        );
        assert!(root_path("/srv/$host").is_err());
    }
}
