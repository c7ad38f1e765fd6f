//! Does every node share PHP sessions through the same store?
//!
//! `probe` runs conf/probe.php on a node over FastCGI and `node` reads its
//! answer (the node's effective session settings); `compare` decides what
//! every node is expected to use and what differs (pure; save paths are
//! parsed by `crate::save_path`); `store` asks memcached/Redis directly;
//! `round_trip` runs a whole cluster check (probe, compare, store, and the
//! cross-node round trip it is built around); `verdict` holds its results
//! and `render` prints them for people. `node_safety` asks each node what
//! decides php-fpm's PATH_INFO walk-back there, for `fpmlb check`.

pub mod compare;
#[cfg(test)]
mod fixtures;
pub mod node;
pub mod node_safety;
pub mod probe;
pub mod render;
pub mod round_trip;
pub mod store;
pub mod verdict;
