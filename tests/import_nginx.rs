//! `fpmlb import-nginx` end to end: a real nginx with a fixture config and
//! fpmlb with what `import-nginx` made of the same file, over the same
//! php-fpm cluster (integration/cluster.sh, document root
//! tests/fixtures/nginx/www, where every script answers with its
//! SCRIPT_NAME), answer a table of URLs alike: status and which script ran,
//! and for a file both send, the same bytes with the same media type.
//!
//! Each fixture is one [`Site`]: the file, the substitutions that point it at
//! the test's addresses, and its URL table. nginx's answer is pinned in the
//! table (two servers failing alike would otherwise compare nothing); where
//! fpmlb answers otherwise the table says so and why, per mode: `--compat`
//! (the keys of issues 13 and 14 commented out: no static files, no
//! locations) and the full config (`all_fixtures_with_the_full_config`:
//! static.root, locations, error pages).
//! Adding a fixture is one `Site` and one test function.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::nginx::Nginx;
use support::{Cluster, Fpmlb, Net, Resp, client, get, nets, repo};

/// How a server answered: status, and the script that ran (None: not PHP).
type Answer = (u16, Option<&'static str>);

/// One URL and how each side answers it.
struct Case {
    url: &'static str,
    nginx: Answer,
    /// fpmlb `--compat`'s answer where it differs from nginx's, and why.
    compat: Option<(Answer, &'static str)>,
    /// fpmlb's answer with the full config where it differs, and why.
    full: Option<(Answer, &'static str)>,
}

/// A URL both answer alike.
fn case(url: &'static str, status: u16, script: Option<&'static str>) -> Case {
    Case {
        url,
        nginx: (status, script),
        compat: None,
        full: None,
    }
}

impl Case {
    fn compat(mut self, status: u16, script: Option<&'static str>, why: &'static str) -> Case {
        self.compat = Some(((status, script), why));
        self
    }

    fn full(mut self, status: u16, script: Option<&'static str>, why: &'static str) -> Case {
        self.full = Some(((status, script), why));
        self
    }

    /// Both modes differ alike (a difference the importer notes).
    fn differs(self, status: u16, script: Option<&'static str>, why: &'static str) -> Case {
        self.compat(status, script, why).full(status, script, why)
    }
}

const STATIC: &str = "this fpmlb serves no static files (issue 14's static.root)";
const DOTFILES: &str = "fpmlb never serves dotfiles (issue 14); nginx serves them unless denied";
const DIR_REDIRECT: &str = "nginx redirects a directory to its slash; fpmlb has no such file";
const NO_LOCATIONS: &str = "this fpmlb has no locations (issue 14)";
const NO_INDEX_FC: &str = "a directory without an index: fpmlb's front controller (file, directory \
                           index, front controller); nginx's `$uri/` answers 403";

/// A fixture and its URL table.
struct Site {
    /// The fixture, relative to tests/fixtures/nginx.
    file: &'static str,
    /// A site file: included from the http block of a main config the test
    /// writes (as nginx.conf includes sites-enabled/).
    site_file: bool,
    /// (text of the fixture, replacement), each found at least once.
    /// Placeholders: {listen} (nginx's or fpmlb's address), {docroot},
    /// {node1}..{node3} (php-fpm nodes), {dir} (the copy's folder).
    subst: &'static [(&'static str, &'static str)],
    cases: fn() -> Vec<Case>,
}

const SEEDS: Site = Site {
    file: "seeds.conf",
    site_file: false,
    subst: &[
        ("listen 127.0.0.1:8080;", "listen {listen};"),
        ("root \"/var/www/html\";", "root \"{docroot}\";"),
        ("server 127.0.0.2:9000;", "server {node1};"),
        ("server 127.0.0.3:9000;", "server {node2};"),
        ("server 127.0.0.4:9000;", "server {node3};"),
    ],
    cases: || {
        vec![
            case("/", 200, Some("/index.php")),
            case("/index.php", 200, Some("/index.php")),
            case("/other.php", 200, Some("/other.php")),
            case("/other.php/a/b?x=1", 200, Some("/other.php")),
            case("/sub/", 200, Some("/sub/index.php")),
            case("/sub/page.php", 200, Some("/sub/page.php")),
            case("/sub/../other.php", 200, Some("/other.php")),
            case(
                "/wp-content/uploads/evil.php",
                200,
                Some("/wp-content/uploads/evil.php"),
            ),
            case("/missing.php", 404, None),
            case("/nothing", 404, None),
            case("/style.css", 200, None).compat(404, None, STATIC),
            case("/sub/readme.txt", 200, None).compat(404, None, STATIC),
            case("/.htaccess", 200, None).differs(404, None, DOTFILES),
            case("/sub", 301, None).compat(404, None, DIR_REDIRECT),
            case("/sub?x=1", 301, None).compat(404, None, DIR_REDIRECT),
            case("/robots.txt", 200, None).compat(404, None, STATIC),
            case("/wp-content/uploads/", 403, None).compat(
                404,
                None,
                "php-fpm finds no index.php there (its own 404)",
            ),
            case("/%73tyle.css", 200, None).compat(404, None, STATIC),
        ]
    },
};

const DEBIAN_DEFAULT_PHP: Site = Site {
    file: "sites-available/default-php",
    site_file: true,
    subst: &[
        (
            "listen 80 default_server;",
            "listen {listen} default_server;",
        ),
        ("listen [::]:80 default_server;", ""),
        ("root /var/www/html;", "root {docroot};"),
        ("fastcgi_pass 127.0.0.1:9000;", "fastcgi_pass {node1};"),
    ],
    cases: || {
        vec![
            case("/", 200, Some("/index.php")),
            case("/other.php", 200, Some("/other.php")),
            case("/other.php/a/b", 404, None).differs(
                200,
                Some("/other.php"),
                "location ~ \\.php$ does not match /other.php/a/b: nginx's try_files answers 404; \
                 fpmlb runs other.php with PATH_INFO (the importer notes it)",
            ),
            case("/sub/", 200, Some("/sub/index.php")),
            case("/sub/page.php", 200, Some("/sub/page.php")),
            case("/missing.php", 404, None),
            case("/nothing", 404, None),
            case("/style.css", 200, None).compat(404, None, STATIC),
            case("/.htaccess", 403, None).compat(404, None, NO_LOCATIONS),
            case("/.env", 200, None).differs(404, None, DOTFILES),
            case("/sub", 301, None).compat(404, None, DIR_REDIRECT),
            case("/sub/readme.txt", 200, None).compat(404, None, STATIC),
            case("/favicon.ico", 200, None).compat(404, None, STATIC),
            case("/wp-content/uploads/", 403, None).compat(
                404,
                None,
                "php-fpm finds no index.php there (its own 404)",
            ),
        ]
    },
};

const WORDPRESS: Site = Site {
    file: "sites-available/wordpress",
    site_file: true,
    subst: &[
        ("server {\n", "server {\n    listen {listen};\n"),
        ("root /var/www/wordpress;", "root {docroot};"),
        ("server unix:/tmp/php-cgi.socket;", "server {node1};"),
        ("server 127.0.0.1:9000;", "server {node2};"),
    ],
    cases: || {
        vec![
            case("/", 200, Some("/index.php")),
            case("/hello-world/?p=1", 200, Some("/index.php")),
            case("/wp-login.php", 200, Some("/wp-login.php")),
            case("/wp-admin/", 200, Some("/wp-admin/index.php")),
            case(
                "/wp-content/uploads/evil.php",
                200,
                Some("/wp-content/uploads/evil.php"),
            ),
            case("/wp-login.php/x", 200, Some("/index.php")).differs(
                200,
                Some("/wp-login.php"),
                "location ~ \\.php$ does not match it: nginx's front controller answers; fpmlb \
                 runs wp-login.php with PATH_INFO (noted)",
            ),
            case("/style.css", 200, None).compat(200, Some("/index.php"), STATIC),
            case("/robots.txt", 200, None).compat(200, Some("/index.php"), STATIC),
            case("/missing.css", 404, None).differs(
                200,
                Some("/index.php"),
                "nginx's static location answers 404 for a missing file; fpmlb's front \
                 controller answers every path that is no file",
            ),
            case("/missing.php", 404, None),
            case("/.htaccess", 200, None)
                .compat(200, Some("/index.php"), STATIC)
                .full(404, None, DOTFILES),
            case("/favicon.ico", 200, None).compat(200, Some("/index.php"), STATIC),
            case("/sub/readme.txt", 200, None).compat(200, Some("/index.php"), STATIC),
            case("/sub", 301, None).compat(200, Some("/index.php"), DIR_REDIRECT),
            case("/sub/", 200, Some("/sub/index.php")),
            case("/wp-content/uploads/", 403, None).differs(200, Some("/index.php"), NO_INDEX_FC),
        ]
    },
};

const LARAVEL: Site = Site {
    file: "sites-available/laravel",
    site_file: true,
    subst: &[
        ("listen 80;", "listen {listen};"),
        ("listen [::]:80;", ""),
        ("root /srv/example.com/public;", "root {docroot};"),
        (
            "fastcgi_pass unix:/var/run/php/php8.2-fpm.sock;",
            "fastcgi_pass {node1};",
        ),
    ],
    cases: || {
        vec![
            case("/", 200, Some("/index.php")),
            case("/users/1?tab=x", 200, Some("/index.php")),
            case("/index.php/users", 200, Some("/index.php/users")).differs(
                200,
                Some("/index.php"),
                "no fastcgi_split_path_info: nginx sends SCRIPT_NAME=/index.php/users and \
                 php-fpm finds index.php by itself; fpmlb splits PATH_INFO (noted)",
            ),
            case("/other.php", 200, None)
                .compat(200, Some("/other.php"), NO_LOCATIONS)
                .full(
                    404,
                    None,
                    "nginx serves other.php's source (it is not the PHP location's script); \
                     fpmlb's scripts allowlist answers 404",
                ),
            case("/style.css", 200, None).compat(200, Some("/index.php"), STATIC),
            case("/.env", 403, None).compat(200, Some("/index.php"), NO_LOCATIONS),
            case("/.well-known/security.txt", 200, None).compat(200, Some("/index.php"), STATIC),
            case("/missing.php", 200, Some("/index.php")).differs(
                404,
                None,
                "nginx sends a .php that is not index.php to try_files and the front \
                 controller; fpmlb asks php-fpm for it (--compat) or refuses it (scripts \
                 allowlist)",
            ),
            case("/favicon.ico", 200, None).compat(200, Some("/index.php"), STATIC),
            case("/robots.txt", 200, None).compat(200, Some("/index.php"), STATIC),
            case("/sub/readme.txt", 200, None).compat(200, Some("/index.php"), STATIC),
            case("/sub", 301, None).compat(200, Some("/index.php"), DIR_REDIRECT),
            case("/sub/", 200, None)
                .compat(200, Some("/sub/index.php"), NO_LOCATIONS)
                .full(
                    200,
                    Some("/index.php"),
                    "nginx's index module sends /sub/index.php to location / as a file: its \
                     source; fpmlb's scripts allowlist refuses it and the front controller answers",
                ),
        ]
    },
};

const SYMFONY: Site = Site {
    file: "sites-available/symfony",
    site_file: true,
    subst: &[
        ("server {\n", "server {\n    listen {listen};\n"),
        ("root /var/www/project/public;", "root {docroot};"),
        (
            "fastcgi_pass unix:/var/run/php/php8.3-fpm.sock;",
            "fastcgi_pass {node1};",
        ),
        (
            "/var/log/nginx/project_error.log",
            "{dir}/project_error.log",
        ),
        (
            "/var/log/nginx/project_access.log",
            "{dir}/project_access.log",
        ),
    ],
    cases: || {
        vec![
            case("/", 200, Some("/index.php")),
            case("/blog/post?id=2", 200, Some("/index.php")),
            case("/index.php", 404, None).compat(200, Some("/index.php"), NO_LOCATIONS),
            case("/index.php/some-path", 404, None).compat(200, Some("/index.php"), NO_LOCATIONS),
            case("/other.php", 404, None).compat(200, Some("/other.php"), NO_LOCATIONS),
            case("/style.css", 200, None).compat(200, Some("/index.php"), STATIC),
            case("/favicon.ico", 200, None).compat(200, Some("/index.php"), STATIC),
            case("/sub/readme.txt", 200, None).compat(200, Some("/index.php"), STATIC),
            case("/sub/", 200, Some("/index.php")).compat(
                200,
                Some("/sub/index.php"),
                NO_LOCATIONS,
            ),
            case("/sub", 200, Some("/index.php")).full(
                301,
                None,
                "try_files without $uri/: nginx sends a directory to the front controller; \
                 fpmlb redirects it to its slash",
            ),
            case("/.env", 200, None)
                .compat(200, Some("/index.php"), STATIC)
                .full(404, None, DOTFILES),
        ]
    },
};

const PHPMYADMIN: Site = Site {
    file: "sites-available/phpmyadmin",
    site_file: true,
    subst: &[
        ("listen 80;", "listen {listen};"),
        ("root /usr/share/phpmyadmin;", "root {docroot};"),
        (
            "fastcgi_pass unix:/run/php/php8.2-fpm.sock;",
            "fastcgi_pass {node1};",
        ),
        // PHP may open the test's document root.
        (
            "open_basedir=/usr/share/phpmyadmin/:",
            "open_basedir={docroot}/:/usr/share/phpmyadmin/:",
        ),
    ],
    cases: || {
        vec![
            case("/", 200, Some("/index.php")),
            case(
                "/index.php?route=/server/databases",
                200,
                Some("/index.php"),
            ),
            case("/other.php/x", 200, Some("/other.php")),
            case("/templates/t.php", 403, None).compat(200, Some("/templates/t.php"), NO_LOCATIONS),
            case("/libraries/l.php", 403, None).compat(200, Some("/libraries/l.php"), NO_LOCATIONS),
            case("/style.css", 200, None).compat(404, None, STATIC),
            case("/nothing", 404, None),
            case("/templates/", 403, None).compat(404, None, NO_LOCATIONS),
            case("/favicon.ico", 200, None).compat(404, None, STATIC),
            case("/sub/readme.txt", 200, None).compat(404, None, STATIC),
            case("/sub/", 200, Some("/sub/index.php")),
            case("/sub", 301, None).compat(404, None, DIR_REDIRECT),
            case("/.env", 200, None)
                .compat(404, None, STATIC)
                .full(404, None, DOTFILES),
        ]
    },
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_cluster_config_compat() {
    compare(&SEEDS, nets::IMPORT_SEEDS, Mode::Compat).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debian_default_site_with_php_compat() {
    compare(
        &DEBIAN_DEFAULT_PHP,
        nets::IMPORT_DEBIAN_DEFAULT,
        Mode::Compat,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wordpress_compat() {
    compare(&WORDPRESS, nets::IMPORT_WORDPRESS, Mode::Compat).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laravel_compat() {
    compare(&LARAVEL, nets::IMPORT_LARAVEL, Mode::Compat).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symfony_compat() {
    compare(&SYMFONY, nets::IMPORT_SYMFONY, Mode::Compat).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phpmyadmin_compat() {
    compare(&PHPMYADMIN, nets::IMPORT_PHPMYADMIN, Mode::Compat).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_fixtures_with_the_full_config() {
    for site in [
        &SEEDS,
        &DEBIAN_DEFAULT_PHP,
        &WORDPRESS,
        &LARAVEL,
        &SYMFONY,
        &PHPMYADMIN,
    ] {
        compare(site, nets::IMPORT_FULL, Mode::Full).await;
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Compat,
    Full,
}

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/nginx")
}

/// Copies the fixture tree (not www/ nor expected/) to `to`.
fn copy_fixtures(to: &Path) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if name == "www" || name == "expected" {
                continue;
            }
            let target = to.join(&name);
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    copy(&fixtures(), to);
}

/// Writes the fixture for one side under `dir`; returns the main file.
fn prepare(site: &Site, dir: &Path, listen: &str, cluster: &Cluster, nginx: bool) -> PathBuf {
    copy_fixtures(dir);
    let nodes = cluster.nodes();
    let fill = |s: &str| {
        let mut s = s
            .replace("{listen}", listen)
            .replace("{docroot}", &cluster.docroot())
            .replace("{dir}", &dir.display().to_string());
        for (i, (_, addr)) in nodes.iter().enumerate() {
            s = s.replace(&format!("{{node{}}}", i + 1), addr);
        }
        s
    };
    let path = dir.join(site.file);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in site.subst {
        assert!(text.contains(from), "{}: no {from:?} to replace", site.file);
        text = text.replacen(from, &fill(to), 1);
    }
    // nginx's own files stay in the test's folder.
    let temp = format!(
        "    client_body_temp_path {d}/tmp-body;\n    fastcgi_temp_path {d}/tmp-fastcgi;\n    \
         proxy_temp_path {d}/tmp-proxy;\n    uwsgi_temp_path {d}/tmp-uwsgi;\n    scgi_temp_path \
         {d}/tmp-scgi;\n",
        d = dir.display()
    );
    if !site.site_file && nginx {
        text = text.replacen("http {\n", &format!("http {{\n{temp}"), 1);
    }
    std::fs::write(&path, text).unwrap();
    if !site.site_file {
        return path;
    }
    let main = dir.join("main.conf");
    let temp = if nginx { temp } else { String::new() };
    std::fs::write(
        &main,
        format!(
            "# The test's nginx.conf: the site included from http, as Debian's includes\n\
             # sites-enabled/.\nevents {{\n    worker_connections 256;\n}}\n\nhttp {{\n    include \
             mime.types;\n    default_type application/octet-stream;\n    access_log \
             {}/access.log;\n{temp}    include {};\n}}\n",
            dir.display(),
            site.file
        ),
    )
    .unwrap();
    main
}

/// Runs `fpmlb import-nginx` on `main`; returns the YAML.
fn import(main: &Path, mode: Mode) -> String {
    let out_file = main.with_file_name("fpmlb-imported.yaml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fpmlb"));
    cmd.arg("import-nginx").arg(main).arg("-o").arg(&out_file);
    if mode == Mode::Compat {
        cmd.arg("--compat");
    }
    let out = cmd.output().expect("run fpmlb import-nginx");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "import-nginx {} failed ({}):\n{stderr}",
        main.display(),
        out.status
    );
    assert!(
        stderr.contains("the result passes `fpmlb config test`"),
        "{stderr}"
    );
    std::fs::read_to_string(out_file).unwrap()
}

/// The script that answered, from the JSON the document root's scripts send.
fn ran(resp: &Resp) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(&resp.body).ok()?;
    json.get("script")?.as_str().map(str::to_owned)
}

async fn compare(site: &Site, net: Net, mode: Mode) {
    let www = fixtures().join("www");
    let cluster = Cluster::start(
        net,
        &["--docroot", www.to_str().unwrap(), "--session", "files"],
    );
    let nginx_addr = net.addr(5, 8080);
    let nginx_dir = cluster.dir.join("nginx");
    let main = prepare(site, &nginx_dir, &nginx_addr.to_string(), &cluster, true);
    let nginx = Nginx::start(&nginx_dir, &main, nginx_addr);

    let fpmlb_dir = cluster.dir.join("fpmlb");
    let lb_addr = cluster.lb_addr();
    let main = prepare(site, &fpmlb_dir, &lb_addr.to_string(), &cluster, false);
    let mut yaml = import(&main, mode);
    yaml.push_str("admin:\n  listen: off\n");
    let lb = Fpmlb::start(&fpmlb_dir, lb_addr, &yaml);

    let c = client(false);
    let mut wrong = Vec::new();
    for case in (site.cases)() {
        let theirs = get(&c, &format!("http://{nginx_addr}{}", case.url))
            .await
            .unwrap();
        let ours = get(&c, &lb.url(case.url)).await.unwrap();
        let nginx_answer = (theirs.status, ran(&theirs));
        let want_nginx = (case.nginx.0, case.nginx.1.map(str::to_owned));
        if nginx_answer != want_nginx {
            wrong.push(format!(
                "{}: nginx answered {nginx_answer:?}, the table says {want_nginx:?}",
                case.url
            ));
        }
        let (want, why) = match (mode, case.compat, case.full) {
            (Mode::Compat, Some((a, why)), _) | (Mode::Full, _, Some((a, why))) => (a, why),
            _ => (case.nginx, "as nginx"),
        };
        let want = (want.0, want.1.map(str::to_owned));
        let got = (ours.status, ran(&ours));
        if got != want {
            wrong.push(format!(
                "{}: fpmlb answered {got:?}, expected {want:?} ({why}); nginx {nginx_answer:?}",
                case.url
            ));
        }
        // A file both sent: the same bytes with the same media type
        // (Laravel's `charset utf-8` adds a parameter fpmlb leaves out).
        if got == (200, None) && nginx_answer == (200, None) {
            let kind = |r: &Resp| {
                r.headers.get("content-type").map(|v| {
                    let v = v.to_str().unwrap_or("");
                    v.split(';').next().unwrap_or(v).trim().to_owned()
                })
            };
            if (kind(&ours), &ours.body) != (kind(&theirs), &theirs.body) {
                wrong.push(format!(
                    "{}: fpmlb sent {:?} ({} bytes), nginx {:?} ({} bytes)",
                    case.url,
                    kind(&ours),
                    ours.body.len(),
                    kind(&theirs),
                    theirs.body.len()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} ({mode:?}):\n{}\n--- imported config:\n{yaml}\n--- nginx error log:\n{}\n--- fpmlb \
         log:\n{}",
        site.file,
        wrong.join("\n"),
        nginx.error_log(),
        lb.log_text()
    );
}

/// The CLI's contract: exit 1 and a message when nothing can be imported,
/// 2 when this fpmlb refuses the full output, notes on stderr.
#[test]
fn cli_exit_codes_and_notes() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_fpmlb"))
            .arg("import-nginx")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let f = |p: &str| fixtures().join(p).display().to_string();

    let (code, out, err) = run(&[&f("sites-available/default")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("no server passes requests to FastCGI"),
        "{err}"
    );

    let (code, out, err) = run(&[&f("seeds.conf"), "--compat"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("# fpmlb configuration imported from nginx"),
        "{out}"
    );
    assert!(
        err.contains("not translated: seeds.conf:15  sendfile on: an nginx tuning setting"),
        "{err}"
    );
    assert!(
        err.contains("41 directives translated, 6 not translated, 4 translated with a difference"),
        "{err}"
    );

    // The full output of a fixture passes this fpmlb's config test.
    let (code, out, err) = run(&[&f("sites-available/laravel")]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("locations:"), "{out}");
    assert!(
        err.contains("the result passes `fpmlb config test`"),
        "{err}"
    );

    // A location regex PCRE reads and fpmlb does not (recursion): written,
    // refused by config test, exit 2.
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site.conf");
    std::fs::write(
        &site,
        "server {\n    listen 80;\n    root /srv;\n    location ~ \"^/(a(?R)?b)$\" { deny all; }\n    \
         location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; }\n}\n",
    )
    .unwrap();
    let (code, out, err) = run(&[site.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(out.contains("locations:"), "{out}");
    assert!(err.contains("this fpmlb refuses the result"), "{err}");
    assert!(err.contains("not a regex fpmlb can use"), "{err}");

    let (code, _, err) = run(&[&f("nope.conf")]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nope.conf"), "{err}");
}
