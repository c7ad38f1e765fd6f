//! Raw HTTP/1.1 on the wire: a request as bytes, the response read to EOF,
//! a reset or 5 s of silence, and parsed just enough to tell whether its
//! framing says it is whole. For tests that must see what a client would
//! (a cut body, a closed connection), not what an HTTP client library makes
//! of it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a raw connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Eof,
    Reset,
    /// Nothing more for 5 s with the connection still open.
    Idle,
}

/// One HTTP/1.1 response as read off the wire.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Its framing says it is whole: a chunked body with its last chunk, all
    /// of Content-Length, or a close-delimited body ended by a clean EOF.
    pub complete: bool,
    pub ending: Ending,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` on a new connection and reads until EOF, a reset, or
/// 5 s of silence. None when not even a response head came back.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Option<Raw> {
    let (bytes, ending) = raw_bytes(addr, request).await;
    parse_raw(&bytes, ending)
}

/// Sends `request` (maybe several pipelined requests) on a new connection
/// and returns every byte that came back, and how the connection ended.
pub async fn raw_bytes(addr: SocketAddr, request: &[u8]) -> (Vec<u8>, Ending) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let ending = loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Err(_) => break Ending::Idle,
            Ok(Ok(0)) => break Ending::Eof,
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break Ending::Reset,
        }
    };
    (bytes, ending)
}

/// The first response in `bytes`.
pub fn parse_raw(bytes: &[u8], ending: Ending) -> Option<Raw> {
    parse_one(bytes, ending).map(|(raw, _)| raw)
}

/// Every response in `bytes`, one after the other as their framing delimits
/// them (what a client reading the connection would take them for).
pub fn responses(mut bytes: &[u8], ending: Ending) -> Vec<Raw> {
    let mut out = Vec::new();
    while let Some((raw, used)) = parse_one(bytes, ending) {
        let whole = raw.complete;
        out.push(raw);
        if !whole || used >= bytes.len() {
            break;
        }
        bytes = &bytes[used..];
    }
    out
}

/// The response at the start of `bytes` and how many bytes it took.
fn parse_one(bytes: &[u8], ending: Ending) -> Option<(Raw, usize)> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let rest = &bytes[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut raw = Raw {
        status,
        headers,
        body: Vec::new(),
        complete: false,
        ending,
    };
    let used;
    if raw
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        let (body, complete, taken) = dechunk(rest);
        raw.body = body;
        raw.complete = complete;
        used = taken;
    } else if let Some(len) = raw.header("content-length") {
        let len: usize = len.parse().expect("numeric Content-Length");
        raw.body = rest[..rest.len().min(len)].to_vec();
        raw.complete = rest.len() >= len;
        used = rest.len().min(len);
    } else {
        raw.body = rest.to_vec();
        raw.complete = ending == Ending::Eof;
        used = rest.len();
    }
    Some((raw, head_end + 4 + used))
}

/// Decodes a chunked body: (data, whether the last chunk and its CRLF came,
/// bytes taken).
pub fn dechunk(all: &[u8]) -> (Vec<u8>, bool, usize) {
    let mut rest = all;
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (body, false, all.len());
        };
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return (body, false, all.len());
        };
        rest = &rest[eol + 2..];
        if size == 0 {
            let complete = rest.starts_with(b"\r\n");
            let taken = all.len() - rest.len() + if complete { 2 } else { 0 };
            return (body, complete, taken);
        }
        if rest.len() < size + 2 {
            body.extend_from_slice(&rest[..rest.len().min(size)]);
            return (body, false, all.len());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
