//! The translator: each fixture against the expected YAML text (both modes),
//! `--compat` output against this fpmlb's own loader, and one behaviour per
//! test on small configs.
//!
//! The expected files are tests/fixtures/nginx/expected/NAME[.compat].yaml.
//! After a change to the translator, `FPMLB_BLESS=1 cargo test --lib
//! nginx::import` rewrites them; read the diff before committing it.

use std::path::{Path, PathBuf};

use super::{Import, ImportError, NoteKind, Options, import};
use crate::config::Config;
use crate::nginx::load::{Limits, load};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nginx")
}

/// The fixtures that import, by file and name.
const FIXTURES: &[(&str, &str)] = &[
    ("seeds.conf", "seeds"),
    ("sites-available/default-php", "default-php"),
    ("sites-available/wordpress", "wordpress"),
    ("sites-available/laravel", "laravel"),
    ("sites-available/symfony", "symfony"),
    ("sites-available/phpmyadmin", "phpmyadmin"),
];

fn import_fixture(file: &str, compat: bool) -> Import {
    let loaded = load(&fixtures().join(file), None, Limits::default()).unwrap();
    import(
        &loaded,
        &Options {
            compat,
            server: None,
        },
    )
    .unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The YAML without the version in its first line.
fn versionless(yaml: &str) -> String {
    yaml.replacen(
        &format!("(fpmlb {})", env!("CARGO_PKG_VERSION")),
        "(fpmlb VERSION)",
        1,
    )
}

#[test]
fn fixtures_import_to_the_expected_yaml() {
    let bless = std::env::var_os("FPMLB_BLESS").is_some();
    let mut wrong = Vec::new();
    for (file, name) in FIXTURES {
        for compat in [true, false] {
            let got = versionless(&import_fixture(file, compat).yaml);
            let path = fixtures().join("expected").join(if compat {
                format!("{name}.compat.yaml")
            } else {
                format!("{name}.yaml")
            });
            if bless {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            if got != want {
                wrong.push(format!("{}:\n{got}", path.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "import differs from the expected file (FPMLB_BLESS=1 rewrites them):\n{}",
        wrong.join("\n")
    );
}

/// What the report gives per fixture; fails when a count changes.
#[test]
fn fixture_note_counts() {
    let counts: Vec<(&str, usize, usize, usize)> = FIXTURES
        .iter()
        .map(|(file, name)| {
            let i = import_fixture(file, false);
            (
                *name,
                i.translated,
                i.count(NoteKind::Untranslated),
                i.count(NoteKind::Differs),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("seeds", 41, 6, 3),
            ("default-php", 38, 0, 4),
            ("wordpress", 37, 6, 3),
            ("laravel", 36, 9, 5),
            ("symfony", 35, 1, 8),
            ("phpmyadmin", 42, 0, 2),
        ],
        "(fixture, translated, not translated, differs)"
    );
}

#[test]
fn compat_output_passes_config_test() {
    for (file, _) in FIXTURES {
        let yaml = import_fixture(file, true).yaml;
        if let Err(e) = Config::from_yaml(&yaml) {
            panic!("{file}: {e}\n{yaml}");
        }
    }
}

#[test]
fn full_output_passes_config_test() {
    for (file, _) in FIXTURES {
        let yaml = import_fixture(file, false).yaml;
        if let Err(e) = Config::from_yaml(&yaml) {
            panic!("{file}: {e}\n{yaml}");
        }
    }
}

#[test]
fn debian_default_site_has_nothing_to_import() {
    let loaded = load(
        &fixtures().join("sites-available/default"),
        None,
        Limits::default(),
    )
    .unwrap();
    let e = import(&loaded, &Options::default()).unwrap_err();
    assert!(
        e.0.starts_with("no server passes requests to FastCGI"),
        "{e}"
    );
}

/// Imports the config made of `files` (the first is the main file).
fn import_files(files: &[(&str, &str)], options: &Options) -> Result<Import, ImportError> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let loaded = load(&dir.path().join(files[0].0), None, Limits::default()).unwrap();
    import(&loaded, options)
}

fn full(text: &str) -> Import {
    import_files(&[("site.conf", text)], &Options::default()).unwrap()
}

fn compat(text: &str) -> Import {
    import_files(
        &[("site.conf", text)],
        &Options {
            compat: true,
            server: None,
        },
    )
    .unwrap()
}

fn has_note(i: &Import, kind: NoteKind, fragment: &str) -> bool {
    i.notes
        .iter()
        .any(|n| n.kind == kind && n.line().contains(fragment))
}

#[test]
fn fastcgi_params_follow_nginx_inheritance() {
    // A location with fastcgi_param lines of its own does not inherit the
    // server's: APP_ENV is not sent by nginx, so not by fpmlb.
    let i = full(
        "server { listen 8080; root /srv;
           fastcgi_param APP_ENV prod;
           location ~ \\.php$ { fastcgi_param APP_DEBUG 0; fastcgi_pass 127.0.0.1:9000; } }",
    );
    assert!(i.yaml.contains("params:\n  APP_DEBUG: \"0\""), "{}", i.yaml);
    assert!(!i.yaml.contains("APP_ENV: prod"), "{}", i.yaml);
    // Without lines of its own, it inherits them.
    let i = full(
        "server { listen 8080; root /srv;
           fastcgi_param APP_ENV prod;
           location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; } }",
    );
    assert!(i.yaml.contains("params:\n  APP_ENV: prod"), "{}", i.yaml);
    assert!(has_note(&i, NoteKind::Info, "sends no SCRIPT_FILENAME"));
}

#[test]
fn a_directive_s_newlines_stay_in_its_comment() {
    // nginx reads \n in a quoted argument as a newline: written raw into
    // the comment after `compression:`, it would start lines of YAML.
    let i = full(
        "server { listen 8080; root /srv;
           location ~ \\.php$ { include fastcgi.conf; gzip on \"\\nstatic: {root: /}\\n#\";
             fastcgi_pass 127.0.0.1:9000; } }",
    );
    assert!(i.yaml.contains("compression:  # gzip on"), "{}", i.yaml);
    assert!(
        !i.yaml.lines().any(|l| l.starts_with("static: {root: /}")),
        "{}",
        i.yaml
    );
}

#[test]
fn https_and_escapes_in_params() {
    let i = full(
        "server { listen 8080; root /srv;
           location ~ \\.php$ { include fastcgi.conf; fastcgi_param HTTPS on;
             fastcgi_param PHP_VALUE \"a=1\\nb=2\"; fastcgi_param X $http_x;
             fastcgi_pass 127.0.0.1:9000; } }",
    );
    assert!(i.yaml.contains("https: true"), "{}", i.yaml);
    assert!(i.yaml.contains("PHP_VALUE: \"a=1\\nb=2\""), "{}", i.yaml);
    assert!(has_note(
        &i,
        NoteKind::Untranslated,
        "fastcgi_param X $http_x"
    ));
    // fastcgi.conf is not there: noted, and treated as what fpmlb sends.
    assert!(has_note(
        &i,
        NoteKind::Info,
        "include fastcgi.conf: not found"
    ));
}

#[test]
fn the_first_php_server_is_imported_and_the_others_named() {
    let two = "server { listen 8080; server_name a.example; root /a;
                 location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; } }
               server { listen 8081; server_name b.example; root /b;
                 location ~ \\.php$ { fastcgi_pass 127.0.0.1:9001; } }
               server { listen 8082; location / { proxy_pass http://x; } }";
    let i = full(two);
    assert!(i.yaml.contains("document_root: /a"), "{}", i.yaml);
    assert!(has_note(
        &i,
        NoteKind::Untranslated,
        "another PHP site: fpmlb serves one site per instance; import it into its own file with \
         --server b.example"
    ));
    assert!(has_note(
        &i,
        NoteKind::Untranslated,
        "a server without PHP locations"
    ));
    for choice in ["b.example", "2"] {
        let i = import_files(
            &[("site.conf", two)],
            &Options {
                compat: false,
                server: Some(choice.into()),
            },
        )
        .unwrap();
        assert!(i.yaml.contains("document_root: /b"), "{}", i.yaml);
        assert!(i.yaml.contains("\"127.0.0.1:9001\""), "{}", i.yaml);
    }
    let e = import_files(
        &[("site.conf", two)],
        &Options {
            compat: false,
            server: Some("c.example".into()),
        },
    )
    .unwrap_err();
    assert!(e.0.contains("1 a.example, 2 b.example"), "{e}");
}

const TLS_SITE: &str = "
server { listen 80; listen [::]:80; server_name example.com www.example.com;
  return 301 https://$host$request_uri; }
server { listen 443 ssl http2; listen [::]:443 ssl http2 ipv6only=on;
  server_name example.com www.example.com; root /srv/app;
  ssl_certificate /etc/ssl/example.pem; ssl_certificate_key /etc/ssl/example.key;
  ssl_protocols TLSv1.2 TLSv1.3;
  add_header Strict-Transport-Security \"max-age=63072000\" always;
  location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; } }
server { listen 8443 ssl; server_name example.com www.example.com; root /srv/app;
  ssl_certificate /etc/ssl/other.pem; ssl_certificate_key /etc/ssl/other.key;
  location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; } }";

#[test]
fn tls_servers_and_https_redirects_become_listeners() {
    let i = full(TLS_SITE);
    assert!(
        i.yaml.contains(
            "listen:\n  - {address: \":443\", tls: true}  # listen 443 ssl http2 (site.conf:4)\n  - \
             {address: \"[::]:443\", tls: true}"
        ),
        "{}",
        i.yaml
    );
    assert!(
        i.yaml
            .contains("  - {address: \":8443\", tls: true}  # listen 8443 ssl (site.conf:10)"),
        "the same site on another TLS port adds its listener:\n{}",
        i.yaml
    );
    assert!(
        i.yaml.contains(
            "  - {address: \":80\", redirect_https: true}  # listen 80 (site.conf:2)\n  - \
             {address: \"[::]:80\", redirect_https: true}"
        ),
        "{}",
        i.yaml
    );
    assert!(
        i.yaml.contains(
            "tls:\n  certificates:\n    - cert: /etc/ssl/example.pem  # ssl_certificate \
             /etc/ssl/example.pem (site.conf:6)\n      key: /etc/ssl/example.key\n    - cert: \
             /etc/ssl/other.pem  # ssl_certificate /etc/ssl/other.pem (site.conf:11)\n      \
             key: /etc/ssl/other.key\n  hsts: \"max-age=63072000\""
        ),
        "{}",
        i.yaml
    );
    assert!(has_note(&i, NoteKind::Differs, "answers 308"));
    assert!(has_note(
        &i,
        NoteKind::Untranslated,
        "ssl_protocols TLSv1.2 TLSv1.3"
    ));
    // --compat cannot serve any of these listeners.
    let e = import_files(
        &[("site.conf", TLS_SITE)],
        &Options {
            compat: true,
            server: None,
        },
    )
    .unwrap_err();
    assert!(e.0.starts_with("--compat: every listener"), "{e}");
}

#[test]
fn upstream_servers_and_settings() {
    let i = full(
        "upstream php {
           least_conn; keepalive 16; keepalive_timeout 30s; zone php 64k;
           server 10.0.0.7:9000 weight=2 max_fails=3 fail_timeout=30s max_conns=12;
           server 10.0.0.8:9000 max_fails=3 fail_timeout=30s backup;
           server 10.0.0.9:9000 down;
           server php.internal resolve slow_start=10s; }
         server { listen 8080; root /srv;
           location ~ \\.php$ { fastcgi_pass php; } }",
    );
    let want = "balance: least_conn  # least_conn (site.conf:2)
max_fails: 3  # server 10.0.0.7:9000 weight=2 max_fails=3 fail_timeout=30... (site.conf:3)
fail_timeout: 30s  # server 10.0.0.7:9000 weight=2 max_fails=3 fail_timeout=30... (site.conf:3)
timeouts:
  idle: 30s  # keepalive_timeout 30s (site.conf:2)
";
    assert!(i.yaml.contains(want), "{}", i.yaml);
    let backends = "backends:
  - name: php-1  # server 10.0.0.7:9000 weight=2 max_fails=3 fail_timeout=30... (site.conf:3)
    address: \"10.0.0.7:9000\"
    weight: 2
    max_conns: 12
  - name: php-2  # server 10.0.0.8:9000 max_fails=3 fail_timeout=30s backup (site.conf:4)
    address: \"10.0.0.8:9000\"
    backup: true
  # nginx `down`: left out
#   - name: php-3  # server 10.0.0.9:9000 down (site.conf:5)
#     address: \"10.0.0.9:9000\"
  - name: php-4  # server php.internal resolve slow_start=10s (site.conf:6)
    address: \"php.internal:80\"
";
    assert!(i.yaml.contains(backends), "{}", i.yaml);
    assert!(has_note(
        &i,
        NoteKind::Info,
        "keepalive 16: fpmlb always keeps"
    ));
    assert!(has_note(
        &i,
        NoteKind::Differs,
        "fail_timeout=30s max_conns=12: fpmlb has one max_fails/fail_timeout for every backend: \
         this server's are used"
    ));
    assert!(has_note(
        &i,
        NoteKind::Differs,
        "no server parameter slow_start=10s"
    ));
    // --compat leaves the backup out.
    let c = compat(
        "upstream php { server 10.0.0.7:9000; server 10.0.0.8:9000 backup; }
         server { listen 8080; root /srv; location ~ \\.php$ { fastcgi_pass php; } }",
    );
    assert!(
        c.yaml.contains("#   - name: php-2"),
        "the backup is commented out:\n{}",
        c.yaml
    );
    Config::from_yaml(&c.yaml).unwrap();
}

#[test]
fn real_ip_gzip_and_error_pages() {
    let i = full(
        "http { gzip on; gzip_types text/css application/json; gzip_min_length 1000;
           gzip_comp_level 6; gzip_proxied any;
           set_real_ip_from 10.0.0.0/8; set_real_ip_from 192.0.2.1;
           real_ip_header X-Forwarded-For;
           server { listen 8080; root /srv; error_page 404 /404.html;
             error_page 500 502 503 504 /50x.html; error_page 403 =200 /x.html;
             error_page 410 /errors/410.phtml; error_page 451 /451.PHP?x=1;
             location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; } } }",
    );
    for want in [
        "real_ip:\n  trusted_proxies: [10.0.0.0/8, 192.0.2.1/32]  # set_real_ip_from (site.conf:3, \
         site.conf:3)\n  header: x-forwarded-for",
        "compression:  # gzip on (site.conf:1)\n  encodings: [gzip]\n  types: [text/html, \
         text/css, application/json]",
        "  min_size: \"1000\"",
        "  levels: {gzip: 6}",
        "error_pages:\n  404: /404.html",
        "  502: /50x.html",
    ] {
        assert!(i.yaml.contains(want), "{want}\nin:\n{}", i.yaml);
    }
    assert!(has_note(&i, NoteKind::Untranslated, "gzip_proxied any"));
    assert!(has_note(
        &i,
        NoteKind::Untranslated,
        "error_page 403 =200 /x.html"
    ));
    // PHP pages, whatever their case or extension, are never static pages.
    for page in [
        "error_page 410 /errors/410.phtml",
        "error_page 451 /451.PHP?x=1",
    ] {
        assert!(has_note(&i, NoteKind::Untranslated, page), "{page}");
    }
    assert!(
        !i.yaml.contains("  410:") && !i.yaml.contains("  451:"),
        "{}",
        i.yaml
    );
}

#[test]
fn locations_keep_their_modifiers_and_rules() {
    let i = full(
        "upstream admin { server 10.0.0.20:9000; }
         server { listen 8080; root /srv; client_max_body_size 2m;
           location = /xmlrpc.php { deny all; }
           location ^~ /uploads/ { location ~ \\.php$ { deny all; } }
           location /old/ { return 301 https://example.com/new/; }
           location /private/ { internal; alias /srv/private/; }
           location = /50x.html { root /usr/share/nginx/html; }
           location ~* \\.(css|js)$ { expires 30d; add_header Cache-Control public; }
           location /admin/ { allow 10.0.0.0/8; deny all; }
           location ~ ^/admin/.+\\.php$ { fastcgi_pass admin; fastcgi_read_timeout 300s;
             client_max_body_size 64m; fastcgi_param PHP_VALUE \"upload_max_filesize=64M\"; }
           location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; }
           location @fallback { fastcgi_pass 127.0.0.1:9000; } }",
    );
    let want = r#"locations:
  - match: "= /xmlrpc.php"  # location = /xmlrpc.php (site.conf:3)
    deny: 403  # deny all (site.conf:3)
  # no rule fpmlb has: kept so that nginx's precedence holds
  - match: "^~ /uploads/"  # location ^~ /uploads/ (site.conf:4)
  - match: /old/  # location /old/ (site.conf:5)
    return: {status: 301, url: "https://example.com/new/"}  # return 301 https://example.com/new/ (site.conf:5)
  - match: /private/  # location /private/ (site.conf:6)
    internal: true  # internal (site.conf:6)
    alias: /srv/private/  # alias /srv/private/ (site.conf:6)
  - match: "= /50x.html"  # location = /50x.html (site.conf:7)
    alias: /usr/share/nginx/html/50x.html  # root /usr/share/nginx/html (site.conf:7)
  - match: "~* \\.(css|js)$"  # location ~* \.(css|js)$ (site.conf:8)
    cache_control: "max-age=2592000, public"  # expires 30d (site.conf:8); add_header Cache-Control public (site.conf:8)
  - match: /admin/  # location /admin/ (site.conf:9)
    deny: 403  # deny all (site.conf:9)
  - match: "~ ^/admin/.+\\.php$"  # location ~ ^/admin/.+\.php$ (site.conf:10)
    backends: admin  # fastcgi_pass admin (site.conf:10)
    timeouts: {read: 300s}  # fastcgi_read_timeout 300s (site.conf:10)
    max_body_size: 64m  # client_max_body_size 64m (site.conf:11)
    params: {PHP_VALUE: "upload_max_filesize=64M"}  # fastcgi_param (site.conf:11)
  # the PHP location: its settings are the top-level keys (kept for nginx's precedence)
  - match: "~ \\.php$"  # location ~ \.php$ (site.conf:12)
"#;
    assert!(i.yaml.contains(want), "{}", i.yaml);
    assert!(
        i.yaml.contains(
            "  - name: admin  # server 10.0.0.20:9000 (site.conf:1)\n    address: \
             \"10.0.0.20:9000\"\n    group: admin"
        ),
        "{}",
        i.yaml
    );
    assert!(has_note(
        &i,
        NoteKind::Untranslated,
        "location ~ \\.php$: a nested location"
    ));
    assert!(has_note(
        &i,
        NoteKind::Differs,
        "deny all: fpmlb has no client address rules"
    ));
    assert!(has_note(&i, NoteKind::Untranslated, "allow 10.0.0.0/8"));
    assert!(has_note(
        &i,
        NoteKind::Untranslated,
        "location @fallback: a named location"
    ));
}

#[test]
fn every_directive_is_translated_or_listed() {
    let i = full(
        "server { listen 8080; listen unix:/run/x.sock; root /srv; frobnicate 1 2;
           if ($host = x) { return 404; }
           location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; fastcgi_buffers 8 16k;
             more_set_headers \"Server: x\"; } }",
    );
    for (kind, fragment) in [
        (
            NoteKind::Untranslated,
            "site.conf:1  frobnicate 1 2: no fpmlb equivalent",
        ),
        (
            NoteKind::Untranslated,
            "site.conf:1  listen unix:/run/x.sock: fpmlb listens on TCP only",
        ),
        (
            NoteKind::Untranslated,
            "site.conf:2  if ($host = x): fpmlb has no rewriting",
        ),
        (
            NoteKind::Untranslated,
            "site.conf:3  fastcgi_buffers 8 16k: fpmlb holds up to response_buffer_size (1m)",
        ),
        (
            NoteKind::Untranslated,
            "more_set_headers \"Server: x\": fpmlb adds no response headers",
        ),
    ] {
        assert!(has_note(&i, kind, fragment), "{fragment}\n{:#?}", i.notes);
    }
    assert_eq!(i.count(NoteKind::Untranslated), 5, "{:#?}", i.notes);
    // The directives inside the `if` are not listed one by one.
    assert!(!has_note(&i, NoteKind::Untranslated, "return 404"));
}

/// The import's YAML, loaded by this fpmlb.
fn loads(i: &Import) -> Config {
    Config::from_yaml(&i.yaml).unwrap_or_else(|e| panic!("{e}\n{}", i.yaml))
}

#[test]
fn buffering_at_the_server_level() {
    let text = "server { listen 8080; root /srv;
           fastcgi_buffering off; fastcgi_request_buffering off;
           fastcgi_max_temp_file_size 0;
           location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; } }";
    let i = full(text);
    let want = "request_buffering: false  # fastcgi_request_buffering off (site.conf:2)
response_buffering: false  # fastcgi_buffering off (site.conf:2)
response_max_temp_file: \"0\"  # fastcgi_max_temp_file_size 0 (site.conf:3)
";
    assert!(i.yaml.contains(want), "{}", i.yaml);
    assert!(has_note(
        &i,
        NoteKind::Differs,
        "fastcgi_request_buffering off: fpmlb streams only a body with a Content-Length"
    ));
    assert!(has_note(
        &i,
        NoteKind::Info,
        "fastcgi_buffering off: unsafe at the edge"
    ));
    assert_eq!(i.count(NoteKind::Untranslated), 0, "{:#?}", i.notes);
    let c = loads(&i);
    assert!(!c.request_buffering && !c.response_buffering);
    assert_eq!(c.response_max_temp_file, 0, "0: no temp file, as in nginx");
    // --compat writes them too: this fpmlb knows them.
    let c = loads(&compat(text));
    assert!(!c.request_buffering && !c.response_buffering);
}

#[test]
fn buffering_in_the_php_location() {
    // The PHP location's own values win over the server's, as in nginx;
    // `on` is written although it is fpmlb's default (explicit settings are).
    let i = full(
        "server { listen 8080; root /srv; fastcgi_buffering off;
           fastcgi_max_temp_file_size 64m;
           location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; fastcgi_buffering ON;
             fastcgi_max_temp_file_size 2048M; fastcgi_request_buffering on; } }",
    );
    let want = "request_buffering: true  # fastcgi_request_buffering on (site.conf:4)
response_buffering: true  # fastcgi_buffering ON (site.conf:3)
response_max_temp_file: 2048m  # fastcgi_max_temp_file_size 2048M (site.conf:4)
";
    assert!(i.yaml.contains(want), "{}", i.yaml);
    assert!(
        i.notes.iter().all(|n| !n.directive.starts_with("fastcgi_")),
        "translated as they are: {:#?}",
        i.notes
    );
    assert_eq!(i.count(NoteKind::Untranslated), 0, "{:#?}", i.notes);
    let c = loads(&i);
    assert!(c.request_buffering && c.response_buffering);
    assert_eq!(c.response_max_temp_file, 2 << 30);
    // Not a flag: listed, fpmlb's default kept.
    let i = full(
        "server { listen 8080; root /srv;
           location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; fastcgi_buffering maybe; } }",
    );
    assert!(has_note(
        &i,
        NoteKind::Untranslated,
        "fastcgi_buffering maybe: not on or off"
    ));
    assert!(!i.yaml.contains("\nresponse_buffering:"), "{}", i.yaml);
    assert!(loads(&i).response_buffering);
}

#[test]
fn buffering_in_a_second_php_location() {
    let i = full(
        "server { listen 8080; root /srv;
           location ~ ^/export/.+\\.php$ { fastcgi_pass 127.0.0.1:9000;
             fastcgi_buffering off; fastcgi_max_temp_file_size 0;
             fastcgi_request_buffering off; }
           location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; } }",
    );
    assert!(
        i.yaml.contains(
            "  - match: \"~ ^/export/.+\\\\.php$\"  # location ~ ^/export/.+\\.php$ (site.conf:2)
    response_buffering: false  # fastcgi_buffering off (site.conf:3)
"
        ),
        "{}",
        i.yaml
    );
    // Top-level-only settings: noted, not written.
    assert!(!i.yaml.contains("\nrequest_buffering:"), "{}", i.yaml);
    assert!(!i.yaml.contains("\nresponse_max_temp_file:"), "{}", i.yaml);
    for fragment in [
        "site.conf:3  fastcgi_max_temp_file_size 0: fpmlb has one response_max_temp_file, the top \
         level's",
        "site.conf:4  fastcgi_request_buffering off: fpmlb has one request_buffering, the top \
         level's",
    ] {
        assert!(
            has_note(&i, NoteKind::Untranslated, fragment),
            "{fragment}\n{:#?}",
            i.notes
        );
    }
    let c = loads(&i);
    assert_eq!(c.locations[0].response_buffering, Some(false));
    assert!(c.response_buffering && c.request_buffering);

    // The main PHP location turns it off: the second one keeps nginx's
    // default, on, where it sets nothing; where it sets the same, nothing.
    let i = full(
        "server { listen 8080; root /srv;
           location ~ ^/export/.+\\.php$ { fastcgi_pass 127.0.0.1:9000; }
           location ~ ^/admin/.+\\.php$ { fastcgi_pass 127.0.0.1:9000; fastcgi_buffering off;
             fastcgi_max_temp_file_size 0; }
           location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; fastcgi_buffering off;
             fastcgi_max_temp_file_size 0; } }",
    );
    assert!(
        i.yaml.contains(
            "  - match: \"~ ^/export/.+\\\\.php$\"  # location ~ ^/export/.+\\.php$ (site.conf:2)
    response_buffering: true  # nginx's default fastcgi_buffering on
"
        ),
        "{}",
        i.yaml
    );
    assert!(
        i.yaml.contains(
            "  - match: \"~ ^/admin/.+\\\\.php$\"  # location ~ ^/admin/.+\\.php$ (site.conf:3)
  #"
        ),
        "the same as the top level: no rule\n{}",
        i.yaml
    );
    assert!(
        i.yaml.contains(
            "response_buffering: false  # fastcgi_buffering off (site.conf:5)\n\
             response_max_temp_file: \"0\"  # fastcgi_max_temp_file_size 0 (site.conf:6)\n"
        ),
        "{}",
        i.yaml
    );
    assert!(has_note(
        &i,
        NoteKind::Untranslated,
        "location ~ ^/export/.+\\.php$ (site.conf:2): nginx's default fastcgi_max_temp_file_size \
         here; fpmlb has one response_max_temp_file"
    ));
    assert_eq!(i.count(NoteKind::Untranslated), 1, "{:#?}", i.notes);
    let c = loads(&i);
    assert!(!c.response_buffering);
    assert_eq!(c.locations[0].response_buffering, Some(true));
    assert_eq!(c.locations[1].response_buffering, None);
}

#[test]
fn buffer_settings_are_listed() {
    let i = full(
        "http { fastcgi_temp_path /var/cache/nginx/fastcgi 1 2;
           server { listen 8080; root /srv; fastcgi_buffers 16 16k; fastcgi_buffer_size 32k;
             location /static/ { fastcgi_buffering off; }
             location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; fastcgi_busy_buffers_size 64k;
               fastcgi_temp_file_write_size 64k; } } }",
    );
    for fragment in [
        "site.conf:1  fastcgi_temp_path /var/cache/nginx/fastcgi 1 2: fpmlb holds up to \
         response_buffer_size (1m) of a response in memory, then an anonymous temp file in \
         $TMPDIR: no buffer or temp file settings",
        "site.conf:2  fastcgi_buffers 16 16k: fpmlb holds up to response_buffer_size",
        "site.conf:2  fastcgi_buffer_size 32k: fpmlb holds up to response_buffer_size",
        "site.conf:4  fastcgi_busy_buffers_size 64k: fpmlb holds up to response_buffer_size",
        "site.conf:5  fastcgi_temp_file_write_size 64k: fpmlb holds up to response_buffer_size",
        "site.conf:3  fastcgi_buffering off: outside a PHP location (one with fastcgi_pass) it \
         changes nothing fpmlb imports",
    ] {
        assert!(
            has_note(&i, NoteKind::Untranslated, fragment),
            "{fragment}\n{:#?}",
            i.notes
        );
    }
    assert_eq!(i.count(NoteKind::Untranslated), 6, "{:#?}", i.notes);
    assert!(!i.yaml.contains("\nresponse_buffering:"), "{}", i.yaml);
    loads(&i);
}

#[test]
fn backend_names_are_unique() {
    let i = full(
        "upstream php { server 10.0.0.1:9000; server 10.0.0.2:9000; }
         upstream php-1 { server 10.0.0.3:9000; }
         server { listen 80; root /srv;
           location ~ ^/admin/.+\\.php$ { fastcgi_pass php-1; }
           location ~ \\.php$ { fastcgi_pass php; } }",
    );
    assert!(
        i.yaml.contains("  - name: php-1  # server 10.0.0.1:9000"),
        "{}",
        i.yaml
    );
    assert!(
        i.yaml.contains("  - name: php-1-2  # server 10.0.0.3:9000"),
        "{}",
        i.yaml
    );
}

#[test]
fn fastcgi_pass_must_name_backends() {
    for (pass, error) in [
        ("$backend", "uses variables"),
        ("nowhere", "not an upstream of this config nor an address"),
    ] {
        let e = import_files(
            &[(
                "site.conf",
                &format!(
                    "server {{ listen 80; root /srv; location ~ \\.php$ {{ fastcgi_pass {pass}; }} }}"
                ),
            )],
            &Options::default(),
        )
        .unwrap_err();
        assert!(e.0.contains(error), "{e}");
    }
    let e = import_files(
        &[(
            "site.conf",
            "upstream php { server 10.0.0.1:9000 down; }
             server { listen 80; root /srv; location ~ \\.php$ { fastcgi_pass php; } }",
        )],
        &Options::default(),
    )
    .unwrap_err();
    assert!(e.0.contains("has no server fpmlb can use"), "{e}");
}

/// `gzip off` keeps responses uncompressed: fpmlb compresses by default.
#[test]
fn gzip_off_stays_off() {
    let i = full(
        "http { gzip off; server { listen 8080; root /srv;
           location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; } } }",
    );
    assert!(
        i.yaml
            .contains("compression:  # gzip off (site.conf:1)\n  encodings: []"),
        "{}",
        i.yaml
    );
    let c = Config::from_yaml(&i.yaml).unwrap();
    assert!(c.compression.encodings.is_empty(), "{:?}", c.compression);
}

/// A server whose every location passes to PHP or refuses sends no file
/// from its root: no static root is written (it would serve the whole
/// application directory). Without a `location /`, or with one that only
/// tries files, nginx serves them: the root is written.
#[test]
fn a_static_root_only_where_nginx_serves_files() {
    let all_php = full(
        "server { listen 80; root /var/www/app;
           location / { fastcgi_pass 127.0.0.1:9000; include fastcgi_params;
             fastcgi_param SCRIPT_FILENAME $document_root/index.php; }
           location = /favicon.ico { access_log off; log_not_found off; }
           location ~ /\\. { deny all; } }",
    );
    assert!(!all_php.yaml.contains("static:"), "{}", all_php.yaml);
    let caught = full(
        "server { listen 80; root /var/www/app;
           location ^~ / { fastcgi_pass 127.0.0.1:9000; }
           location = /robots.txt { } }",
    );
    assert!(!caught.yaml.contains("static:"), "{}", caught.yaml);
    assert!(
        has_note(
            &all_php,
            NoteKind::Info,
            "nginx serves no file from /var/www/app"
        ),
        "{:?}",
        all_php.notes
    );
    Config::from_yaml(&all_php.yaml).unwrap();
    for served in [
        "server { listen 80; root /var/www/app;
           location / { try_files $uri /index.php$is_args$args; }
           location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; } }",
        "server { listen 80; root /var/www/app;
           location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; } }",
    ] {
        let i = full(served);
        assert!(
            i.yaml.contains("static:\n  root: /var/www/app"),
            "{}",
            i.yaml
        );
    }
}

#[test]
fn roots_from_script_filename_and_defaults() {
    let i = full(
        "server { listen 80; root /srv/static;
           location ~ \\.php$ { fastcgi_param SCRIPT_FILENAME /srv/app$fastcgi_script_name;
             fastcgi_pass 127.0.0.1:9000; } }",
    );
    assert!(i.yaml.contains("document_root: /srv/app"), "{}", i.yaml);
    assert!(
        i.yaml.contains("static:\n  root: /srv/static"),
        "{}",
        i.yaml
    );
    assert!(has_note(
        &i,
        NoteKind::Differs,
        "scripts are under /srv/app"
    ));
    let i = full("server { listen 80; location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; } }");
    assert!(
        i.yaml.contains("document_root: /usr/share/nginx/html"),
        "{}",
        i.yaml
    );
    let i = full(
        "server { listen 80; root /srv/$host; location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; } }",
    );
    assert!(has_note(
        &i,
        NoteKind::Untranslated,
        "root /srv/$host: a root with variables"
    ));
}

mod hostile {
    //! Any tree the parser accepts imports without a panic, and what it
    //! writes is YAML (no value escapes its quotes into the structure).

    use std::path::PathBuf;

    use proptest::prelude::*;

    use crate::nginx::load::Loaded;
    use crate::nginx::tree::{At, Directive, FileId};

    use super::super::{Options, import};

    const NAMES: &[&str] = &[
        "http",
        "server",
        "location",
        "upstream",
        "listen",
        "root",
        "alias",
        "index",
        "try_files",
        "fastcgi_pass",
        "fastcgi_param",
        "fastcgi_split_path_info",
        "include",
        "fastcgi_read_timeout",
        "client_max_body_size",
        "fastcgi_buffering",
        "fastcgi_request_buffering",
        "fastcgi_max_temp_file_size",
        "keepalive",
        "least_conn",
        "ssl",
        "ssl_certificate",
        "ssl_certificate_key",
        "return",
        "deny",
        "allow",
        "internal",
        "expires",
        "add_header",
        "error_page",
        "gzip",
        "gzip_types",
        "set_real_ip_from",
        "real_ip_header",
        "server_name",
        "if",
        "set",
        "access_log",
        "keepalive_timeout",
    ];

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(vec![
                "80",
                "443",
                "ssl",
                "[::]:80",
                "unix:/x",
                "php",
                "/",
                "~",
                "~*",
                "=",
                "^~",
                "\\.php$",
                "^/index\\.php(/|$)",
                "/srv",
                "$uri",
                "$uri/",
                "/index.php?$args",
                "=404",
                "127.0.0.1:9000",
                "weight=0",
                "weight=99999",
                "backup",
                "down",
                "max_fails=x",
                "fail_timeout=1h",
                "on",
                "off",
                "301",
                "https://x$request_uri",
                "404",
                "all",
                "max",
                "-1",
                "SCRIPT_FILENAME",
                "$document_root$fastcgi_script_name",
                "HTTPS",
                "",
                "0",
                "\n",
                "\"",
                "#",
                ": x",
                "- y",
                "{a: b}",
            ])
            .prop_map(str::to_owned),
            "[ -~]{0,10}",
        ]
    }

    fn directive() -> impl Strategy<Value = Directive> {
        let at = At {
            file: FileId(0),
            line: 1,
        };
        let leaf = (
            proptest::sample::select(NAMES.to_vec()),
            proptest::collection::vec(word(), 0..4),
        )
            .prop_map(move |(name, args)| Directive {
                name: name.to_owned(),
                args,
                block: None,
                at,
            });
        leaf.prop_recursive(5, 64, 8, move |inner| {
            (
                proptest::sample::select(NAMES.to_vec()),
                proptest::collection::vec(word(), 0..3),
                proptest::collection::vec(inner, 0..8),
            )
                .prop_map(move |(name, args, body)| Directive {
                    name: name.to_owned(),
                    args,
                    block: Some(body),
                    at,
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_tree_imports_without_panic(
            directives in proptest::collection::vec(directive(), 0..6),
            compat in any::<bool>(),
        ) {
            let loaded = Loaded {
                files: vec![PathBuf::from("/x/site.conf")],
                prefix: PathBuf::from("/x"),
                directives,
                includes: Vec::new(),
            };
            if let Ok(i) = import(&loaded, &Options { compat, server: None }) {
                let parsed: Result<serde_json::Value, _> = serde_saphyr::from_str(&i.yaml);
                prop_assert!(parsed.is_ok(), "not YAML: {:?}\n{}", parsed.err(), i.yaml);
            }
        }

        /// Random directives around and inside a PHP server that imports,
        /// so that every one of them goes through the translator.
        #[test]
        fn random_directives_in_a_php_server(
            top in proptest::collection::vec(directive(), 0..3),
            in_server in proptest::collection::vec(directive(), 0..6),
            in_location in proptest::collection::vec(directive(), 0..6),
            compat in any::<bool>(),
        ) {
            let at = At { file: FileId(0), line: 1 };
            let d = |name: &str, args: &[&str], block: Option<Vec<Directive>>| Directive {
                name: name.to_owned(),
                args: args.iter().map(|a| (*a).to_owned()).collect(),
                block,
                at,
            };
            let mut location = in_location;
            location.push(d("fastcgi_pass", &["127.0.0.1:9000"], None));
            let mut server = vec![d("listen", &["8080"], None), d("root", &["/srv"], None)];
            server.extend(in_server);
            server.push(d("location", &["~", "\\.php$"], Some(location)));
            let mut directives = vec![d("server", &[], Some(server))];
            directives.extend(top);
            let loaded = Loaded {
                files: vec![PathBuf::from("/x/site.conf")],
                prefix: PathBuf::from("/x"),
                directives,
                includes: Vec::new(),
            };
            match import(&loaded, &Options { compat, server: None }) {
                Ok(i) => {
                    let parsed: Result<serde_json::Value, _> = serde_saphyr::from_str(&i.yaml);
                    prop_assert!(parsed.is_ok(), "not YAML: {:?}\n{}", parsed.err(), i.yaml);
                }
                // Only a few things stop an import of this server.
                Err(e) => prop_assert!(
                    e.0.contains("fastcgi_pass") || e.0.contains("listener")
                        || e.0.contains("upstream"),
                    "{}", e
                ),
            }
        }
    }

    /// A tree that certainly imports, with hostile values: the YAML stays
    /// YAML and keeps them as strings.
    #[test]
    fn hostile_values_stay_quoted() {
        let text = "server { listen 80; root \"/srv/a\nb: c\"; server_name \"x\n# y\";
            location ~ \\.php$ { fastcgi_param \"K: v\n- z\" \"a\\\"b\n#c\"; fastcgi_pass 127.0.0.1:9000; } }";
        let i = super::full(text);
        let v: serde_json::Value = serde_saphyr::from_str(&i.yaml).unwrap();
        assert_eq!(v["document_root"], "/srv/a\nb: c");
        assert_eq!(v["params"]["K: v\n- z"], "a\"b\n#c");
        assert!(v.get("b").is_none());
    }
}
