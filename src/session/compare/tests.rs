use super::*;
use crate::save_path::testing::{opts, servers, spec};
use crate::save_path::{digest_secret, parse_save_path};
use crate::session::consequence::Consequence;
use crate::session::fixtures::*;

fn settings(diffs: &[Difference]) -> Vec<&str> {
    diffs.iter().map(|d| d.setting.as_str()).collect()
}

/// (setting, expected, found) of each difference.
fn triples(diffs: &[Difference]) -> Vec<(&str, &str, &str)> {
    diffs
        .iter()
        .map(|d| (d.setting.as_str(), d.expected.as_str(), d.found.as_str()))
        .collect()
}

/// A cleartext site without a known host name.
fn compare(expected: &Expected, node: &NodeConfig) -> Vec<Difference> {
    super::compare(expected, node, &SiteOrigin::default())
}

#[test]
fn memcached_order_depends_on_consistent_hashing() {
    let a = node("web01", &[path("127.0.0.1:11211, 127.0.0.1:11212")]);
    let b = node("web02", &[path("127.0.0.1:11212,127.0.0.1:11211")]);
    let expected = majority(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(triples(&compare(&expected, &b)), []);

    let modula = ("memcached.sess_consistent_hash", Some("0"));
    let a = node("web01", &[path("127.0.0.1:11211, 127.0.0.1:11212"), modula]);
    let b = node("web02", &[path("127.0.0.1:11212,127.0.0.1:11211"), modula]);
    let expected = majority(&[a, b.clone()]).unwrap();
    assert_eq!(
        triples(&compare(&expected, &b)),
        [(
            "session.save_path servers",
            "127.0.0.1:11211, 127.0.0.1:11212 (order matters: modula hashing)",
            "127.0.0.1:11212, 127.0.0.1:11211",
        )]
    );
}

#[test]
fn memcached_set_still_matters_with_consistent_hashing() {
    let a = node("web01", &[path("10.0.0.1:11211,10.0.0.2:11211")]);
    let b = node("web02", &[path("10.0.0.1:11211")]);
    let expected = majority(&[a, b.clone()]).unwrap();
    assert_eq!(
        triples(&compare(&expected, &b)),
        [(
            "session.save_path servers",
            "10.0.0.1:11211, 10.0.0.2:11211 (any order: ketama consistent hashing)",
            "10.0.0.1:11211",
        )]
    );
}

#[test]
fn memcache_standard_hashing_makes_order_matter() {
    let base = fixture(MEMCACHE_WEB01);
    let mut a = base.clone();
    let mut b = base.clone();
    b.node = "web02".to_string();
    b.ini.insert(
        "session.save_path".into(),
        Some("tcp://127.0.32.1:11212, tcp://127.0.32.1:11211".into()),
    );
    assert_eq!(compare(&majority(&[a.clone(), b.clone()]).unwrap(), &b), []);
    for n in [&mut a, &mut b] {
        n.ini
            .insert("memcache.hash_strategy".into(), Some("Standard".into()));
    }
    let diffs = compare(&majority(&[a, b.clone()]).unwrap(), &b);
    assert_eq!(settings(&diffs), ["session.save_path servers"]);
    assert!(
        diffs[0]
            .expected
            .contains("order matters: standard hashing")
    );
}

#[test]
fn redis_order_matters() {
    let a = spec("redis", "tcp://a:6379, tcp://b:6379");
    let b = spec("redis", "tcp://b:6379, tcp://a:6379");
    let mut diffs = Vec::new();
    compare_specs(&a, &b, &mut diffs);
    assert_eq!(settings(&diffs), ["session.save_path servers"]);
    assert_eq!(
        diffs[0].expected,
        "a:6379, b:6379 (order matters: phpredis weight ranges in list order)"
    );
}

#[test]
fn rediscluster_seeds_are_a_set() {
    let s = spec(
        "rediscluster",
        "seed[]=b:7001&seed[]=A:7000&seed[]=b:7001&timeout=2&read_timeout=2&failover=error\
         &persistent=1&auth=pw&stream[verify_peer]=0",
    );
    assert_eq!(servers(&s), ["a:7000", "b:7001"]);
    assert_eq!(
        s.options,
        opts(&[
            ("auth", "sha256:30c952fab122c3f9"),
            ("prefix", "PHPREDIS_CLUSTER_SESSION:")
        ])
    );
    // Seeds are a set, and any seed in common means the same cluster.
    for p in [
        "seed%5B%5D=a:7000&seed%5B%5D=b:7001&auth=pw",
        "seed[]=b:7001&auth=pw",
        "seed[]=c:7002&seed[]=a:7000&auth=pw",
    ] {
        let other = spec("RedisCluster", p);
        assert!(s.same_store(&other), "{p}");
        let mut diffs = Vec::new();
        compare_specs(&s, &other, &mut diffs);
        // Other seeds of the cluster and transport tuning are noted, never counted.
        assert!(
            diffs.iter().all(|d| d.consequence == Consequence::Harmless),
            "{p}: {diffs:?}"
        );
    }
    let mut diffs = Vec::new();
    compare_specs(
        &s,
        &spec("rediscluster", "seed[]=c:7002&auth=pw"),
        &mut diffs,
    );
    assert_eq!(
        triples(&diffs)[0],
        (
            "session.save_path servers",
            "a:7000, b:7001 (any order: seeds of one Redis Cluster)",
            "c:7002 (no seed in common)",
        )
    );
    assert_eq!(diffs[0].consequence, Consequence::Lost);
    for p in ["timeout=2", "seed[]=a", "seed=a:7000", "seed[]=a:0"] {
        assert!(parse_save_path("rediscluster", p).is_err(), "{p}");
    }
}

#[test]
fn identical_configs_have_no_differences() {
    let nodes = [node("web01", &[]), node("web02", &[]), node("web03", &[])];
    let expected = majority(&nodes).unwrap();
    assert_eq!(expected.reference.as_deref(), Some("web01"));
    assert!(
        expected
            .reason
            .starts_with("all 3 nodes store sessions in memcached"),
        "{}",
        expected.reason
    );
    for n in &nodes {
        assert_eq!(triples(&compare(&expected, n)), []);
    }
    // The expected settings are exactly the compared ones of the handler that PHP 8.2
    // reports (session.cookie_partitioned is PHP 8.4's).
    let keys: Vec<&str> = expected.ini.keys().map(String::as_str).collect();
    let mut want = compared_settings(&Handler::Memcached);
    want.retain(|k| nodes[0].ini.contains_key(*k));
    want.sort_unstable();
    assert_eq!(keys, want);
    assert!(!want.contains(&"session.cookie_partitioned"));
}

#[test]
fn pool_file_overriding_the_handler_is_reported() {
    // web02 of a real cluster: php_value[session.save_handler] = files in its pool.
    let web01 = fixture(MEMCACHED_WEB01);
    let web02 = fixture(FILES_WEB02);
    let web03 = node("web03", &[]);
    let expected = majority(&[web01.clone(), web02.clone(), web03.clone()]).unwrap();
    assert_eq!(expected.spec.handler, Handler::Memcached);
    assert!(
        expected.reason.contains("2 of 3 nodes"),
        "{}",
        expected.reason
    );
    assert_eq!(
        triples(&compare(&expected, &web02)),
        [
            ("session.save_handler", "memcached", "files"),
            (
                "session.save_path",
                "memcached 127.0.30.1:11211, 127.0.30.1:11212",
                "files (depth=0 path=/var/lib/php/sessions)",
            ),
        ]
    );
    assert_eq!(triples(&compare(&expected, &web01)), []);
    // Same with the store from fpmlb's configuration.
    let expected = expected_from_config(
        "memcached",
        "127.0.30.1:11212, 127.0.30.1:11211",
        Some(&web01),
    )
    .unwrap();
    assert_eq!(triples(&compare(&expected, &web01)), []);
    assert_eq!(
        settings(&compare(&expected, &web02)),
        ["session.save_handler", "session.save_path"]
    );
}

#[test]
fn missing_extension_is_reported_once() {
    let good = node("web01", &[]);
    let mut bad = node("web02", &[("memcached.sess_prefix", None)]);
    bad.extensions.memcached = false;
    bad.ini.retain(|k, _| !k.starts_with("memcached."));
    let expected = expected_from_config(
        "memcached",
        "127.0.30.1:11211,127.0.30.1:11212",
        Some(&good),
    )
    .unwrap();
    assert_eq!(
        triples(&compare(&expected, &bad)),
        [("extension memcached", "loaded", "missing")]
    );
}

#[test]
fn ini_values_are_compared_as_php_reads_them() {
    let a = node(
        "web01",
        &[
            ("session.use_strict_mode", Some("On")),
            ("session.cookie_domain", None),
        ],
    );
    let b = node(
        "web02",
        &[
            ("session.use_strict_mode", Some("1")),
            ("session.cookie_domain", Some("")),
        ],
    );
    let expected =
        expected_from_config("memcached", "127.0.30.1:11211,127.0.30.1:11212", Some(&a)).unwrap();
    assert_eq!(triples(&compare(&expected, &b)), []);
    let c = node(
        "web03",
        &[
            ("session.use_strict_mode", Some("0")),
            ("session.gc_maxlifetime", Some("3600")),
            ("memcached.sess_prefix", Some("other.")),
            // Unset is PHP's default, PHPSESSID: no difference.
            ("session.name", None),
        ],
    );
    assert_eq!(
        triples(&compare(&expected, &c)),
        [
            ("memcached.sess_prefix", "memc.sess.key.", "other."),
            ("session.gc_maxlifetime", "1440", "3600"),
            ("session.use_strict_mode", "on", "off"),
        ]
    );
    let mut d = node("web04", &[("session.use_strict_mode", Some("yes"))]);
    d.ini.remove("session.sid_length");
    assert_eq!(
        triples(&compare(&expected, &d)),
        [("session.sid_length", "26", "(not reported)")]
    );
}

#[test]
fn redis_config_with_clear_password_matches_the_node() {
    let web01 = fixture(REDIS_WEB01);
    let ok = expected_from_config(
        "redis",
        "tcp://127.0.31.1:6379?auth=secret&database=2&prefix=app_&timeout=5",
        Some(&web01),
    )
    .unwrap();
    // The timeout is only noted: transport tuning.
    let diffs = compare(&ok, &web01);
    assert_eq!(
        triples(&diffs),
        [("session.save_path timeout", "5", "(none)")]
    );
    assert_eq!(diffs[0].consequence, Consequence::Harmless);
    assert!(!serde_json::to_string(&ok).unwrap().contains("secret"));

    let wrong = expected_from_config(
        "redis",
        "tcp://127.0.31.1:6379?auth=other&database=3&prefix=app_",
        Some(&web01),
    )
    .unwrap();
    assert_eq!(
        triples(&compare(&wrong, &web01)),
        [
            (
                "session.save_path auth",
                digest_secret(b"other").as_str(),
                "sha256:2bb80d537b1da3e3"
            ),
            ("session.save_path database", "3", "2"),
        ]
    );
    let none = expected_from_config("redis", "tcp://127.0.31.1:6379", None).unwrap();
    assert!(none.ini.is_empty());
    assert_eq!(
        triples(&compare(&none, &web01)),
        [
            (
                "session.save_path auth",
                "(none)",
                "sha256:2bb80d537b1da3e3"
            ),
            ("session.save_path database", "0", "2"),
            ("session.save_path prefix", "PHPREDIS_SESSION:", "app_"),
        ]
    );
    assert!(expected_from_config(" ", "x", None).is_err());
    assert!(expected_from_config("redis", "tcp://h?weight=0", None).is_err());
}

#[test]
fn expected_from_config_takes_hashing_from_the_reference() {
    let modula = node("web01", &[("memcached.sess_consistent_hash", Some("0"))]);
    let e = expected_from_config("memcached", "a:1,b:2", Some(&modula)).unwrap();
    assert!(e.spec.order_matters);
    let e = expected_from_config("memcached", "a:1,b:2", None).unwrap();
    assert!(!e.spec.order_matters);
    assert_eq!(
        e.reason,
        "fpmlb configuration (session: memcached a:1, b:2)"
    );
}

#[test]
fn majority_tie_goes_to_the_first_node() {
    let x = path("10.0.0.1:11211");
    let y = path("10.0.0.2:11211");
    let nodes = [
        node("a", &[x]),
        node("b", &[y]),
        node("c", &[x]),
        node("d", &[y]),
    ];
    let e = majority(&nodes).unwrap();
    assert_eq!(servers(&e.spec), ["10.0.0.1:11211"]);
    assert_eq!(e.reference.as_deref(), Some("a"));
    assert!(
        e.reason.contains("tie") && e.reason.contains("(a comes first)"),
        "{}",
        e.reason
    );
    assert_eq!(
        settings(&compare(&e, &nodes[1])),
        ["session.save_path servers"]
    );

    let nodes = [
        node("b", &[y]),
        node("a", &[x]),
        node("c", &[x]),
        node("d", &[y]),
    ];
    assert_eq!(majority(&nodes).unwrap().reference.as_deref(), Some("b"));
    let nodes = [node("b", &[y]), node("a", &[x]), node("c", &[x])];
    let e = majority(&nodes).unwrap();
    assert_eq!(e.reference.as_deref(), Some("a"));
    assert!(
        e.reason
            .starts_with("2 of 3 nodes store sessions in memcached 10.0.0.1:11211 (a, c)")
    );
    assert!(!e.reason.contains("tie"));
}

#[test]
fn majority_settings_come_from_the_most_common_values() {
    let odd = ("session.gc_maxlifetime", Some("60"));
    let nodes = [
        node("web01", &[odd]),
        node("web02", &[]),
        node("web03", &[]),
    ];
    let e = majority(&nodes).unwrap();
    assert_eq!(e.reference.as_deref(), Some("web02"));
    assert!(e.reason.contains("as on web02 (2 of 3"), "{}", e.reason);
    assert_eq!(
        triples(&compare(&e, &nodes[0])),
        [("session.gc_maxlifetime", "1440", "60")]
    );
}

#[test]
fn majority_skips_unusable_paths() {
    let broken = node("web01", &[path("--SERVER=10.0.0.1")]);
    let nodes = [broken.clone(), node("web02", &[]), node("web03", &[])];
    let e = majority(&nodes).unwrap();
    assert_eq!(e.reference.as_deref(), Some("web02"));
    assert!(
        e.reason.contains("ignored, save_path unusable: web01"),
        "{}",
        e.reason
    );
    let diffs = compare(&e, &broken);
    assert_eq!(settings(&diffs), ["session.save_path"]);
    assert!(
        diffs[0]
            .found
            .starts_with("unusable (memcached: libmemcached configuration strings")
    );
    assert_eq!(majority(&[broken]), None);
    assert_eq!(majority(&[]), None);
}

#[test]
fn rediscluster_nodes_of_one_cluster_agree() {
    let nodes: Vec<NodeConfig> = CLUSTER.iter().map(|j| fixture(j)).collect();
    let e = majority(&nodes).unwrap();
    assert_eq!(e.spec.handler, Handler::RedisCluster);
    assert!(e.reason.starts_with("2 of 3 nodes"), "{}", e.reason);
    // Other seeds of the same cluster and another timeout: noted, harmless.
    let diffs = compare(&e, &nodes[1]);
    assert_eq!(
        settings(&diffs),
        [
            "session.save_path seeds",
            "session.save_path read_timeout",
            "session.save_path timeout"
        ]
    );
    assert!(diffs.iter().all(|d| !d.counts()), "{diffs:?}");
    let diffs = compare(&e, &nodes[2]);
    let counted: Vec<_> = diffs.iter().filter(|d| d.counts()).collect();
    assert_eq!(counted.len(), 1, "{diffs:?}");
    assert_eq!(
        (
            counted[0].setting.as_str(),
            counted[0].expected.as_str(),
            counted[0].found.as_str()
        ),
        ("session.save_path prefix", "rc_", "other_")
    );
}

#[test]
fn difference_and_spec_display() {
    let web02 = fixture(FILES_WEB02);
    let expected =
        majority(&[fixture(MEMCACHED_WEB01), node("web03", &[]), web02.clone()]).unwrap();
    let d = compare(&expected, &web02).remove(0);
    assert_eq!(
        d.to_string(),
        "session.save_handler: expected memcached, found files (lost: this node keeps sessions in files, the others in memcached)"
    );
    assert_eq!(
        spec("redis", "tcp://h:6379?auth=secret&database=2").to_string(),
        "redis h:6379 (auth=sha256:2bb80d537b1da3e3 database=2 prefix=PHPREDIS_SESSION:)"
    );
    let json = serde_json::to_value(spec("memcached", "10.0.0.1:11211")).unwrap();
    assert_eq!(json["handler"], "memcached");
    assert_eq!(json["servers"][0]["port"], 11211);
}
