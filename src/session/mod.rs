//! Does every node share PHP sessions through the same store?
//!
//! `probe` runs conf/probe.php on a node over FastCGI; `config` normalises
//! save paths and compares effective settings (pure); `store` asks
//! memcached/Redis directly; `check` runs a whole cluster check (probe,
//! compare, store, cross-node round trip); `verdict` holds its results and
//! `render` prints them for people.

pub mod check;
pub mod config;
pub mod probe;
pub mod render;
pub mod store;
pub mod verdict;
