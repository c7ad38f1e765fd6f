//! Files served by fpmlb from `static.root`, end to end over HTTP/1.1:
//! conditional requests, ranges (with their edge cases), precompressed
//! siblings, HEAD, and everything that must never go out: paths that climb
//! out (`..`, `%2e%2e`, encoded slashes), symlinks out of the root made by
//! the application's user, dotfiles, PHP source, listings, FIFOs. A
//! 1 GiB file streamed with fpmlb's memory flat, and large files whose
//! windows go out with sendfile: byte for byte.
//!
//! fpmlb's backend is an address where nothing listens: a script that
//! exists locally is 503 (php-fpm was asked and could not be reached); a
//! `.php` that does not exist is 404 (php-fpm was never asked).

mod support;

use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use support::{Fpmlb, Net, Resp, client, nets, rss_kib, send, state_dir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// fpmlb with `static.root` at `root` and `extra` config; `dir` is the
/// test's state folder (`state_dir`, called once: it empties the folder).
fn start(net: Net, dir: &Path, root: &Path, extra: &str) -> Fpmlb {
    let addr = net.addr(1, 8080);
    let yaml = format!(
        "{}static:\n  root: {}\n{extra}backends:\n  - name: nowhere\n    address: \"{}\"\n",
        support::base_yaml(addr, "/var/www"),
        root.display(),
        net.addr(2, 9)
    );
    Fpmlb::start(dir, addr, &yaml)
}

fn write(root: &Path, name: &str, content: &[u8]) {
    let path = root.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

async fn get(lb: &Fpmlb, path: &str, headers: &[(&str, &str)]) -> Resp {
    request(lb, "GET", path, headers).await
}

async fn request(lb: &Fpmlb, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut b = http::Request::builder().method(method).uri(lb.url(path));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(&client(false), b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap()
}

/// Sends `head` as it is and returns the status line and headers (the
/// body is not read): for paths a client library would tidy up.
async fn raw(addr: SocketAddr, head: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0; 4096];
    let mut got = Vec::new();
    let read = async {
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

fn header<'a>(r: &'a Resp, name: &str) -> &'a str {
    r.headers.get(name).map_or("", |v| v.to_str().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_conditionals_ranges_siblings_and_refusals() {
    let net = nets::STATIC_FILES;
    let dir = state_dir(net);
    let root = dir.join("www");
    let _ = std::fs::remove_dir_all(&root);
    let css = b"body { color: #333 }\n".repeat(50);
    write(&root, "assets/app.css", &css);
    write(&root, "assets/app.css.gz", b"GZ-BYTES");
    write(&root, "assets/app.css.br", b"BR-BYTES");
    write(
        &root,
        "assets/logo.svg",
        b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
    );
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    write(&root, "data.bin", &data);
    write(&root, "index.php", b"<?php echo 'index';");
    write(&root, "x.phtml", b"<?php echo 'x';");
    write(&root, "config.php.bak", b"<?php $password = 'hunter2';");
    write(&root, "config.php~", b"<?php $password = 'hunter2';");
    write(&root, ".env", b"APP_KEY=secret");
    write(&root, ".git/config", b"[core]");
    write(
        &root,
        ".well-known/security.txt",
        b"Contact: mailto:sec@example.test",
    );
    write(&root, "docs/index.html", b"<h1>docs</h1>");
    std::fs::create_dir_all(root.join("empty")).unwrap();
    write(&dir, "outside.txt", b"OUTSIDE THE ROOT");
    // A link an upload could have planted (the application's user), and a
    // package's link (root's), as Debian's phpMyAdmin has.
    symlink(dir.join("outside.txt"), root.join("leak.css")).unwrap();
    std::os::unix::fs::lchown(root.join("leak.css"), Some(65534), None).unwrap();
    symlink(&dir, root.join("up")).unwrap();
    std::os::unix::fs::lchown(root.join("up"), Some(65534), None).unwrap();
    symlink(dir.join("outside.txt"), root.join("vendor.txt")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(root.join("pipe.css"))
        .status()
        .unwrap();
    assert!(fifo.success());
    let lb = start(net, &dir, &root, "");

    // A file, its validators, HEAD.
    let r = get(&lb, "/assets/app.css", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_ref(), css.as_slice());
    assert_eq!(header(&r, "content-type"), "text/css");
    assert_eq!(header(&r, "content-length"), css.len().to_string());
    assert_eq!(header(&r, "accept-ranges"), "bytes");
    assert_eq!(header(&r, "vary"), "Accept-Encoding", "siblings exist");
    let etag = header(&r, "etag").to_owned();
    let modified = header(&r, "last-modified").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(modified.ends_with(" GMT"), "{modified}");
    let head = request(&lb, "HEAD", "/assets/app.css", &[]).await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(header(&head, "content-length"), css.len().to_string());
    assert_eq!(header(&head, "etag"), etag);
    assert_eq!(
        header(&get(&lb, "/assets/logo.svg", &[]).await, "content-type"),
        "image/svg+xml"
    );

    // Conditional requests.
    let r = get(&lb, "/assets/app.css", &[("if-none-match", &etag)]).await;
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(header(&r, "etag"), etag);
    let r = get(&lb, "/assets/app.css", &[("if-modified-since", &modified)]).await;
    assert_eq!(r.status, 304);
    let r = get(
        &lb,
        "/assets/app.css",
        &[("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT")],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = get(
        &lb,
        "/assets/app.css",
        &[("if-none-match", "\"nope\", \"no\"")],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = get(&lb, "/assets/app.css", &[("if-match", "\"nope\"")]).await;
    assert_eq!(r.status, 412);
    let r = get(&lb, "/assets/app.css", &[("if-match", &etag)]).await;
    assert_eq!(r.status, 200);
    let r = get(
        &lb,
        "/assets/app.css",
        &[("if-unmodified-since", "Mon, 01 Jan 2001 00:00:00 GMT")],
    )
    .await;
    assert_eq!(r.status, 412);

    // Ranges.
    let r = get(&lb, "/data.bin", &[("range", "bytes=100-199")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body.as_ref(), &data[100..200]);
    assert_eq!(header(&r, "content-range"), "bytes 100-199/10000");
    let r = get(&lb, "/data.bin", &[("range", "bytes=-10")]).await;
    assert_eq!((r.status, r.body.as_ref()), (206, &data[9990..]));
    let r = get(&lb, "/data.bin", &[("range", "bytes=9999-20000")]).await;
    assert_eq!((r.status, r.body.as_ref()), (206, &data[9999..]));
    let r = get(&lb, "/data.bin", &[("range", "bytes=10000-")]).await;
    assert_eq!(
        (r.status, header(&r, "content-range")),
        (416, "bytes */10000")
    );
    let r = get(&lb, "/data.bin", &[("range", "bytes=5-1")]).await;
    assert_eq!(r.status, 416);
    let r = get(&lb, "/data.bin", &[("range", "lines=1-2")]).await;
    assert_eq!(
        (r.status, r.body.len()),
        (200, 10_000),
        "unknown unit ignored"
    );
    let r = get(&lb, "/data.bin", &[("range", "bytes=0-9999,0-9999")]).await;
    assert_eq!(
        (r.status, r.body.len()),
        (200, 10_000),
        "overlap: the file once"
    );
    let r = get(&lb, "/data.bin", &[("range", "bytes=0-0,-1")]).await;
    assert_eq!(r.status, 206);
    let boundary = header(&r, "content-type")
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap()
        .to_owned();
    let body = r.body.to_vec();
    let want = [
        format!("\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-0/10000\r\n\r\n").into_bytes(),
        vec![data[0]],
        format!("\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 9999-9999/10000\r\n\r\n").into_bytes(),
        vec![data[9999]],
        format!("\r\n--{boundary}--\r\n").into_bytes(),
    ]
    .concat();
    assert_eq!(body, want);
    let r = get(
        &lb,
        "/data.bin",
        &[("range", "bytes=0-1"), ("if-range", "\"stale\"")],
    )
    .await;
    assert_eq!(
        (r.status, r.body.len()),
        (200, 10_000),
        "If-Range no longer holds"
    );
    let etag_bin = header(&get(&lb, "/data.bin", &[]).await, "etag").to_owned();
    let r = get(
        &lb,
        "/data.bin",
        &[("range", "bytes=0-1"), ("if-range", &etag_bin)],
    )
    .await;
    assert_eq!((r.status, r.body.len()), (206, 2));

    // Precompressed siblings.
    let r = get(&lb, "/assets/app.css", &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(
        (r.body.as_ref(), header(&r, "content-encoding")),
        (&b"BR-BYTES"[..], "br")
    );
    assert_eq!(header(&r, "content-type"), "text/css");
    assert_ne!(
        header(&r, "etag"),
        etag,
        "another representation, another tag"
    );
    let r = get(&lb, "/assets/app.css", &[("accept-encoding", "gzip")]).await;
    assert_eq!(
        (r.body.as_ref(), header(&r, "content-encoding")),
        (&b"GZ-BYTES"[..], "gzip")
    );
    let r = get(
        &lb,
        "/assets/app.css",
        &[("accept-encoding", "br;q=0, gzip;q=0")],
    )
    .await;
    assert_eq!(
        (r.body.as_ref(), header(&r, "content-encoding")),
        (css.as_slice(), "")
    );

    // A file without siblings is compressed on the fly, as any answer
    // (nginx's gzip applies to files too), and decodes to the file; a
    // range of it is never compressed.
    let js = b"function f() { return 42; }\n".repeat(200);
    write(&root, "assets/app.js", &js);
    let r = get(&lb, "/assets/app.js", &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "content-encoding"), "gzip");
    assert_eq!(header(&r, "vary"), "Accept-Encoding");
    assert!(r.body.len() < js.len() / 4, "{} bytes", r.body.len());
    let mut plain = Vec::new();
    async_compression::tokio::bufread::GzipDecoder::new(r.body.as_ref())
        .read_to_end(&mut plain)
        .await
        .unwrap();
    assert_eq!(plain, js);
    let r = get(
        &lb,
        "/assets/app.js",
        &[("accept-encoding", "gzip"), ("range", "bytes=0-9")],
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_ref(), header(&r, "content-encoding")),
        (206, &js[..10], "")
    );

    // Directories: redirect to the slash, index file, never a listing.
    let r = get(&lb, "/docs?x=1", &[]).await;
    assert_eq!(r.status, 301);
    assert_eq!(
        header(&r, "location"),
        format!("http://{}/docs/?x=1", lb.addr)
    );
    assert_eq!(get(&lb, "/docs/", &[]).await.text(), "<h1>docs</h1>");
    assert_eq!(get(&lb, "/empty/", &[]).await.status, 403);

    // Scripts: one that exists goes to php-fpm (unreachable here: 503);
    // one that does not is 404 from fpmlb, php-fpm never asked.
    assert_eq!(get(&lb, "/index.php", &[]).await.status, 503);
    assert_eq!(get(&lb, "/", &[]).await.status, 503);
    assert_eq!(get(&lb, "/missing.php", &[]).await.status, 404);
    assert_eq!(get(&lb, "/missing.php/index.php", &[]).await.status, 404);
    assert_eq!(get(&lb, "/INDEX.PHP", &[]).await.status, 404);
    lb.wait_log_line(&["uri=/missing.php ", "status=404", "backend=\"-\""])
        .await;

    // Never sent: PHP source, dotfiles, links out of the root, FIFOs.
    for path in [
        "/x.phtml",
        "/config.php.bak",
        "/config.php~",
        "/config.php%7e",
        "/.env",
        "/.git/config",
        "/%2egit/config",
        "/leak.css",
        "/up/outside.txt",
        "/pipe.css",
    ] {
        let r = get(&lb, path, &[]).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(!r.text().contains("hunter2") && !r.text().contains("OUTSIDE"));
    }
    let r = get(&lb, "/.well-known/security.txt", &[]).await;
    assert_eq!(r.status, 200, "allow_dotfiles' default");
    assert_eq!(
        get(&lb, "/vendor.txt", &[]).await.text(),
        "OUTSIDE THE ROOT"
    );
    assert_eq!(
        request(&lb, "POST", "/assets/app.css", &[]).await.status,
        405
    );

    // Paths that climb out, as sent on the wire.
    for path in [
        "/../outside.txt",
        "/assets/../../outside.txt",
        "/%2e%2e/outside.txt",
        "/assets/%2e%2e/%2e%2e/outside.txt",
        "/assets/..%2f..%2foutside.txt",
        "/assets%2f..%2f..%2foutside.txt",
        "/%2e%2e%2foutside.txt",
        "/assets/app.css%00.txt",
    ] {
        let head = raw(
            lb.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 400"), "{path}: {head}");
    }
    // An encoded slash that stays inside is a path like any other.
    let head = raw(
        lb.addr,
        "GET /assets%2fapp.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!lb.log_text().contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_file_streams_with_fpmlb_s_memory_flat() {
    const SIZE: u64 = 1 << 30;
    let net = nets::STATIC_BIG_FILE;
    let dir = state_dir(net);
    let root = dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    // Sparse: 1 GiB of zeros that take no disk.
    let file = std::fs::File::create(root.join("big.iso")).unwrap();
    file.set_len(SIZE).unwrap();
    drop(file);
    let lb = start(net, &dir, &root, "");
    let pid = lb.child.id();
    let before = rss_kib(pid);

    let req = http::Request::get(lb.url("/big.iso"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client(false).request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], SIZE.to_string().as_str());
    let mut body = resp.into_body();
    let mut got: u64 = 0;
    let mut samples = vec![before];
    let mut next_sample = 0u64;
    let stream = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap();
            let Some(data) = frame.data_ref() else {
                continue;
            };
            assert!(
                data.iter().all(|&b| b == 0),
                "bytes of a sparse file are zeros"
            );
            got += data.len() as u64;
            if got >= next_sample {
                samples.push(rss_kib(pid));
                next_sample += 32 << 20;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(300), stream)
        .await
        .expect("1 GiB within 5 minutes");
    assert_eq!(got, SIZE);
    samples.push(rss_kib(pid));
    let peak = samples.iter().copied().max().unwrap();
    eprintln!("fpmlb's VmRSS (KiB) before and every 32 MiB of 1 GiB: {samples:?}");
    // 1 GiB went through; fpmlb holds a chunk or two of it at a time.
    assert!(
        peak < before + 32 * 1024,
        "fpmlb's RSS grew from {before} KiB to {peak} KiB while streaming 1 GiB (samples every 32 MiB: {samples:?})"
    );
    // The end of the file, by range.
    let r = get(&lb, "/big.iso", &[("range", "bytes=-5")]).await;
    assert_eq!((r.status, r.body.len()), (206, 5));
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes {}-{}/{SIZE}", SIZE - 5, SIZE - 1)
    );
}

/// Bytes no two windows of a file share, so that a window sent from the
/// wrong offset, or placeholder zeros, cannot pass for the file.
fn patterned(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_go_out_byte_for_byte_zero_copy_or_not() {
    let net = nets::STATIC_ZERO_COPY;
    let dir = state_dir(net);
    let root = dir.join("www");
    // Past the first chunk (128 KiB) and past a window (1 MiB), and not a
    // multiple of either.
    let a = patterned(3 * (1 << 20) + 12_345, 1);
    let b = patterned(1 << 20 | 77, 2);
    // Under the first chunk, over the size a cleartext connection leaves
    // unread for sendfile (32 KiB), head and window in one send.
    let c = patterned(100 * 1024 + 3, 3);
    write(&root, "a.bin", &a);
    write(&root, "b.bin", &b);
    write(&root, "c.bin", &c);
    write(
        &root,
        "a.css",
        &a.iter().map(|x| b'a' + x % 26).collect::<Vec<_>>(),
    );
    let lb = start(net, &dir, &root, "");

    // Cleartext HTTP/1.1: both files, one after the other on one kept-alive
    // connection (the connection's windows go from one response to the
    // next), then ranges.
    let h1 = client(false);
    for _ in 0..2 {
        for (path, want) in [("/a.bin", &a), ("/b.bin", &b), ("/c.bin", &c)] {
            let r = send(
                &h1,
                http::Request::get(lb.url(path))
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.body.len(), want.len(), "{path}");
            assert!(
                r.body == want[..],
                "{path}: the bytes differ from the file's"
            );
        }
    }
    let r = get(&lb, "/c.bin", &[("range", "bytes=7-")]).await;
    assert_eq!(r.status, 206);
    assert!(r.body == c[7..], "a range of a small file's bytes differ");
    let r = get(&lb, "/a.bin", &[("range", "bytes=1000-2500000")]).await;
    assert_eq!(r.status, 206);
    assert!(r.body == a[1000..=2_500_000], "a range's bytes differ");
    let r = get(&lb, "/a.bin", &[("range", "bytes=5-9,2000000-3100000")]).await;
    assert_eq!(r.status, 206);
    let body = &r.body[..];
    let second = &a[2_000_000..=3_100_000];
    assert!(
        body.windows(5).any(|w| w == &a[5..=9]) && body.windows(second.len()).any(|w| w == second),
        "a multipart range's parts differ from the file's"
    );
    // One part past the first chunk (read with the head), then many small
    // ones: hyper queues several of their frames at once, more than the
    // connection has placeholder slots; each part is still its own bytes,
    // in order.
    let parts: Vec<(usize, usize)> = std::iter::once((0, 199_999))
        .chain((1..16).map(|i| (i * 200_001 + 7, i * 200_001 + 7 + 99 + i)))
        .collect();
    let spec = parts
        .iter()
        .map(|(a, b)| format!("{a}-{b}"))
        .collect::<Vec<_>>()
        .join(",");
    let r = get(&lb, "/a.bin", &[("range", &format!("bytes={spec}"))]).await;
    assert_eq!(r.status, 206);
    let mut at = 0;
    for (i, (start, end)) in parts.iter().enumerate() {
        let want = &a[*start..=*end];
        let found = r.body[at..]
            .windows(want.len())
            .position(|w| w == want)
            .unwrap_or_else(|| panic!("part {i} ({start}-{end}) missing or out of order"));
        at += found + want.len();
    }
    // Compressed on the fly: the compressor had the file's bytes.
    let r = get(&lb, "/a.css", &[("accept-encoding", "gzip")]).await;
    assert_eq!((r.status, header(&r, "content-encoding")), (200, "gzip"));
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut plain).unwrap();
    assert!(
        plain == std::fs::read(root.join("a.css")).unwrap(),
        "gzip of a large file"
    );

    // h2c: the same bytes, read and framed by HTTP/2.
    let r = send(
        &client(true),
        http::Request::get(lb.url("/a.bin"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!((r.status, r.version), (200, http::Version::HTTP_2));
    assert!(r.body == a[..], "h2c: the bytes differ from the file's");
    assert!(!lb.log_text().contains("placeholder"), "{}", lb.log_text());
}

/// The descriptors fpmlb (`pid`) holds on files deleted or replaced since
/// it opened them (`/proc/PID/fd` links ending in " (deleted)") under `root`.
fn deleted_files_held(pid: u32, root: &Path) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|target| target.display().to_string())
        .filter(|t| t.starts_with(&root.display().to_string()) && t.ends_with(" (deleted)"))
        .collect()
}

/// Waits (at most 30 s) until fpmlb holds no deleted file under `root`.
async fn until_no_deleted_file_held(lb: &Fpmlb, root: &Path, why: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !deleted_files_held(lb.child.id(), root).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{why}: still held after 30 s: {:?}",
            deleted_files_held(lb.child.id(), root)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Rewrites fpmlb's config with `open_file_cache` and reloads it (the
/// `n`th reload).
async fn reload_with(lb: &Fpmlb, net: Net, root: &Path, cache: &str, n: usize) {
    let yaml = format!(
        "{}static:\n  root: {}\n  open_file_cache: {cache}\nbackends:\n  - name: nowhere\n    address: \"{}\"\n",
        support::base_yaml(lb.addr, "/var/www"),
        root.display(),
        net.addr(2, 9)
    );
    std::fs::write(&lb.config, yaml).unwrap();
    lb.signal("HUP");
    lb.wait_reloads(n).await;
}

/// Points the link `current` at `target` at once (a deploy's switch: a
/// new link renamed over the old one).
fn switch(current: &Path, target: &str) {
    let fresh = current.with_extension("new");
    let _ = std::fs::remove_file(&fresh);
    symlink(target, &fresh).unwrap();
    std::fs::rename(fresh, current).unwrap();
}

/// `static.open_file_cache`, with the root a deploy's `current` link: a
/// file found is answered from its held descriptor, `fstat`ed per request
/// (written over, replaced or deleted: looked up again at once); what a
/// switch of the root link or a new `.gz` beside a file changes waits for
/// `valid`; a path that was not there is looked up again at once; a
/// reload drops what was held, `valid: 0s` holds nothing, and expired files
/// are closed by the sweep without a request, giving a deleted file's
/// space back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_file_cache_holds_what_exists_for_its_valid() {
    let net = nets::STATIC_OPEN_FILE_CACHE;
    let dir = state_dir(net);
    let (one, two) = (dir.join("rel1"), dir.join("rel2"));
    write(&one, "app.css", b"one");
    write(&one, "app.js", b"js");
    write(&two, "app.css", b"two");
    let root = dir.join("current");
    switch(&root, "rel1");
    // No expiry within the first part, however slow the machine.
    let lb = start(net, &dir, &root, "  open_file_cache: {valid: 60s}\n");
    let pid = lb.child.id();
    let body = |r: &Resp| (r.status, String::from_utf8_lossy(&r.body).into_owned());

    assert_eq!(body(&get(&lb, "/app.css", &[]).await), (200, "one".into()));
    // Written over in place: seen at once, length and bytes together.
    std::fs::write(one.join("app.css"), b"one, longer").unwrap();
    let r = get(&lb, "/app.css", &[]).await;
    assert_eq!(body(&r), (200, "one, longer".into()));
    assert_eq!(header(&r, "content-length"), "11");
    // Replaced by a rename: seen at once too.
    std::fs::write(one.join("app.css.tmp"), b"one again").unwrap();
    std::fs::rename(one.join("app.css.tmp"), one.join("app.css")).unwrap();
    assert_eq!(
        body(&get(&lb, "/app.css", &[]).await),
        (200, "one again".into())
    );

    // A miss is not held: a file created since is served at once.
    assert_eq!(get(&lb, "/late.css", &[]).await.status, 404);
    write(&one, "late.css", b"late");
    assert_eq!(
        body(&get(&lb, "/late.css", &[]).await),
        (200, "late".into())
    );

    // A sibling's absence is held with its file.
    let gzip = [("accept-encoding", "gzip")];
    assert_eq!(body(&get(&lb, "/app.js", &gzip).await), (200, "js".into()));
    write(&one, "app.js.gz", b"not really gzip");
    let r = get(&lb, "/app.js", &gzip).await;
    assert_eq!(body(&r), (200, "js".into()), "no .gz within valid");
    // Deleted: not served, at once.
    std::fs::remove_file(one.join("app.js")).unwrap();
    assert_eq!(get(&lb, "/app.js", &[]).await.status, 404);

    // The root link switched: within valid, the old release answers.
    switch(&root, "rel2");
    let r = get(&lb, "/app.css", &[]).await;
    assert_eq!(body(&r), (200, "one again".into()), "held for valid");
    // A file deleted after its answer stays open until it expires...
    std::fs::remove_file(one.join("app.css")).unwrap();
    let held = deleted_files_held(pid, &dir);
    assert_eq!(held.len(), 1, "the deleted file's descriptor: {held:?}");

    // ... or a reload, which drops what was held; with valid 0s nothing
    // is held and the switch is followed at once.
    reload_with(&lb, net, &root, "{valid: 0s}", 1).await;
    until_no_deleted_file_held(&lb, &dir, "the reload").await;
    assert_eq!(body(&get(&lb, "/app.css", &[]).await), (200, "two".into()));
    switch(&root, "rel1");
    assert_eq!(get(&lb, "/app.css", &[]).await.status, 404);
    switch(&root, "rel2");

    // valid 5s: a file deleted after it was served is closed by the sweep,
    // with no request for it (held at first: 5 s is far more than the
    // next two lines take).
    reload_with(&lb, net, &root, "{valid: 5s}", 2).await;
    assert_eq!(body(&get(&lb, "/app.css", &[]).await), (200, "two".into()));
    std::fs::remove_file(two.join("app.css")).unwrap();
    assert_eq!(deleted_files_held(pid, &dir).len(), 1);
    until_no_deleted_file_held(&lb, &dir, "the sweep").await;
}
