//! What every node is expected to use, and what differs on one node.
//!
//! [`expected_from_config`] takes the store from fpmlb's `session:` section, [`majority`] from
//! the nodes themselves; [`compare`] lists, in words an operator can act on, what differs on
//! one node. Whether sessions really are shared is proven elsewhere, by a write on one node and
//! a read on another (the round trip of `session::round_trip`); this module explains *why* a node
//! would not see them.

use std::fmt;

use serde::Serialize;

use crate::save_path::{
    Handler, Ini, StoreSpec, parse_bool, parse_with, redact_save_path, same_servers,
};
use crate::session::node::NodeConfig;

/// `session.*` settings that must be the same on every node.
const SESSION_SETTINGS: &[&str] = &[
    "session.name",
    "session.serialize_handler",
    "session.gc_maxlifetime",
    "session.use_strict_mode",
    "session.cookie_domain",
    "session.cookie_path",
    "session.sid_length",
    "session.sid_bits_per_character",
];
/// php-memcached settings that must match when the handler is `memcached`.
const MEMCACHED_SETTINGS: &[&str] = &[
    "memcached.sess_prefix",
    "memcached.sess_locking",
    "memcached.sess_consistent_hash",
    "memcached.sess_consistent_hash_type",
    "memcached.sess_binary_protocol",
    "memcached.sess_number_of_replicas",
    "memcached.sess_sasl_username",
    "memcached.sess_sasl_password",
];
/// pecl-memcache settings that must match when the handler is `memcache`.
const MEMCACHE_SETTINGS: &[&str] = &[
    "memcache.hash_strategy",
    "memcache.hash_function",
    "memcache.session_redundancy",
    "memcache.session_prefix_static_key",
    "memcache.session_prefix_host_key",
    "memcache.session_prefix_host_key_remove_www",
    "memcache.session_prefix_host_key_remove_subdomain",
];
/// phpredis settings that must match when the handler is `redis` or `rediscluster`.
const REDIS_SETTINGS: &[&str] = &["redis.session.locking_enabled", "redis.session.lock_expire"];
/// Boolean settings: `On`, `yes`, `true`, `1` are the same value.
const BOOL_SETTINGS: &[&str] = &[
    "session.use_strict_mode",
    "memcached.sess_locking",
    "memcached.sess_consistent_hash",
    "memcached.sess_binary_protocol",
    "memcache.session_prefix_host_key",
    "memcache.session_prefix_host_key_remove_www",
    "memcache.session_prefix_host_key_remove_subdomain",
    "redis.session.locking_enabled",
];
/// Settings whose values the extension reads case-insensitively.
const CASELESS_SETTINGS: &[&str] = &["memcache.hash_strategy", "memcache.hash_function"];

/// One differing setting, expected vs found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The ini name (`session.save_handler`, `memcached.sess_prefix`, ...) or a pseudo-name:
    /// `session.save_path servers`, `session.save_path <option>`, `extension <name>`.
    pub setting: String,
    /// What the node should have.
    pub expected: String,
    /// What the node has.
    pub found: String,
}

impl Difference {
    fn new(
        setting: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        Difference {
            setting: setting.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, found {}",
            self.setting, self.expected, self.found
        )
    }
}

/// What every node is expected to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expected {
    /// The session store.
    pub spec: StoreSpec,
    /// The settings that must match (see [`compared_settings`]), with the reference node's
    /// values; empty when there is no reference node.
    pub ini: Ini,
    /// The node the settings were taken from.
    pub reference: Option<String>,
    /// Why this is expected, for the log and the admin API.
    pub reason: String,
}

/// The ini settings compared for a store of `handler`: the `session.*` ones that change
/// behaviour across nodes, plus the handler's extension settings.
pub fn compared_settings(handler: &Handler) -> Vec<&'static str> {
    let extra: &[&str] = match handler {
        Handler::Memcached => MEMCACHED_SETTINGS,
        Handler::Memcache => MEMCACHE_SETTINGS,
        Handler::Redis | Handler::RedisCluster => REDIS_SETTINGS,
        Handler::Files | Handler::Other(_) => &[],
    };
    SESSION_SETTINGS.iter().chain(extra).copied().collect()
}

/// The extension an ini setting belongs to, when it is not `session.*`.
fn setting_extension(key: &str) -> Option<&'static str> {
    if key.starts_with("memcached.") {
        Some("memcached")
    } else if key.starts_with("memcache.") {
        Some("memcache")
    } else if key.starts_with("redis.") {
        Some("redis")
    } else {
        None
    }
}

/// The value of `key` as the extension understands it, for comparison (unset = empty).
fn normalise_value(key: &str, value: Option<&str>) -> String {
    let v = value.unwrap_or("").trim();
    if BOOL_SETTINGS.contains(&key) {
        if parse_bool(v) { "1" } else { "0" }.to_string()
    } else if CASELESS_SETTINGS.contains(&key) {
        v.to_ascii_lowercase()
    } else {
        v.to_string()
    }
}

/// The value of `key` for an operator.
fn display_value(key: &str, value: Option<&str>) -> String {
    match value {
        None => "(unset)".to_string(),
        Some(v) if BOOL_SETTINGS.contains(&key) => {
            if parse_bool(v) { "on" } else { "off" }.to_string()
        }
        Some("") => "(empty)".to_string(),
        Some(v) => v.to_string(),
    }
}

/// Compares a node to the expected config (from fpmlb's `session:` section, or the majority
/// of nodes). Empty when the node stores sessions like expected.
pub fn compare(expected: &Expected, node: &NodeConfig) -> Vec<Difference> {
    let mut out = Vec::new();
    let want = &expected.spec.handler;
    if let Some(ext) = want.extension()
        && !node.extensions.is_loaded(ext)
    {
        out.push(Difference::new(
            format!("extension {ext}"),
            "loaded",
            "missing",
        ));
    }
    let have = node.save_handler();
    if have != *want {
        out.push(Difference::new(
            "session.save_handler",
            want.name(),
            have.name(),
        ));
    }
    match node.store_spec() {
        Err(e) => out.push(Difference::new(
            "session.save_path",
            expected.spec.to_string(),
            format!(
                "unusable ({e}): '{}'",
                redact_save_path(have.name(), node.effective_save_path())
            ),
        )),
        Ok(spec) if have == *want => compare_specs(&expected.spec, &spec, &mut out),
        Ok(spec) => {
            let (e, f) = (expected.spec.to_string(), spec.to_string());
            if e != f {
                out.push(Difference::new("session.save_path", e, f));
            }
        }
    }
    for (key, want_value) in &expected.ini {
        if let Some(ext) = setting_extension(key)
            && !node.extensions.is_loaded(ext)
        {
            continue; // reported once as "extension <name>"
        }
        let want_norm = normalise_value(key, want_value.as_deref());
        match node.ini.get(key) {
            None if want_norm == normalise_value(key, None) => {}
            None => out.push(Difference::new(
                key.clone(),
                display_value(key, want_value.as_deref()),
                "(not reported)",
            )),
            Some(found) => {
                if want_norm != normalise_value(key, found.as_deref()) {
                    out.push(Difference::new(
                        key.clone(),
                        display_value(key, want_value.as_deref()),
                        display_value(key, found.as_deref()),
                    ));
                }
            }
        }
    }
    out
}

/// Store differences between two specs of the same handler.
fn compare_specs(want: &StoreSpec, have: &StoreSpec, out: &mut Vec<Difference>) {
    let same = same_servers(want, have);
    if !same {
        let mut expected = want.servers_text();
        if want.servers.len() > 1 || have.servers.len() > 1 {
            expected = format!("{expected} ({})", want.order_text());
        }
        let mut found = have.servers_text();
        if want.handler == Handler::RedisCluster {
            found = format!("{found} (no seed in common)");
        } else if have.distribution != want.distribution && have.servers.len() > 1 {
            found = format!("{found} ({})", have.order_text());
        }
        out.push(Difference::new(
            "session.save_path servers",
            expected,
            found,
        ));
    }
    let keys: std::collections::BTreeSet<&String> =
        want.options.keys().chain(have.options.keys()).collect();
    for key in keys {
        let (w, h) = (want.options.get(key), have.options.get(key));
        if w != h {
            out.push(Difference::new(
                format!("session.save_path {key}"),
                w.map_or("(none)", String::as_str),
                h.map_or("(none)", String::as_str),
            ));
        }
    }
}

/// Groups of indexes into `items`: an item joins the first group with a member `same` as it,
/// so groups are ordered by their first member.
fn group<T>(items: &[T], same: impl Fn(&T, &T) -> bool) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|g| g.iter().any(|&m| same(&items[m], item)))
        {
            Some(members) => members.push(i),
            None => groups.push(vec![i]),
        }
    }
    groups
}

/// The largest group (the earliest one on a tie) and whether there was a tie.
fn pick(groups: &[Vec<usize>]) -> Option<(&Vec<usize>, bool)> {
    let best = groups
        .iter()
        .fold(None::<&Vec<usize>>, |best, g| match best {
            Some(b) if b.len() >= g.len() => Some(b),
            _ => Some(g),
        })?;
    let tie = groups.iter().filter(|g| g.len() == best.len()).count() > 1;
    Some((best, tie))
}

/// The expected config when fpmlb's config has no `session:` section: the store most nodes
/// use, then among those nodes the most common values of the [`compared_settings`]; ties are
/// broken by the first node in config order (the order of `nodes`). Nodes whose save path is
/// unusable cannot be the reference. `None` when no node has a usable one.
pub fn majority(nodes: &[NodeConfig]) -> Option<Expected> {
    let usable: Vec<(&NodeConfig, StoreSpec)> = nodes
        .iter()
        .filter_map(|n| n.store_spec().ok().map(|s| (n, s)))
        .collect();
    let store_groups = group(&usable, |(_, a), (_, b)| a.same_store(b));
    let (store_group, store_tie) = pick(&store_groups)?;
    let spec = &usable[store_group[0]].1;
    let keys = compared_settings(&spec.handler);
    let members: Vec<&NodeConfig> = store_group.iter().map(|&i| usable[i].0).collect();
    let values: Vec<Vec<String>> = members
        .iter()
        .map(|n| {
            keys.iter()
                .map(|k| normalise_value(k, n.ini_value(k)))
                .collect()
        })
        .collect();
    let settings_groups = group(&values, |a, b| a == b);
    let (settings_group, settings_tie) = pick(&settings_groups)?;
    let reference = members[settings_group[0]];
    let (reference, spec) = usable
        .iter()
        .find(|(n, _)| std::ptr::eq(*n, reference))
        .map(|(n, s)| (*n, s.clone()))?;

    let names = |group: &[&NodeConfig]| {
        group
            .iter()
            .map(|n| n.node.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut reason = if store_groups.len() == 1 {
        format!("all {} nodes store sessions in {spec}", usable.len())
    } else {
        format!(
            "{} of {} nodes store sessions in {spec} ({})",
            members.len(),
            usable.len(),
            names(&members)
        )
    };
    if store_tie {
        reason.push_str(&format!(
            "; a tie with another store, broken by config order ({} comes first)",
            members[0].node
        ));
    }
    if usable.len() < nodes.len() {
        let unusable: Vec<&NodeConfig> = nodes.iter().filter(|n| n.store_spec().is_err()).collect();
        reason.push_str(&format!(
            "; ignored, save_path unusable: {}",
            names(&unusable)
        ));
    }
    if settings_groups.len() > 1 {
        reason.push_str(&format!(
            "; other session settings as on {} ({} of {} of those nodes agree{})",
            reference.node,
            settings_group.len(),
            members.len(),
            if settings_tie {
                ", tie broken by config order"
            } else {
                ""
            }
        ));
    } else {
        reason.push_str(&format!("; reference node {}", reference.node));
    }
    Some(Expected {
        spec,
        ini: reference_settings(reference, &keys),
        reference: Some(reference.node.clone()),
        reason,
    })
}

fn reference_settings(reference: &NodeConfig, keys: &[&str]) -> Ini {
    keys.iter()
        .filter_map(|k| reference.ini.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect()
}

/// The expected config from fpmlb's `session:` section (`save_handler`, `save_path`, clear
/// credentials allowed: they are digested). The other [`compared_settings`] and the hashing
/// settings that decide server order come from `reference` (typically the node [`majority`]
/// picked); without one only the store is compared.
pub fn expected_from_config(
    save_handler: &str,
    save_path: &str,
    reference: Option<&NodeConfig>,
) -> Result<Expected, String> {
    if save_handler.trim().is_empty() {
        return Err("session.save_handler is empty".to_string());
    }
    let handler = Handler::from_name(save_handler);
    let empty = Ini::new();
    let spec = parse_with(&handler, save_path, reference.map_or(&empty, |r| &r.ini))?;
    let keys = compared_settings(&handler);
    let mut reason = format!("fpmlb configuration (session: {spec})");
    if let Some(r) = reference {
        reason.push_str(&format!("; other session settings as on {}", r.node));
    }
    Ok(Expected {
        ini: reference
            .map(|r| reference_settings(r, &keys))
            .unwrap_or_default(),
        reference: reference.map(|r| r.node.clone()),
        spec,
        reason,
    })
}

#[cfg(test)]
mod tests;
