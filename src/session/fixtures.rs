//! Real answers of `conf/probe.php`, captured from integration/cluster.sh clusters, for tests.

use crate::session::node::NodeConfig;

pub(crate) const MEMCACHED_WEB01: &str =
    include_str!("../../tests/fixtures/probe-memcached-web01.json");
pub(crate) const FILES_WEB02: &str =
    include_str!("../../tests/fixtures/probe-files-override-web02.json");
pub(crate) const REDIS_WEB01: &str =
    include_str!("../../tests/fixtures/probe-redis-auth-web01.json");
pub(crate) const MEMCACHE_WEB01: &str =
    include_str!("../../tests/fixtures/probe-memcache-web01.json");
// A real Redis Cluster: web02 lists other seeds of the same cluster (and read web01's
// session), web03 one common seed but another prefix (and did not).
pub(crate) const CLUSTER: [&str; 3] = [
    include_str!("../../tests/fixtures/probe-rediscluster-web01.json"),
    include_str!("../../tests/fixtures/probe-rediscluster-web02.json"),
    include_str!("../../tests/fixtures/probe-rediscluster-web03.json"),
];

pub(crate) fn fixture(json: &str) -> NodeConfig {
    serde_json::from_str(json).unwrap()
}

/// A node like the memcached fixture, renamed, with some ini values replaced.
pub(crate) fn node(name: &str, overrides: &[(&str, Option<&str>)]) -> NodeConfig {
    let mut n = fixture(MEMCACHED_WEB01);
    n.node = name.to_string();
    for (k, v) in overrides {
        n.ini.insert((*k).to_string(), v.map(str::to_string));
    }
    n
}

pub(crate) fn path(p: &str) -> (&'static str, Option<&str>) {
    ("session.save_path", Some(p))
}
