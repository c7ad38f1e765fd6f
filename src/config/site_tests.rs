//! Tests of `static:`, `error_pages:`, `locations:` and backend groups: each
//! rule with its key and line, and what `config test` warns of.

use std::path::PathBuf;
use std::time::Duration;

use super::tests::with;
use super::*;

fn ok(yaml: &str) -> Config {
    Config::from_yaml(yaml).unwrap_or_else(|e| panic!("unexpected errors:\n{e}\nin:\n{yaml}"))
}

/// (key, line, message) of every error.
fn errors(yaml: &str) -> Vec<(String, Option<usize>, String)> {
    match Config::from_yaml(yaml) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => {
            e.0.into_iter()
                .map(|e| (e.key, e.line, e.message))
                .collect()
        }
    }
}

/// (key, line) of every warning.
fn warned(c: &Config) -> Vec<(&str, Option<usize>)> {
    c.warnings
        .iter()
        .map(|w| (w.key.as_str(), w.line))
        .collect()
}

fn one_error(yaml: &str, key: &str, line: usize, fragment: &str) {
    let errors = errors(yaml);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let (k, l, m) = &errors[0];
    assert_eq!((k.as_str(), *l), (key, Some(line)), "{m}");
    assert!(m.contains(fragment), "{m:?} lacks {fragment:?}");
}

#[test]
fn static_section_defaults_and_values() {
    let c = ok(&with(&["static:", "  root: /srv/app/public/"]));
    assert_eq!(
        c.static_files,
        Some(StaticConfig {
            root: PathBuf::from("/srv/app/public"),
            index: vec!["index.html".into()],
            allow_dotfiles: vec!["/.well-known/".into()],
            precompressed: true,
            cache_control: None,
        })
    );
    let c = ok(&with(&[
        "static:",
        "  root: /srv/app",
        "  index: [index.htm, default.html]",
        "  allow_dotfiles: []",
        "  precompressed: false",
        "  cache_control: \"public, max-age=60\"",
    ]));
    let s = c.static_files.unwrap();
    assert_eq!(s.index, ["index.htm", "default.html"]);
    assert!(s.allow_dotfiles.is_empty() && !s.precompressed);
    assert_eq!(s.cache_control.as_deref(), Some("public, max-age=60"));
    // No root: no files, whatever else the section says.
    assert_eq!(
        ok(&with(&["static:", "  index: [a.html]"])).static_files,
        None
    );
}

#[test]
fn static_section_errors() {
    one_error(
        &with(&["static:", "  root: srv/app"]),
        "static.root",
        7,
        "absolute",
    );
    one_error(
        &with(&["static:", "  root: /srv", "  index: [a/b.html]"]),
        "static.index[0]",
        8,
        "file name",
    );
    one_error(
        &with(&["static:", "  root: /srv", "  allow_dotfiles: [.well-known]"]),
        "static.allow_dotfiles[0]",
        8,
        "starting with '/'",
    );
    one_error(
        &with(&["static:", "  root: /srv", "  cache_control: \"a\\nb\""]),
        "static.cache_control",
        8,
        "one line",
    );
}

#[test]
fn open_file_cache_defaults_values_and_bounds() {
    let on = |valid: u64, max: usize| OpenFileCacheConfig {
        valid: Duration::from_secs(valid),
        max,
    };
    assert_eq!(ok(&with(&[])).open_file_cache, on(1, 1000));
    let c = ok(&with(&[
        "static:",
        "  root: /srv",
        "  open_file_cache: {valid: 30s, max: 50}",
    ]));
    assert_eq!(c.open_file_cache, on(30, 50));
    // For aliases too: the section holds it without a root.
    let c = ok(&with(&["static:", "  open_file_cache: {valid: 2s}"]));
    assert_eq!((c.static_files, c.open_file_cache), (None, on(2, 1000)));
    for off in ["{valid: 0s}", "{max: 0}"] {
        let c = ok(&with(&[
            "static:",
            "  root: /srv",
            &format!("  open_file_cache: {off}"),
        ]));
        assert_eq!(c.open_file_cache, OpenFileCacheConfig::OFF, "{off}");
    }
    one_error(
        &with(&["static:", "  root: /srv", "  open_file_cache: {valid: 61s}"]),
        "static.open_file_cache.valid",
        8,
        "at most 60s",
    );
    one_error(
        &with(&[
            "static:",
            "  root: /srv",
            "  open_file_cache: {max: 100001}",
        ]),
        "static.open_file_cache.max",
        8,
        "at most 100000",
    );
    one_error(
        &with(&[
            "static:",
            "  root: /srv",
            "  open_file_cache: {valid: soon}",
        ]),
        "static.open_file_cache.valid",
        8,
        "",
    );
}

#[test]
fn error_pages_need_a_root_and_valid_statuses() {
    let c = ok(&with(&[
        "static: {root: /srv}",
        "error_pages: {404: /404.html, 502: /50x.html}",
    ]));
    assert_eq!(
        c.error_pages,
        [
            ErrorPage {
                status: 404,
                path: "/404.html".into()
            },
            ErrorPage {
                status: 502,
                path: "/50x.html".into()
            }
        ]
    );
    one_error(
        &with(&["error_pages: {404: /404.html}"]),
        "error_pages.404",
        6,
        "set static.root",
    );
    one_error(
        &with(&["static: {root: /srv}", "error_pages:", "  200: /ok.html"]),
        "error_pages.200",
        8,
        "300 to 599",
    );
    one_error(
        &with(&[
            "static: {root: /srv}",
            "error_pages:",
            "  404: /../etc/passwd",
        ]),
        "error_pages.404",
        8,
        "file's path",
    );
    // A page is sent as it is: PHP source would send its code, and a
    // dotfile is never sent (nginx's `error_page 404 /404.php` runs it).
    for (page, why) in [
        ("/404.php", "PHP source"),
        ("/errors/500.PHTML", "PHP source"),
        ("/404.php.bak", "PHP source"),
        ("/.env", "dotfile"),
        ("/.git/config.html", "dotfile"),
    ] {
        one_error(
            &with(&[
                "static: {root: /srv}",
                "error_pages:",
                &format!("  404: {page}"),
            ]),
            "error_pages.404",
            8,
            why,
        );
    }
    // An alias location may hold the pages instead of the root.
    ok(&with(&[
        "error_pages: {503: /errors/503.html}",
        "locations:",
        "  - {match: \"/errors/\", alias: /srv/errors/, internal: true}",
    ]));
}

#[test]
fn every_kind_of_match() {
    let c = ok(&with(&[
        "locations:",
        "  - match: \"= /xmlrpc.php\"",
        "    deny: 404",
        "  - match: \"^~ /wp-content/uploads/\"",
        "    scripts: []",
        "  - match: /admin/",
        "    timeouts: {read: 300s, send: 5m}",
        "    max_body_size: 64m",
        "    params: {PHP_VALUE: \"upload_max_filesize=64M\"}",
        "  - match: \"~* \\\\.(css|js)$\"",
        "    cache_control: \"public, max-age=31536000, immutable\"",
        "  - match: /old/",
        "    return: {status: 301, url: \"https://$host/new$request_uri\"}",
        "  - match: /protected/",
        "    internal: true",
        "    alias: /srv/private/",
        "  - match: \"=/exact\"",
        "    return: {status: 503}",
        "  - match: \"~^/index\\\\.php(/|$)\"",
        "    front_controller: /app.php",
    ]));
    let l = &c.locations;
    assert_eq!(l.len(), 8);
    assert_eq!(l[0].matcher, LocationMatch::Exact("/xmlrpc.php".into()));
    assert_eq!((l[0].deny, l[0].line), (Some(404), 7));
    assert_eq!(
        l[1].matcher,
        LocationMatch::PrefixNoRegex("/wp-content/uploads/".into())
    );
    assert_eq!(l[1].scripts, Some(vec![]));
    assert_eq!(l[2].matcher, LocationMatch::Prefix("/admin/".into()));
    assert_eq!(l[2].read_timeout, Some(Duration::from_secs(300)));
    assert_eq!(l[2].send_timeout, Some(Duration::from_secs(300)));
    assert_eq!(l[2].max_body_size, Some(64 * 1024 * 1024));
    assert_eq!(
        l[2].params,
        [("PHP_VALUE".into(), "upload_max_filesize=64M".into())]
    );
    let LocationMatch::Regex(re) = &l[3].matcher else {
        panic!("{:?}", l[3].matcher)
    };
    assert!(re.caseless && !re.backtracks());
    assert!(re.is_match(b"/a/B.CSS").unwrap());
    assert!(!re.is_match(b"/a.cssx").unwrap());
    assert_eq!(
        l[4].redirect,
        Some(Return {
            status: 301,
            url: Some("https://$host/new$request_uri".into())
        })
    );
    assert!(l[5].internal);
    assert_eq!(l[5].alias.as_deref(), Some("/srv/private/"));
    assert_eq!(l[6].matcher.to_string(), "= /exact");
    assert_eq!(l[7].matcher.to_string(), "~ ^/index\\.php(/|$)");
    assert_eq!(l[7].front_controller.as_deref(), Some("/app.php"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn pcre_lookaround_runs_bounded_and_bytes_match_as_nginx() {
    // Laravel's recommended config.
    let c = ok(&with(&[
        "locations:",
        "  - {match: \"~ /\\\\.(?!well-known).*\", deny: 403}",
    ]));
    let LocationMatch::Regex(re) = &c.locations[0].matcher else {
        panic!()
    };
    assert!(re.backtracks());
    assert!(re.is_match(b"/.env").unwrap());
    assert!(re.is_match(b"/a/.git/config").unwrap());
    assert!(!re.is_match(b"/.well-known/security.txt").unwrap());
    // A decoded URI need not be UTF-8: nginx's PCRE reads bytes, so does fpmlb.
    let plain = LocationRegex::new("^/caf.\\.txt$", false).unwrap();
    assert!(plain.is_match(b"/caf\xe9.txt").unwrap());
    // Case folding is ASCII, as PCRE without its UTF flag.
    let caseless = LocationRegex::new("\\.PNG$", true).unwrap();
    assert!(caseless.is_match(b"/a.png").unwrap());
    // PCRE's `$` also matches before a final newline; the regex crate's only at the end.
    let php = LocationRegex::new("\\.php$", false).unwrap();
    assert!(!php.is_match(b"/x.php\n").unwrap());
    // An exponential pattern: linear in the regex crate...
    let evil = LocationRegex::new("^(a+)+$", false).unwrap();
    let uri = [b"a".repeat(5000), b"!".to_vec()].concat();
    assert!(!evil.is_match(&uri).unwrap());
    // ... and bounded when it needs backtracking.
    let evil = LocationRegex::new("^(a|a)*(?!a)b", false).unwrap();
    assert!(evil.backtracks());
    assert!(evil.is_match(&uri).is_err());
}

#[test]
fn location_errors_name_key_and_line() {
    one_error(
        &with(&["locations:", "  - deny: 403"]),
        "locations[0].match",
        7,
        "missing",
    );
    one_error(
        &with(&["locations:", "  - {match: /a/, deny: 500}"]),
        "locations[0].deny",
        7,
        "403 or 404",
    );
    one_error(
        &with(&["locations:", "  - match: \"~ (unclosed\""]),
        "locations[0].match",
        7,
        "not a regex",
    );
    one_error(
        &with(&["locations:", "  - match: \"@fallback\""]),
        "locations[0].match",
        7,
        "named locations",
    );
    one_error(
        &with(&["locations:", "  - match: admin/"]),
        "locations[0].match",
        7,
        "never matches",
    );
    one_error(
        &with(&["locations:", "  - match: \"^~/a\""]),
        "locations[0].match",
        7,
        "space",
    );
    one_error(
        &with(&["locations:", "  - match: /a/", "    return: {status: 301}"]),
        "locations[0].return.url",
        8,
        "missing",
    );
    one_error(
        &with(&[
            "locations:",
            "  - match: /a/",
            "    return: {status: 302, url: \"https://$server_name/\"}",
        ]),
        "locations[0].return.url",
        8,
        "$server_name is not a variable",
    );
    one_error(
        &with(&[
            "locations:",
            "  - match: /a/",
            "    return: {status: 404, url: /x}",
        ]),
        "locations[0].return.url",
        8,
        "only a redirect",
    );
    one_error(
        &with(&["locations:", "  - {match: \"~ ^/a\", alias: /srv/a/}"]),
        "locations[0].alias",
        7,
        "replaces the location's prefix",
    );
    one_error(
        &with(&["locations:", "  - match: /a/", "    scripts: [index.php]"]),
        "locations[0].scripts[0]",
        8,
        "script path",
    );
    one_error(
        &with(&["locations:", "  - match: /a/", "    backends: admin"]),
        "locations[0].backends",
        8,
        "no backend has group \"admin\"",
    );
    one_error(
        &with(&["locations:", "  - match: /a/", "    timeouts: {read: 0s}"]),
        "locations[0].timeouts.read",
        8,
        "greater than 0",
    );
}

#[test]
fn overlaps_are_errors_and_dead_rules_warnings() {
    let errs = errors(&with(&[
        "locations:",
        "  - match: /a/",
        "  - match: \"^~ /a/\"",
        "  - match: \"= /x\"",
        "  - match: \"= /x\"",
    ]));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!(errs[0].0, "locations[1].match");
    assert!(errs[0].2.contains("same prefix"), "{}", errs[0].2);
    assert_eq!(errs[1].0, "locations[3].match");
    assert!(errs[1].2.contains("first on line 9"), "{}", errs[1].2);

    let c = ok(&with(&[
        "locations:",
        "  - match: \"^~ /wp-content/uploads/\"",
        "  - match: \"~ ^/wp-content/uploads/.*\\\\.php$\"",
        "  - match: \"~ \\\\.php$\"",
        "  - match: \"~ \\\\.php$\"",
        "  - match: /a//b",
        "  - match: \"~* ^/wp-content/uploads/x\"",
        "  - match: \"~ ^/static/\"",
        "  - match: \"^~ /static/\"",
        "  - match: /static/img/",
    ]));
    let warned = warned(&c);
    // The caseless regex also matches /WP-CONTENT/..., which the prefix does
    // not take; /static/ has a longer plain prefix under it.
    assert_eq!(
        warned,
        [
            ("locations[1].match", Some(8)),
            ("locations[3].match", Some(10)),
            ("locations[4].match", Some(11)),
        ],
        "{:#?}",
        c.warnings
    );
    assert!(
        c.warnings[0]
            .message
            .contains("\"^~ /wp-content/uploads/\"")
    );
    assert!(c.warnings[1].message.contains("same regex on line 9"));
    assert!(c.warnings[2].message.contains("normalised"));
}

/// An alias whose location does not end in `/` while the alias does
/// (gixy's "alias traversal"): loads, with a warning naming the fix.
#[test]
fn an_alias_under_a_prefix_without_its_slash_is_warned_of() {
    let c = ok(&with(&[
        "locations:",
        "  - {match: /static, alias: /srv/static/}",
        "  - {match: /img/, alias: /srv/img/}",
        "  - {match: \"= /robots.txt\", alias: /srv/robots.txt}",
        "  - {match: /file, alias: /srv/file.txt}",
    ]));
    let warned = warned(&c);
    assert_eq!(
        warned,
        [("locations[0].alias", Some(7))],
        "{:#?}",
        c.warnings
    );
    assert!(c.warnings[0].message.contains("\"/static/\""));
}

#[test]
fn backend_groups_and_backups() {
    let c = ok(&text(&[
        "listen: \":8080\"",
        "document_root: /var/www/html",
        "backends:",
        "  - {name: web01, address: \"10.0.0.1:9000\"}",
        "  - {name: spare, address: \"10.0.0.9:9000\", backup: true}",
        "  - {name: admin01, address: \"10.0.0.5:9000\", group: admin}",
        "locations:",
        "  - {match: /admin/, backends: admin}",
    ]));
    let groups: Vec<(&str, &str, bool)> = c
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.group.as_str(), b.backup))
        .collect();
    assert_eq!(
        groups,
        [
            ("web01", "main", false),
            ("spare", "main", true),
            ("admin01", "admin", false)
        ]
    );
    assert_eq!(c.locations[0].group.as_deref(), Some("admin"));

    let errs = errors(&text(&[
        "listen: \":8080\"",
        "document_root: /var/www/html",
        "backends:",
        "  - {name: a, address: \"10.0.0.1:9000\", group: admin}",
        "  - {name: b, address: \"10.0.0.2:9000\", group: extra, backup: true}",
    ]));
    let keys: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(keys, ["backends", "backends[1].backup"], "{errs:#?}");
    assert!(errs[0].2.contains("no backend is in group \"main\""));
    assert!(errs[1].2.contains("not a backup"));

    // Every path has a location naming a group: main is not needed.
    ok(&text(&[
        "listen: \":8080\"",
        "document_root: /var/www/html",
        "backends:",
        "  - {name: a, address: \"10.0.0.1:9000\", group: app}",
        "locations:",
        "  - {match: /, backends: app}",
    ]));
}

fn text(lines: &[&str]) -> String {
    let mut t = lines.join("\n");
    t.push('\n');
    t
}
