//! The memcached client: one server at a time (see the parent module for
//! why), `version` to check it and `get` to read a session, over `wire`:
//! the text protocol, or the binary one with SASL PLAIN when the target
//! has credentials (as PHP's memcached extension does). Bounded in time by
//! the caller (`within`), in memory by `wire`.

use std::time::Instant;

use super::wire::Wire;
use super::{Checked, Phase, StoreAddr, StoreError, StoreTarget};

/// Longest key memcached accepts.
const MEMCACHED_MAX_KEY: usize = 250;

/// Checks one memcached server: `version`, timed.
pub(super) async fn check_memcached(
    target: &StoreTarget,
    addr: &StoreAddr,
    phase: &Phase,
) -> Result<Checked, StoreError> {
    let (mut wire, sasl) = open(target, addr, phase).await?;
    let sent = Instant::now();
    let version = if sasl {
        wire.binary_version().await?
    } else {
        wire.version().await?
    };
    Ok(Checked {
        ok: true,
        rtt: sent.elapsed(),
        detail: format!("memcached {version}"),
    })
}

/// Reads `key` from one memcached server.
pub(super) async fn get_memcached(
    target: &StoreTarget,
    addr: &StoreAddr,
    key: &str,
    phase: &Phase,
) -> Result<Option<Vec<u8>>, StoreError> {
    let (mut wire, sasl) = open(target, addr, phase).await?;
    if sasl {
        wire.binary_get(key).await
    } else {
        wire.get(key).await
    }
}

/// Checks a memcached key: what the text protocol accepts, as text.
pub(super) fn memcached_key(key: &[u8]) -> Result<String, String> {
    if key.len() > MEMCACHED_MAX_KEY {
        return Err(format!(
            "{} bytes long, memcached keys are at most {MEMCACHED_MAX_KEY}",
            key.len()
        ));
    }
    if key.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err("contains a space or a control character".to_string());
    }
    std::str::from_utf8(key)
        .map(str::to_string)
        .map_err(|_| "not UTF-8 (the text protocol takes text keys)".to_string())
}

/// The SASL credentials of `target`: both or neither.
fn credentials(target: &StoreTarget) -> Result<Option<(&str, &str)>, String> {
    match (&target.username, &target.password) {
        (Some(user), Some(pass)) => Ok(Some((user.as_str(), pass.as_str()))),
        (None, None) => Ok(None),
        _ => Err("memcached SASL needs both a username and a password".to_string()),
    }
}

/// A connection of its own to one memcached server, logged in when the
/// target has credentials (then true: the binary protocol follows).
async fn open(
    target: &StoreTarget,
    addr: &StoreAddr,
    phase: &Phase,
) -> Result<(Wire, bool), StoreError> {
    let sasl = credentials(target).map_err(|reason| StoreError::Config {
        server: addr.to_string(),
        reason,
    })?;
    phase.set(Phase::CONNECT);
    let mut wire = Wire::connect(addr).await?;
    phase.set(Phase::COMMAND);
    if let Some((user, pass)) = sasl {
        wire.sasl_plain(user, pass).await?;
    }
    Ok((wire, sasl.is_some()))
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::session::store::StoreKind;
    use crate::session::store::tests::target;

    #[test]
    fn memcached_keys() {
        assert_eq!(
            memcached_key(b"memc.sess.key.abc").as_deref(),
            Ok("memc.sess.key.abc")
        );
        assert!(memcached_key(b"a b").is_err());
        assert!(memcached_key(b"a\r\nflush_all").is_err());
        assert!(memcached_key(&[b'a'; 251]).is_err());
        assert!(memcached_key(&[b'a'; 250]).is_ok());
        assert!(memcached_key(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn credentials_are_both_or_neither() {
        let mut t = target(StoreKind::Memcached);
        assert_eq!(credentials(&t), Ok(None));
        t.username = Some("user".to_string());
        assert!(credentials(&t).is_err());
        t.password = Some("p@ss word".to_string());
        assert_eq!(credentials(&t), Ok(Some(("user", "p@ss word"))));
    }
}
