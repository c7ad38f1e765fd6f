//! phpMyAdmin as a new user would try it: Debian's package on three php-fpm
//! nodes, fpmlb in front with `static.root` at the package's code
//! (/usr/share/phpmyadmin, whose jQuery and CodeMirror are links into
//! /usr/share/javascript), a MariaDB server the test starts, and a real
//! headless chromium that logs in with the login form's token and opens
//! phpMyAdmin's start page. Every request
//! the browser made (its NetLog) must answer 200, or 302 for the login, with
//! the type a browser accepts for a stylesheet, a script, an image; the same
//! through nginx with the same site, for comparison.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::nginx::Nginx;
use support::{Cluster, Fpmlb, child_command, nets};

const PMA: &str = "/usr/share/phpmyadmin";
const USER: &str = "fpmlb";
const PASSWORD: &str = "fpmlb-test-password";

/// A MariaDB server of the test's own (a child: it dies with the test).
struct MariaDb {
    child: std::process::Child,
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mariadb(dir: &Path, ip: &str) -> MariaDb {
    let data = dir.join("mysql");
    let socket = dir.join("mysql.sock");
    let out = Command::new("mariadb-install-db")
        .args(["--no-defaults", "--user=root", "--skip-test-db"])
        .arg(format!("--datadir={}", data.display()))
        .output()
        .expect("mariadb-install-db (integration/install.sh installs mariadb-server)");
    assert!(
        out.status.success(),
        "mariadb-install-db: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = child_command("mariadbd")
        .args([
            "--no-defaults",
            "--user=root",
            "--skip-log-bin",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=16M",
            "--port=3306",
        ])
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--bind-address={ip}"))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--pid-file={}", dir.join("mysql.pid").display()))
        .arg(format!("--log-error={}", dir.join("mysql.err").display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start mariadbd");
    let db = MariaDb { child };
    let sql = |q: &str| {
        Command::new("mariadb")
            .args(["--no-defaults", "-u", "root"])
            .arg(format!("--socket={}", socket.display()))
            .args(["-e", q])
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sql("SELECT 1").status.success() {
        assert!(
            Instant::now() < deadline,
            "MariaDB did not start:\n{}",
            std::fs::read_to_string(dir.join("mysql.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = sql(&format!(
        "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON *.* TO '{USER}'@'%';"
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    db
}

/// What every node's phpMyAdmin reads besides Debian's config: the MariaDB
/// server, one blowfish secret for all (the login cookie is read by
/// whichever node takes the next request), a temp dir PHP may write, and
/// framing by its own origin (the test's page shows it in a frame).
fn configure_nodes(cluster: &Cluster, db_ip: &str) {
    for (name, _) in cluster.nodes() {
        let root = cluster.dir.join(&name).join("root");
        let conf = root.join("etc/phpmyadmin/conf.d/fpmlb-test.php");
        std::fs::write(
            &conf,
            format!(
                "<?php\n$cfg['Servers'][1]['host'] = '{db_ip}';\n$cfg['Servers'][1]['port'] = '3306';\n\
                 $cfg['Servers'][1]['connect_type'] = 'tcp';\n$cfg['Servers'][1]['auth_type'] = 'cookie';\n\
                 $cfg['blowfish_secret'] = '{}';\n\
                 $cfg['AllowThirdPartyFraming'] = 'sameorigin';\n",
                "0123456789abcdef0123456789abcdef"
            ),
        )
        .unwrap();
        let tmp = root.join("var/lib/phpmyadmin/tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let status = Command::new("chmod")
            .arg("1777")
            .arg(&tmp)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// A page that logs in as a user would, then opens phpMyAdmin: it fetches
/// the login page (which sets phpMyAdmin's cookies), takes the form's
/// hidden fields (the token), posts them with the user and password, and
/// loads phpMyAdmin's start page in a frame. Synchronous requests and a
/// frame written while the page is parsed hold the page's load event until
/// phpMyAdmin's page and its assets have loaded, which is when chromium's
/// `--dump-dom` writes the DOM; the frame's load handler writes what it saw
/// into `#result` before that. (A navigation to the logged-in page with
/// `--virtual-time-budget` never ends in headless chromium 156: its
/// virtual time stops advancing on that page.)
fn login_page(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("login.html"),
        format!(
            r#"<!doctype html><html><head><title>login</title></head><body><script>
function request(method, url, body) {{
  const x = new XMLHttpRequest();
  x.open(method, url, false);
  if (body) x.setRequestHeader('Content-Type', 'application/x-www-form-urlencoded');
  x.send(body || null);
  return x.responseText;
}}
const login = new DOMParser().parseFromString(request('GET', '/index.php'), 'text/html');
const form = new URLSearchParams();
for (const i of login.querySelectorAll('form#login_form input[type=hidden]')) form.append(i.name, i.value);
form.append('pma_username', '{USER}');
form.append('pma_password', '{PASSWORD}');
request('POST', '/index.php?route=/', form.toString());
document.write('<iframe id="app" src="/index.php" width="1280" height="900"></iframe>');
document.getElementById('app').addEventListener('load', (e) => {{
  const d = e.target.contentDocument;
  const out = document.createElement('pre');
  out.id = 'result';
  out.textContent = JSON.stringify({{
    logged_in: !!d.getElementById('pma_navigation') && !d.getElementById('login_form'),
    title: d.title,
  }});
  document.body.appendChild(out);
}});
</script></body></html>
"#
        ),
    )
    .unwrap();
}

/// One response the browser got: (path and query, status, Content-Type).
type Seen = (String, u16, String);

/// The responses of the browser's NetLog for `origin`, in order.
fn netlog_responses(file: &Path, origin: &str) -> Vec<Seen> {
    let text = std::fs::read_to_string(file).unwrap();
    // Chromium may leave the last line unterminated if it is stopped; it
    // exits normally here, so the JSON is whole.
    let log: serde_json::Value = serde_json::from_str(&text).expect("NetLog JSON");
    let types = &log["constants"]["logEventTypes"];
    let id = |name: &str| types[name].as_u64().unwrap();
    let (start, headers) = (
        id("URL_REQUEST_START_JOB"),
        id("HTTP_TRANSACTION_READ_RESPONSE_HEADERS"),
    );
    let mut url_of: BTreeMap<u64, String> = BTreeMap::new();
    let mut seen = Vec::new();
    for e in log["events"].as_array().unwrap() {
        let source = e["source"]["id"].as_u64().unwrap_or(0);
        let kind = e["type"].as_u64().unwrap_or(0);
        if kind == start
            && let Some(url) = e["params"]["url"].as_str()
        {
            url_of.insert(source, url.to_owned());
        } else if kind == headers
            && let Some(url) = url_of.get(&source)
            && let Some(path) = url.strip_prefix(origin)
        {
            let lines: Vec<&str> = e["params"]["headers"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|h| h.as_str())
                .collect();
            let status = lines[0]
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let content_type = lines
                .iter()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-type")
                        .then(|| v.trim().to_owned())
                })
                .unwrap_or_default();
            seen.push((path.to_owned(), status, content_type));
        }
    }
    seen
}

/// Logs in with chromium through `origin`; returns the final DOM and what
/// the browser fetched from `origin`.
fn browse(dir: &Path, origin: &str) -> (String, Vec<Seen>) {
    let netlog = dir.join("netlog.json");
    let dom = support::chromium(
        &[
            "--dump-dom",
            &format!("--log-net-log={}", netlog.display()),
            "--net-log-capture-mode=Default",
        ],
        &format!("{origin}/fpmlb-test/login.html"),
    );
    (dom, netlog_responses(&netlog, origin))
}

/// The media type a browser needs for a path, by its extension; `None`
/// for what PHP answers.
fn expected_type(path: &str) -> Option<&'static [&'static str]> {
    let path = path.split('?').next().unwrap_or(path);
    let ext = path.rsplit_once('.').map(|(_, e)| e)?;
    Some(match ext {
        "css" => &["text/css"],
        "js" => &["text/javascript", "application/javascript"],
        "png" => &["image/png"],
        "gif" => &["image/gif"],
        "svg" => &["image/svg+xml"],
        "ico" => &["image/x-icon", "image/vnd.microsoft.icon"],
        "woff" => &["font/woff"],
        "woff2" => &["font/woff2"],
        "html" => &["text/html"],
        "map" => &["application/json", "application/octet-stream"],
        _ => return None,
    })
}

/// Every problem of one browser run, as lines.
fn problems(what: &str, dom: &str, seen: &[Seen]) -> Vec<String> {
    let mut wrong = Vec::new();
    if !dom.contains("\"logged_in\":true") {
        wrong.push(format!(
            "{what}: not logged in; DOM starts: {}",
            dom.chars().take(600).collect::<String>()
        ));
    }
    let assets = seen
        .iter()
        .filter(|(p, _, _)| expected_type(p).is_some())
        .count();
    if assets < 20 {
        wrong.push(format!(
            "{what}: only {assets} stylesheets, scripts and images: {seen:?}"
        ));
    }
    for (path, status, content_type) in seen {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let ok = match expected_type(path) {
            Some(types) => *status == 200 && types.contains(&essence),
            None => *status == 200 || *status == 302,
        };
        if !ok {
            wrong.push(format!("{what}: {path}: {status} {content_type}"));
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phpmyadmin_logs_in_in_chromium_with_every_asset_served() {
    let net = nets::PHPMYADMIN;
    let cluster = Cluster::start(
        net,
        &[
            "--docroot",
            PMA,
            "--copy",
            "/usr/share/php",
            "--copy",
            "/etc/phpmyadmin",
            "--copy",
            "/var/lib/phpmyadmin",
        ],
    );
    let _db = mariadb(&cluster.dir, &net.ip(1));
    configure_nodes(&cluster, &net.ip(1));
    let login = cluster.dir.join("login");
    login_page(&login);

    // fpmlb: phpMyAdmin's own rules (its Apache config denies templates/
    // and libraries/), the test's login page from an alias.
    let lb_dir = cluster.dir.join("fpmlb");
    std::fs::create_dir_all(&lb_dir).unwrap();
    let yaml = format!(
        "{}static:\n  root: {PMA}\nlocations:\n  - {{match: \"^~ /templates/\", deny: 403}}\n  \
         - {{match: \"^~ /libraries/\", deny: 403}}\n  - {{match: /fpmlb-test/, alias: {}/}}\n{}",
        support::base_yaml(cluster.lb_addr(), &cluster.docroot()),
        login.display(),
        cluster.backends_yaml()
    );
    let lb = Fpmlb::start(&lb_dir, cluster.lb_addr(), &yaml);

    // nginx, the same site.
    let nginx_dir = cluster.dir.join("nginx");
    std::fs::create_dir_all(&nginx_dir).unwrap();
    let nginx_addr = net.addr(5, 8080);
    let servers: String = cluster
        .nodes()
        .iter()
        .map(|(_, a)| format!("        server {a};\n"))
        .collect();
    let conf = format!(
        "events {{ worker_connections 256; }}\nhttp {{\n    include {fixtures}/mime.types;\n    \
         default_type application/octet-stream;\n    access_log off;\n    \
         client_body_temp_path {d}/tmp-body;\n    fastcgi_temp_path {d}/tmp-fastcgi;\n    \
         proxy_temp_path {d}/tmp-proxy;\n    uwsgi_temp_path {d}/tmp-uwsgi;\n    \
         scgi_temp_path {d}/tmp-scgi;\n    upstream php {{\n{servers}    }}\n    server {{\n        \
         listen {nginx_addr};\n        root {PMA};\n        index index.php;\n        \
         location ^~ /templates/ {{ deny all; }}\n        location ^~ /libraries/ {{ deny all; }}\n        \
         location /fpmlb-test/ {{ alias {login}/; }}\n        location / {{ try_files $uri $uri/ =404; }}\n        \
         location ~ \\.php(/|$) {{\n            fastcgi_split_path_info ^(.+?\\.php)(/.*)$;\n            \
         include {fixtures}/fastcgi_params;\n            \
         fastcgi_param SCRIPT_FILENAME {docroot}$fastcgi_script_name;\n            \
         fastcgi_param PATH_INFO $fastcgi_path_info;\n            fastcgi_pass php;\n        }}\n    }}\n}}\n",
        fixtures = support::repo().join("tests/fixtures/nginx").display(),
        d = nginx_dir.display(),
        login = login.display(),
        docroot = cluster.docroot(),
    );
    let main = nginx_dir.join("nginx.conf");
    std::fs::write(&main, conf).unwrap();
    let nginx = Nginx::start(&nginx_dir, &main, nginx_addr);

    let (dom, seen) = browse(&lb_dir, &format!("http://{}", lb.addr));
    let (nginx_dom, nginx_seen) = browse(&nginx_dir, &format!("http://{nginx_addr}"));
    let mut wrong = problems("fpmlb", &dom, &seen);
    wrong.extend(problems("nginx", &nginx_dom, &nginx_seen));
    // The browser fetched the same assets from both.
    // (The favicon is left out: chromium asks for it on its own schedule,
    // before or after the DOM is written; when it asks, it is checked above.)
    let assets = |s: &[Seen]| -> BTreeSet<String> {
        s.iter()
            .filter(|(p, _, _)| expected_type(p).is_some())
            .map(|(p, _, _)| p.split('?').next().unwrap_or(p).to_owned())
            .filter(|p| p != "/favicon.ico")
            .collect()
    };
    let (ours, theirs) = (assets(&seen), assets(&nginx_seen));
    if ours != theirs {
        wrong.push(format!(
            "assets only through fpmlb: {:?}; only through nginx: {:?}",
            ours.difference(&theirs).collect::<Vec<_>>(),
            theirs.difference(&ours).collect::<Vec<_>>()
        ));
    }
    eprintln!(
        "phpMyAdmin in chromium: {} responses through fpmlb ({} assets), {} through nginx",
        seen.len(),
        ours.len(),
        nginx_seen.len()
    );
    assert!(
        wrong.is_empty(),
        "{}\n--- fpmlb log:\n{}\n--- nginx error log:\n{}",
        wrong.join("\n"),
        lb.log_text(),
        nginx.error_log()
    );
}
