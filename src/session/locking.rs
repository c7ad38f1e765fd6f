//! Session locks: how each node locks ([`describe`]), and what a lock key found
//! in the store after a request ended means ([`left_behind`]).
//!
//! A lock should live exactly as long as the request that took it. The round
//! trip looks for the lock key right after its own requests end: after a
//! normal write, and after `session_start(['read_and_close' => true])`, which
//! applications use to read a session without blocking the next request.
//! pecl-memcache releases its lock only on a write (memcache_session.c: only
//! PS_WRITE_FUNC resets `<key>.lock` to 0; PS_CLOSE_FUNC leaves it), so after
//! `read_and_close` the next request of that session waits until
//! `memcache.lock_timeout` expires it (15 s by default).

use std::time::Duration;

use crate::save_path::Handler;
use crate::session::compare::Difference;
use crate::session::consequence::Consequence;
use crate::session::node::NodeConfig;
use crate::session::rules::{Judgement, Proof};

/// The node's locking settings, in words.
pub fn describe(cfg: &NodeConfig) -> String {
    let get = |key: &str| cfg.ini_value(key).unwrap_or("").trim().to_string();
    let on = |key: &str| crate::save_path::parse_bool(&get(key));
    let max_exec = get("max_execution_time");
    let expiry = |setting: &str, value: String| {
        if value.is_empty() || value == "0" {
            format!(
                "a lock expires after max_execution_time ({} s) ({setting} = 0)",
                or_zero(&max_exec)
            )
        } else {
            format!("a lock expires after {value} s ({setting})")
        }
    };
    match cfg.save_handler() {
        // php_memcached_session.c s_lock_session: memcached_add of lock.<id>, retried
        // lock_retries times, waiting lock_wait_min doubling up to lock_wait_max ms.
        Handler::Memcached if on("memcached.sess_locking") => format!(
            "memcached.sess_locking on: waits {}..{} ms between up to {} retries; {}",
            get("memcached.sess_lock_wait_min"),
            get("memcached.sess_lock_wait_max"),
            get("memcached.sess_lock_retries"),
            expiry(
                "memcached.sess_lock_expire",
                get("memcached.sess_lock_expire")
            )
        ),
        Handler::Memcached => "memcached.sess_locking off: no session lock".to_string(),
        Handler::Memcache => format!(
            "pecl-memcache always locks: a lock expires after memcache.lock_timeout = {} s, and only a write releases it",
            get("memcache.lock_timeout")
        ),
        // redis_session.c lock_acquire: SET <key>_LOCK NX PX, lock_retries tries,
        // usleep(lock_wait_time) between them (microseconds).
        Handler::Redis if on("redis.session.locking_enabled") => format!(
            "redis.session.locking_enabled on: up to {} retries {} µs apart; {}",
            get("redis.session.lock_retries"),
            get("redis.session.lock_wait_time"),
            expiry(
                "redis.session.lock_expire",
                get("redis.session.lock_expire")
            )
        ),
        Handler::Redis => "redis.session.locking_enabled off: no session lock".to_string(),
        Handler::RedisCluster => "the rediscluster handler takes no session lock".to_string(),
        // mod_files.c ps_files_open: flock(LOCK_EX) on the open file, released on close.
        Handler::Files => {
            "flock() on the session file, released when the request closes it".to_string()
        }
        Handler::Other(name) => format!("{name}: unknown"),
    }
}

fn or_zero(v: &str) -> &str {
    if v.is_empty() { "0" } else { v }
}

/// Whether a lock key holding `value` means the lock is held: pecl-memcache keeps
/// its counter at 0 once released (memcache_session.c PS_WRITE_FUNC), the others
/// delete their key.
pub fn held(handler: &Handler, value: &[u8]) -> bool {
    match handler {
        Handler::Memcache => std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .is_none_or(|n| n != 0),
        _ => true,
    }
}

/// The finding for a lock held `remaining` longer after `call` ended on a node.
pub fn left_behind(cfg: &NodeConfig, call: &str, remaining: Option<Duration>) -> Difference {
    let left = match remaining {
        Some(d) => format!("held {:.1} s more", d.as_secs_f64()),
        None => "held, without expiry".to_string(),
    };
    let (setting, effect) = match cfg.save_handler() {
        Handler::Memcache => (
            format!("memcache.lock_timeout = {}", cfg.ini_value("memcache.lock_timeout").unwrap_or("15")),
            "pecl-memcache releases its session lock only when it writes: after this call the next request of the session waits until the lock expires".to_string(),
        ),
        Handler::Memcached => (
            "memcached.sess_lock_expire".to_string(),
            "the lock outlived the request: the next request of the session waits for it".to_string(),
        ),
        _ => (
            "redis.session.lock_expire".to_string(),
            "the lock outlived the request: the next request of the session waits for it".to_string(),
        ),
    };
    Difference::judged(
        "session lock",
        "released when the request ends",
        format!("{left} after {call} ended ({setting})"),
        Judgement {
            consequence: Consequence::Race,
            effect,
            proof: Proof::RoundTrip,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::fixtures::*;

    #[test]
    fn lock_values() {
        assert!(held(&Handler::Memcache, b"1"));
        assert!(held(&Handler::Memcache, b"2 "));
        assert!(!held(&Handler::Memcache, b"0"));
        assert!(held(&Handler::Memcached, b"1"));
        assert!(held(&Handler::Redis, b"host|123"));
    }

    #[test]
    fn settings_in_words() {
        let n = node(
            "web01",
            &[
                ("memcached.sess_lock_expire", Some("0")),
                ("max_execution_time", Some("30")),
            ],
        );
        let words = describe(&n);
        assert!(
            words.starts_with(
                "memcached.sess_locking on: waits 150..150 ms between up to 5 retries"
            ),
            "{words}"
        );
        assert!(words.contains("max_execution_time (30 s)"), "{words}");
        let off = node("web01", &[("memcached.sess_locking", Some("0"))]);
        assert_eq!(
            describe(&off),
            "memcached.sess_locking off: no session lock"
        );
        let mc = fixture(MEMCACHE_WEB01);
        assert!(
            describe(&mc).contains("memcache.lock_timeout = 15 s"),
            "{}",
            describe(&mc)
        );
        let d = left_behind(
            &mc,
            "session_start(['read_and_close' => true])",
            Some(Duration::from_millis(14_900)),
        );
        assert_eq!(d.consequence, Consequence::Race);
        assert!(d.found.starts_with("held 14.9 s more after session_start(['read_and_close' => true]) ended (memcache.lock_timeout = 15)"), "{}", d.found);
    }
}
