//! `session.save_path` of every PHP session handler, read as the extensions read it (no I/O).
//!
//! This module turns a save path into a [`StoreSpec`] that compares across syntaxes
//! ([`parse_save_path`], [`parse_with`] with a node's own hashing settings), names the handlers
//! ([`Handler`]), and digests the credentials a path carries ([`digest_secret`],
//! [`redact_save_path`]). Errors are what the extension would refuse, with credentials redacted.
//!
//! It is a leaf: it uses nothing else of fpmlb. Two sides need the same parser: the YAML
//! configuration, so that `fpmlb config test` refuses a `session.save_path` the checker could
//! not use, and the session checker, which normalises the nodes' paths and fpmlb's own. The
//! configuration sits below the session checker (`config -> ... -> session`), so the parser
//! can live in neither `session` (the configuration would depend upward) nor `config` (which
//! owns the YAML file, not PHP's syntaxes); beside them at the bottom, both use it.
//!
//! Save path syntaxes, as the extensions themselves parse them:
//! - `memcached` (php-memcached 3, libmemcached's `memcached_servers_parse`): comma separated
//!   `host[:port[:weight]]`, `host:port weight` or `/path/to.sock`; default port 11211.
//!   Spaces do not separate servers. `PERSISTENT=id ` (php-memcached 2) is accepted here but
//!   php-memcached 3 refuses it (a note, see [`warnings`]). Servers are placed by ketama
//!   consistent hashing when `memcached.sess_consistent_hash` is on (the default): the set
//!   matters, not the order, and weights only with `sess_consistent_hash_type =
//!   ketama_weighted`; with it off (modula hashing) the order matters.
//! - `memcache` (pecl-memcache): URLs separated by commas or spaces, `tcp://host:port?weight=2`,
//!   `host:port`, `unix:///path`; `memcache.session_save_path`, when set, replaces
//!   `session.save_path`. The scheme is ignored (`udp://` is TCP too) and a missing port means
//!   port 0. `memcache.hash_strategy = standard` makes the order matter; weights always do.
//! - `redis` (phpredis): URLs separated by commas or spaces, `tcp://host:6379?weight=..&
//!   database=..&prefix=..&auth=..`, `tls://`, `unix:///path?..`, `/path`; a key goes to a
//!   server chosen by weight ranges in list order, so order and weights matter. `database`
//!   (default 0), `prefix` (default `PHPREDIS_SESSION:`) and `auth` (as a digest) must match;
//!   `timeout`, `read_timeout`, `persistent`, `persistent_id`, `retry_interval` do not count.
//! - `rediscluster` (phpredis): one query string `seed[]=host:port&seed[]=..&prefix=..&auth=..`;
//!   the seeds are a set, and two sets with a seed in common reach the same cluster (seen on a
//!   real cluster: nodes with different seeds shared sessions), so only disjoint sets differ.
//! - `files`: `[N;[MODE;]]/path`; each node's own disk unless shared, which only a round trip
//!   can tell.
//!
//! Credentials never travel in clear: the probe replaces them by `sha256:` and the first 16
//! hex digits of their SHA-256 ([`digest_secret`], [`redact_save_path`]), and this module
//! digests the clear values of fpmlb's own configuration the same way, so they compare.
//!
//! Files: `handler` (the names), `spec` (the normalised form, the entry points, `files`),
//! `memcached` and `redis` (their extensions' syntaxes), `php` (PHP's own URL, query string
//! and number parsing), `secret` (digests and redaction).

mod handler;
mod memcached;
mod php;
mod redis;
mod secret;
mod spec;
#[cfg(test)]
pub(crate) mod testing;

pub use handler::{Handler, StoreKind};
pub(crate) use php::parse_bool;
pub use redis::{RedisAuth, redis_auth};
pub use secret::{digest_secret, redact_save_path};
pub(crate) use spec::same_servers;
pub use spec::{Ini, Server, StoreSpec, parse_save_path, parse_with, warnings};
