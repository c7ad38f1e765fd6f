//! The CGI response head (RFC 3875 section 6) that PHP writes at the start of FCGI_STDOUT.
//!
//! This module owns turning that head into an HTTP status and header list, with
//! the semantics nginx's fastcgi module gives it, so the balancer answers exactly
//! as an nginx front end would: a `Status:` header sets the status and is not
//! forwarded, a `Location:` without `Status:` means 302, anything else is 200.
//!
//! php-fpm ends header lines with "\r\n"; a bare "\n" is accepted too, as RFC 3875
//! allows. The head ends at the first empty line, and the body follows it in the
//! same stream. Like the record layer it does no I/O: the caller accumulates STDOUT
//! bytes and calls [`parse_head`] until it returns a head.

use std::borrow::Cow;

use http::{HeaderName, HeaderValue};

/// Largest head accepted, counting its terminating empty line. It bounds the memory a
/// response whose head never ends can make the balancer buffer; 64 KiB is far above
/// what PHP applications send (nginx's default `fastcgi_buffer_size` is 4-8 KiB, and
/// nginx rejects heads that do not fit it).
pub const MAX_HEAD_LEN: usize = 64 * 1024;

/// Headers that describe a single connection rather than the response, so the
/// balancer must not forward them (RFC 9110 section 7.6.1): the hop they describe
/// ends at the balancer, and the HTTP server framing the client connection
/// decides them itself. Forwarding `Transfer-Encoding` or `Connection`/`Upgrade`
/// would let PHP output corrupt or hijack the client connection's framing.
/// `Proxy-Connection` and `Keep-Alive` are the legacy forms of the same thing.
/// Names are lower case, as [`HeaderName`] stores them.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// How much of an offending line an error message quotes, so a garbage head does not
/// flood the logs.
const ERROR_SNIPPET_LEN: usize = 200;

/// Status when the head has neither `Status:` nor `Location:`.
const DEFAULT_STATUS: u16 = 200;

/// Status when the head has `Location:` but no `Status:` (what nginx does).
const REDIRECT_STATUS: u16 = 302;

/// A parsed CGI response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiHead {
    /// HTTP status code, 100..=599.
    pub status: u16,
    /// Reason phrase from `Status:`, if it had one (e.g. "Not Found"). `None` means
    /// the caller should use the canonical phrase for `status`.
    pub reason: Option<String>,
    /// Headers to forward, in the order PHP sent them, repeated names (Set-Cookie)
    /// kept. `Status` and hop-by-hop headers are left out. `Content-Length` is
    /// passed through as PHP wrote it.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// A CGI response head that cannot be turned into an HTTP response.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CgiError {
    /// No end of the head within the first [`MAX_HEAD_LEN`] bytes.
    #[error("CGI response head is longer than {MAX_HEAD_LEN} bytes")]
    TooLong,
    /// A line that is not `Name: value` or a continuation of one, or whose name or
    /// value has bytes HTTP does not allow. Holds (the start of) the line.
    #[error("bad CGI response header line: {0:?}")]
    BadHeaderLine(String),
    /// A `Status:` value that does not start with a status code in 100..=599.
    /// Holds (the start of) the value.
    #[error("bad CGI Status header: {0:?}")]
    BadStatus(String),
    /// STDOUT ended before the end of the head. [`parse_head`] never returns it (it
    /// cannot know the stream is over); it is for the caller to report a response
    /// that ended while `parse_head` still said `Ok(None)`.
    #[error("CGI response ended before the end of its head")]
    Incomplete,
}

/// Looks for the end of the head in `buf`. Ok(None): need more bytes.
/// Ok(Some((head, body_start))): head parsed, body starts at buf[body_start..].
///
/// Each call rescans `buf` from the start looking for the empty line, a byte scan
/// bounded by [`MAX_HEAD_LEN`]; the lines are only parsed once the end is found.
/// Calling it once per STDOUT record is cheap: php-fpm flushes output from an 8 KiB
/// buffer, so a head almost always arrives whole in the first record. Use
/// [`parse_head_from`] to avoid rescanning when output may trickle in many small
/// records (worst case otherwise: quadratic in the head size, up to 64 KiB).
pub fn parse_head(buf: &[u8]) -> Result<Option<(CgiHead, usize)>, CgiError> {
    parse_head_from(buf, 0)
}

/// Like [`parse_head`], but only looks for the end of the head at or after
/// `scan_from`, which makes repeated calls linear overall.
///
/// Pass the length `buf` had at the previous call that returned `Ok(None)` (0 the
/// first time): the bytes before it are known to hold no end of head. A larger value
/// can make the end go unnoticed (the result is then `Ok(None)` and eventually
/// `TooLong`), never a panic; values beyond `buf.len()` are clamped.
pub fn parse_head_from(buf: &[u8], scan_from: usize) -> Result<Option<(CgiHead, usize)>, CgiError> {
    match find_head_end(buf, scan_from) {
        Some((lines_end, body_start)) => {
            let head = parse_lines(&buf[..lines_end])?;
            Ok(Some((head, body_start)))
        }
        None if buf.len() >= MAX_HEAD_LEN => Err(CgiError::TooLong),
        None => Ok(None),
    }
}

/// Finds the first empty line within the first `MAX_HEAD_LEN` bytes, looking at line
/// ends at or after `scan_from`. Returns where that empty line starts (the end of the
/// header lines) and where the body starts (just after it).
fn find_head_end(buf: &[u8], scan_from: usize) -> Option<(usize, usize)> {
    let window = &buf[..buf.len().min(MAX_HEAD_LEN)];
    let start = scan_from.min(window.len());
    window[start..]
        .iter()
        .enumerate()
        .filter(|&(_, &byte)| byte == b'\n')
        .find_map(|(offset, _)| {
            let newline = start + offset;
            // The line ending at `newline` is empty if it starts right there, or if
            // it is a lone "\r" at the start of the buffer or after a "\n".
            let line_start = match &window[..newline] {
                [] | [.., b'\n'] => newline,
                [b'\r'] | [.., b'\n', b'\r'] => newline - 1,
                _ => return None,
            };
            Some((line_start, newline + 1))
        })
}

/// A header line whose value may still grow by continuation lines.
struct Pending<'a> {
    name: HeaderName,
    value: Cow<'a, [u8]>,
    line: &'a [u8],
}

/// What the header lines say, accumulated line by line.
#[derive(Default)]
struct HeadBuilder {
    status: Option<(u16, Option<String>)>,
    has_location: bool,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl HeadBuilder {
    fn add(&mut self, header: Pending<'_>) -> Result<(), CgiError> {
        let name = header.name.as_str();
        if name == "status" {
            // Repeated Status headers: the last one wins, as in nginx.
            self.status = Some(parse_status(&header.value)?);
            return Ok(());
        }
        if HOP_BY_HOP.contains(&name) {
            return Ok(());
        }
        if header.name == http::header::LOCATION {
            self.has_location = true;
        }
        let value = HeaderValue::from_bytes(&header.value)
            .map_err(|_| CgiError::BadHeaderLine(snippet(header.line)))?;
        self.headers.push((header.name, value));
        Ok(())
    }

    fn finish(self) -> CgiHead {
        let (status, reason) = match self.status {
            Some(status) => status,
            None if self.has_location => (REDIRECT_STATUS, None),
            None => (DEFAULT_STATUS, None),
        };
        CgiHead {
            status,
            reason,
            headers: self.headers,
        }
    }
}

/// Parses the header lines, each ending in "\n" or "\r\n".
fn parse_lines(lines: &[u8]) -> Result<CgiHead, CgiError> {
    let mut head = HeadBuilder::default();
    let mut pending: Option<Pending<'_>> = None;
    let lines = lines
        .strip_suffix(b"\n")
        .map(|lines| lines.split(|&b| b == b'\n'));
    for line in lines.into_iter().flatten() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let [b' ' | b'\t', ..] = line {
            // obs-fold: continues the previous header's value.
            let Some(previous) = pending.as_mut() else {
                return Err(CgiError::BadHeaderLine(snippet(line)));
            };
            let more = trim(line);
            if !more.is_empty() {
                let value = previous.value.to_mut();
                if !value.is_empty() {
                    value.push(b' ');
                }
                value.extend_from_slice(more);
            }
            continue;
        }
        if let Some(previous) = pending.take() {
            head.add(previous)?;
        }
        let bad_line = || CgiError::BadHeaderLine(snippet(line));
        let colon = line.iter().position(|&b| b == b':').ok_or_else(bad_line)?;
        let name = HeaderName::from_bytes(&line[..colon]).map_err(|_| bad_line())?;
        pending = Some(Pending {
            name,
            value: Cow::Borrowed(trim(&line[colon + 1..])),
            line,
        });
    }
    if let Some(previous) = pending {
        head.add(previous)?;
    }
    Ok(head.finish())
}

/// Parses a `Status:` value: three digits in 100..=599, then optionally whitespace
/// and a reason phrase.
fn parse_status(value: &[u8]) -> Result<(u16, Option<String>), CgiError> {
    let bad = || CgiError::BadStatus(snippet(value));
    let (digits, rest) = match value {
        [a, b, c, rest @ ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            ([*a, *b, *c], rest)
        }
        _ => return Err(bad()),
    };
    if !matches!(rest, [] | [b' ' | b'\t', ..]) {
        return Err(bad());
    }
    let status = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    if !(100..=599).contains(&status) {
        return Err(bad());
    }
    let reason = trim(rest);
    // The reason goes into the HTTP/1.1 status line, where control bytes would
    // corrupt the response.
    if reason
        .iter()
        .any(|&b| (b < b' ' && b != b'\t') || b == 0x7F)
    {
        return Err(bad());
    }
    let reason = (!reason.is_empty()).then(|| String::from_utf8_lossy(reason).into_owned());
    Ok((status, reason))
}

/// Strips spaces and tabs at both ends.
fn trim(bytes: &[u8]) -> &[u8] {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t');
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// The start of `bytes` as text, for error messages.
fn snippet(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(ERROR_SNIPPET_LEN)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(buf: &[u8]) -> (CgiHead, usize) {
        parse_head(buf).unwrap().expect("complete head")
    }

    fn header_list(head: &CgiHead) -> Vec<(&str, &[u8])> {
        head.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect()
    }

    #[test]
    fn plain_head_is_200() {
        let buf = b"Content-Type: text/html; charset=UTF-8\r\nX-Powered-By: PHP/8.3\r\n\r\n<html>";
        let (head, body_start) = head(buf);
        assert_eq!(head.status, 200);
        assert_eq!(head.reason, None);
        assert_eq!(
            header_list(&head),
            [
                ("content-type", &b"text/html; charset=UTF-8"[..]),
                ("x-powered-by", b"PHP/8.3"),
            ]
        );
        assert_eq!(&buf[body_start..], b"<html>");
    }

    #[test]
    fn bare_newlines_and_mixed_endings() {
        for buf in [
            &b"A: 1\nB: 2\n\nbody"[..],
            b"A: 1\r\nB: 2\n\nbody",
            b"A: 1\nB: 2\r\n\r\nbody",
            b"A: 1\r\nB: 2\n\r\nbody",
        ] {
            let (head, body_start) = head(buf);
            assert_eq!(
                header_list(&head),
                [("a", &b"1"[..]), ("b", b"2")],
                "{buf:?}"
            );
            assert_eq!(&buf[body_start..], b"body", "{buf:?}");
        }
    }

    #[test]
    fn empty_head() {
        for (buf, body_start) in [(&b"\r\nbody"[..], 2), (b"\nbody", 1)] {
            let (head, start) = head(buf);
            assert_eq!(start, body_start);
            assert_eq!(head.status, 200);
            assert!(head.headers.is_empty());
        }
    }

    #[test]
    fn body_is_not_inspected() {
        let buf = b"A: 1\r\n\r\nno colon here\n\n\0\xFF";
        let (_, body_start) = head(buf);
        assert_eq!(body_start, 8);
    }

    #[test]
    fn incomplete_head_needs_more() {
        let full = b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nbody";
        let end = full.len() - 4;
        for len in 0..end {
            assert_eq!(parse_head(&full[..len]), Ok(None), "len {len}");
        }
        for len in end..=full.len() {
            let (head, body_start) = head(&full[..len]);
            assert_eq!(head.status, 404);
            assert_eq!(body_start, end);
        }
    }

    #[test]
    fn scan_from_hint_gives_the_same_results() {
        let full = b"A: 1\r\nB: 2\r\n\r\nbody";
        let expected = parse_head(full).unwrap();
        // Grow the buffer a byte at a time, passing the previous length.
        let mut scanned = 0;
        let mut result = None;
        for len in 0..=full.len() {
            match parse_head_from(&full[..len], scanned).unwrap() {
                Some(found) => {
                    result = Some(found);
                    break;
                }
                None => scanned = len,
            }
        }
        assert_eq!(result, expected);
        // The terminator split across calls at every point, both line-end styles.
        for full in [&b"X: y\r\n\r\n"[..], b"X: y\n\n", b"\r\n", b"\n"] {
            for split in 0..full.len() {
                assert_eq!(parse_head_from(&full[..split], 0), Ok(None));
                let (_, body_start) = parse_head_from(full, split).unwrap().unwrap();
                assert_eq!(body_start, full.len());
            }
        }
        // Out-of-range hints are clamped.
        assert_eq!(parse_head_from(b"A: 1", 100), Ok(None));
    }

    #[test]
    fn status_with_reason() {
        let (head, _) = head(b"Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\n");
        assert_eq!(head.status, 404);
        assert_eq!(head.reason.as_deref(), Some("Not Found"));
        assert_eq!(header_list(&head), [("content-type", &b"text/html"[..])]);
    }

    #[test]
    fn status_without_reason() {
        for buf in [&b"Status: 503\r\n\r\n"[..], b"status:503  \r\n\r\n"] {
            let (head, _) = head(buf);
            assert_eq!(head.status, 503);
            assert_eq!(head.reason, None);
            assert!(head.headers.is_empty());
        }
    }

    #[test]
    fn status_reason_may_be_utf8() {
        let (head, _) = head("Status: 404 Nicht gefunden – ü\r\n\r\n".as_bytes());
        assert_eq!(head.reason.as_deref(), Some("Nicht gefunden – ü"));
    }

    #[test]
    fn last_status_wins() {
        let (head, _) = head(b"Status: 500\r\nStatus: 201 Created\r\n\r\n");
        assert_eq!(
            (head.status, head.reason.as_deref()),
            (201, Some("Created"))
        );
    }

    #[test]
    fn bad_status_values() {
        for value in [
            "",
            "abc",
            "20",
            "2x0",
            "099",
            "600",
            "999",
            "2000",
            "200OK",
            "-20",
            " 20",
            "200 bad\u{1}reason",
        ] {
            let buf = format!("Status: {value}\r\n\r\n");
            assert_eq!(
                parse_head(buf.as_bytes()),
                Err(CgiError::BadStatus(value.trim().to_owned())),
                "{value:?}"
            );
        }
        for ok in [100u16, 101, 599] {
            let (head, _) = head(format!("Status: {ok}\r\n\r\n").as_bytes());
            assert_eq!(head.status, ok);
        }
    }

    #[test]
    fn location_without_status_is_302() {
        for location in ["/login", "https://example.com/", "relative", ""] {
            let buf = format!("Location: {location}\r\n\r\n");
            let (head, _) = head(buf.as_bytes());
            assert_eq!(head.status, 302, "{location:?}");
            assert_eq!(head.reason, None);
            assert_eq!(header_list(&head), [("location", location.as_bytes())]);
        }
    }

    #[test]
    fn location_with_status_keeps_status() {
        for buf in [
            &b"Status: 301 Moved Permanently\r\nLocation: /new\r\n\r\n"[..],
            b"Location: /new\r\nStatus: 301 Moved Permanently\r\n\r\n",
        ] {
            let (head, _) = head(buf);
            assert_eq!(head.status, 301);
            assert_eq!(head.reason.as_deref(), Some("Moved Permanently"));
            assert_eq!(header_list(&head), [("location", &b"/new"[..])]);
        }
    }

    #[test]
    fn repeated_headers_kept_in_order() {
        let buf = b"Set-Cookie: a=1; path=/\r\nContent-Type: text/html\r\nset-cookie: b=2\r\nSET-COOKIE: c=3; HttpOnly\r\n\r\n";
        let (head, _) = head(buf);
        assert_eq!(
            header_list(&head),
            [
                ("set-cookie", &b"a=1; path=/"[..]),
                ("content-type", b"text/html"),
                ("set-cookie", b"b=2"),
                ("set-cookie", b"c=3; HttpOnly"),
            ]
        );
    }

    #[test]
    fn continuation_lines_are_joined() {
        let buf = b"X-Long: first\r\n  second \r\n\tthird\r\nX-Empty:\r\n later\r\nX-Blank: v\r\n \t \r\nB: 2\r\n\r\n";
        let (head, _) = head(buf);
        assert_eq!(
            header_list(&head),
            [
                ("x-long", &b"first second third"[..]),
                ("x-empty", b"later"),
                ("x-blank", b"v"),
                ("b", b"2"),
            ]
        );
    }

    #[test]
    fn continuation_of_status_and_skipped_headers() {
        let buf = b"Status: 404\r\n Not Found\r\nConnection: close\r\n  more\r\nA: 1\r\n\r\n";
        let (head, _) = head(buf);
        assert_eq!(
            (head.status, head.reason.as_deref()),
            (404, Some("Not Found"))
        );
        assert_eq!(header_list(&head), [("a", &b"1"[..])]);
    }

    #[test]
    fn continuation_without_header_is_an_error() {
        assert_eq!(
            parse_head(b" folded\r\nA: 1\r\n\r\n"),
            Err(CgiError::BadHeaderLine(" folded".to_owned()))
        );
    }

    #[test]
    fn hop_by_hop_headers_are_skipped() {
        let buf = b"Connection: close\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nUpgrade: websocket\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-Sum\r\nContent-Length: 5\r\n\r\nhello";
        let (head, _) = head(buf);
        assert_eq!(header_list(&head), [("content-length", &b"5"[..])]);
    }

    #[test]
    fn whitespace_around_values_is_trimmed() {
        let (head, _) = head(b"A:   spaced \t \r\nB:\tx y\r\nC:\r\nD:  \r\n\r\n");
        assert_eq!(
            header_list(&head),
            [("a", &b"spaced"[..]), ("b", b"x y"), ("c", b""), ("d", b"")]
        );
    }

    #[test]
    fn line_without_colon_is_an_error() {
        assert_eq!(
            parse_head(b"A: 1\r\nHTTP/1.1 200 OK\r\n\r\n"),
            Err(CgiError::BadHeaderLine("HTTP/1.1 200 OK".to_owned()))
        );
    }

    #[test]
    fn invalid_header_names_are_errors() {
        for line in [
            &b"Bad Name: x"[..],
            b"Name : x",
            b": no name",
            b"X\0Y: v",
            b"\xC3\xBC: v",
            b"X(Y): v",
            b"\r: v",
        ] {
            let mut buf = line.to_vec();
            buf.extend_from_slice(b"\r\n\r\n");
            assert!(
                matches!(parse_head(&buf), Err(CgiError::BadHeaderLine(_))),
                "{line:?}"
            );
        }
    }

    #[test]
    fn invalid_header_values_are_errors() {
        for line in [&b"X: a\0b"[..], b"X: a\rb", b"X: \x7F", b"X: a\x1Bb"] {
            let mut buf = line.to_vec();
            buf.extend_from_slice(b"\r\n\r\n");
            assert!(
                matches!(parse_head(&buf), Err(CgiError::BadHeaderLine(_))),
                "{line:?}"
            );
        }
        // obs-text is allowed in values.
        let (head, _) = head(b"X: caf\xE9\r\n\r\n");
        assert_eq!(header_list(&head), [("x", &b"caf\xE9"[..])]);
    }

    #[test]
    fn error_messages_quote_a_bounded_snippet() {
        let mut buf = vec![b'x'; 1000];
        buf.extend_from_slice(b"\r\n\r\n");
        let Err(CgiError::BadHeaderLine(line)) = parse_head(&buf) else {
            panic!("expected BadHeaderLine");
        };
        assert_eq!(line.len(), ERROR_SNIPPET_LEN);
    }

    #[test]
    fn too_long_head() {
        let filler = |len: usize| {
            let mut buf = b"X: ".to_vec();
            buf.resize(len, b'a');
            buf
        };
        // Short of the limit without an end: wait for more.
        assert_eq!(parse_head(&filler(MAX_HEAD_LEN - 1)), Ok(None));
        // At the limit without an end: no end can still fit.
        assert_eq!(parse_head(&filler(MAX_HEAD_LEN)), Err(CgiError::TooLong));
        assert_eq!(
            parse_head(&filler(MAX_HEAD_LEN * 2)),
            Err(CgiError::TooLong)
        );
        // A head of exactly MAX_HEAD_LEN bytes (empty line included) is accepted...
        let mut exact = filler(MAX_HEAD_LEN - 4);
        exact.extend_from_slice(b"\r\n\r\nbody");
        let (_, body_start) = head(&exact);
        assert_eq!(body_start, MAX_HEAD_LEN);
        // ...one byte more is not, even when it is all buffered.
        let mut over = filler(MAX_HEAD_LEN - 3);
        over.extend_from_slice(b"\r\n\r\nbody");
        assert_eq!(parse_head(&over), Err(CgiError::TooLong));
        // With the hint, too.
        assert_eq!(
            parse_head_from(&filler(MAX_HEAD_LEN), MAX_HEAD_LEN - 1),
            Err(CgiError::TooLong)
        );
    }

    #[test]
    fn fuzz_parse_head_never_panics() {
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Bytes biased towards the ones the parser cares about.
        let alphabet = b"\r\n\r\n: \tSsLl0459Xx\0\x7F\xFF";
        for _ in 0..5000 {
            let len = (next() % 64) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let hint = (next() % 80) as usize;
            for result in [parse_head(&buf), parse_head_from(&buf, hint)] {
                if let Ok(Some((head, body_start))) = result {
                    assert!(body_start <= buf.len());
                    assert!((100..=599).contains(&head.status));
                }
            }
        }
    }
}
