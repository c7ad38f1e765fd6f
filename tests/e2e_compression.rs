//! Compression of responses end to end, against real php-fpm and real
//! clients: curl asks for each coding (its own decoders, zlib, brotli and
//! zstd, not fpmlb's), over HTTP/1.1 and HTTP/2, and the bodies decode to
//! the identity bytes; the cases where nothing may be compressed are
//! left alone; and a 1 MiB compressed response streams: its first half
//! reaches the client while the script is still waiting for the test to
//! let it finish. The compressors of all responses share
//! `compression.max_memory`: past it, responses go out whole, uncompressed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, Full};
use support::{Cluster, nets};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::io::StreamReader;

/// A response as curl got it: status, headers (names lower case), body.
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// curl `url` with `args`; the headers of the last response and the body
/// as curl wrote it (decoded by curl when `--compressed` is given).
fn curl(dir: &Path, url: &str, args: &[&str]) -> Got {
    let head = dir.join("head.txt");
    let body = dir.join("body.bin");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&head).unwrap();
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Got {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

fn vary_has_accept_encoding(g: &Got) -> bool {
    g.all("vary")
        .iter()
        .flat_map(|v| v.split(','))
        .any(|f| f.trim().eq_ignore_ascii_case("accept-encoding"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_coding_decodes_to_the_original_and_forbidden_cases_stay_identity() {
    let cluster = Cluster::start(nets::COMPRESSION_CLIENTS, &["--nodes", "1"]);
    let lb = support::start_lb(&cluster, "");
    let dir = cluster.dir.clone();
    let base = lb.url("/html.php");

    // The identity bytes, and what PHP itself makes of the page.
    for query in ["?bytes=65536", "?bytes=65536&flush=1", "?bytes=200000&cl=1"] {
        let identity = curl(&dir, &format!("{base}{query}"), &[]);
        assert_eq!(identity.status, 200);
        assert!(identity.header("content-encoding").is_none());
        // Vary even when this client gets no coding: a cache must not give
        // it the compressed bytes of another.
        assert!(vary_has_accept_encoding(&identity), "{query}");
        assert!(identity.body.starts_with(b"<!DOCTYPE html>"));
        for coding in ["gzip", "br", "zstd"] {
            for http in ["--http1.1", "--http2-prior-knowledge"] {
                let ae = format!("Accept-Encoding: {coding}");
                // Raw: the coding is there, the length is gone, it is smaller.
                let raw = curl(&dir, &format!("{base}{query}"), &[http, "-H", &ae]);
                assert_eq!(raw.header("content-encoding"), Some(coding), "{query}");
                assert!(raw.header("content-length").is_none());
                assert!(vary_has_accept_encoding(&raw));
                assert!(
                    raw.body.len() * 3 < identity.body.len(),
                    "{coding} {query}: {} bytes",
                    raw.body.len()
                );
                // Decoded by curl: the identity bytes.
                let decoded = curl(
                    &dir,
                    &format!("{base}{query}"),
                    &[http, "--compressed", "-H", &ae],
                );
                assert_eq!(decoded.header("content-encoding"), Some(coding));
                assert!(
                    decoded.body == identity.body,
                    "{coding} {http} {query}: decodes to {} bytes, not the {} identity bytes",
                    decoded.body.len(),
                    identity.body.len()
                );
            }
        }
    }
    // curl's own list ("deflate, gzip, br, zstd"): the server's preference.
    let g = curl(&dir, &format!("{base}?bytes=65536"), &["--compressed"]);
    assert_eq!(g.header("content-encoding"), Some("zstd"));
    let g = curl(
        &dir,
        &format!("{base}?bytes=65536"),
        &["-H", "Accept-Encoding: gzip;q=0.5, br;q=0.8, zstd;q=0.1"],
    );
    assert_eq!(g.header("content-encoding"), Some("br"));

    // Strong ETags become weak when compressed, stay when not.
    let url = format!("{base}?bytes=65536&etag=1");
    let g = curl(&dir, &url, &["-H", "Accept-Encoding: gzip"]);
    assert_eq!(g.header("etag"), Some("W/\"html-65536\""));
    let g = curl(&dir, &url, &[]);
    assert_eq!(g.header("etag"), Some("\"html-65536\""));

    // Where nothing may be compressed: (query, extra curl args, Vary expected).
    let all = "Accept-Encoding: gzip, br, zstd";
    let cases: &[(&str, &[&str], bool)] = &[
        // Refused by q=0.
        (
            "bytes=65536",
            &["-H", "Accept-Encoding: gzip;q=0, br;q=0, zstd;q=0"],
            true,
        ),
        ("bytes=65536", &["-H", "Accept-Encoding: identity"], true),
        // A Range request (PHP answers 200 with the whole body).
        ("bytes=65536", &["-H", all, "-r", "0-99"], true),
        // Cache-Control: no-transform.
        ("bytes=65536&cache=no-transform", &["-H", all], false),
        // A type that is not in compression.types.
        ("bytes=65536&type=image/png", &["-H", all], false),
        // Smaller than min_size (1k).
        ("bytes=500&cl=1", &["-H", all], false),
        // HTTP/1.0 (nginx's gzip_http_version 1.1).
        ("bytes=65536", &["-H", all, "--http1.0"], true),
    ];
    for (query, args, vary) in cases {
        let g = curl(&dir, &format!("{base}?{query}"), args);
        assert_eq!(g.status, 200, "{query} {args:?}");
        assert!(
            g.header("content-encoding").is_none(),
            "{query} {args:?}: {:?}",
            g.header("content-encoding")
        );
        assert_eq!(vary_has_accept_encoding(&g), *vary, "{query} {args:?}");
        assert!(g.body.starts_with(b"<!DOCTYPE html>"), "{query} {args:?}");
    }
    // HEAD: PHP's head, no coding.
    let g = curl(
        &dir,
        &format!("{base}?bytes=65536&cl=1"),
        &["-I", "-H", all],
    );
    assert!(g.header("content-encoding").is_none());
    assert_eq!(g.header("content-length"), Some("65536"));
    // A body PHP already gzipped is passed on once, not compressed again.
    let identity = curl(&dir, &format!("{base}?bytes=65536"), &[]).body;
    for http in ["--http1.1", "--http2-prior-knowledge"] {
        let url = format!("{base}?bytes=65536&gz=1");
        let raw = curl(&dir, &url, &[http, "-H", "Accept-Encoding: zstd, gzip"]);
        assert_eq!(raw.all("content-encoding"), vec!["gzip"]);
        assert!(!vary_has_accept_encoding(&raw));
        let decoded = curl(&dir, &url, &[http, "--compressed"]);
        assert!(decoded.body == identity, "{http}: gzip body decoded");
    }
}

/// Reads exactly `n` decoded bytes, or fails after `bound`.
async fn read_n<R: AsyncRead + Unpin>(r: &mut R, n: usize, bound: Duration) -> Vec<u8> {
    let mut out = vec![0u8; n];
    tokio::time::timeout(bound, r.read_exact(&mut out))
        .await
        .expect("the first half did not arrive while the script waited")
        .unwrap();
    out
}

/// Lets the scripts waiting on `tag` go on, and reads the rest.
async fn release_and_read_rest<R: AsyncRead + Unpin>(
    cluster: &Cluster,
    tag: &str,
    decoder: &mut R,
) -> Vec<u8> {
    for m in markers(cluster, tag) {
        std::fs::write(m, b"go").unwrap();
    }
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), decoder.read_to_end(&mut rest))
        .await
        .expect("the rest did not arrive")
        .unwrap();
    rest
}

fn markers(cluster: &Cluster, tag: &str) -> Vec<PathBuf> {
    cluster
        .nodes()
        .iter()
        .map(|(name, _)| cluster.dir.join(name).join("root/tmp").join(tag))
        .collect()
}

/// html.php's page of `size` bytes, uncompressed.
async fn identity_page(lb: &support::Fpmlb, size: usize) -> Bytes {
    let url = lb.url(&format!("/html.php?bytes={size}"));
    let page = support::get(&support::client(false), &url)
        .await
        .unwrap()
        .body;
    assert_eq!(page.len(), size);
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1mib_compressed_response_streams_while_the_script_runs() {
    let cluster = Cluster::start(nets::COMPRESSION_STREAMING, &["--nodes", "1"]);
    let lb = support::start_lb(&cluster, "");
    const SIZE: usize = 1024 * 1024;
    let identity = identity_page(&lb, SIZE).await;
    for (i, coding) in ["gzip", "br", "zstd"].into_iter().enumerate() {
        for http2 in [false, true] {
            let tag = format!("go-{i}-{http2}");
            let url = lb.url(&format!("/html.php?bytes={SIZE}&flush=1&wait={tag}"));
            let req = http::Request::get(url)
                .header("accept-encoding", coding)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp =
                tokio::time::timeout(Duration::from_secs(30), support::client(http2).request(req))
                    .await
                    .expect("no response head")
                    .unwrap();
            assert_eq!(resp.headers()["content-encoding"], coding);
            let stream = resp
                .into_body()
                .into_data_stream()
                .map_err(std::io::Error::other);
            let reader = tokio::io::BufReader::new(StreamReader::new(stream));
            let mut decoder: Box<dyn AsyncRead + Unpin + Send> = match coding {
                "gzip" => Box::new(GzipDecoder::new(reader)),
                "br" => Box::new(BrotliDecoder::new(reader)),
                _ => Box::new(ZstdDecoder::new(reader)),
            };
            // The script sends half, then waits up to 30 s for the marker:
            // the half must come through fpmlb's compressor before that.
            let half = SIZE / 2;
            let first = read_n(&mut decoder, half, Duration::from_secs(20)).await;
            assert!(first[..] == identity[..half], "{coding}: first half");
            let rest = release_and_read_rest(&cluster, &tag, &mut decoder).await;
            assert!(
                rest[..] == identity[half..],
                "{coding} http2={http2}: second half"
            );
        }
    }
    // Streamed and compressed: logged whole, with the bytes sent (compressed).
    let line = lb
        .wait_log_line(&[
            "uri=/html.php?bytes=1048576&flush=1&wait=go-0-false",
            "complete=true",
        ])
        .await;
    let sent: u64 = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("bytes="))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(sent > 0 && sent < (SIZE as u64) / 3, "{line}");
}

/// `compression.max_memory` with room for one gzip compressor: while one
/// response holds it (its script waiting half way), another response that
/// asks for gzip gets the page uncompressed, whole, before and after a
/// reload, and after a reload that changes `max_memory` (the budget is
/// resized, what the first holds still counts); once the first ended,
/// gzip again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_past_the_compressors_memory_go_uncompressed() {
    let cluster = Cluster::start(nets::COMPRESSION_MEMORY, &["--nodes", "1"]);
    let lb = support::start_lb(
        &cluster,
        "compression:\n  encodings: [gzip]\n  max_memory: 500k\n",
    );
    const SIZE: usize = 256 * 1024;
    let client = support::client(false);
    let identity = identity_page(&lb, SIZE).await;
    let gzip = |url: String| {
        http::Request::get(url)
            .header("accept-encoding", "gzip")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    // The first holds the compressor's memory until its script ends.
    let tag = "mem-hold";
    let url = lb.url(&format!("/html.php?bytes={SIZE}&flush=1&wait={tag}"));
    let held = tokio::time::timeout(Duration::from_secs(30), client.request(gzip(url)))
        .await
        .expect("no response head")
        .unwrap();
    assert_eq!(held.headers()["content-encoding"], "gzip");
    let stream = held
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    let mut decoder = GzipDecoder::new(tokio::io::BufReader::new(StreamReader::new(stream)));
    let first = read_n(&mut decoder, SIZE / 2, Duration::from_secs(20)).await;
    assert!(first[..] == identity[..SIZE / 2], "first half");

    // Meanwhile: no room for a second gzip state, so the page as it is;
    // and the same after a reload of the same config, which keeps the
    // budget and what the first response holds of it, and after one that
    // changes max_memory (still room for one compressor, not two).
    let other = support::client(false);
    for reloads in 0..3 {
        let reloaded = reloads > 0;
        if reloads == 2 {
            let config = std::fs::read_to_string(&lb.config).unwrap();
            let changed = config.replace("max_memory: 500k", "max_memory: 700k");
            assert_ne!(config, changed, "max_memory in the config");
            std::fs::write(&lb.config, changed).unwrap();
        }
        if reloaded {
            lb.signal("HUP");
            lb.wait_reloads(reloads).await;
        }
        let resp = tokio::time::timeout(
            Duration::from_secs(30),
            other.request(gzip(lb.url(&format!("/html.php?bytes={SIZE}")))),
        )
        .await
        .expect("no response")
        .unwrap();
        assert!(
            resp.headers().get("content-encoding").is_none(),
            "compressed past the budget (reloaded: {reloaded})"
        );
        assert_eq!(resp.headers()["vary"], "Accept-Encoding");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(body == identity, "the uncompressed page differs");
        lb.wait_log_line(&["compression.max_memory"]).await;
    }

    // The first ends: its memory is back, and the next is compressed.
    let rest = release_and_read_rest(&cluster, tag, &mut decoder).await;
    assert!(rest[..] == identity[SIZE / 2..], "second half");
    drop(decoder);
    let mut compressed = None;
    // The first response's body is dropped once hyper sent its end: poll
    // briefly for that (no timing assertion: a bound on waiting only).
    for _ in 0..100 {
        let resp = other
            .request(gzip(lb.url(&format!("/html.php?bytes={SIZE}"))))
            .await
            .unwrap();
        let coding = resp.headers().get("content-encoding").cloned();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if coding.is_some() {
            compressed = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let compressed = compressed.expect("never compressed again once the first ended");
    let mut plain = Vec::new();
    GzipDecoder::new(&compressed[..])
        .read_to_end(&mut plain)
        .await
        .unwrap();
    assert!(plain == identity, "gzip again: the page differs");
}
