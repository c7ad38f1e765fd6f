//! The session save handlers, one vocabulary for fpmlb: the name PHP knows a handler by
//! (`session.save_handler`), the extension providing it, the port it connects to by default,
//! the prefix it puts before a session id, and the kind of store fpmlb reads it from.

use std::fmt;

use serde::{Serialize, Serializer};

/// Default port of php-memcached (libmemcached's `MEMCACHED_DEFAULT_PORT`).
const MEMCACHED_PORT: u16 = 11211;
/// Default port of phpredis' `redis` handler.
const REDIS_PORT: u16 = 6379;

/// A session save handler (`session.save_handler`, matched case-insensitively like PHP).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Handler {
    /// `files`: one directory on each node's disk.
    Files,
    /// `memcached` (php-memcached).
    Memcached,
    /// `memcache` (pecl-memcache).
    Memcache,
    /// `redis` (phpredis).
    Redis,
    /// `rediscluster` (phpredis).
    RedisCluster,
    /// Any other handler (`user`, `sqlite`, ...), lowercased.
    Other(String),
}

impl Handler {
    /// The handler named `name` (trimmed, case-insensitive).
    pub fn from_name(name: &str) -> Handler {
        let name = name.trim().to_ascii_lowercase();
        match name.as_str() {
            "files" => Handler::Files,
            "memcached" => Handler::Memcached,
            "memcache" => Handler::Memcache,
            "redis" => Handler::Redis,
            "rediscluster" => Handler::RedisCluster,
            _ => Handler::Other(name),
        }
    }

    /// The name PHP knows the handler by.
    pub fn name(&self) -> &str {
        match self {
            Handler::Files => "files",
            Handler::Memcached => "memcached",
            Handler::Memcache => "memcache",
            Handler::Redis => "redis",
            Handler::RedisCluster => "rediscluster",
            Handler::Other(name) => name,
        }
    }

    /// The PHP extension providing the handler, `None` for built-in or unknown ones.
    pub fn extension(&self) -> Option<&'static str> {
        match self {
            Handler::Memcached => Some("memcached"),
            Handler::Memcache => Some("memcache"),
            Handler::Redis | Handler::RedisCluster => Some("redis"),
            Handler::Files | Handler::Other(_) => None,
        }
    }

    /// The port the handler connects to when a save path names a host without one: 11211
    /// for php-memcached, 6379 for phpredis' `redis`; 0 for pecl-memcache, which really
    /// connects to port 0 (and fails), and for the others, which have no default (a
    /// `rediscluster` seed must name its port).
    pub fn default_port(&self) -> u16 {
        match self {
            Handler::Memcached => MEMCACHED_PORT,
            Handler::Redis => REDIS_PORT,
            Handler::Memcache | Handler::RedisCluster | Handler::Files | Handler::Other(_) => 0,
        }
    }

    /// The prefix the handler puts before a session id in its store when no setting gives
    /// another (`memcached.sess_prefix`, the `prefix` of a phpredis save path): checked
    /// against php-memcached, pecl-memcache and phpredis, and against real servers written by
    /// real php-fpm (tests/store.rs). pecl-memcache, `files` and others use the bare id.
    pub fn default_key_prefix(&self) -> &'static str {
        match self {
            Handler::Memcached => "memc.sess.key.",
            Handler::Redis => "PHPREDIS_SESSION:",
            Handler::RedisCluster => "PHPREDIS_CLUSTER_SESSION:",
            Handler::Memcache | Handler::Files | Handler::Other(_) => "",
        }
    }

    /// The kind of store fpmlb reads the handler's sessions from, `None` when it cannot
    /// (`files` on each node's disk, unknown handlers).
    pub fn store_kind(&self) -> Option<StoreKind> {
        match self {
            Handler::Memcached | Handler::Memcache => Some(StoreKind::Memcached),
            Handler::Redis => Some(StoreKind::Redis),
            Handler::RedisCluster => Some(StoreKind::RedisCluster),
            Handler::Files | Handler::Other(_) => None,
        }
    }
}

impl fmt::Display for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Handler {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// The kind of session store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum StoreKind {
    /// One or more memcached servers (php-memcached or pecl-memcache).
    Memcached,
    /// One or more stand-alone Redis servers (phpredis `redis` handler).
    Redis,
    /// A Redis Cluster, named by seed nodes (phpredis `rediscluster` handler).
    RedisCluster,
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreKind::Memcached => "memcached",
            StoreKind::Redis => "redis",
            StoreKind::RedisCluster => "redis cluster",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::save_path::digest_secret;
    use crate::save_path::testing::spec;

    #[test]
    fn handler_names() {
        assert_eq!(Handler::from_name(" MemCached "), Handler::Memcached);
        assert_eq!(Handler::from_name("rediscluster"), Handler::RedisCluster);
        assert_eq!(Handler::from_name("User"), Handler::Other("user".into()));
        assert_eq!(Handler::Redis.extension(), Some("redis"));
        assert_eq!(
            serde_json::to_string(&Handler::Memcache).unwrap(),
            "\"memcache\""
        );
        let s = spec("user", "db://u:pw@h/x");
        assert_eq!(
            s.options["save_path"],
            format!("db://{}@h/x", digest_secret(b"u:pw"))
        );
    }

    #[test]
    fn handler_kinds() {
        assert_eq!(
            Handler::from_name("memcached").store_kind(),
            Some(StoreKind::Memcached)
        );
        assert_eq!(
            Handler::from_name("memcache").store_kind(),
            Some(StoreKind::Memcached)
        );
        assert_eq!(
            Handler::from_name("REDIS").store_kind(),
            Some(StoreKind::Redis)
        );
        assert_eq!(
            Handler::from_name("rediscluster").store_kind(),
            Some(StoreKind::RedisCluster)
        );
        assert_eq!(Handler::from_name("files").store_kind(), None);
    }

    #[test]
    fn default_ports() {
        assert_eq!(Handler::Memcached.default_port(), 11211);
        assert_eq!(Handler::Redis.default_port(), 6379);
        assert_eq!(Handler::Memcache.default_port(), 0);
        assert_eq!(Handler::RedisCluster.default_port(), 0);
    }
}
