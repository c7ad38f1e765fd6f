//! memcached's meta commands (`mg`, `md`), for what the `memcache` crate cannot
//! ask: how long an item has left to live. One command per connection, text
//! protocol, every read bounded.
//!
//! `mg <key> t v` answers `VA <size> t<ttl>` then the value, `EN` on a miss
//! (memcached's doc/protocol.txt, "Meta Get"; memcached 1.6+). `t` is the
//! remaining time to live in seconds, `-1` for none. `md <key>` answers `HD`
//! or `NF`.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::{StoreAddr, StoreError};

/// Longest reply line read (a meta reply line is a few dozen bytes).
const MAX_LINE: usize = 1024;
/// Largest value read back (sessions and lock keys are far smaller).
const MAX_VALUE: usize = 4 * 1024 * 1024;

/// An item as `mg` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MetaItem {
    pub value: Vec<u8>,
    /// Remaining time to live; `None` when the item never expires.
    pub ttl: Option<Duration>,
}

/// `mg <key> t v` on one server.
pub(super) async fn meta_get(addr: &StoreAddr, key: &str) -> Result<Option<MetaItem>, StoreError> {
    let server = addr.to_string();
    let (line, mut reader) = exchange(addr, &format!("mg {key} t v\r\n")).await?;
    if line == "EN" {
        return Ok(None);
    }
    let (size, ttl) = parse_value_line(&line).map_err(|reason| StoreError::Server {
        server: server.clone(),
        reason,
    })?;
    let mut value = vec![0u8; size + 2];
    reader
        .read_exact(&mut value)
        .await
        .map_err(|e| StoreError::Server {
            server: server.clone(),
            reason: format!("reading the value: {e}"),
        })?;
    value.truncate(size);
    Ok(Some(MetaItem { value, ttl }))
}

/// `md <key>` on one server: whether it had the key.
pub(super) async fn meta_delete(addr: &StoreAddr, key: &str) -> Result<bool, StoreError> {
    let (line, _) = exchange(addr, &format!("md {key}\r\n")).await?;
    match line.as_str() {
        "HD" => Ok(true),
        "NF" => Ok(false),
        other => Err(StoreError::Server {
            server: addr.to_string(),
            reason: format!("unexpected reply to md: {other}"),
        }),
    }
}

type Reader = BufReader<Box<dyn AsyncRead + Send + Unpin>>;

/// Connects, sends `command`, reads the first reply line.
async fn exchange(addr: &StoreAddr, command: &str) -> Result<(String, Reader), StoreError> {
    let server = addr.to_string();
    let connect_error = |e: std::io::Error| StoreError::Connect {
        server: server.clone(),
        reason: e.to_string(),
    };
    let (read, mut write): (
        Box<dyn AsyncRead + Send + Unpin>,
        Box<dyn AsyncWrite + Send + Unpin>,
    ) = match addr {
        StoreAddr::Tcp { host, port } => {
            let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(connect_error)?;
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
    let io_error = |e: std::io::Error| StoreError::Server {
        server: server.clone(),
        reason: e.to_string(),
    };
    write
        .write_all(command.as_bytes())
        .await
        .map_err(io_error)?;
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    (&mut reader)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .await
        .map_err(io_error)?;
    if !line.ends_with(b"\r\n") {
        return Err(StoreError::Server {
            server,
            reason: "no complete reply line".to_string(),
        });
    }
    line.truncate(line.len() - 2);
    let line = String::from_utf8_lossy(&line).into_owned();
    if line == "ERROR" {
        return Err(StoreError::Server {
            server,
            reason: "meta commands not supported (memcached before 1.6)".to_string(),
        });
    }
    Ok((line, reader))
}

/// `VA <size> [flags]`: the value's size and the `t` flag.
fn parse_value_line(line: &str) -> Result<(usize, Option<Duration>), String> {
    let mut words = line.split_ascii_whitespace();
    if words.next() != Some("VA") {
        return Err(format!("unexpected reply to mg: {line}"));
    }
    let size: usize = words
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| format!("no size in reply to mg: {line}"))?;
    if size > MAX_VALUE {
        return Err(format!("value of {size} bytes is too large to read"));
    }
    let mut ttl = None;
    for word in words {
        if let Some(t) = word.strip_prefix('t') {
            let secs: i64 = t
                .parse()
                .map_err(|_| format!("bad ttl in reply to mg: {line}"))?;
            ttl = u64::try_from(secs).ok().map(Duration::from_secs);
        }
    }
    Ok((size, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_lines() {
        assert_eq!(
            parse_value_line("VA 1 t14"),
            Ok((1, Some(Duration::from_secs(14))))
        );
        assert_eq!(parse_value_line("VA 0 t-1"), Ok((0, None)));
        assert!(parse_value_line("HD").is_err());
        assert!(parse_value_line("VA x").is_err());
        assert!(parse_value_line("VA 99999999999").is_err());
        assert!(parse_value_line("VA 3 tzz").is_err());
    }
}
