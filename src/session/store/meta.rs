//! memcached's meta commands (`mg`, `md`), for what `get` cannot ask: how
//! long an item has left to live. One command per connection, text
//! protocol, every read bounded (`wire`).
//!
//! `mg <key> t v` answers `VA <size> t<ttl>` then the value, `EN` on a miss
//! (memcached's doc/protocol.txt, "Meta Get"; memcached 1.6+). `t` is the
//! remaining time to live in seconds, `-1` for none. `md <key>` answers `HD`
//! or `NF`.

use std::time::Duration;

use super::wire::{MAX_VALUE, Wire, shown};
use super::{StoreAddr, StoreError};

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
    let (line, mut wire) = exchange(addr, &format!("mg {key} t v\r\n")).await?;
    if line == "EN" {
        return Ok(None);
    }
    let (size, ttl) = parse_value_line(&line).map_err(|reason| StoreError::Server {
        server: server.clone(),
        reason,
    })?;
    let mut value = wire.exact(size + 2).await?;
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
            reason: format!("unexpected reply to md: {}", shown(other.as_bytes())),
        }),
    }
}

/// Connects, sends `command`, reads the first reply line.
async fn exchange(addr: &StoreAddr, command: &str) -> Result<(String, Wire), StoreError> {
    let mut wire = Wire::connect(addr).await?;
    wire.send(command.as_bytes()).await?;
    let line = wire.line().await?;
    if line == b"ERROR" {
        return Err(StoreError::Server {
            server: addr.to_string(),
            reason: "meta commands not supported (memcached before 1.6)".to_string(),
        });
    }
    Ok((String::from_utf8_lossy(&line).into_owned(), wire))
}

/// `VA <size> [flags]`: the value's size and the `t` flag.
fn parse_value_line(line: &str) -> Result<(usize, Option<Duration>), String> {
    let mut words = line.split_ascii_whitespace();
    if words.next() != Some("VA") {
        return Err(format!(
            "unexpected reply to mg: {}",
            shown(line.as_bytes())
        ));
    }
    let size: usize = words
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| format!("no size in reply to mg: {}", shown(line.as_bytes())))?;
    if size > MAX_VALUE {
        return Err(format!("value of {size} bytes is too large to read"));
    }
    let mut ttl = None;
    for word in words {
        if let Some(t) = word.strip_prefix('t') {
            let secs: i64 = t
                .parse()
                .map_err(|_| format!("bad ttl in reply to mg: {}", shown(line.as_bytes())))?;
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
