//! One file as a response: the headers (type, validators, cache), the
//! answer to conditional and range requests, and the body, streamed from
//! the file in bounded chunks.
//!
//! [`prepare`] decides the status and headers and reads the first
//! [`CHUNK`] (a small file is then sent whole). For a request it runs on
//! the async thread itself ([`Start::IfCached`]): that first read is a
//! `preadv2(RWF_NOWAIT)`, which takes only what the page cache holds and
//! never waits for a disk; what it did not get is read on the blocking
//! pool. A hop to the blocking pool costs two thread wake-ups, about half
//! of fpmlb's CPU for a 1 KiB file (perf, `static1k`). The rest of a large
//! file is read [`STREAM_CHUNK`] at a time, the same way, as the client
//! takes the previous one, so a response holds one chunk whatever the
//! file's size. On a cleartext HTTP/1.1 connection ([`Start::Sendfile`]),
//! a piece of [`SENDFILE_MIN`] or more the page cache holds goes out with
//! `sendfile` instead, a window of up to 1 MiB at a time, never read into
//! fpmlb ([`zero_copy`]).
//!
//! Content-Type comes from `mime_guess` (a maintained table compiled in,
//! built from the IANA registry and Apache's mime.types, as nginx's
//! mime.types is): a table at hand keeps fpmlb's answer the same on every
//! machine, whatever /etc/mime.types says. An unknown extension is
//! `application/octet-stream`, as Debian's nginx.conf `default_type`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use super::conditional::{self, Precondition, Validators};
use super::range::{self, Ranges};
use super::zero_copy::{self, Offer};
use super::{Found, Opened, Root};
use crate::http::response::BodyError;

/// The size under which a file goes out whole, read with its headers:
/// 128 KiB covers nearly every CSS, JS file and image of a PHP
/// application, in one read.
pub const CHUNK: usize = 128 * 1024;

/// The largest file whose bytes a response that read it whole leaves with
/// its [`Opened`] for the next ([`super::Shared::content`]): with the open
/// file cache's `max` of 1000, at most 16 MiB per root.
pub const SMALL: u64 = 16 * 1024;

/// Bytes read at a time after the first [`CHUNK`]: a response holds at
/// most this much of its file in memory, so that slow clients of large
/// files cost little each (nginx's `output_buffers` are 2 x 32 KiB). Each
/// chunk is read from the page cache on the async thread when it is there
/// ([`read_chunk`]), so smaller chunks cost no thread hops: alternating
/// runs of 10 MiB files gave the same CPU per request with 64 KiB as with
/// 256 KiB chunks, and half the peak RSS with 256 downloads (README,
/// Performance).
pub const STREAM_CHUNK: usize = 64 * 1024;

/// How [`prepare`] reads the start of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Read it, waiting for the disk if need be (on a blocking thread).
    Read,
    /// Take what the page cache holds now, without waiting (on an async
    /// thread); the rest is read on the blocking pool as the body streams.
    IfCached,
    /// As [`Start::IfCached`], but a file piece of [`SENDFILE_MIN`] bytes
    /// or more is not read: on a connection that sends file windows
    /// (cleartext HTTP/1.1), the body offers it whole to `sendfile`.
    Sendfile,
}

/// The smallest file piece [`Start::Sendfile`] leaves to `sendfile`:
/// below it, one copy into fpmlb and one into the socket cost less than
/// the residency probe and the separate write of the head.
pub const SENDFILE_MIN: u64 = 32 * 1024;

/// What to send of a file, and how it was chosen.
#[derive(Debug)]
pub struct Choice {
    /// What is sent: the file, or its `.br`/`.gz` sibling.
    pub opened: Opened,
    /// The type of the file the URI names (not of its `.gz`).
    pub content_type: HeaderValue,
    /// `br` or `gzip` when a precompressed sibling is sent.
    pub encoding: Option<&'static str>,
    /// A sibling exists: caches must key on Accept-Encoding.
    pub vary: bool,
}

/// The Content-Type of a path, by its extension.
pub fn content_type(path: &Path) -> HeaderValue {
    HeaderValue::from_static(mime_type(path))
}

/// The MIME type of a path, by its extension.
pub fn mime_type(path: &Path) -> &'static str {
    mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("application/octet-stream")
}

/// Chooses between `opened` and its precompressed siblings (`x.br`,
/// `x.gz`) by the request's Accept-Encoding. Blocking.
pub fn choose(root: &Root, opened: Opened, headers: &HeaderMap, precompressed: bool) -> Choice {
    let mut choice = Choice {
        content_type: HeaderValue::from_static(opened.shared.mime),
        opened,
        encoding: None,
        vary: false,
    };
    if !precompressed {
        return choice;
    }
    let accepted = accepted_encodings(headers);
    if accepted.iter().all(|(_, q)| *q == 0) {
        // Neither coding acceptable (curl, bots, API clients): identity
        // whatever lies beside the file, so no lookup for siblings (two
        // `stat`s of ten system calls per small file). The answer still
        // depended on Accept-Encoding, which Vary says.
        choice.vary = true;
        return choice;
    }
    let mut best: Option<(u16, &'static str, Opened)> = None;
    for (suffix, coding) in [("br", "br"), ("gz", "gzip")] {
        let mut name = choice.opened.path.to_path_buf().into_os_string();
        name.push(".");
        name.push(suffix);
        let Found::File(sibling) = root.find_beside(&choice.opened, Path::new(&name)) else {
            continue;
        };
        choice.vary = true;
        let q = accepted
            .iter()
            .find(|(c, _)| *c == coding)
            .map_or(0, |(_, q)| *q);
        if q > 0 && best.as_ref().is_none_or(|(bq, _, _)| q > *bq) {
            best = Some((q, coding, sibling));
        }
    }
    if let Some((_, coding, sibling)) = best {
        choice.opened = sibling;
        choice.encoding = Some(coding);
    }
    choice
}

/// `br` and `gzip` with their q-values (in thousandths) from
/// Accept-Encoding; `*` stands for the ones not named, `x-gzip` for gzip.
fn accepted_encodings(headers: &HeaderMap) -> Vec<(&'static str, u16)> {
    let mut named: Vec<(String, u16)> = Vec::new();
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if coding.is_empty() {
                continue;
            }
            let q = parts
                .find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("q").then(|| qvalue(v.trim()))
                })
                .unwrap_or(Some(1000));
            let Some(q) = q else { continue };
            let coding = if coding == "x-gzip" {
                "gzip".to_owned()
            } else {
                coding
            };
            named.push((coding, q));
        }
    }
    let star = named.iter().find(|(c, _)| c == "*").map(|(_, q)| *q);
    ["br", "gzip"]
        .into_iter()
        .filter_map(|c| {
            let q = named
                .iter()
                .find(|(n, _)| n == c)
                .map(|(_, q)| *q)
                .or(star)?;
            Some((c, q))
        })
        .collect()
}

/// `0.8` as 800; `None` for what is not a qvalue.
fn qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The body of a prepared response.
#[derive(Debug)]
pub enum Plan {
    /// Nothing (HEAD, 304, 412).
    Empty,
    /// All of it, read already.
    Whole(Bytes),
    /// `first`, then the pieces still to read.
    Stream {
        first: Bytes,
        file: Arc<File>,
        pieces: Vec<Piece>,
    },
}

/// A part of a body: literal bytes (multipart headers) or a file range.
#[derive(Debug, Clone)]
pub enum Piece {
    Bytes(Bytes),
    File { offset: u64, len: u64 },
}

/// Headers from elsewhere that a file response carries (a location's
/// Cache-Control; for X-Accel-Redirect, the script's Content-Type,
/// Content-Disposition...).
#[derive(Debug, Default)]
pub struct Extra {
    pub cache_control: Option<HeaderValue>,
    /// Replace the file's own header of the same name (Content-Type).
    pub headers: HeaderMap,
}

/// Decides the answer for `choice` and reads its start, as `start` says.
///
/// # Errors
///
/// Reading the file failed.
pub fn prepare(
    method: &Method,
    headers: &HeaderMap,
    choice: Choice,
    extra: Extra,
    start: Start,
) -> std::io::Result<Response<Plan>> {
    let v = Validators::of(&choice.opened.meta);
    let mut out = HeaderMap::new();
    for (name, value) in v.headers() {
        out.insert(name, value);
    }
    out.insert(header::CONTENT_TYPE, choice.content_type.clone());
    if let Some(cc) = extra.cache_control {
        out.insert(header::CACHE_CONTROL, cc);
    }
    if choice.vary {
        out.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    for (name, value) in &extra.headers {
        out.insert(name, value.clone());
    }
    let status = match conditional::evaluate(method, headers, &v) {
        Precondition::Proceed => None,
        Precondition::NotModified => Some(StatusCode::NOT_MODIFIED),
        Precondition::Failed => Some(StatusCode::PRECONDITION_FAILED),
    };
    if let Some(status) = status {
        if status == StatusCode::PRECONDITION_FAILED {
            out.remove(header::CONTENT_TYPE);
            out.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        return Ok(with(status, out, Plan::Empty));
    }
    if let Some(coding) = choice.encoding {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let ranges = if method == Method::GET && conditional::if_range_holds(headers, &v) {
        range::parse(headers.get(header::RANGE), v.len)
    } else {
        Ranges::Full
    };
    let whole = matches!(ranges, Ranges::Full);
    let file = Arc::clone(&choice.opened.file);
    let (status, pieces) = match ranges {
        Ranges::Full => (
            StatusCode::OK,
            vec![Piece::File {
                offset: 0,
                len: v.len,
            }],
        ),
        Ranges::Unsatisfiable => {
            out.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{}", v.len)),
            );
            out.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            out.remove(header::CONTENT_ENCODING);
            return Ok(with(StatusCode::RANGE_NOT_SATISFIABLE, out, Plan::Empty));
        }
        Ranges::Parts(parts) if parts.len() == 1 => {
            let (a, b) = parts[0];
            out.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {a}-{b}/{}", v.len)),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                vec![Piece::File {
                    offset: a,
                    len: b - a + 1,
                }],
            )
        }
        Ranges::Parts(parts) => {
            let boundary = format!("{:016x}", rand::random::<u64>());
            let part_type = out
                .get(header::CONTENT_TYPE)
                .and_then(|t| t.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_owned();
            out.insert(
                header::CONTENT_TYPE,
                header_value(&format!("multipart/byteranges; boundary={boundary}")),
            );
            let mut pieces = Vec::with_capacity(parts.len() * 2 + 1);
            for (a, b) in parts {
                let head = format!(
                    "\r\n--{boundary}\r\nContent-Type: {part_type}\r\nContent-Range: bytes {a}-{b}/{}\r\n\r\n",
                    v.len
                );
                pieces.push(Piece::Bytes(Bytes::from(head)));
                pieces.push(Piece::File {
                    offset: a,
                    len: b - a + 1,
                });
            }
            pieces.push(Piece::Bytes(Bytes::from(format!("\r\n--{boundary}--\r\n"))));
            (StatusCode::PARTIAL_CONTENT, pieces)
        }
    };
    let total: u64 = pieces
        .iter()
        .map(|p| match p {
            Piece::Bytes(b) => b.len() as u64,
            Piece::File { len, .. } => *len,
        })
        .sum();
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    if method == Method::HEAD {
        return Ok(with(status, out, Plan::Empty));
    }
    let held = &choice.opened.shared.content;
    if whole && let Some(content) = held.get() {
        return Ok(with(status, out, Plan::Whole(content.clone())));
    }
    let plan = read_start(&file, pieces, start)?;
    if whole
        && v.len <= SMALL
        && let Plan::Whole(content) = &plan
        && content.len() as u64 == v.len
    {
        // Another response may have set it meanwhile: the same bytes.
        let _ = held.set(content.clone());
    }
    Ok(with(status, out, plan))
}

fn with(status: StatusCode, headers: HeaderMap, plan: Plan) -> Response<Plan> {
    let mut r = Response::new(plan);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

/// Reads up to [`CHUNK`] bytes of the pieces: the whole body when it fits
/// (and, with [`Start::IfCached`], is in the page cache); with
/// [`Start::Sendfile`], up to the first piece of [`SENDFILE_MIN`] or more.
fn read_start(file: &Arc<File>, pieces: Vec<Piece>, start: Start) -> std::io::Result<Plan> {
    let mut first = BytesMut::new();
    let mut rest = Vec::new();
    let mut pieces = pieces.into_iter();
    for piece in pieces.by_ref() {
        let room = CHUNK.saturating_sub(first.len());
        match piece {
            Piece::Bytes(b) => first.extend_from_slice(&b),
            Piece::File { offset, len }
                if room == 0 || (start == Start::Sendfile && len >= SENDFILE_MIN) =>
            {
                rest.push(Piece::File { offset, len });
                break;
            }
            Piece::File { offset, len } => {
                let take = len.min(room as u64);
                let at = first.len();
                first.resize(at + usize::try_from(take).unwrap_or(0), 0);
                let got = match start {
                    Start::Read => {
                        file.read_exact_at(&mut first[at..], offset)?;
                        take
                    }
                    Start::IfCached | Start::Sendfile => {
                        read_cached(file, &mut first[at..], offset)? as u64
                    }
                };
                first.truncate(at + usize::try_from(got).unwrap_or(0));
                if got < len {
                    rest.push(Piece::File {
                        offset: offset + got,
                        len: len - got,
                    });
                    break;
                }
            }
        }
    }
    rest.extend(pieces);
    let first = first.freeze();
    if rest.is_empty() {
        return Ok(Plan::Whole(first));
    }
    Ok(Plan::Stream {
        first,
        file: Arc::clone(file),
        pieces: rest,
    })
}

/// Fills as much of `buf` from `offset` as the page cache holds, without
/// waiting for the disk (`preadv2(RWF_NOWAIT)`); returns how much. A file
/// system without RWF_NOWAIT gives 0: everything is read on the blocking
/// pool then.
///
/// # Errors
///
/// The file ended before `buf` was full (it shrank), or a read error.
fn read_cached(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    use rustix::io::{Errno, ReadWriteFlags};
    let mut done = 0;
    while done < buf.len() {
        let mut slices = [std::io::IoSliceMut::new(&mut buf[done..])];
        match rustix::io::preadv2(
            file,
            &mut slices,
            offset + done as u64,
            ReadWriteFlags::NOWAIT,
        ) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            // Not cached (EAGAIN), or no RWF_NOWAIT here: the blocking pool reads it.
            Err(Errno::AGAIN | Errno::OPNOTSUPP | Errno::INVAL | Errno::NOSYS) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// Whether the page cache holds `len` bytes of `file` at `offset`, as far
/// as a byte read without waiting (`preadv2(RWF_NOWAIT)`) every [`CHUNK`]
/// from the start, and at the end, tells: the window's first byte is
/// always probed, since a client that seeks (`Range: bytes=X-`) starts
/// where another client's reads may not have been. A miss between two
/// probes is rare (the kernel reads a file ahead in large windows), and
/// costs a disk read on the async thread (what nginx's `sendfile` always
/// risks).
fn cached(file: &File, offset: u64, len: u64) -> bool {
    if len == 0 {
        return false;
    }
    let last = offset + (len - 1);
    let mut probe = [0u8; 1];
    (offset..last)
        .step_by(CHUNK)
        .chain(std::iter::once(last))
        .all(|at| matches!(read_cached(file, &mut probe, at), Ok(1)))
}

/// Reads exactly `len` bytes at `offset` into a fresh buffer, without
/// zeroing it first (`pread` into the Vec's spare capacity). Blocking.
///
/// # Errors
///
/// The file ended first (it shrank), or a read error.
pub fn read_exact(file: &File, len: usize, offset: u64) -> std::io::Result<Bytes> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The Vec's capacity may exceed `len`: a read may have taken more.
    buf.truncate(len);
    Ok(Bytes::from(buf))
}

/// The plan as a response body: what is left is read a chunk at a time on
/// the blocking pool, as the client takes what came before. A file that
/// shrank under it ends the body with an error (the client sees a cut
/// response, never a short one taken for whole).
pub fn body(plan: Plan) -> UnsyncBoxBody<Bytes, BodyError> {
    body_offered(plan, None)
}

/// A prepared response with its body; one that streams from its file
/// carries an [`Offer`] to go out zero-copy (see [`zero_copy`]).
pub fn response(prepared: Response<Plan>) -> Response<UnsyncBoxBody<Bytes, BodyError>> {
    let (mut parts, plan) = prepared.into_parts();
    let offer = matches!(plan, Plan::Stream { .. }).then(Offer::default);
    if let Some(offer) = &offer {
        parts.extensions.insert(offer.clone());
    }
    Response::from_parts(parts, body_offered(plan, offer))
}

/// The next part of a file piece: a placeholder for a window that the
/// connection sends with `sendfile` when it took the offer up and the
/// page cache holds the window, else the bytes, read.
async fn next_part(
    file: &Arc<File>,
    offset: u64,
    len: u64,
    offer: Option<&Offer>,
) -> (u64, std::io::Result<Bytes>) {
    if let Some(windows) = offer.and_then(Offer::windows) {
        let take = len.min(zero_copy::WINDOW as u64);
        // `take` is at most WINDOW: it fits a usize.
        if cached(file, offset, take)
            && let Some(frame) = windows.push(Arc::clone(file), offset, take as usize)
        {
            return (frame.len() as u64, Ok(frame));
        }
    }
    let take = len.min(STREAM_CHUNK as u64);
    (take, read_chunk(Arc::clone(file), offset, take).await)
}

fn body_offered(plan: Plan, offer: Option<Offer>) -> UnsyncBoxBody<Bytes, BodyError> {
    match plan {
        Plan::Empty => crate::http::response::full(Bytes::new()),
        Plan::Whole(b) => crate::http::response::full(b),
        Plan::Stream {
            first,
            file,
            pieces,
        } => {
            let mut queue: std::collections::VecDeque<Piece> = pieces.into();
            if !first.is_empty() {
                queue.push_front(Piece::Bytes(first));
            }
            let total = queue
                .iter()
                .map(|p| match p {
                    Piece::Bytes(b) => b.len() as u64,
                    Piece::File { len, .. } => *len,
                })
                .sum();
            let stream = futures_util::stream::unfold(
                (queue, file, offer),
                |(mut queue, file, offer)| async move {
                    let piece = queue.pop_front()?;
                    let next = match piece {
                        Piece::Bytes(b) => Ok(b),
                        Piece::File { offset, len } => {
                            let (take, part) = next_part(&file, offset, len, offer.as_ref()).await;
                            if take < len {
                                queue.push_front(Piece::File {
                                    offset: offset + take,
                                    len: len - take,
                                });
                            }
                            part
                        }
                    };
                    match next {
                        Ok(b) => Some((Ok(http_body::Frame::data(b)), (queue, file, offer))),
                        Err(e) => {
                            tracing::error!("static file read failed mid-response: {e}");
                            let err: BodyError = Box::new(e);
                            Some((Err(err), (std::collections::VecDeque::new(), file, offer)))
                        }
                    }
                },
            );
            Counted {
                inner: http_body_util::StreamBody::new(stream).boxed_unsync(),
                remaining: total,
            }
            .boxed_unsync()
        }
    }
}

/// A streamed body of a known length that says it has ended once that
/// many bytes went out: hyper stops polling an HTTP/1.1 body when its
/// Content-Length is reached, so without this the access log would call
/// every file longer than one chunk incomplete. Its size hint is exact.
struct Counted<B> {
    inner: B,
    remaining: u64,
}

impl<B> http_body::Body for Counted<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.remaining = self.remaining.saturating_sub(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// The next `len` bytes of a streamed file: what the page cache holds is
/// read here, on the async thread, as the first chunk is; only what it
/// does not hold is read on the blocking pool (two thread wake-ups).
pub async fn read_chunk(file: Arc<File>, offset: u64, len: u64) -> std::io::Result<Bytes> {
    let len = usize::try_from(len).unwrap_or(STREAM_CHUNK);
    let mut buf = BytesMut::zeroed(len);
    let got = read_cached(&file, &mut buf, offset)?;
    if got == len {
        return Ok(buf.freeze());
    }
    buf.truncate(got);
    let at = offset + got as u64;
    let read = tokio::task::spawn_blocking(move || read_exact(&file, len - got, at)).await;
    let rest = read.unwrap_or_else(|e| Err(std::io::Error::other(e)))?;
    if got == 0 {
        return Ok(rest);
    }
    buf.extend_from_slice(&rest);
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::super::conditional::tests::h;
    use super::*;
    use crate::config::OpenFileCacheConfig;

    #[test]
    fn accept_encoding_with_q_values() {
        let a = |s: &str| accepted_encodings(&h(&[("accept-encoding", s)]));
        assert_eq!(a("gzip, deflate, br"), [("br", 1000), ("gzip", 1000)]);
        assert_eq!(a("br;q=0, gzip;q=0.5"), [("br", 0), ("gzip", 500)]);
        assert_eq!(a("*;q=0.1, gzip;q=0"), [("br", 100), ("gzip", 0)]);
        assert_eq!(a("x-gzip"), [("gzip", 1000)]);
        assert_eq!(a("identity"), []);
        assert_eq!(a("br;q=2, gzip;q=0.1234"), []);
        assert!(accepted_encodings(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn types_from_the_table() {
        for (name, want) in [
            ("a.css", "text/css"),
            ("a.html", "text/html"),
            ("a.png", "image/png"),
            ("a.svg", "image/svg+xml"),
            ("a.woff2", "font/woff2"),
            ("a.json", "application/json"),
            ("a.unknownext", "application/octet-stream"),
            ("noext", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(name)), want, "{name}");
        }
        let js = content_type(Path::new("a.js"));
        assert!(
            js == "text/javascript" || js == "application/javascript",
            "{js:?}"
        );
    }

    fn opened(dir: &Path, name: &str, content: &[u8]) -> Opened {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let root = Root::new(dir.to_path_buf(), OpenFileCacheConfig::OFF);
        match root.find(&path) {
            Found::File(o) => o,
            other => panic!("{other:?}"),
        }
    }

    fn run(
        method: Method,
        headers: &[(&str, &str)],
        content: &[u8],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.txt"), content).unwrap();
        serve_file(&dir.path().join("f.txt"), method, headers)
    }

    fn serve_file(
        path: &Path,
        method: Method,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let root = Root::new(
            path.parent().unwrap().to_path_buf(),
            OpenFileCacheConfig::OFF,
        );
        let Found::File(o) = root.find(path) else {
            panic!("{}", path.display())
        };
        let choice = Choice {
            content_type: content_type(&o.path),
            opened: o,
            encoding: None,
            vary: false,
        };
        let r = prepare(&method, &h(headers), choice, Extra::default(), Start::Read).unwrap();
        let (parts, plan) = r.into_parts();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bytes = rt.block_on(async { body(plan).collect().await.unwrap().to_bytes() });
        (parts.status, parts.headers, bytes.to_vec())
    }

    /// A small file read whole leaves its bytes with its `Opened` (the one
    /// the open file cache hands out copies of): the next whole response
    /// sends them without a read; a range, a larger file, or one the page
    /// cache did not hold whole leave nothing.
    #[test]
    fn a_small_file_read_whole_is_held_with_its_opened() {
        let dir = tempfile::tempdir().unwrap();
        let answer = |o: &Opened, headers: &[(&str, &str)]| {
            let choice = Choice {
                content_type: content_type(&o.path),
                opened: o.clone(),
                encoding: None,
                vary: false,
            };
            let r = prepare(
                &Method::GET,
                &h(headers),
                choice,
                Extra::default(),
                Start::IfCached,
            )
            .unwrap();
            collect(r.into_body())
        };
        let small = opened(dir.path(), "small.css", b"body{}");
        assert_eq!(answer(&small, &[("range", "bytes=0-1")]), b"bo");
        assert!(
            small.shared.content.get().is_none(),
            "a range leaves nothing"
        );
        assert_eq!(answer(&small, &[]), b"body{}");
        assert_eq!(
            small.shared.content.get().map(|b| &b[..]),
            Some(&b"body{}"[..])
        );
        // Written over in place: this `Opened` keeps its bytes (the open
        // file cache hands it out no more once an `fstat` shows the change,
        // cache.rs).
        std::fs::write(dir.path().join("small.css"), b"ZZZZZZ").unwrap();
        assert_eq!(answer(&small, &[]), b"body{}");
        let big = vec![7u8; usize::try_from(SMALL).unwrap() + 1];
        let large = opened(dir.path(), "large.bin", &big);
        assert_eq!(answer(&large, &[]), big);
        assert!(large.shared.content.get().is_none(), "more than SMALL");
    }

    /// hyper stops polling an HTTP/1.1 body once its Content-Length went
    /// out: a file body must say it ended with its last byte, and not before.
    #[test]
    fn a_streamed_body_ends_with_its_last_byte() {
        use http_body::Body as _;
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..=255u8).cycle().take(2 * CHUNK + 3).collect();
        let o = opened(dir.path(), "big.bin", &content);
        let choice = Choice {
            content_type: content_type(&o.path),
            opened: o,
            encoding: None,
            vary: false,
        };
        let plan = prepare(
            &Method::GET,
            &HeaderMap::new(),
            choice,
            Extra::default(),
            Start::Read,
        )
        .unwrap()
        .into_body();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut b = body(plan);
            assert!(!b.is_end_stream());
            assert_eq!(b.size_hint().exact(), Some(content.len() as u64));
            let mut got = Vec::new();
            while !b.is_end_stream() {
                let frame = b.frame().await.unwrap().unwrap();
                got.extend_from_slice(frame.data_ref().unwrap());
            }
            assert_eq!(got, content);
            assert!(b.frame().await.is_none());
        });
    }

    /// Collects a plan's body on a fresh runtime.
    fn collect(plan: Plan) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { body(plan).collect().await.unwrap().to_bytes().to_vec() })
    }

    /// The read on the async thread (what the page cache holds) gives the
    /// same status, headers and bytes as the blocking read, for small
    /// files (sent whole) and large ones (streamed), whole or in ranges.
    #[test]
    fn a_cached_start_answers_as_the_blocking_read() {
        let dir = tempfile::tempdir().unwrap();
        for size in [
            0,
            1,
            1024,
            SENDFILE_MIN as usize - 1,
            SENDFILE_MIN as usize,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            STREAM_CHUNK + CHUNK + 7,
        ] {
            let content: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let o = opened(dir.path(), "f.bin", &content);
            let last = size.saturating_sub(1);
            for range in [
                None,
                Some("bytes=0-0".to_owned()),
                Some(format!("bytes=1-{last}")),
            ] {
                let headers = match &range {
                    Some(r) => h(&[("range", r)]),
                    None => HeaderMap::new(),
                };
                let answer = |start: Start| {
                    let Found::File(o) =
                        Root::new(dir.path().to_path_buf(), OpenFileCacheConfig::OFF).find(&o.path)
                    else {
                        panic!()
                    };
                    let choice = Choice {
                        content_type: content_type(&o.path),
                        opened: o,
                        encoding: None,
                        vary: false,
                    };
                    let (parts, plan) =
                        prepare(&Method::GET, &headers, choice, Extra::default(), start)
                            .unwrap()
                            .into_parts();
                    let whole = matches!(plan, Plan::Whole(_));
                    let unread = matches!(&plan, Plan::Stream { first, .. } if first.is_empty());
                    (parts.status, parts.headers, collect(plan), whole, unread)
                };
                let (s1, h1, b1, whole1, _) = answer(Start::Read);
                let (s2, h2, b2, whole2, _) = answer(Start::IfCached);
                assert_eq!((s1, &h1), (s2, &h2), "size {size}, {range:?}");
                assert_eq!(b1, b2, "size {size}, {range:?}");
                // The file was just written: it is in the page cache, so a
                // small one goes out whole from the async thread too.
                assert_eq!(whole1, whole2, "size {size}, {range:?}");
                // For a connection that sends file windows: the same answer,
                // with a large piece left unread for `sendfile`.
                let (s3, h3, b3, whole3, unread3) = answer(Start::Sendfile);
                assert_eq!((s1, &h1, &b1), (s3, &h3, &b3), "size {size}, {range:?}");
                let large = b1.len() as u64 >= SENDFILE_MIN;
                assert_eq!(
                    (whole3, unread3),
                    (whole1 && !large, large),
                    "size {size}, {range:?}"
                );
                assert_eq!(
                    h1["content-length"],
                    b1.len().to_string().as_str(),
                    "size {size}, {range:?}"
                );
                if s1 == StatusCode::OK {
                    assert_eq!(b1, content, "size {size}");
                }
            }
        }
    }

    /// Nothing of the file read at the start: the whole body is read as it
    /// streams, and still ends with its last byte.
    #[test]
    fn a_start_left_to_the_blocking_pool_streams_it_all() {
        use http_body::Body as _;
        let dir = tempfile::tempdir().unwrap();
        for size in [1, CHUNK, 2 * STREAM_CHUNK + 3] {
            let content: Vec<u8> = (0..size).map(|i| (i * 13 % 253) as u8).collect();
            let o = opened(dir.path(), "cold.bin", &content);
            let plan = || Plan::Stream {
                first: Bytes::new(),
                file: Arc::clone(&o.file),
                pieces: vec![Piece::File {
                    offset: 0,
                    len: size as u64,
                }],
            };
            assert_eq!(collect(plan()), content, "size {size}");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut b = body(plan());
                let mut got = 0;
                while !b.is_end_stream() {
                    let frame = b.frame().await.unwrap().unwrap();
                    let data = frame.data_ref().unwrap();
                    assert!(!data.is_empty() && data.len() <= STREAM_CHUNK);
                    got += data.len();
                }
                assert_eq!(got, size);
            });
        }
    }

    /// A chunk partly in the page cache: what it holds is read at once,
    /// the rest on the blocking pool, and the bytes come in order. (How
    /// much is out of the cache when read is the kernel's: tmpfs keeps
    /// every page, and an RWF_NOWAIT read may start readahead.)
    #[test]
    fn a_chunk_partly_cached_is_read_whole() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..3 * STREAM_CHUNK).map(|i| (i * 7 % 251) as u8).collect();
        let path = dir.path().join("part.bin");
        let mut f = File::create(&path).unwrap();
        f.write_all(&content).unwrap();
        f.sync_all().unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        // Out of the cache from half a chunk on (clean pages go at once).
        let half = (STREAM_CHUNK / 2) as u64;
        rustix::fs::fadvise(&*file, half, None, rustix::fs::Advice::DontNeed).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for (offset, len) in [(0, STREAM_CHUNK), (STREAM_CHUNK, 2 * STREAM_CHUNK)] {
                let got = read_chunk(Arc::clone(&file), offset as u64, len as u64)
                    .await
                    .unwrap();
                assert_eq!(&got[..], &content[offset..offset + len], "at {offset}");
            }
            let past = read_chunk(Arc::clone(&file), content.len() as u64 - 5, 10).await;
            assert_eq!(past.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
        });
    }

    #[test]
    fn reads_are_exact_and_a_shrunk_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let o = opened(dir.path(), "r.bin", &content);
        assert_eq!(read_exact(&o.file, 10, 20).unwrap(), &content[20..30]);
        assert_eq!(read_exact(&o.file, 0, 1000).unwrap().len(), 0);
        let e = read_exact(&o.file, 10, 995).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        let mut buf = [0u8; 10];
        // Just written: cached, so all of it comes without waiting.
        assert_eq!(read_cached(&o.file, &mut buf, 40).unwrap(), 10);
        assert_eq!(buf, content[40..50]);
        let e = read_cached(&o.file, &mut buf, 995).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn whole_range_multipart_head() {
        let content: Vec<u8> = (0..=255u8).cycle().take(3 * CHUNK + 7).collect();
        let (s, hd, b) = run(Method::GET, &[], &content);
        assert_eq!(s, 200);
        assert_eq!(b, content, "streamed across chunks");
        assert_eq!(hd["content-length"], (content.len()).to_string().as_str());
        assert_eq!(hd["accept-ranges"], "bytes");
        assert_eq!(hd["content-type"], "text/plain");

        let (s, hd, b) = run(Method::GET, &[("range", "bytes=10-19")], &content);
        assert_eq!(s, 206);
        assert_eq!(b, &content[10..20]);
        assert_eq!(
            hd["content-range"],
            format!("bytes 10-19/{}", content.len()).as_str()
        );
        let last = format!("bytes={}-", CHUNK - 3);
        let (s, _, b) = run(Method::GET, &[("range", &last)], &content);
        assert_eq!(s, 206);
        assert_eq!(b, &content[CHUNK - 3..]);

        let (s, hd, b) = run(Method::GET, &[("range", "bytes=0-1,-2")], b"abcdefgh");
        assert_eq!(s, 206);
        let ct = hd["content-type"].to_str().unwrap();
        let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
        let text = String::from_utf8(b.clone()).unwrap();
        assert_eq!(
            text,
            format!(
                "\r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/8\r\n\r\nab\
                 \r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 6-7/8\r\n\r\ngh\
                 \r\n--{boundary}--\r\n"
            )
        );
        assert_eq!(hd["content-length"], b.len().to_string().as_str());

        let (s, hd, b) = run(Method::GET, &[("range", "bytes=8-")], b"abcdefgh");
        assert_eq!((s, b.len()), (StatusCode::RANGE_NOT_SATISFIABLE, 0));
        assert_eq!(hd["content-range"], "bytes */8");

        let (s, hd, b) = run(Method::HEAD, &[("range", "bytes=0-1")], b"abcdefgh");
        assert_eq!((s, b.len()), (StatusCode::OK, 0));
        assert_eq!(hd["content-length"], "8");
    }

    #[test]
    fn conditional_answers() {
        let dir = tempfile::tempdir().unwrap();
        let o = opened(dir.path(), "a.css", b"body{}");
        let v = Validators::of(&o.meta);
        let (s, hd, b) = serve_file(&o.path, Method::GET, &[("if-none-match", &v.etag())]);
        assert_eq!((s, b.len()), (StatusCode::NOT_MODIFIED, 0));
        assert_eq!(hd["etag"], v.etag().as_str());
        assert_eq!(hd["last-modified"], v.last_modified().as_str());
        let (s, _, b) = serve_file(
            &o.path,
            Method::HEAD,
            &[("if-modified-since", &v.last_modified())],
        );
        assert_eq!((s, b.len()), (StatusCode::NOT_MODIFIED, 0));
        let (s, _, b) = serve_file(&o.path, Method::GET, &[("if-none-match", "\"other\"")]);
        assert_eq!((s, b), (StatusCode::OK, b"body{}".to_vec()));
        let (s, _, b) = run(Method::GET, &[("if-match", "\"nope\"")], b"x");
        assert_eq!((s, b.len()), (StatusCode::PRECONDITION_FAILED, 0));
        // If-Range that does not hold: the whole file.
        let (s, _, b) = run(
            Method::GET,
            &[("range", "bytes=0-0"), ("if-range", "\"old\"")],
            b"xyz",
        );
        assert_eq!((s, b), (StatusCode::OK, b"xyz".to_vec()));
    }

    #[test]
    fn a_sibling_is_chosen_by_accept_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path().to_path_buf(), OpenFileCacheConfig::OFF);
        let o = opened(dir.path(), "app.js", b"plain");
        std::fs::write(dir.path().join("app.js.gz"), b"gz").unwrap();
        std::fs::write(dir.path().join("app.js.br"), b"br").unwrap();
        let pick = |ae: &str, pre: bool| {
            let Found::File(o) = root.find(&o.path) else {
                panic!()
            };
            let c = choose(&root, o, &h(&[("accept-encoding", ae)]), pre);
            (c.encoding, c.vary, c.opened.meta.len())
        };
        assert_eq!(pick("gzip, br", true), (Some("br"), true, 2));
        assert_eq!(pick("gzip;q=1, br;q=0.5", true), (Some("gzip"), true, 2));
        assert_eq!(pick("identity", true), (None, true, 5));
        assert_eq!(pick("gzip;q=0, br;q=0", true), (None, true, 5));
        // Without siblings: Vary only where they were not looked for.
        let lone = opened(dir.path(), "lone.css", b"plain");
        let vary_of = |ae: &str| {
            let Found::File(o) = root.find(&lone.path) else {
                panic!()
            };
            choose(&root, o, &h(&[("accept-encoding", ae)]), true).vary
        };
        assert!(!vary_of("gzip"));
        assert!(vary_of("identity"));
        assert_eq!(pick("gzip, br", false), (None, false, 5));
        let Found::File(o2) = root.find(&o.path) else {
            panic!()
        };
        let c = choose(&root, o2, &h(&[("accept-encoding", "gzip")]), true);
        assert_eq!(c.content_type, content_type(Path::new("app.js")));
    }
}
