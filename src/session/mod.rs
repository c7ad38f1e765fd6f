//! Does every node share PHP sessions through the same store, and what does
//! each difference between them do to the users' sessions?
//!
//! `probe` runs conf/probe.php on a node over FastCGI and `node` reads its
//! answer (the node's effective session settings, where each came from, the
//! application's `.user.ini`); `compare` decides what every node is expected
//! to use and what differs (pure; save paths are parsed by
//! `crate::save_path`), `rules` judges each difference into a `consequence`,
//! and `cookie` knows what browsers do with a node's `Set-Cookie`; `store`
//! asks memcached/Redis directly; `round_trip` runs a whole cluster check
//! (probe, compare, store, and the cross-node round trip it is built around,
//! with `locking` for the locks it measures) and `evidence` sets what the
//! round trip showed against the configuration's judgement; `verdict` holds
//! the results, `render` prints them for people and `explain` says where
//! every setting came from. `node_safety` asks each node what decides
//! php-fpm's PATH_INFO walk-back there, for `fpmlb check`.

pub mod compare;
pub mod consequence;
pub mod cookie;
pub mod evidence;
pub mod explain;
#[cfg(test)]
mod fixtures;
pub mod locking;
pub mod node;
pub mod node_safety;
pub mod probe;
pub mod render;
pub mod round_trip;
pub mod rules;
pub mod store;
pub mod verdict;
