//! The router against a real directory tree: what a path leads to with a
//! static root, locations, aliases, X-Accel-Redirect and error pages.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use crate::config::Config;
use crate::http::error::{ClientError, ProxyError};
use crate::http::params::{ConnInfo, Site};
use crate::http::response;
use crate::http::router::{Routed, Router};

/// The tree of the tests, under a temporary directory:
/// www/ (the root) and private/ (an alias) and outside/ (what must not leak).
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let w = |p: &str, body: &str| {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    };
    w("www/index.php", "<?php");
    w("www/style.css", "body{}");
    w("www/sub/index.php", "<?php");
    w("www/sub/readme.txt", "hi");
    w("www/docs/index.html", "<h1>docs</h1>");
    w("www/.env", "SECRET=1");
    w("www/.well-known/security.txt", "contact");
    w("www/.php-cs-fixer.php", "<?php");
    w("www/.git/hooks/x.php", "<?php");
    w("www/old.phtml", "<?php");
    w("www/admin/x.php", "<?php");
    w("www/uploads/evil.php", "<?php");
    w("www/uploads/pic.png", "png");
    w("www/404.html", "<p>not here</p>");
    w("private/report.pdf", "%PDF");
    w("outside/secret", "s");
    std::fs::create_dir_all(dir.path().join("www/empty")).unwrap();
    // An uploaded link (the application's user: nobody) and a package's (root's).
    std::os::unix::fs::symlink(
        dir.path().join("outside/secret"),
        dir.path().join("www/leak.txt"),
    )
    .unwrap();
    std::os::unix::fs::lchown(dir.path().join("www/leak.txt"), Some(65534), None).unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside"), dir.path().join("www/vendor")).unwrap();
    dir
}

fn router(dir: &Path, extra: &str) -> Arc<Router> {
    let yaml = format!(
        "listen: \":8080\"\ndocument_root: /var/www\nstatic:\n  root: {}/www\nbackends:\n  - {{name: a, address: \"127.0.0.1:9000\"}}\n  - {{name: b, address: \"127.0.0.1:9001\", group: admin}}\n{extra}",
        dir.display()
    );
    let config = Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    Arc::new(Router::new(&config))
}

fn site() -> Site {
    Site {
        document_root: "/var/www".into(),
        index: "index.php".into(),
        front_controller: None,
        server_name: None,
        https: false,
        extra: vec![],
    }
}

fn conn() -> ConnInfo {
    ConnInfo::plain(
        "127.0.0.9:5000".parse().unwrap(),
        "127.0.0.1:8080".parse().unwrap(),
    )
}

fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "example.test:8080");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

/// What a path leads to, in words: `file 200 <body>`, `script /x.php [group]`,
/// `refused 404`, `respond 301 <location>`.
async fn route(r: &Arc<Router>, method: &str, uri: &str, headers: &[(&str, &str)]) -> String {
    let p = parts(method, uri, headers);
    match r.route(&p, &conn(), &site()).await {
        Ok(Routed::Script(s)) => format!(
            "script {}{} [{}]{}",
            String::from_utf8_lossy(&s.script_name),
            String::from_utf8_lossy(&s.path_info),
            s.group(),
            s.fallback
                .as_ref()
                .map(|f| format!(" else {}", String::from_utf8_lossy(f)))
                .unwrap_or_default()
        ),
        Ok(Routed::Respond(resp)) => describe(resp).await,
        Err(ProxyError::Client(ClientError::Refused { status, .. })) => {
            format!("refused {}", status.as_u16())
        }
        Err(e) => format!("error {}", e.status().as_u16()),
    }
}

async fn describe(
    resp: Response<http_body_util::combinators::UnsyncBoxBody<Bytes, response::BodyError>>,
) -> String {
    let status = resp.status().as_u16();
    if let Some(l) = resp.headers().get("location") {
        return format!("respond {status} {}", l.to_str().unwrap());
    }
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    format!("file {status} {ct} {}", String::from_utf8_lossy(&body))
}

#[tokio::test]
async fn try_files_order_with_a_static_root() {
    let dir = tree();
    let r = router(dir.path(), "");
    let cases = [
        ("/style.css", "file 200 text/css body{}"),
        ("/sub/readme.txt", "file 200 text/plain hi"),
        ("/sub/../style.css", "file 200 text/css body{}"),
        ("/%73tyle.css", "file 200 text/css body{}"),
        ("/", "script /index.php [main]"),
        ("/sub/", "script /sub/index.php [main]"),
        ("/docs/", "file 200 text/html <h1>docs</h1>"),
        ("/sub?a=1", "respond 301 http://example.test:8080/sub/?a=1"),
        ("/empty/", "refused 403"),
        ("/nothing", "refused 404"),
        ("/sub/page.php", "refused 404"),
        ("/missing.php/x", "refused 404"),
        ("/sub/index.php/a/b", "script /sub/index.php/a/b [main]"),
        ("/.env", "refused 404"),
        ("/%2eenv", "refused 404"),
        // A script in a dotfile or a dot directory never runs either.
        ("/.php-cs-fixer.php", "refused 404"),
        ("/.git/hooks/x.php", "refused 404"),
        ("/.php-cs-fixer.php/x", "refused 404"),
        ("/.well-known/security.txt", "file 200 text/plain contact"),
        ("/old.phtml", "refused 404"),
        ("/leak.txt", "refused 404"),
        ("/vendor/secret", "file 200 application/octet-stream s"),
        ("/a/%2e%2e/%2e%2e/outside/secret", "error 400"),
        ("/..%2foutside/secret", "error 400"),
        ("/style.css%00.php", "error 400"),
    ];
    for (uri, want) in cases {
        assert_eq!(route(&r, "GET", uri, &[]).await, want, "{uri}");
    }
    assert_eq!(route(&r, "POST", "/style.css", &[]).await, "refused 405");
    assert_eq!(
        route(&r, "HEAD", "/style.css", &[]).await,
        "file 200 text/css "
    );
}

#[tokio::test]
async fn the_front_controller_takes_what_is_no_file() {
    let dir = tree();
    let r = router(dir.path(), "front_controller: /index.php\n");
    assert_eq!(
        route(&r, "GET", "/users/42", &[]).await,
        "script /index.php [main]"
    );
    assert_eq!(
        route(&r, "GET", "/nope/", &[]).await,
        "script /index.php [main]"
    );
    assert_eq!(
        route(&r, "GET", "/style.css", &[]).await,
        "file 200 text/css body{}"
    );
    // A dotfile or PHP source is never handed to it: 404.
    assert_eq!(route(&r, "GET", "/.env", &[]).await, "refused 404");
    assert_eq!(route(&r, "GET", "/x.php5", &[]).await, "refused 404");
    // A directory without an index: the front controller (403 without one).
    assert_eq!(
        route(&r, "GET", "/empty/", &[]).await,
        "script /index.php [main]"
    );
}

#[tokio::test]
async fn locations_deny_return_scripts_groups() {
    let dir = tree();
    let r = router(
        dir.path(),
        "front_controller: /index.php\nlocations:\n\
         - {match: \"= /xmlrpc.php\", deny: 404}\n\
         - {match: \"^~ /uploads/\", scripts: []}\n\
         - {match: /admin/, backends: admin, timeouts: {read: 300s}}\n\
         - {match: \"~ /\\\\.(?!well-known).*\", deny: 403}\n\
         - {match: /old/, return: {status: 301, url: \"https://$host/new$request_uri\"}}\n\
         - {match: /gone/, return: {status: 410}}\n\
         - {match: /rel/, return: {status: 302, url: \"/x$is_args$args\"}}\n\
         - {match: /, scripts: [/index.php, /admin/x.php]}\n\
         - {match: \"~ ^/index\\\\.php(/|$)\", internal: true}\n",
    );
    let cases = [
        ("/xmlrpc.php", "refused 404"),
        ("/uploads/evil.php", "refused 404"),
        ("/uploads/pic.png", "file 200 image/png png"),
        ("/admin/x.php", "script /admin/x.php [admin]"),
        ("/.env", "refused 403"),
        ("/.well-known/security.txt", "file 200 text/plain contact"),
        (
            "/old/a?b=1",
            "respond 301 https://example.test/new/old/a?b=1",
        ),
        ("/rel/q?z=2", "respond 302 http://example.test:8080/x?z=2"),
        ("/sub/index.php", "refused 404"),
        // Reached directly the internal location is 404; as the front
        // controller (an internal redirect) it runs.
        ("/index.php", "refused 404"),
        ("/anything", "script /index.php [main]"),
    ];
    for (uri, want) in cases {
        assert_eq!(route(&r, "GET", uri, &[]).await, want, "{uri}");
    }
    let p = parts("GET", "/gone/x", &[]);
    let Ok(Routed::Respond(resp)) = r.route(&p, &conn(), &site()).await else {
        panic!()
    };
    assert_eq!(resp.status(), StatusCode::GONE);
    // The admin location's timeout and group.
    let p = parts("GET", "/admin/x.php", &[]);
    let Ok(Routed::Script(s)) = r.route(&p, &conn(), &site()).await else {
        panic!()
    };
    let base = crate::fastcgi::exchange::ExchangeTimeouts {
        send: std::time::Duration::from_secs(60),
        read: std::time::Duration::from_secs(60),
    };
    let t = s.timeouts(base);
    assert_eq!(
        (t.read.as_secs(), t.send.as_secs(), s.group()),
        (300, 60, "admin")
    );
}

/// An alias under a location whose prefix does not end in `/` (nginx's
/// "alias traversal"): `/pub../x` must not reach the alias's parent, even
/// through a root-owned link there (a deploy's `current`), which the
/// root's own checks let through.
#[tokio::test]
async fn an_alias_without_a_slash_is_not_climbed_out_of() {
    let dir = tree();
    std::os::unix::fs::symlink(dir.path().join("outside"), dir.path().join("current")).unwrap();
    let r = router(
        dir.path(),
        &format!(
            "locations:\n  - {{match: /pub, alias: {}/private/}}\n",
            dir.path().display()
        ),
    );
    assert_eq!(
        route(&r, "GET", "/pub/report.pdf", &[]).await,
        "file 200 application/pdf %PDF"
    );
    for uri in [
        "/pub../current/secret",
        "/pub../outside/secret",
        "/pub..",
        "/pub../",
    ] {
        assert_eq!(route(&r, "GET", uri, &[]).await, "refused 404", "{uri}");
    }
}

#[tokio::test]
async fn alias_and_x_accel_redirect() {
    let dir = tree();
    let r = router(
        dir.path(),
        &format!(
            "locations:\n  - {{match: /protected/, internal: true, alias: {}/private/}}\n  - {{match: /public/, alias: {}/private/}}\n",
            dir.path().display(),
            dir.path().display()
        ),
    );
    // Directly: internal, 404; the same files through a public alias.
    assert_eq!(
        route(&r, "GET", "/protected/report.pdf", &[]).await,
        "refused 404"
    );
    assert_eq!(
        route(&r, "GET", "/public/report.pdf", &[]).await,
        "file 200 application/pdf %PDF"
    );
    let accel = |target: &str| {
        Response::builder()
            .header("content-type", "application/x-custom")
            .header("content-disposition", "attachment; filename=r.pdf")
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .header("x-powered-by", "PHP")
            .header("x-accel-redirect", target)
            .header("x-accel-buffering", "no")
            .body(response::full(Bytes::from_static(b"ignored")))
            .unwrap()
    };
    let p = parts("GET", "/download.php", &[]);
    let resp = r
        .after_script(accel("/protected/report.pdf"), &p)
        .await
        .unwrap();
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "application/x-custom");
    assert_eq!(h["content-disposition"], "attachment; filename=r.pdf");
    assert_eq!(h.get_all("set-cookie").iter().count(), 2);
    assert!(
        h.get("x-powered-by").is_none(),
        "not kept: the file's answer"
    );
    assert!(h.get("x-accel-redirect").is_none() && h.get("x-accel-buffering").is_none());
    assert_eq!(describe(resp).await, "file 200 application/x-custom %PDF");
    // A range of it.
    let p_range = parts("GET", "/download.php", &[("range", "bytes=1-2")]);
    let resp = r
        .after_script(accel("/protected/report.pdf"), &p_range)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    // Only internal locations, no way out, nothing but files.
    for bad in [
        "/public/report.pdf",
        "/protected/../../outside/secret",
        "/protected/%2e%2e/%2e%2e/outside/secret",
        "/protected/",
        "/protected/nope",
        "/style.css",
        "@named",
    ] {
        let err = r.after_script(accel(bad), &p).await.err();
        assert!(
            matches!(err, Some(ProxyError::Client(ClientError::Refused { status, .. })) if status == 404),
            "{bad}: {err:?}"
        );
    }
    // A script's answer without the header passes, other X-Accel-* removed.
    let plain = Response::builder()
        .header("x-accel-expires", "10")
        .header("x-powered-by", "PHP")
        .body(response::full(Bytes::new()))
        .unwrap();
    let resp = r.after_script(plain, &p).await.unwrap();
    assert!(resp.headers().get("x-accel-expires").is_none());
    assert_eq!(resp.headers()["x-powered-by"], "PHP");
}

#[tokio::test]
async fn error_pages_replace_fpmlb_s_own_errors() {
    let dir = tree();
    let r = router(
        dir.path(),
        "error_pages: {404: /404.html, 502: /50x.html}\n",
    );
    let page = r
        .error_page(StatusCode::NOT_FOUND, &Method::GET)
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    assert_eq!(describe(page).await, "file 404 text/html <p>not here</p>");
    let head = r
        .error_page(StatusCode::NOT_FOUND, &Method::HEAD)
        .await
        .unwrap();
    assert_eq!(head.headers()["content-length"], "15");
    assert_eq!(describe(head).await, "file 404 text/html ");
    // Configured but missing: fpmlb's own page (None); not configured: None.
    assert!(
        r.error_page(StatusCode::BAD_GATEWAY, &Method::GET)
            .await
            .is_none()
    );
    assert!(
        r.error_page(StatusCode::FORBIDDEN, &Method::GET)
            .await
            .is_none()
    );
}
