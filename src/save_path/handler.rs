//! The PHP session save handlers fpmlb knows, by name (`session.save_handler`).

use std::fmt;

use serde::{Serialize, Serializer};

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
}
