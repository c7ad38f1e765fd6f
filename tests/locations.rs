//! `locations:` end to end: nginx's precedence checked against a real nginx
//! with the same locations over a table of paths, and each rule on a real
//! cluster: backend groups and a backup, per-location timeout and body
//! limit, the script allowlist (a refused script never reaches PHP), deny,
//! an internal alias reached through X-Accel-Redirect, and error pages.

mod support;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use support::nginx::Nginx;
use support::{Cluster, Fpmlb, Resp, client, get, nets, send, state_dir};

/// The locations of the precedence test, in file order: (match, name).
/// Each answers `302 http://loc.test/NAME`, in nginx and in fpmlb, so the
/// Location says which one took the path.
const LOCATIONS: &[(&str, &str)] = &[
    ("= /", "exact-root"),
    ("/", "root"),
    ("/documents/", "documents"),
    ("^~ /images/", "images"),
    ("~* \\.(gif|jpg|jpeg)$", "pictures"),
    ("= /exact", "exact"),
    ("/exact", "exact-prefix"),
    ("~ ^/api/v[0-9]+/", "api-versioned"),
    ("/api/", "api"),
    ("^~ /static/", "static"),
    ("/static/img/", "static-img"),
    ("~ \\.php$", "php"),
    ("~ /\\.(?!well-known)", "dotfile"),
    ("~* ^/case/", "case"),
];

/// (path as sent, nginx's location, fpmlb's where it differs and why).
/// "-" is no location: the static root is empty, so 404.
type Row = (
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
);

const PATHS: &[Row] = &[
    ("/", "exact-root", None),
    ("/index.html", "root", None),
    ("/documents/document.html", "documents", None),
    ("/images/1.gif", "images", None),
    ("/documents/1.jpg", "pictures", None),
    ("/DOCUMENTS/1.JPG", "pictures", None),
    ("/exact", "exact", None),
    ("/exact/", "exact-prefix", None),
    ("/exactly", "exact-prefix", None),
    ("/api/v2/users", "api-versioned", None),
    ("/api/users", "api", None),
    ("/API/v2/users", "root", None),
    ("/static/x.php", "static", None),
    ("/static/img/x.php", "php", None),
    ("/static/img/a.GIF", "pictures", None),
    ("/static/img/a.png", "static-img", None),
    ("/a.php", "php", None),
    ("/a.PHP", "root", None),
    ("/.git/config", "dotfile", None),
    ("/a/.env", "dotfile", None),
    ("/.well-known/x", "root", None),
    ("/CASE/x", "case", None),
    ("//images//1.gif", "images", None),
    ("/documents/../images/1.gif", "images", None),
    ("/a/./b.jpg", "pictures", None),
    ("/%69mages/1.gif", "images", None),
    ("/images%2f1.gif", "images", None),
    ("/x.php%20", "root", None),
    (
        "/x.php%0a",
        "php",
        Some((
            "root",
            "PCRE's $ also matches before a final newline; the regex crate's only at the end",
        )),
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precedence_matches_nginx() {
    let net = nets::LOCATIONS_VS_NGINX;
    let dir = state_dir(net);
    let root = dir.join("empty-root");
    std::fs::create_dir_all(&root).unwrap();
    let nginx_addr = net.addr(5, 8080);
    let mut conf = format!(
        "events {{ worker_connections 64; }}\nhttp {{\n    access_log off;\n    \
         client_body_temp_path {d}/tmp-body;\n    fastcgi_temp_path {d}/tmp-fastcgi;\n    \
         proxy_temp_path {d}/tmp-proxy;\n    uwsgi_temp_path {d}/tmp-uwsgi;\n    \
         scgi_temp_path {d}/tmp-scgi;\n    server {{\n        listen {nginx_addr};\n        \
         root {r};\n",
        d = dir.display(),
        r = root.display()
    );
    let mut yaml = format!(
        "{}static:\n  root: {}\nlocations:\n",
        support::base_yaml(net.addr(1, 8080), "/var/www"),
        root.display()
    );
    for (m, name) in LOCATIONS {
        conf.push_str(&format!(
            "        location {m} {{ return 302 http://loc.test/{name}; }}\n"
        ));
        yaml.push_str(&format!(
            "  - match: {}\n    return: {{status: 302, url: \"http://loc.test/{name}\"}}\n",
            serde_json::to_string(m).unwrap()
        ));
    }
    conf.push_str("    }\n}\n");
    yaml.push_str(&format!(
        "backends:\n  - name: nowhere\n    address: \"{}\"\n",
        net.addr(2, 9)
    ));
    let main = dir.join("nginx.conf");
    std::fs::write(&main, conf).unwrap();
    let nginx = Nginx::start(&dir, &main, nginx_addr);
    let lb = Fpmlb::start(&dir, net.addr(1, 8080), &yaml);

    let which = |r: &Resp| -> String {
        match r.headers.get("location") {
            Some(l) if r.status == 302 => l
                .to_str()
                .unwrap()
                .trim_start_matches("http://loc.test/")
                .to_owned(),
            _ if r.status == 404 => "-".to_owned(),
            _ => format!("status {}", r.status),
        }
    };
    let mut wrong = Vec::new();
    let mut table = Vec::new();
    for (path, want_nginx, differs) in PATHS {
        let theirs = raw_get(nginx_addr, path).await;
        let ours = raw_get(lb.addr, path).await;
        let (n, f) = (which(&theirs), which(&ours));
        let want_fpmlb = differs.map_or(*want_nginx, |(d, _)| d);
        table.push(format!("{path:32} nginx {n:14} fpmlb {f}"));
        if n != *want_nginx {
            wrong.push(format!(
                "{path}: nginx chose {n}, the table says {want_nginx}"
            ));
        }
        if f != want_fpmlb {
            wrong.push(format!("{path}: fpmlb chose {f}, expected {want_fpmlb}"));
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(
        wrong.is_empty(),
        "{}\n--- nginx error log:\n{}\n--- fpmlb log:\n{}",
        wrong.join("\n"),
        nginx.error_log(),
        lb.log_text()
    );
}

/// A GET with the path exactly as written (no client-side tidying).
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> Resp {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: loc.test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&got).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers = http::HeaderMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':')
            && let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.trim().as_bytes()),
                http::HeaderValue::from_str(v.trim()),
            )
        {
            headers.append(k, v);
        }
    }
    Resp {
        status,
        headers,
        body: Bytes::from(body.to_owned()),
        version: http::Version::HTTP_11,
    }
}

fn write(root: &Path, name: &str, content: &str) {
    let path = root.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// The document root of the cluster test: integration/www plus scripts
/// that say which node ran them, send a file by X-Accel-Redirect, or
/// answer their own 404, and the error pages.
fn docroot(at: &Path) {
    let www = support::repo().join("integration/www");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", www.display()))
        .arg(at)
        .status()
        .unwrap();
    assert!(status.success());
    let who = "<?php echo getenv('NODE_NAME'), \"\\n\";\n";
    write(at, "who.php", who);
    write(at, "admin/who.php", who);
    write(
        at,
        "admin/slow.php",
        &std::fs::read_to_string(www.join("slow.php")).unwrap(),
    );
    write(
        at,
        "download.php",
        "<?php\nheader('Content-Type: application/pdf');\n\
         header('Content-Disposition: attachment; filename=\"report.pdf\"');\n\
         header('Cache-Control: private');\n\
         setcookie('downloaded', '1');\n\
         header('X-Accel-Redirect: /protected/' . ($_GET['f'] ?? ''));\n\
         echo 'the script body never reaches the client';\n",
    );
    write(
        at,
        "php404.php",
        "<?php http_response_code(404); echo \"PHP's own 404\\n\";\n",
    );
    write(at, "errors/404.html", "<h1>Not here</h1>\n");
    write(at, "errors/50x.html", "<h1>Back soon</h1>\n");
    write(at, "private/secret.txt", "secret\n");
}

async fn post(lb: &Fpmlb, path: &str, body: Vec<u8>) -> Resp {
    let req = http::Request::post(lb.url(path))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    send(&client(false), req).await.unwrap()
}

async fn get_with(lb: &Fpmlb, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut b = http::Request::get(lb.url(path));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(&client(false), b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_on_a_real_cluster() {
    let net = nets::LOCATIONS_ON_A_CLUSTER;
    let src = tempfile::tempdir().unwrap();
    docroot(src.path());
    let cluster = Cluster::start(
        net,
        &[
            "--nodes",
            "4",
            "--session",
            "files",
            "--docroot",
            src.path().to_str().unwrap(),
        ],
    );
    let private = cluster.dir.join("private-files");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::write(private.join("report.pdf"), b"%PDF-1.4 fake report").unwrap();
    let nodes = cluster.nodes();
    let node = |i: usize| nodes[i].1.clone();
    let yaml = format!(
        "{base}max_fails: 0\nstatic:\n  root: {docroot}\n\
         error_pages: {{404: /errors/404.html, 502: /errors/50x.html, 503: /errors/50x.html}}\n\
         locations:\n\
         \x20 - {{match: /admin/, backends: admin, timeouts: {{read: 1s}}}}\n\
         \x20 - {{match: \"= /upload.php\", max_body_size: 10k}}\n\
         \x20 - {{match: \"^~ /private/\", deny: 403}}\n\
         \x20 - {{match: /protected/, internal: true, alias: {private}/}}\n\
         \x20 - {{match: /, scripts: [/index.php, /who.php, /slow.php, /upload.php, /download.php, /php404.php]}}\n\
         backends:\n\
         \x20 - {{name: web01, address: \"{n1}\"}}\n\
         \x20 - {{name: web02, address: \"{n2}\"}}\n\
         \x20 - {{name: web03, address: \"{n3}\", backup: true}}\n\
         \x20 - {{name: web04, address: \"{n4}\", group: admin}}\n",
        base = support::base_yaml(cluster.lb_addr(), &cluster.docroot()),
        docroot = cluster.docroot(),
        private = private.display(),
        n1 = node(0),
        n2 = node(1),
        n3 = node(2),
        n4 = node(3),
    );
    let lb = Fpmlb::start(&cluster.dir, cluster.lb_addr(), &yaml);
    let c = client(false);

    // Groups: main's requests on web01 and web02 (never its backup), the
    // admin location's on web04.
    let mut main = Vec::new();
    for _ in 0..12 {
        main.push(get(&c, &lb.url("/who.php")).await.unwrap().text());
    }
    main.sort();
    main.dedup();
    assert_eq!(main, ["web01\n", "web02\n"]);
    for _ in 0..6 {
        assert_eq!(
            get(&c, &lb.url("/admin/who.php")).await.unwrap().text(),
            "web04\n"
        );
    }

    // The admin location's read timeout is 1 s; elsewhere it is 60 s.
    assert_eq!(
        get(&c, &lb.url("/admin/slow.php?ms=2500"))
            .await
            .unwrap()
            .status,
        504
    );
    assert_eq!(
        get(&c, &lb.url("/slow.php?ms=1500")).await.unwrap().status,
        200
    );

    // upload.php takes 10k, everything else the default 1m.
    assert_eq!(
        post(&lb, "/upload.php", vec![b'x'; 20 * 1024]).await.status,
        413
    );
    let ok = post(&lb, "/upload.php", vec![b'x'; 5 * 1024]).await;
    assert_eq!(
        (ok.status, ok.json()["len"].as_u64()),
        (200, Some(5 * 1024))
    );

    // The allowlist: ran.php exists on every node but is not listed, so it
    // is 404 and never runs.
    let r = get(&c, &lb.url("/ran.php?tag=allowlist")).await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text(),
        "<h1>Not here</h1>\n",
        "fpmlb's 404 is the error page"
    );
    assert!(!cluster.ran_log().contains("allowlist"));
    assert_eq!(get(&c, &lb.url("/hello.php")).await.unwrap().status, 404);

    // deny.
    assert_eq!(
        get(&c, &lb.url("/private/secret.txt"))
            .await
            .unwrap()
            .status,
        403
    );

    // X-Accel-Redirect into the internal alias, with the script's headers.
    let r = get(&c, &lb.url("/download.php?f=report.pdf"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", lb.log_text());
    assert_eq!(r.body.as_ref(), b"%PDF-1.4 fake report");
    assert_eq!(r.headers["content-type"], "application/pdf");
    assert_eq!(
        r.headers["content-disposition"],
        "attachment; filename=\"report.pdf\""
    );
    assert_eq!(r.headers["cache-control"], "private");
    assert!(
        r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("downloaded=1")
    );
    assert!(r.headers.get("x-accel-redirect").is_none());
    let r = get_with(&lb, "/download.php?f=report.pdf", &[("range", "bytes=0-3")]).await;
    assert_eq!((r.status, r.body.as_ref()), (206, &b"%PDF"[..]));
    // The internal location directly, or a way out of it: 404.
    for path in [
        "/protected/report.pdf",
        "/download.php?f=../../../../../../etc/passwd",
        "/download.php?f=%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/download.php?f=nope.pdf",
    ] {
        let r = get(&c, &lb.url(path)).await.unwrap();
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.text().contains("root:"), "{path}");
    }

    // PHP's own 404 passes as it is (nginx's fastcgi_intercept_errors off).
    let r = get(&c, &lb.url("/php404.php")).await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (404, "PHP's own 404\n"));

    // The backup takes main's requests when web01 and web02 are gone.
    cluster.kill_node("web01", "TERM");
    cluster.kill_node("web02", "TERM");
    cluster.wait_node_gone("web01");
    cluster.wait_node_gone("web02");
    for _ in 0..4 {
        assert_eq!(
            get(&c, &lb.url("/who.php")).await.unwrap().text(),
            "web03\n"
        );
    }
    // The admin group has no backup: without web04, 502 (its kept
    // connection died) or 503 (no backend), with the page for both.
    cluster.kill_node("web04", "TERM");
    cluster.wait_node_gone("web04");
    let r = get(&c, &lb.url("/admin/who.php")).await.unwrap();
    assert!(matches!(r.status, 502 | 503), "{}", r.status);
    assert_eq!(r.text(), "<h1>Back soon</h1>\n");
    assert_eq!(r.headers["content-type"], "text/html");
    // Once its kept connections are found dead: 503, Retry-After kept.
    let mut last = None;
    for _ in 0..8 {
        let r = get(&c, &lb.url("/admin/who.php")).await.unwrap();
        assert_eq!(r.text(), "<h1>Back soon</h1>\n");
        if r.status == 503 {
            last = Some(r);
            break;
        }
    }
    let r = last.expect("a 503 once web04's kept connections are gone");
    assert_eq!(r.headers["retry-after"], "5", "kept on the page");
}
