//! What every node is expected to use, and what differs on one node.
//!
//! [`expected_from_config`] takes the store from fpmlb's `session:` section, [`majority`] from
//! the nodes themselves; [`compare`] lists, in words an operator can act on, what differs on
//! one node. Whether sessions really are shared is proven elsewhere, by a write on one node and
//! a read on another (the round trip of `session::round_trip`); this module explains *why* a node
//! would not see them.

use std::fmt;

use serde::Serialize;

use crate::save_path::{Handler, Ini, StoreSpec, parse_with, redact_save_path, same_servers};
use crate::session::consequence::Consequence;
use crate::session::cookie::SiteOrigin;
use crate::session::node::NodeConfig;
use crate::session::rules::{self, Context, Judgement, Proof};

/// One differing setting, expected vs found, and what it does to sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The ini name (`session.save_handler`, `memcached.sess_prefix`, ...) or a pseudo-name:
    /// `session.save_path servers`, `session.save_path <option>`, `extension <name>`,
    /// `Set-Cookie <attribute>`, `session lock`.
    pub setting: String,
    /// What the node should have.
    pub expected: String,
    /// What the node has.
    pub found: String,
    /// What it does to sessions.
    pub consequence: Consequence,
    /// Why, in plain words.
    pub effect: String,
    /// What showed it beyond the configuration (the Set-Cookie sent, the expiry in the
    /// store, the round trip), or what overruled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// The round trip contradicted this judgement: it does not count for the verdict.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub overruled: bool,
    /// How far the round trip can speak to it.
    #[serde(skip)]
    pub proof: Proof,
}

impl Difference {
    pub(crate) fn judged(
        setting: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
        judgement: Judgement,
    ) -> Self {
        Difference {
            setting: setting.into(),
            expected: expected.into(),
            found: found.into(),
            consequence: judgement.consequence,
            effect: judgement.effect,
            evidence: None,
            overruled: false,
            proof: judgement.proof,
        }
    }

    /// Whether it counts against the node: not overruled, and worse than harmless.
    pub fn counts(&self) -> bool {
        !self.overruled && self.consequence != Consequence::Harmless
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, found {} ({}: {})",
            self.setting, self.expected, self.found, self.consequence, self.effect
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

/// The ini settings compared for a store of `handler`: the `session.*` ones, plus the
/// handler's extension settings (the table of [`rules::SETTINGS`]).
pub fn compared_settings(handler: &Handler) -> Vec<&'static str> {
    rules::compared(handler).iter().map(|s| s.key).collect()
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

/// Compares a node to the expected config (from fpmlb's `session:` section, or the majority
/// of nodes) and judges each difference for a site served as `listener`. Empty when the
/// node stores sessions like expected.
pub fn compare(expected: &Expected, node: &NodeConfig, listener: &SiteOrigin) -> Vec<Difference> {
    use Consequence::Lost;
    let mut out = Vec::new();
    let want = &expected.spec.handler;
    if let Some(ext) = want.extension()
        && !node.extensions.is_loaded(ext)
    {
        // session.c OnUpdateSaveHandler: "Session save handler cannot be found".
        out.push(Difference::judged(
            format!("extension {ext}"),
            "loaded",
            "missing",
            Judgement {
                consequence: Lost,
                effect: format!(
                    "without the {ext} extension PHP cannot start sessions in the store"
                ),
                proof: Proof::RoundTrip,
            },
        ));
    }
    let have = node.save_handler();
    if have != *want {
        out.push(Difference::judged(
            "session.save_handler",
            want.name(),
            have.name(),
            Judgement {
                consequence: Lost,
                effect: format!(
                    "this node keeps sessions in {}, the others in {}",
                    have.name(),
                    want.name()
                ),
                proof: Proof::RoundTrip,
            },
        ));
    }
    match node.store_spec() {
        Err(e) => out.push(Difference::judged(
            "session.save_path",
            expected.spec.to_string(),
            format!(
                "unusable ({e}): '{}'",
                redact_save_path(have.name(), node.effective_save_path())
            ),
            Judgement {
                consequence: Lost,
                effect: "the extension refuses this save path: session_start fails".to_string(),
                proof: Proof::RoundTrip,
            },
        )),
        Ok(spec) if have == *want => compare_specs(&expected.spec, &spec, &mut out),
        Ok(spec) => {
            let (e, f) = (expected.spec.to_string(), spec.to_string());
            if e != f {
                out.push(Difference::judged(
                    "session.save_path",
                    e,
                    f,
                    rules::judge_store("servers", &expected.spec, &spec),
                ));
            }
        }
    }
    let ctx = Context {
        handler: want,
        servers: expected.spec.servers.len(),
        expected: &expected.ini,
        found: &node.ini,
        listener,
    };
    for (key, want_value) in &expected.ini {
        if let Some(ext) = setting_extension(key)
            && !node.extensions.is_loaded(ext)
        {
            continue; // reported once as "extension <name>"
        }
        let want_norm = rules::normalise(key, want_value.as_deref());
        let found = node.ini.get(key);
        let found_norm = rules::normalise(key, found.and_then(|v| v.as_deref()));
        if want_norm == found_norm {
            continue;
        }
        let shown = match found {
            None => "(not reported)".to_string(),
            Some(v) => rules::display(key, v.as_deref()),
        };
        let mut judgement = rules::judge(key, &ctx);
        // mod_files.c ps_files_cleanup_dir opendir()s the directory: where PHP cannot
        // list it (Debian's mode 1733), its garbage collection deletes nothing.
        if have == Handler::Files
            && key == "session.gc_maxlifetime"
            && judgement.consequence == Consequence::ExpiresEarly
            && node.files_dir_listable == Some(false)
        {
            judgement = Judgement {
                consequence: Consequence::Harmless,
                effect: format!(
                    "{}, but PHP cannot list the directory, so its garbage collection deletes nothing (a cron job cleans it, as Debian's sessionclean)",
                    judgement.effect
                ),
                proof: Proof::Config,
            };
        }
        out.push(Difference::judged(
            key.clone(),
            rules::display(key, want_value.as_deref()),
            shown,
            judgement,
        ));
    }
    out
}

/// Store differences between two specs of the same handler.
fn compare_specs(want: &StoreSpec, have: &StoreSpec, out: &mut Vec<Difference>) {
    let same = same_servers(want, have);
    let single_weight = !same
        && want.servers.len() == 1
        && have.servers.len() == 1
        && Server1::new(want) == Server1::new(have);
    if single_weight {
        out.push(Difference::judged(
            "session.save_path weight",
            want.servers[0].weight.to_string(),
            have.servers[0].weight.to_string(),
            rules::judge_store("weight", want, have),
        ));
    } else if !same {
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
        out.push(Difference::judged(
            "session.save_path servers",
            expected,
            found,
            rules::judge_store("servers", want, have),
        ));
    } else if want.handler == Handler::RedisCluster && want.servers != have.servers {
        out.push(Difference::judged(
            "session.save_path seeds",
            want.servers_text(),
            have.servers_text(),
            rules::judge_store("seeds", want, have),
        ));
    }
    // Parts that place sessions, then transport tuning (only noted).
    for (w_map, h_map) in [(&want.options, &have.options), (&want.tuning, &have.tuning)] {
        let keys: std::collections::BTreeSet<&String> = w_map.keys().chain(h_map.keys()).collect();
        for key in keys {
            let (w, h) = (w_map.get(key), h_map.get(key));
            if w != h {
                out.push(Difference::judged(
                    format!("session.save_path {key}"),
                    w.map_or("(none)", String::as_str),
                    h.map_or("(none)", String::as_str),
                    rules::judge_store(key, want, have),
                ));
            }
        }
    }
}

/// The one server of a spec, without its weight (a weight means nothing alone).
#[derive(PartialEq)]
struct Server1<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<u16>,
}

impl<'a> Server1<'a> {
    fn new(spec: &'a StoreSpec) -> Option<Server1<'a>> {
        spec.servers.first().map(|s| Server1 {
            scheme: &s.scheme,
            host: &s.host,
            port: s.port,
        })
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
                .map(|k| rules::normalise(k, n.ini_value(k)))
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
