//! Compression of responses (gzip, brotli, zstd), as nginx's gzip filter
//! and the brotli module do: what may be compressed is decided from the
//! request and the response head alone (`decide`, pure), and the body is
//! compressed as it streams (`compress_body`), never held whole.
//!
//! A response is *eligible* when compressing it could ever be right:
//! - it has a body: not HEAD, not 1xx/204/304, and not 206 (a range of the
//!   identity body) or anything with Content-Range;
//! - it is not encoded already (any Content-Encoding) and its
//!   Cache-Control does not say `no-transform`;
//! - its media type is in `compression.types`;
//! - its length is at least `min_size` when known (Content-Length or a body
//!   already read whole); a streamed body of unknown length qualifies.
//!
//! An eligible response gets `Vary: Accept-Encoding` (merged into a Vary
//! it has; not added to `Vary: *`), as nginx's `gzip_vary on`, whether or
//! not this client gets it compressed: a cache must not serve one client's
//! coding to another. It is compressed when the request allows it: a coding
//! of `compression.encodings` with the highest q-value in Accept-Encoding
//! (q=0 refuses; `*` stands for the codings not named; `x-gzip` is gzip; an
//! `identity` preferred over every offered coding wins; ties go to the
//! order of `encodings`), no Range header, and HTTP/1.1 or later (nginx's
//! `gzip_http_version 1.1`). Then Content-Length and Accept-Ranges go, the
//! ETag becomes weak (`W/"..."`: the bytes differ, as nginx does), and
//! Content-Encoding says the coding.
//!
//! Streaming: the body runs through async-compression's encoders, which
//! flush whenever the backend has nothing more to give at that moment, so a
//! PHP script's `flush()` still reaches the client; memory per response is
//! the encoder's state (windows of 512 KiB for brotli and zstd, zlib's for
//! gzip) and one 16 KiB output buffer.
//!
//! Memory: the encoders' states of all responses share one budget
//! (`compression.max_memory`, a [`ByteBudget`]): a response takes its
//! encoder's measured size ([`Levels::state_size_for`]: brotli's is smaller
//! for a body of known length under 1 MiB) for as long as its body lives,
//! and when that does not fit, the next coding the client accepts that
//! does, or none (the body goes as it is). Slow clients of compressible
//! pages then cost at most that budget, not a brotli state each.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use async_compression::Level;
use async_compression::brotli::EncoderParams;
use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use async_compression::zstd::CParameter;
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, RANGE, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tokio_util::io::{ReaderStream, StreamReader};

use crate::config::{CompressionConfig, Encoding, Levels};
use crate::http::budget::ByteBudget;
use crate::http::response::BodyError;

type Boxed = UnsyncBoxBody<Bytes, BodyError>;

/// Output buffer of a compressing body: one HTTP/2 DATA frame's default
/// size, and a few TLS records.
const OUTPUT_CHUNK: usize = 16 * 1024;

/// log2 of the brotli and zstd windows: 512 KiB, ngx_brotli's default
/// `brotli_window`. Bigger windows only help bodies bigger than that, and
/// cost memory for every response compressed at once (zstd's level 3 would
/// take 2 MiB, brotli's default 4 MiB).
const WINDOW_LOG: u32 = 19;

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Add `Vary: Accept-Encoding`.
    pub vary: bool,
    /// Compress with this coding.
    pub encoding: Option<Encoding>,
}

/// The request side of the decision.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a Method,
    pub version: Version,
    pub headers: &'a HeaderMap,
}

/// Decides from the request and the response head (see the module's doc).
/// `known_length`: the body's length when known (a body read whole).
#[must_use]
pub fn decide(
    req: RequestView<'_>,
    status: StatusCode,
    headers: &HeaderMap,
    known_length: Option<u64>,
    config: &CompressionConfig,
) -> Decision {
    const NOTHING: Decision = Decision {
        vary: false,
        encoding: None,
    };
    if config.encodings.is_empty() || !eligible(req.method, status, headers, known_length, config) {
        return NOTHING;
    }
    let compressible_request = req.version >= Version::HTTP_11 && !req.headers.contains_key(RANGE);
    let encoding = if compressible_request {
        negotiate(req.headers, &config.encodings)
    } else {
        None
    };
    Decision {
        vary: true,
        encoding,
    }
}

fn eligible(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
    known_length: Option<u64>,
    config: &CompressionConfig,
) -> bool {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::PARTIAL_CONTENT
        || headers.contains_key(CONTENT_ENCODING)
        || headers.contains_key(CONTENT_RANGE)
    {
        return false;
    }
    if headers
        .get_all(CACHE_CONTROL)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform"))
    {
        return false;
    }
    let Some(media_type) = headers
        .get(CONTENT_TYPE)
        .and_then(|v| media_type(v.as_bytes()))
    else {
        return false;
    };
    if !config
        .types
        .iter()
        .any(|t| t == "*" || t.as_bytes().eq_ignore_ascii_case(media_type))
    {
        return false;
    }
    let length = match headers.get(CONTENT_LENGTH) {
        Some(v) => match std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            Some(n) => Some(n),
            // A length we cannot read: leave the response alone.
            None => return false,
        },
        None => known_length,
    };
    length.is_none_or(|n| n > 0 && n >= config.min_size)
}

/// `type/subtype` of a Content-Type value, parameters dropped.
fn media_type(value: &[u8]) -> Option<&[u8]> {
    let end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
    let t = value[..end].trim_ascii();
    (!t.is_empty()).then_some(t)
}

/// The coding of `offered` (in preference order) the request's
/// Accept-Encoding prefers, if any (see the module's doc).
#[must_use]
pub fn negotiate(headers: &HeaderMap, offered: &[Encoding]) -> Option<Encoding> {
    acceptable(headers, offered).first().copied()
}

/// The codings of `offered` the request's Accept-Encoding accepts, the
/// preferred first: higher q-values first, then `offered`'s order; none
/// that `identity` is preferred to.
#[must_use]
pub fn acceptable(headers: &HeaderMap, offered: &[Encoding]) -> Vec<Encoding> {
    // q-values in thousandths, as RFC 9110 §12.4.2 allows three decimals.
    let mut named: [Option<u16>; 3] = [None; 3];
    let mut star: Option<u16> = None;
    let mut identity: Option<u16> = None;
    let mut any = false;
    for line in headers.get_all(ACCEPT_ENCODING) {
        for element in line.as_bytes().split(|&b| b == b',') {
            let mut parts = element.split(|&b| b == b';');
            let coding = parts.next().unwrap_or_default().trim_ascii();
            if coding.is_empty() {
                continue;
            }
            let mut q = Some(1000);
            for param in parts {
                let param = param.trim_ascii();
                if let Some(value) = param
                    .strip_prefix(b"q=")
                    .or_else(|| param.strip_prefix(b"Q="))
                {
                    q = parse_q(value);
                }
            }
            // An element with a q-value we cannot read is ignored.
            let Some(q) = q else { continue };
            any = true;
            let slot = if coding == b"*" {
                &mut star
            } else if coding.eq_ignore_ascii_case(b"identity") {
                &mut identity
            } else if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip")
            {
                &mut named[index(Encoding::Gzip)]
            } else if coding.eq_ignore_ascii_case(b"br") {
                &mut named[index(Encoding::Br)]
            } else if coding.eq_ignore_ascii_case(b"zstd") {
                &mut named[index(Encoding::Zstd)]
            } else {
                continue;
            };
            // A coding named twice: the lower q (the safer reading).
            *slot = Some(slot.map_or(q, |old| old.min(q)));
        }
    }
    if !any {
        return Vec::new();
    }
    let mut accepted: Vec<(Encoding, u16)> = offered
        .iter()
        .map(|&e| (e, named[index(e)].or(star).unwrap_or(0)))
        .filter(|&(_, q)| q > 0 && identity.is_none_or(|iq| iq <= q))
        .collect();
    // Stable: equal q-values keep `offered`'s order.
    accepted.sort_by_key(|&(_, q)| std::cmp::Reverse(q));
    accepted.into_iter().map(|(e, _)| e).collect()
}

fn index(e: Encoding) -> usize {
    match e {
        Encoding::Zstd => 0,
        Encoding::Br => 1,
        Encoding::Gzip => 2,
    }
}

/// RFC 9110 qvalue: `0[.ddd]` or `1[.000]`, in thousandths.
fn parse_q(value: &[u8]) -> Option<u16> {
    let (int, frac) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Applies `decide` to a response: adds Vary, and compresses the body as
/// it streams, with the first coding the request accepts whose state
/// `memory` (all responses' compressors together) still has room for; with
/// none, the body goes as it is.
pub fn apply(
    req: RequestView<'_>,
    response: Response<Boxed>,
    config: &CompressionConfig,
    memory: &ByteBudget,
) -> Response<Boxed> {
    let known_length = response.body().size_hint().exact();
    let decision = decide(
        req,
        response.status(),
        response.headers(),
        known_length,
        config,
    );
    if !decision.vary {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    add_vary(&mut parts.headers);
    let Some(preferred) = decision.encoding else {
        return Response::from_parts(parts, body);
    };
    let length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .or(known_length);
    let mut share = None;
    let mut fits = |e: Encoding| {
        let size = config.levels.state_size_for(e, br_hint(length));
        memory.take(size, &mut share)
    };
    // The request's other codings are looked at only when the preferred
    // one does not fit (it is the first of them).
    let Some(encoding) = Some(preferred).filter(|&e| fits(e)).or_else(|| {
        acceptable(req.headers, &config.encodings)
            .into_iter()
            .skip(1)
            .find(|&e| fits(e))
    }) else {
        memory_spent(memory);
        return Response::from_parts(parts, body);
    };
    if encoding != preferred {
        CHEAPER_CODING.fetch_add(1, Ordering::Relaxed);
    }
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(ACCEPT_RANGES);
    parts.headers.insert(
        CONTENT_ENCODING,
        HeaderValue::from_static(encoding.as_str()),
    );
    weaken_etag(&mut parts.headers);
    // The body holds its share of the budget until it is dropped (sent to
    // its end, or its client gone).
    let body = compress_body(body, encoding, config.levels, length)
        .map_frame(move |frame| {
            let _held = &share;
            frame
        })
        .boxed_unsync();
    Response::from_parts(parts, body)
}

/// Responses that took a cheaper coding than the client's preferred one
/// for want of memory, since fpmlb started.
static CHEAPER_CODING: AtomicU64 = AtomicU64::new(0);
/// Responses that went uncompressed for want of memory, since fpmlb started.
static UNCOMPRESSED: AtomicU64 = AtomicU64::new(0);

/// What `compression.max_memory` cost since fpmlb started (admin API).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryShortfalls {
    /// Responses that took a cheaper coding the client accepts.
    pub cheaper_coding: u64,
    /// Responses that went uncompressed.
    pub uncompressed: u64,
}

/// The counts of responses compressed less for want of memory.
pub fn memory_shortfalls() -> MemoryShortfalls {
    MemoryShortfalls {
        cheaper_coding: CHEAPER_CODING.load(Ordering::Relaxed),
        uncompressed: UNCOMPRESSED.load(Ordering::Relaxed),
    }
}

/// A response that goes uncompressed for want of memory: counted, and a
/// line at most once a minute (a flood of them is one attack, or one busy
/// minute).
fn memory_spent(memory: &ByteBudget) {
    UNCOMPRESSED.fetch_add(1, Ordering::Relaxed);
    static LAST_MINUTE: AtomicU64 = AtomicU64::new(u64::MAX);
    let minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60);
    if LAST_MINUTE.swap(minute, Ordering::Relaxed) != minute {
        tracing::warn!(
            "no compressor a client accepts fits in what is left of compression.max_memory ({} of {} bytes held by responses being compressed): its response goes out uncompressed (logged at most once a minute)",
            memory.held(),
            memory.total()
        );
    }
}

/// `Vary: Accept-Encoding`, merged into the Vary the response has.
fn add_vary(headers: &mut HeaderMap) {
    let listed = headers.get_all(VARY).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|f| {
            let f = f.trim_ascii();
            f == b"*" || f.eq_ignore_ascii_case(b"accept-encoding")
        })
    });
    if !listed {
        headers.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// A strong ETag becomes weak: the compressed bytes are not the
/// identity's (RFC 9110 §8.8.1), as nginx's gzip filter does.
fn weaken_etag(headers: &mut HeaderMap) {
    let Some(etag) = headers.get(ETAG) else {
        return;
    };
    let bytes = etag.as_bytes();
    if bytes.starts_with(b"W/") {
        return;
    }
    let mut weak = Vec::with_capacity(bytes.len() + 2);
    weak.extend_from_slice(b"W/");
    weak.extend_from_slice(bytes);
    match HeaderValue::from_bytes(&weak) {
        Ok(v) => {
            headers.insert(ETAG, v);
        }
        Err(_) => {
            headers.remove(ETAG);
        }
    }
}

/// Identity lengths from which brotli is given no size hint.
const BR_HINT_BELOW: usize = 1 << 20;

/// The size hint brotli is given for an identity body of `length`: it
/// sizes brotli's structures down for a small page
/// ([`Levels::state_size_for`]); from 1 MiB on it picks a larger hasher
/// (6.3 MiB a response at quality 4 against 2.9 without a hint), so none
/// is given.
fn br_hint(length: Option<u64>) -> Option<usize> {
    length
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n < BR_HINT_BELOW)
}

/// The body, compressed as it streams. `length`: the identity body's
/// length when known (sizes brotli's structures to it).
#[must_use]
pub fn compress_body(
    body: Boxed,
    encoding: Encoding,
    levels: Levels,
    length: Option<u64>,
) -> Boxed {
    let input = StreamReader::new(body.into_data_stream().map_err(io::Error::other));
    match encoding {
        Encoding::Gzip => framed(GzipEncoder::with_quality(
            input,
            Level::Precise(i32::try_from(levels.gzip).unwrap_or(6)),
        )),
        Encoding::Br => {
            let mut params = EncoderParams::default()
                .quality(Level::Precise(i32::try_from(levels.br).unwrap_or(4)))
                .window_size(WINDOW_LOG as i32)
                .text_mode();
            if let Some(n) = br_hint(length) {
                params = params.size_hint(n);
            }
            framed(BrotliEncoder::with_params(input, params))
        }
        Encoding::Zstd => framed(ZstdEncoder::with_quality_and_params(
            input,
            Level::Precise(levels.zstd),
            &[CParameter::window_log(WINDOW_LOG)],
        )),
    }
}

/// An encoder's output as a response body.
fn framed<R>(encoder: R) -> Boxed
where
    R: tokio::io::AsyncRead + Send + 'static,
{
    let stream = ReaderStream::with_capacity(encoder, OUTPUT_CHUNK);
    body_of(stream)
}

fn body_of<S>(stream: S) -> Boxed
where
    S: Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    let frames = stream
        .map_ok(Frame::data)
        .map_err(|e| -> BodyError { Box::new(e) });
    http_body_util::StreamBody::new(frames).boxed_unsync()
}

#[cfg(test)]
mod tests;
