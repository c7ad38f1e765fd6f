//! memcached over the wire, every read bounded: the text protocol
//! (`version`, `get`, and the meta commands of `meta`) and, for servers
//! that want a login, the binary protocol with SASL PLAIN (`version`,
//! `get`): what PHP's memcached extension speaks in each case.
//!
//! A memcached server is outside fpmlb, and which servers are asked can
//! come from a node's own `session.save_path`: every length it sends is
//! checked before anything is allocated for it ([`MAX_LINE`],
//! [`MAX_VALUE`]), and what it says is escaped before it reaches a log
//! line or a report. Time is bounded by the caller (`within`).

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::{StoreAddr, StoreError};
use crate::fastcgi::exchange::escape_log_text_within;

/// Longest reply line read (a reply line is a few dozen bytes).
pub(super) const MAX_LINE: usize = 1024;
/// Largest value read back (sessions and lock keys are far smaller).
pub(super) const MAX_VALUE: usize = 4 * 1024 * 1024;

/// Most of a server's own text kept for an error message.
const MAX_SHOWN: usize = 200;

/// One connection to one memcached server.
pub(super) struct Wire {
    reader: BufReader<Box<dyn AsyncRead + Send + Unpin>>,
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    server: String,
}

/// The binary protocol's header (24 bytes) of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    opcode: u8,
    key_len: usize,
    extras_len: usize,
    status: u16,
    body_len: usize,
}

const HEADER_LEN: usize = 24;
const REQUEST_MAGIC: u8 = 0x80;
const RESPONSE_MAGIC: u8 = 0x81;
const OP_GET: u8 = 0x00;
const OP_VERSION: u8 = 0x0b;
const OP_SASL_AUTH: u8 = 0x21;
const STATUS_OK: u16 = 0x0000;
const STATUS_NOT_FOUND: u16 = 0x0001;
const STATUS_AUTH_ERROR: u16 = 0x0020;

/// A server's text, escaped and cut, for an error message.
pub(super) fn shown(text: &[u8]) -> String {
    escape_log_text_within(text, MAX_SHOWN)
}

impl Wire {
    pub(super) async fn connect(addr: &StoreAddr) -> Result<Wire, StoreError> {
        let server = addr.to_string();
        let connect_error = |e: std::io::Error| StoreError::Connect {
            server: server.clone(),
            reason: e.to_string(),
        };
        let (read, write): (
            Box<dyn AsyncRead + Send + Unpin>,
            Box<dyn AsyncWrite + Send + Unpin>,
        ) = match addr {
            StoreAddr::Tcp { host, port } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(connect_error)?;
                let _ = stream.set_nodelay(true);
                let (r, w) = stream.into_split();
                (Box::new(r), Box::new(w))
            }
            StoreAddr::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(connect_error)?;
                let (r, w) = stream.into_split();
                (Box::new(r), Box::new(w))
            }
        };
        Ok(Wire {
            reader: BufReader::new(read),
            writer: write,
            server,
        })
    }

    fn error(&self, reason: String) -> StoreError {
        StoreError::Server {
            server: self.server.clone(),
            reason,
        }
    }

    fn io_error(&self, e: &std::io::Error) -> StoreError {
        self.error(e.to_string())
    }

    pub(super) async fn send(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        match self.writer.write_all(bytes).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.io_error(&e)),
        }
    }

    /// The next reply line, without its CRLF (at most [`MAX_LINE`] bytes).
    pub(super) async fn line(&mut self) -> Result<Vec<u8>, StoreError> {
        let mut line = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await;
        if let Err(e) = read {
            return Err(self.io_error(&e));
        }
        if !line.ends_with(b"\r\n") {
            return Err(self.error("no complete reply line".to_string()));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    /// Exactly `n` bytes; the caller checked `n` against [`MAX_VALUE`].
    pub(super) async fn exact(&mut self, n: usize) -> Result<Vec<u8>, StoreError> {
        let mut buf = vec![0u8; n];
        match self.reader.read_exact(&mut buf).await {
            Ok(_) => Ok(buf),
            Err(e) => Err(self.error(format!("reading the value: {e}"))),
        }
    }

    /// Text protocol: `version`.
    pub(super) async fn version(&mut self) -> Result<String, StoreError> {
        self.send(b"version\r\n").await?;
        let line = self.line().await?;
        match line.strip_prefix(b"VERSION ") {
            Some(version) => Ok(shown(version)),
            None => Err(self.error(format!("unexpected reply to version: {}", shown(&line)))),
        }
    }

    /// Text protocol: `get <key>` (a key checked by `memcached_key`).
    pub(super) async fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.send(format!("get {key}\r\n").as_bytes()).await?;
        let line = self.line().await?;
        if line == b"END" {
            return Ok(None);
        }
        let size = value_size(&line, key).map_err(|reason| self.error(reason))?;
        let mut value = self.exact(size + 2).await?;
        if !value.ends_with(b"\r\n") {
            return Err(self.error("a value not followed by CRLF".to_string()));
        }
        value.truncate(size);
        let end = self.line().await?;
        if end != b"END" {
            return Err(self.error(format!("unexpected line after the value: {}", shown(&end))));
        }
        Ok(Some(value))
    }

    /// Binary protocol: logs in with SASL PLAIN.
    pub(super) async fn sasl_plain(&mut self, user: &str, pass: &str) -> Result<(), StoreError> {
        let mut credentials = Vec::with_capacity(user.len() + pass.len() + 2);
        credentials.push(0);
        credentials.extend_from_slice(user.as_bytes());
        credentials.push(0);
        credentials.extend_from_slice(pass.as_bytes());
        let (header, body) = self.binary(OP_SASL_AUTH, b"PLAIN", &credentials).await?;
        match header.status {
            STATUS_OK => Ok(()),
            STATUS_AUTH_ERROR => Err(StoreError::Auth {
                server: self.server.clone(),
                reason: format!("SASL PLAIN refused: {}", shown(&body)),
            }),
            status => Err(self.error(format!(
                "SASL PLAIN: status {status:#06x}: {}",
                shown(&body)
            ))),
        }
    }

    /// Binary protocol: `version`.
    pub(super) async fn binary_version(&mut self) -> Result<String, StoreError> {
        let (header, body) = self.binary(OP_VERSION, b"", b"").await?;
        match header.status {
            STATUS_OK => Ok(shown(&body)),
            status => Err(self.status_error("version", status, &body)),
        }
    }

    /// Binary protocol: `get <key>`.
    pub(super) async fn binary_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (header, mut body) = self.binary(OP_GET, key.as_bytes(), b"").await?;
        match header.status {
            STATUS_OK => {
                // Extras (the flags) and any key come before the value.
                body.drain(..header.extras_len + header.key_len);
                Ok(Some(body))
            }
            STATUS_NOT_FOUND => Ok(None),
            status => Err(self.status_error("get", status, &body)),
        }
    }

    fn status_error(&self, what: &str, status: u16, body: &[u8]) -> StoreError {
        if status == STATUS_AUTH_ERROR {
            return StoreError::Auth {
                server: self.server.clone(),
                reason: format!("{what}: {}", shown(body)),
            };
        }
        self.error(format!("{what}: status {status:#06x}: {}", shown(body)))
    }

    /// One binary request without extras, and its response: the header and
    /// the whole body (extras, key, value).
    async fn binary(
        &mut self,
        opcode: u8,
        key: &[u8],
        value: &[u8],
    ) -> Result<(Header, Vec<u8>), StoreError> {
        let request = encode_request(opcode, key, value)
            .ok_or_else(|| self.error("a request too large for the binary protocol".into()))?;
        self.send(&request).await?;
        let mut raw = [0u8; HEADER_LEN];
        if let Err(e) = self.reader.read_exact(&mut raw).await {
            return Err(self.io_error(&e));
        }
        let header = parse_header(&raw).map_err(|reason| self.error(reason))?;
        if header.opcode != opcode {
            return Err(self.error(format!(
                "the answer to opcode {opcode:#04x} is for {:#04x}",
                header.opcode
            )));
        }
        let body = self.exact(header.body_len).await?;
        Ok((header, body))
    }
}

/// The size in a text `VALUE <key> <flags> <bytes> [<cas>]` line for `key`.
fn value_size(line: &[u8], key: &str) -> Result<usize, String> {
    let text =
        std::str::from_utf8(line).map_err(|_| format!("unexpected reply: {}", shown(line)))?;
    let mut words = text.split_ascii_whitespace();
    if words.next() != Some("VALUE") {
        return Err(format!("unexpected reply to get: {}", shown(line)));
    }
    if words.next() != Some(key) {
        return Err(format!("a value for another key: {}", shown(line)));
    }
    let size: usize = words
        .nth(1)
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| format!("no size in reply to get: {}", shown(line)))?;
    if size > MAX_VALUE {
        return Err(format!("value of {size} bytes is too large to read"));
    }
    Ok(size)
}

/// A binary request header and body; None when a length does not fit.
fn encode_request(opcode: u8, key: &[u8], value: &[u8]) -> Option<Vec<u8>> {
    let key_len = u16::try_from(key.len()).ok()?;
    let body_len = u32::try_from(key.len() + value.len()).ok()?;
    let mut out = Vec::with_capacity(HEADER_LEN + key.len() + value.len());
    out.push(REQUEST_MAGIC);
    out.push(opcode);
    out.extend_from_slice(&key_len.to_be_bytes());
    out.push(0); // extras length
    out.push(0); // data type
    out.extend_from_slice(&[0, 0]); // vbucket
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(&[0; 4]); // opaque
    out.extend_from_slice(&[0; 8]); // cas
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    Some(out)
}

/// A binary response header, its lengths checked before anything is read.
fn parse_header(raw: &[u8; HEADER_LEN]) -> Result<Header, String> {
    let [
        magic,
        opcode,
        k0,
        k1,
        extras,
        _data_type,
        s0,
        s1,
        b0,
        b1,
        b2,
        b3,
        ..,
    ] = *raw;
    if magic != RESPONSE_MAGIC {
        return Err(format!(
            "not a binary protocol response (magic {magic:#04x})"
        ));
    }
    let key_len = usize::from(u16::from_be_bytes([k0, k1]));
    let extras_len = usize::from(extras);
    let body_len = u32::from_be_bytes([b0, b1, b2, b3]);
    let body_len = usize::try_from(body_len).unwrap_or(usize::MAX);
    if body_len > MAX_VALUE + MAX_LINE {
        return Err(format!(
            "a response of {body_len} bytes is too large to read"
        ));
    }
    if key_len + extras_len > body_len {
        return Err(format!(
            "a response whose key and extras ({} bytes) exceed its body ({body_len})",
            key_len + extras_len
        ));
    }
    Ok(Header {
        opcode,
        key_len,
        extras_len,
        status: u16::from_be_bytes([s0, s1]),
        body_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server on a unix socket in `dir` that answers the first request
    /// with `answer`, then keeps the connection open.
    async fn server(dir: &std::path::Path, answer: Vec<u8>) -> StoreAddr {
        let path = dir.join("mc.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 512];
            let _ = s.read(&mut request).await;
            let _ = s.write_all(&answer).await;
            std::future::pending::<()>().await;
        });
        StoreAddr::Unix(path)
    }

    async fn wire(answer: &[u8]) -> (tempfile::TempDir, Wire) {
        let dir = tempfile::tempdir().unwrap();
        let addr = server(dir.path(), answer.to_vec()).await;
        let wire = Wire::connect(&addr).await.unwrap();
        (dir, wire)
    }

    #[tokio::test]
    async fn text_get_reads_a_value_a_miss_and_refuses_a_huge_length() {
        let (_d, mut w) = wire(b"VALUE k 0 3\r\nabc\r\nEND\r\n").await;
        assert_eq!(w.get("k").await.unwrap(), Some(b"abc".to_vec()));
        let (_d, mut w) = wire(b"END\r\n").await;
        assert_eq!(w.get("k").await.unwrap(), None);
        // A length far past what is read: refused before any allocation.
        let (_d, mut w) = wire(b"VALUE k 0 17592186044416\r\n").await;
        let e = w.get("k").await.unwrap_err().to_string();
        assert!(e.contains("too large"), "{e}");
        let (_d, mut w) = wire(b"VALUE other 0 3\r\nabc\r\nEND\r\n").await;
        assert!(w.get("k").await.is_err());
        let (_d, mut w) = wire(b"SERVER_ERROR out of memory\x1b[31m\r\n").await;
        let e = w.get("k").await.unwrap_err().to_string();
        assert!(e.contains("SERVER_ERROR") && !e.contains('\x1b'), "{e}");
    }

    #[tokio::test]
    async fn text_version() {
        let (_d, mut w) = wire(b"VERSION 1.6.18\r\n").await;
        assert_eq!(w.version().await.unwrap(), "1.6.18");
        let (_d, mut w) = wire(&[b'x'; 5000]).await;
        assert!(w.version().await.is_err(), "a line past MAX_LINE");
    }

    fn response(opcode: u8, status: u16, extras: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = vec![RESPONSE_MAGIC, opcode, 0, 0];
        out.push(u8::try_from(extras.len()).unwrap());
        out.push(0);
        out.extend_from_slice(&status.to_be_bytes());
        let total = u32::try_from(extras.len() + value.len()).unwrap();
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&[0; 12]);
        out.extend_from_slice(extras);
        out.extend_from_slice(value);
        out
    }

    #[tokio::test]
    async fn binary_get_version_and_login() {
        let (_d, mut w) = wire(&response(OP_GET, 0, &[0, 0, 0, 1], b"session")).await;
        assert_eq!(w.binary_get("k").await.unwrap(), Some(b"session".to_vec()));
        let (_d, mut w) = wire(&response(OP_GET, 1, &[], b"Not found")).await;
        assert_eq!(w.binary_get("k").await.unwrap(), None);
        let (_d, mut w) = wire(&response(OP_VERSION, 0, &[], b"1.6.18")).await;
        assert_eq!(w.binary_version().await.unwrap(), "1.6.18");
        let (_d, mut w) = wire(&response(OP_SASL_AUTH, 0, &[], b"Authenticated")).await;
        w.sasl_plain("u", "p").await.unwrap();
        let (_d, mut w) = wire(&response(OP_SASL_AUTH, 0x20, &[], b"Auth failure")).await;
        assert!(matches!(
            w.sasl_plain("u", "p").await,
            Err(StoreError::Auth { .. })
        ));
    }

    #[test]
    fn binary_lengths_are_checked_before_reading() {
        let mut raw = [0u8; HEADER_LEN];
        raw[0] = RESPONSE_MAGIC;
        // Total body of 4 GiB - 1: refused, nothing allocated.
        raw[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_header(&raw).unwrap_err().contains("too large"));
        // A key longer than the body.
        raw[8..12].copy_from_slice(&4u32.to_be_bytes());
        raw[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert!(parse_header(&raw).unwrap_err().contains("exceed"));
        raw[0] = b'V';
        assert!(parse_header(&raw).unwrap_err().contains("magic"));
    }

    #[test]
    fn requests_are_framed() {
        let r = encode_request(OP_SASL_AUTH, b"PLAIN", b"\0u\0p").unwrap();
        assert_eq!(r.len(), HEADER_LEN + 9);
        assert_eq!(&r[..2], &[REQUEST_MAGIC, OP_SASL_AUTH]);
        assert_eq!(&r[2..4], &5u16.to_be_bytes());
        assert_eq!(&r[8..12], &9u32.to_be_bytes());
        assert_eq!(&r[HEADER_LEN..], b"PLAIN\0u\0p");
    }
}
