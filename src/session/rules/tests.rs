use super::*;

fn ini(pairs: &[(&str, &str)]) -> Ini {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), Some((*v).to_string())))
        .collect()
}

/// The judgement of `key` on a node with `found` where the reference has `expected`.
fn judge_with(
    handler: Handler,
    servers: usize,
    key: &str,
    expected: &[(&str, &str)],
    found: &[(&str, &str)],
    listener: &SiteOrigin,
) -> Judgement {
    judge(
        key,
        &Context {
            handler: &handler,
            servers,
            expected: &ini(expected),
            found: &ini(found),
            listener,
        },
    )
}

fn judged(
    handler: Handler,
    servers: usize,
    key: &str,
    want: &str,
    have: &str,
    listener: &SiteOrigin,
) -> Judgement {
    judge_with(
        handler,
        servers,
        key,
        &[(key, want)],
        &[(key, have)],
        listener,
    )
}

#[test]
fn every_setting_is_judged_by_a_rule_of_its_own() {
    // A setting that falls to the catch-all arm would be judged harmless without a
    // reason: every compared setting has its own.
    let cleartext = SiteOrigin::default();
    for s in SETTINGS {
        let j = judged(Handler::Memcached, 2, s.key, "1", "2", &cleartext);
        assert_ne!(
            j.effect, "not known to change where sessions are kept",
            "{}",
            s.key
        );
        assert!(!s.how.is_empty());
    }
}

fn consequence(handler: Handler, servers: usize, key: &str, want: &str, have: &str) -> Consequence {
    judged(handler, servers, key, want, have, &SiteOrigin::default()).consequence
}

#[test]
fn session_settings() {
    use Consequence::*;
    let m = Handler::Memcached;
    assert_eq!(
        consequence(m.clone(), 1, "session.name", "PHPSESSID", "SID"),
        Lost
    );
    assert_eq!(
        consequence(
            m.clone(),
            1,
            "session.serialize_handler",
            "php",
            "php_serialize"
        ),
        Corrupt
    );
    assert_eq!(
        consequence(m.clone(), 1, "session.use_cookies", "1", "0"),
        Lost
    );
    for (key, a, b) in [
        ("session.use_strict_mode", "0", "1"),
        ("session.gc_probability", "1", "0"),
        ("session.gc_divisor", "100", "1000"),
        ("session.sid_length", "26", "48"),
        ("session.sid_bits_per_character", "5", "6"),
        ("session.lazy_write", "1", "0"),
        ("session.cache_limiter", "nocache", "private"),
        ("session.cookie_httponly", "0", "1"),
        ("session.use_only_cookies", "1", "0"),
        ("memcached.sess_lock_wait_min", "150", "50"),
        ("memcached.sess_lock_retries", "5", "20"),
        ("memcached.sess_binary_protocol", "1", "0"),
        ("memcached.sess_persistent", "0", "1"),
        ("memcached.sess_connect_timeout", "0", "500"),
    ] {
        assert_eq!(consequence(m.clone(), 2, key, a, b), Harmless, "{key}");
    }
}

#[test]
fn expiry() {
    use Consequence::*;
    let j = judged(
        Handler::Redis,
        1,
        "session.gc_maxlifetime",
        "1440",
        "600",
        &SiteOrigin::default(),
    );
    assert_eq!((j.consequence, j.proof), (ExpiresEarly, Proof::StoreTtl));
    assert_eq!(
        consequence(Handler::Redis, 1, "session.gc_maxlifetime", "1440", "7200"),
        Harmless
    );
    // files: only the node's garbage collection deletes, and only when it runs.
    let files = |probability: &str| {
        judge_with(
            Handler::Files,
            0,
            "session.gc_maxlifetime",
            &[
                ("session.gc_maxlifetime", "1440"),
                ("session.gc_probability", "1"),
            ],
            &[
                ("session.gc_maxlifetime", "60"),
                ("session.gc_probability", probability),
            ],
            &SiteOrigin::default(),
        )
        .consequence
    };
    assert_eq!(files("1"), ExpiresEarly);
    assert_eq!(files("0"), Harmless);
    let c = |want, have| consequence(Handler::Redis, 1, "session.cookie_lifetime", want, have);
    assert_eq!(c("0", "300"), ExpiresEarly);
    assert_eq!(c("3600", "0"), ExpiresEarly);
    assert_eq!(c("3600", "300"), ExpiresEarly);
    assert_eq!(c("300", "3600"), Harmless);
}

#[test]
fn cookies_against_the_listener() {
    use Consequence::*;
    let cleartext = SiteOrigin::default();
    let https = SiteOrigin {
        https: true,
        host: Some("shop.example.com".to_string()),
    };
    let secure = |l: &SiteOrigin| {
        judged(Handler::Redis, 1, "session.cookie_secure", "0", "1", l).consequence
    };
    assert_eq!(secure(&cleartext), CookieDropped);
    assert_eq!(secure(&https), Harmless);
    assert_eq!(
        judged(Handler::Redis, 1, "session.cookie_secure", "1", "0", &https).consequence,
        Harmless
    );
    let samesite = |want, have| {
        judged(
            Handler::Redis,
            1,
            "session.cookie_samesite",
            want,
            have,
            &https,
        )
        .consequence
    };
    assert_eq!(samesite("", "None"), CookieDropped); // None without Secure
    assert_eq!(samesite("Lax", "Strict"), CookieDropped);
    assert_eq!(samesite("", "Lax"), Harmless);
    assert_eq!(samesite("Strict", "Lax"), Harmless);
    let domain =
        |have, l: &SiteOrigin| judged(Handler::Redis, 1, "session.cookie_domain", "", have, l);
    let refused = domain("other.example", &https);
    assert_eq!(refused.consequence, CookieDropped);
    assert!(
        refused.effect.contains("browsers refuse it"),
        "{}",
        refused.effect
    );
    let wider = domain(".example.com", &https);
    assert_eq!(wider.consequence, CookieDropped);
    assert!(wider.effect.contains("two cookies"), "{}", wider.effect);
    assert_eq!(
        judged(
            Handler::Redis,
            1,
            "session.cookie_path",
            "/",
            "/app",
            &https
        )
        .consequence,
        CookieDropped
    );
}

#[test]
fn servers_and_hashing() {
    use Consequence::*;
    assert_eq!(
        consequence(
            Handler::Memcached,
            1,
            "memcached.sess_consistent_hash",
            "1",
            "0"
        ),
        Harmless
    );
    let j = judged(
        Handler::Memcached,
        2,
        "memcached.sess_consistent_hash",
        "1",
        "0",
        &SiteOrigin::default(),
    );
    assert_eq!((j.consequence, j.proof), (Lost, Proof::PerId));
    // pecl-memcache: with as many copies as servers, every server holds every session,
    // but the lock is taken on each node's own first server.
    let memcache = |servers: usize| {
        judge_with(
            Handler::Memcache,
            servers,
            "memcache.hash_strategy",
            &[
                ("memcache.hash_strategy", "consistent"),
                ("memcache.session_redundancy", "2"),
            ],
            &[
                ("memcache.hash_strategy", "standard"),
                ("memcache.session_redundancy", "2"),
            ],
            &SiteOrigin::default(),
        )
        .consequence
    };
    assert_eq!(memcache(2), Race);
    assert_eq!(memcache(3), Lost);
    assert_eq!(
        consequence(
            Handler::Memcached,
            2,
            "memcached.sess_number_of_replicas",
            "0",
            "1"
        ),
        Fragile
    );
    assert_eq!(
        consequence(
            Handler::Memcached,
            1,
            "memcached.sess_number_of_replicas",
            "0",
            "1"
        ),
        Harmless
    );
    assert_eq!(
        consequence(
            Handler::Memcache,
            2,
            "memcache.session_redundancy",
            "2",
            "1"
        ),
        Fragile
    );
    // Keys longer than memcached takes.
    assert_eq!(
        consequence(Handler::Memcached, 1, "session.sid_length", "26", "240"),
        Lost
    );
    assert_eq!(
        consequence(Handler::Redis, 1, "session.sid_length", "26", "240"),
        Harmless
    );
    // A node's absurd length is judged, not an overflow (a panic in a
    // debug build, a wrong answer in release).
    assert_eq!(
        consequence(
            Handler::Memcached,
            1,
            "session.sid_length",
            "26",
            "9223372036854775807"
        ),
        Lost
    );
}

#[test]
fn locking() {
    use Consequence::*;
    assert_eq!(
        consequence(Handler::Memcached, 1, "memcached.sess_locking", "1", "0"),
        Race
    );
    assert_eq!(
        consequence(Handler::Redis, 1, "redis.session.locking_enabled", "0", "1"),
        Race
    );
    assert_eq!(
        consequence(
            Handler::RedisCluster,
            3,
            "redis.session.locking_enabled",
            "0",
            "1"
        ),
        Harmless
    );
    assert_eq!(
        consequence(
            Handler::Redis,
            1,
            "redis.session.lock_wait_time",
            "2000",
            "500"
        ),
        Harmless
    );
    assert_eq!(
        consequence(Handler::Memcache, 1, "memcache.lock_timeout", "15", "5"),
        Harmless
    );
}

#[test]
fn referer_check_only_counts_without_cookies_only() {
    let judge_with = |only_cookies: &str| {
        judge_with(
            Handler::Redis,
            1,
            "session.referer_check",
            &[("session.referer_check", "")],
            &[
                ("session.referer_check", "example.com"),
                ("session.use_only_cookies", only_cookies),
            ],
            &SiteOrigin::default(),
        )
        .consequence
    };
    assert_eq!(judge_with("1"), Consequence::Harmless);
    assert_eq!(judge_with("0"), Consequence::Lost);
}

#[test]
fn save_path_parts() {
    use crate::save_path::parse_save_path;
    use Consequence::*;
    let a = parse_save_path("memcached", "10.0.0.1:11211,10.0.0.2:11211").unwrap();
    let b = parse_save_path("memcached", "10.0.0.2:11211,10.0.0.1:11211").unwrap();
    let c = parse_save_path("memcached", "10.0.0.3:11211").unwrap();
    assert_eq!(judge_store("servers", &a, &b).proof, Proof::PerId);
    assert_eq!(judge_store("servers", &a, &c).proof, Proof::RoundTrip);
    assert_eq!(judge_store("servers", &a, &c).consequence, Lost);
    for part in ["prefix", "database", "auth", "path", "depth"] {
        assert_eq!(judge_store(part, &a, &c).consequence, Lost, "{part}");
    }
    for part in [
        "weight",
        "seeds",
        "timeout",
        "read_timeout",
        "persistent",
        "retry_interval",
    ] {
        assert_eq!(judge_store(part, &a, &c).consequence, Harmless, "{part}");
    }
    let x = parse_save_path("rediscluster", "seed[]=a:7000&failover=distribute").unwrap();
    let y = parse_save_path("rediscluster", "seed[]=a:7000").unwrap();
    assert_eq!(judge_store("failover", &y, &x).consequence, Race);
    let z = parse_save_path("rediscluster", "seed[]=a:7000&failover=error").unwrap();
    assert_eq!(judge_store("failover", &y, &z).consequence, Harmless);
}

#[test]
fn store_weaknesses_are_named_once() {
    use crate::save_path::parse_save_path;
    let words = |handler: &str, path: &str, pairs: &[(&str, &str)]| -> Vec<(Consequence, String)> {
        store_weaknesses(&parse_save_path(handler, path).unwrap(), &ini(pairs))
    };
    let single = words("memcached", "10.0.0.1:11211", &[]);
    assert_eq!(single.len(), 1);
    assert!(
        single[0]
            .1
            .starts_with("one memcached server (10.0.0.1:11211) holds every session"),
        "{}",
        single[0].1
    );
    let two = "10.0.0.1:11211,10.0.0.2:11211";
    assert!(words("memcached", two, &[]).is_empty());
    let modula = words("memcached", two, &[("memcached.sess_consistent_hash", "0")]);
    assert!(
        modula[0].1.contains("without consistent hashing"),
        "{modula:?}"
    );
    let replicas = words(
        "memcached",
        two,
        &[
            ("memcached.sess_number_of_replicas", "1"),
            ("memcached.sess_binary_protocol", "0"),
        ],
    );
    assert!(
        replicas[0]
            .1
            .contains("replicas only over the binary protocol"),
        "{replicas:?}"
    );
    assert!(
        words(
            "memcached",
            two,
            &[("memcached.sess_number_of_replicas", "1")]
        )
        .is_empty()
    );
    let redis = words("redis", "tcp://a:6379, tcp://b:6379", &[]);
    assert!(redis[0].1.contains("does not replicate"), "{redis:?}");
    let cluster = words("rediscluster", "seed[]=a:7000&seed[]=b:7001", &[]);
    assert_eq!(cluster[0].0, Consequence::Race);
    assert!(
        words(
            "memcache",
            "tcp://a:11211, tcp://b:11211",
            &[("memcache.hash_strategy", "Standard")]
        )[0]
        .1
        .contains("standard")
    );
    assert!(words("files", "/var/lib/php/sessions", &[]).is_empty());
}

#[test]
fn the_readme_table_names_every_compared_setting() {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
    for s in SETTINGS {
        let row = format!("| `{}` |", s.key);
        assert!(readme.contains(&row), "README.md has no row for {}", s.key);
    }
    for c in Consequence::ALL {
        assert!(
            readme.contains(&format!("| `{}` | {}", c.as_str(), c.words())),
            "README.md does not say what {c} means"
        );
    }
}
