//! Tests of `http::compress`: the decision tables, Accept-Encoding, and
//! bodies that decompress to the original, streamed.

use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
use tokio::io::AsyncReadExt;

use super::*;

fn config() -> CompressionConfig {
    CompressionConfig::default()
}

fn headers(lines: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in lines {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// The decision for a GET over HTTP/1.1 with `req`, answered `status` with `resp`.
fn decision(
    req: &[(&str, &str)],
    status: u16,
    resp: &[(&str, &str)],
    known: Option<u64>,
) -> Decision {
    let req = headers(req);
    let view = RequestView {
        method: &Method::GET,
        version: Version::HTTP_11,
        headers: &req,
    };
    decide(
        view,
        StatusCode::from_u16(status).unwrap(),
        &headers(resp),
        known,
        &config(),
    )
}

const AE: (&str, &str) = ("accept-encoding", "gzip, deflate, br, zstd");
const HTML: (&str, &str) = ("content-type", "text/html; charset=UTF-8");

fn yes(e: Encoding) -> Decision {
    Decision {
        vary: true,
        encoding: Some(e),
    }
}
const VARY_ONLY: Decision = Decision {
    vary: true,
    encoding: None,
};
const NOTHING: Decision = Decision {
    vary: false,
    encoding: None,
};

#[test]
fn what_is_eligible() {
    let z = yes(Encoding::Zstd);
    type Case<'a> = (u16, &'a [(&'a str, &'a str)], Option<u64>, Decision);
    let table: &[Case<'_>] = &[
        (200, &[HTML], None, z),
        (200, &[HTML], Some(5000), z),
        (404, &[HTML], Some(5000), z),
        (500, &[("content-type", "application/json")], None, z),
        (200, &[("content-type", "Image/SVG+XML")], None, z),
        // Length: from Content-Length, else the body read whole.
        (200, &[HTML, ("content-length", "1024")], None, z),
        (200, &[HTML, ("content-length", "1023")], None, NOTHING),
        (200, &[HTML], Some(1023), NOTHING),
        (200, &[HTML], Some(0), NOTHING),
        (200, &[HTML, ("content-length", "x")], None, NOTHING),
        // Types.
        (200, &[("content-type", "image/png")], None, NOTHING),
        (
            200,
            &[("content-type", "application/octet-stream")],
            None,
            NOTHING,
        ),
        (200, &[("content-type", "text/html-ish")], None, NOTHING),
        (200, &[], None, NOTHING),
        // Already encoded, ranges, no-transform.
        (200, &[HTML, ("content-encoding", "gzip")], None, NOTHING),
        (
            200,
            &[HTML, ("content-encoding", "identity")],
            None,
            NOTHING,
        ),
        (206, &[HTML], None, NOTHING),
        (
            200,
            &[HTML, ("content-range", "bytes 0-9/100")],
            None,
            NOTHING,
        ),
        (
            200,
            &[HTML, ("cache-control", "public, No-Transform")],
            None,
            NOTHING,
        ),
        (200, &[HTML, ("cache-control", "no-cache")], None, z),
        // No body.
        (204, &[HTML], None, NOTHING),
        (304, &[HTML], None, NOTHING),
    ];
    for (status, resp, known, want) in table {
        assert_eq!(
            decision(&[AE], *status, resp, *known),
            *want,
            "{status} {resp:?} {known:?}"
        );
    }
}

#[test]
fn the_request_decides_the_coding_not_the_vary() {
    let table: &[(&[(&str, &str)], Decision)] = &[
        (&[], VARY_ONLY),
        (&[("accept-encoding", "")], VARY_ONLY),
        (&[("accept-encoding", "identity")], VARY_ONLY),
        (&[("accept-encoding", "gzip")], yes(Encoding::Gzip)),
        (&[("accept-encoding", "x-gzip")], yes(Encoding::Gzip)),
        (&[("accept-encoding", "deflate, compress")], VARY_ONLY),
        // A Range request gets the identity body (its ranges are of that).
        (&[AE, ("range", "bytes=0-10")], VARY_ONLY),
    ];
    for (req, want) in table {
        assert_eq!(decision(req, 200, &[HTML], None), *want, "{req:?}");
    }
    // HEAD and HTTP/1.0: nothing at all / Vary only, as nginx.
    let req = headers(&[AE]);
    let resp = headers(&[HTML]);
    let head = RequestView {
        method: &Method::HEAD,
        version: Version::HTTP_11,
        headers: &req,
    };
    assert_eq!(
        decide(head, StatusCode::OK, &resp, None, &config()),
        NOTHING
    );
    let old = RequestView {
        method: &Method::GET,
        version: Version::HTTP_10,
        headers: &req,
    };
    assert_eq!(
        decide(old, StatusCode::OK, &resp, None, &config()),
        VARY_ONLY
    );
    let h2 = RequestView {
        method: &Method::GET,
        version: Version::HTTP_2,
        headers: &req,
    };
    assert_eq!(
        decide(h2, StatusCode::OK, &resp, None, &config()),
        yes(Encoding::Zstd)
    );
    // Compression off: not even Vary.
    let off = CompressionConfig {
        encodings: Vec::new(),
        ..config()
    };
    let get = RequestView {
        method: &Method::GET,
        version: Version::HTTP_11,
        headers: &req,
    };
    assert_eq!(decide(get, StatusCode::OK, &resp, None, &off), NOTHING);
    // "*" types: anything with a Content-Type.
    let any = CompressionConfig {
        types: vec!["*".into()],
        ..config()
    };
    let png = headers(&[("content-type", "image/png")]);
    assert_eq!(
        decide(get, StatusCode::OK, &png, None, &any),
        yes(Encoding::Zstd)
    );
}

#[test]
fn accept_encoding_q_values() {
    use Encoding::{Br, Gzip, Zstd};
    let all = [Zstd, Br, Gzip];
    let table: &[(&str, Option<Encoding>)] = &[
        ("gzip, br, zstd", Some(Zstd)),
        ("gzip, br", Some(Br)),
        ("gzip;q=1.0, br;q=0.9", Some(Gzip)),
        ("br;q=0.5, gzip;q=0.8, zstd;q=0.1", Some(Gzip)),
        // q=0 refuses.
        ("zstd;q=0, br;q=0, gzip", Some(Gzip)),
        ("gzip;q=0", None),
        ("gzip;q=0.000", None),
        // `*` covers the codings not named.
        ("*", Some(Zstd)),
        ("*;q=0.5, br;q=0.9", Some(Br)),
        ("*;q=0.9, zstd;q=0", Some(Br)),
        ("*;q=0", None),
        ("zstd, *;q=0", Some(Zstd)),
        // identity preferred over every offered coding.
        ("gzip;q=0.5, identity", None),
        ("gzip;q=0.5, identity;q=0.5", Some(Gzip)),
        ("gzip, identity;q=0", Some(Gzip)),
        // Case, spaces, odd parameters.
        ("  GZIP ; Q=0.7 , Br;q=0.6", Some(Gzip)),
        ("gzip;level=9;q=0.2", Some(Gzip)),
        // Unreadable q-values: the element is ignored.
        ("br;q=2, gzip", Some(Gzip)),
        ("br;q=0.1234, gzip;q=0.1", Some(Gzip)),
        ("br;q=-1", None),
        ("br;q=", None),
        ("br;q=1.001", None),
        ("br;q=.5", None),
        // A coding named twice: the lower q.
        ("br;q=0.9, br;q=0, gzip;q=0.1", Some(Gzip)),
        // Junk.
        (",,, ;;; ,", None),
        ("gz\u{ed}p", None),
    ];
    for (value, want) in table {
        let mut h = HeaderMap::new();
        h.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
        assert_eq!(negotiate(&h, &all), *want, "{value:?}");
    }
    // Several lines are one list; the server's order breaks ties.
    let h = headers(&[("accept-encoding", "gzip"), ("accept-encoding", "br")]);
    assert_eq!(negotiate(&h, &all), Some(Br));
    assert_eq!(negotiate(&h, &[Gzip, Br]), Some(Gzip));
    assert_eq!(negotiate(&h, &[Zstd]), None);
    // A huge header stays linear.
    let long = "x-unknown;q=0.5, ".repeat(10_000) + "gzip";
    let h = headers(&[("accept-encoding", &long)]);
    assert_eq!(negotiate(&h, &all), Some(Gzip));
}

#[test]
fn q_values() {
    for (text, q) in [
        ("1", Some(1000)),
        ("1.", Some(1000)),
        ("1.000", Some(1000)),
        ("0", Some(0)),
        ("0.5", Some(500)),
        ("0.05", Some(50)),
        ("0.123", Some(123)),
        ("0.1234", None),
        ("1.5", None),
        ("2", None),
        ("", None),
        ("a", None),
        ("0.x", None),
    ] {
        assert_eq!(parse_q(text.as_bytes()), q, "{text:?}");
    }
}

fn response(status: u16, lines: &[(&str, &str)], body: Boxed) -> Response<Boxed> {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    *r.headers_mut() = headers(lines);
    r
}

fn full(b: &[u8]) -> Boxed {
    crate::http::response::full(Bytes::copy_from_slice(b))
}

/// A page of text that compresses like HTML.
fn page(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 100);
    let mut i = 0u64;
    while out.len() < n {
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(
            format!(
                "<li class=\"product\" data-id=\"{}\"><a href=\"/p/{}\">Item {}</a></li>\n",
                i >> 50,
                i >> 44,
                i >> 58
            )
            .as_bytes(),
        );
    }
    out.truncate(n);
    out
}

async fn collect(body: Boxed) -> Vec<u8> {
    body.collect().await.unwrap().to_bytes().to_vec()
}

async fn decompress(e: Encoding, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match e {
        Encoding::Gzip => GzipDecoder::new(data).read_to_end(&mut out).await,
        Encoding::Br => BrotliDecoder::new(data).read_to_end(&mut out).await,
        Encoding::Zstd => ZstdDecoder::new(data).read_to_end(&mut out).await,
    }
    .unwrap();
    out
}

fn get_view(req: &HeaderMap) -> RequestView<'_> {
    RequestView {
        method: &Method::GET,
        version: Version::HTTP_11,
        headers: req,
    }
}

#[tokio::test]
async fn apply_rewrites_the_head_and_the_body_decompresses() {
    let original = page(50_000);
    for e in [Encoding::Gzip, Encoding::Br, Encoding::Zstd] {
        let req = headers(&[("accept-encoding", e.as_str())]);
        let resp = response(
            200,
            &[
                HTML,
                ("content-length", "50000"),
                ("accept-ranges", "bytes"),
                ("etag", "\"v1\""),
                ("vary", "Cookie"),
            ],
            full(&original),
        );
        let out = apply(get_view(&req), resp, &config(), &ByteBudget::new(1 << 30));
        let h = out.headers().clone();
        assert_eq!(h[CONTENT_ENCODING], e.as_str());
        assert!(h.get(CONTENT_LENGTH).is_none());
        assert!(h.get(ACCEPT_RANGES).is_none());
        assert_eq!(h[ETAG], "W/\"v1\"");
        let vary: Vec<_> = h.get_all(VARY).iter().collect();
        assert_eq!(vary, vec!["Cookie", "Accept-Encoding"]);
        let compressed = collect(out.into_body()).await;
        assert!(
            compressed.len() < original.len() / 3,
            "{e:?}: {}",
            compressed.len()
        );
        assert_eq!(decompress(e, &compressed).await, original, "{e:?}");
    }
    // Vary already right, a weak ETag kept; not compressed: body untouched.
    let req = headers(&[]);
    let resp = response(
        200,
        &[
            HTML,
            ("vary", "accept-encoding, cookie"),
            ("etag", "W/\"a\""),
        ],
        full(b"x"),
    );
    let out = apply(get_view(&req), resp, &config(), &ByteBudget::new(1 << 30));
    assert_eq!(out.headers().get_all(VARY).iter().count(), 1);
    assert_eq!(out.headers()[ETAG], "W/\"a\"");
    assert!(out.headers().get(CONTENT_ENCODING).is_none());
    assert_eq!(collect(out.into_body()).await, b"x");
    // Vary: * stays alone; a small body read whole is not compressed.
    let req = headers(&[AE]);
    let resp = response(200, &[HTML, ("vary", "*")], full(&original[..100]));
    let out = apply(get_view(&req), resp, &config(), &ByteBudget::new(1 << 30));
    assert_eq!(out.headers().get_all(VARY).iter().count(), 1);
    assert!(out.headers().get(CONTENT_ENCODING).is_none());
}

/// The compressors' memory is one budget: a response takes the first
/// coding the client accepts whose state still fits, else goes as it is;
/// a response's share comes back when its body is dropped.
#[tokio::test]
async fn compressors_share_a_memory_budget() {
    let original = page(50_000);
    let levels = config().levels;
    let (br, gzip) = (
        levels.state_size_for(Encoding::Br, Some(50_000)),
        levels.state_size(Encoding::Gzip),
    );
    assert!(br > gzip && levels.state_size(Encoding::Zstd) > gzip);
    let memory = ByteBudget::new(br + gzip);
    let req = headers(&[("accept-encoding", "gzip;q=0.5, br")]);
    let answer = || {
        let resp = response(200, &[HTML, ("content-length", "50000")], full(&original));
        apply(get_view(&req), resp, &config(), &memory)
    };
    let coding = |r: &Response<Boxed>| {
        r.headers()
            .get(CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let before = memory_shortfalls();
    let first = answer();
    assert_eq!(coding(&first).as_deref(), Some("br"));
    assert_eq!(memory.available(), gzip);
    assert_eq!(memory_shortfalls(), before);
    // No room for brotli: gzip, which the client accepts too.
    let second = answer();
    assert_eq!(coding(&second).as_deref(), Some("gzip"));
    assert_eq!(memory.available(), 0);
    // No room at all: as it is, whole and with its length, still Vary.
    let third = answer();
    assert_eq!(coding(&third), None);
    // Each counted once, for the admin API.
    assert_eq!(
        memory_shortfalls(),
        MemoryShortfalls {
            cheaper_coding: before.cheaper_coding + 1,
            uncompressed: before.uncompressed + 1,
        }
    );
    assert_eq!(third.headers()[CONTENT_LENGTH], "50000");
    assert_eq!(third.headers()[VARY], "Accept-Encoding");
    assert_eq!(collect(third.into_body()).await, original);
    // The gzip response is still whole, and gives its share back once sent.
    assert_eq!(
        decompress(Encoding::Gzip, &collect(second.into_body()).await).await,
        original
    );
    assert_eq!(memory.available(), gzip);
    // A client gone mid-response gives its share back too.
    drop(first);
    assert_eq!(memory.available(), br + gzip);
    assert_eq!(coding(&answer()).as_deref(), Some("br"));
}

#[test]
fn acceptable_codings_in_preference_order() {
    use Encoding::{Br, Gzip, Zstd};
    let all = [Zstd, Br, Gzip];
    let of = |value: &str| acceptable(&headers(&[("accept-encoding", value)]), &all);
    assert_eq!(of("gzip;q=0.5, br, zstd;q=0.8"), [Br, Zstd, Gzip]);
    assert_eq!(of("gzip, br, zstd"), [Zstd, Br, Gzip]);
    assert_eq!(of("gzip, *;q=0.1"), [Gzip, Zstd, Br]);
    // identity preferred to a coding: that coding is never taken.
    assert_eq!(of("gzip;q=0.5, br, identity;q=0.9"), [Br]);
    assert_eq!(of("br;q=0, gzip"), [Gzip]);
    assert!(acceptable(&HeaderMap::new(), &all).is_empty());
}

/// A body fed from a channel: each message is one data frame, an `Err`
/// is a backend failing mid-body.
struct Fed(tokio::sync::mpsc::UnboundedReceiver<Result<Bytes, &'static str>>);

impl Body for Fed {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.0.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// What the compressed body yields until it would wait.
async fn ready_output(body: &mut Boxed) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_millis(200), body.frame()).await;
        match next {
            Ok(Some(Ok(frame))) => out.extend_from_slice(frame.data_ref().unwrap()),
            Ok(other) => panic!("body ended: {other:?}"),
            Err(_) => return out,
        }
    }
}

#[tokio::test]
async fn a_streamed_body_is_compressed_as_it_comes_and_flushed_when_the_backend_waits() {
    for e in [Encoding::Gzip, Encoding::Br, Encoding::Zstd] {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut body = compress_body(Fed(rx).boxed_unsync(), e, Levels::default(), None);
        let original = page(300_000);
        let (first, rest) = original.split_at(20_000);
        tx.send(Ok(Bytes::copy_from_slice(first))).unwrap();
        // The first part is out before the rest exists: it decodes to the
        // first part (a sync flush, not the end of the stream).
        let out = ready_output(&mut body).await;
        assert!(!out.is_empty(), "{e:?}: nothing before the rest came");
        let mut so_far = Vec::new();
        let decoded = match e {
            Encoding::Gzip => prefix_with(GzipDecoder::new(&out[..]), &mut so_far).await,
            Encoding::Br => prefix_with(BrotliDecoder::new(&out[..]), &mut so_far).await,
            Encoding::Zstd => prefix_with(ZstdDecoder::new(&out[..]), &mut so_far).await,
        };
        assert_eq!(decoded, first, "{e:?}");
        // The rest, in 8 KiB pieces, then the end.
        let mut all = out;
        for piece in rest.chunks(8192) {
            tx.send(Ok(Bytes::copy_from_slice(piece))).unwrap();
        }
        drop(tx);
        all.extend(collect(body).await);
        assert_eq!(decompress(e, &all).await, original, "{e:?}");
    }
}

/// What a decoder yields from a stream cut short (it then fails on the
/// missing end).
async fn prefix_with<R: tokio::io::AsyncRead + Unpin>(mut r: R, out: &mut Vec<u8>) -> Vec<u8> {
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return out.clone(),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_backend_failing_mid_body_fails_the_compressed_body() {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let body = compress_body(
        Fed(rx).boxed_unsync(),
        Encoding::Gzip,
        Levels::default(),
        None,
    );
    tx.send(Ok(Bytes::from(page(10_000)))).unwrap();
    tx.send(Err("backend went away")).unwrap();
    let err = body.collect().await.unwrap_err();
    assert!(err.to_string().contains("backend went away"), "{err}");
}

/// A body of known length under 1 MiB gives brotli a size hint, which
/// sizes its state down: it is charged that smaller size, so two such
/// responses fit where one of unknown length does.
#[tokio::test]
async fn a_known_length_charges_brotli_its_hinted_size() {
    let original = page(50_000);
    let levels = config().levels;
    let unhinted = levels.state_size(Encoding::Br);
    let hinted = levels.state_size_for(Encoding::Br, Some(50_000));
    assert!(2 * hinted <= unhinted, "{hinted} of {unhinted}");
    let memory = ByteBudget::new(unhinted);
    let req = headers(&[("accept-encoding", "br")]);
    let known = || {
        let resp = response(200, &[HTML, ("content-length", "50000")], full(&original));
        apply(get_view(&req), resp, &config(), &memory)
    };
    let coding = |r: &Response<Boxed>| r.headers().get(CONTENT_ENCODING).cloned();
    let first = known();
    let second = known();
    assert_eq!(coding(&first).unwrap(), "br");
    assert_eq!(coding(&second).unwrap(), "br");
    assert_eq!(memory.available(), unhinted - 2 * hinted);
    assert_eq!(
        decompress(Encoding::Br, &collect(second.into_body()).await).await,
        original
    );
    drop(first);
    assert_eq!(memory.available(), unhinted);
    // Of unknown length (a script's streamed page): the whole state.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tx.send(Ok(Bytes::from(original.clone()))).unwrap();
    drop(tx);
    let streamed = apply(
        get_view(&req),
        response(200, &[HTML], Fed(rx).boxed_unsync()),
        &config(),
        &memory,
    );
    assert_eq!(coding(&streamed).unwrap(), "br");
    assert_eq!(memory.available(), 0);
}
