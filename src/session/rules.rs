//! The session settings fpmlb compares, and what a difference in each does.
//!
//! [`SETTINGS`] lists every setting compared across nodes, with its built-in
//! default (to tell where a value came from) and how it is judged (the
//! README's table says the same in prose). [`judge`] decides the
//! [`Consequence`] of one difference from the documented and source-level
//! behaviour of PHP and the extensions; the comment beside each rule names the
//! source that decided it (repository, file, function), as read for PHP 8.2,
//! php-memcached 3.2, pecl-memcache 8 (4.0.5.2 on Debian) and phpredis 5.3/6.
//! [`judge_store`] does the same for the parts of a save path, and
//! [`store_weaknesses`] names what makes the whole store fragile, once.

use crate::save_path::{Handler, Ini, StoreSpec, parse_bool};
use crate::session::consequence::Consequence;
use crate::session::cookie::{self, SiteOrigin};

/// Which nodes a setting applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every node (ext/session).
    Session,
    /// Nodes on the `memcached` handler (php-memcached).
    Memcached,
    /// Nodes on the `memcache` handler (pecl-memcache).
    Memcache,
    /// Nodes on the `redis` or `rediscluster` handler (phpredis).
    Redis,
}

/// How values of a setting compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `On`, `yes`, `true`, `1` are one value (PHP's `zend_ini_parse_bool`).
    Bool,
    /// A number (compared as PHP reads it: leading digits).
    Int,
    /// A string, compared exactly.
    Text,
    /// A string the extension reads case-insensitively.
    Caseless,
}

/// A compared setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    pub scope: Scope,
    pub kind: Kind,
    /// The extension's built-in default (`None`: unset), to tell a default from a pool line.
    pub default: Option<&'static str>,
    /// The access level PHP declares (7 = PHP_INI_ALL, 2 = PHP_INI_PERDIR): a
    /// `php_admin_value` leaves 4, which is how the probe's answer shows one.
    pub access: u8,
    /// How a difference is judged, for the README and `--explain`.
    pub how: &'static str,
}

const fn s(
    key: &'static str,
    scope: Scope,
    kind: Kind,
    default: Option<&'static str>,
    how: &'static str,
) -> Setting {
    Setting {
        key,
        scope,
        kind,
        default,
        access: 7,
        how,
    }
}

use Kind::{Bool, Caseless, Int, Text};
use Scope::{Memcache, Memcached, Redis, Session};

/// Every compared setting. Defaults: ext/session's PHP_INI_BEGIN (php-src
/// ext/session/session.c), php-memcached's (php_memcached.c PHP_INI_BEGIN),
/// pecl-memcache's (src/memcache.c PHP_INI_BEGIN), phpredis' (redis.c
/// PHP_INI_BEGIN).
pub const SETTINGS: &[Setting] = &[
    s(
        "session.name",
        Session,
        Text,
        Some("PHPSESSID"),
        "lost: each node looks for its own cookie name",
    ),
    s(
        "session.serialize_handler",
        Session,
        Text,
        Some("php"),
        "corrupt: the other format cannot be decoded",
    ),
    s(
        "session.gc_maxlifetime",
        Session,
        Int,
        Some("1440"),
        "shorter: expires_early (the store expiry of what it writes); longer: harmless",
    ),
    s(
        "session.gc_probability",
        Session,
        Int,
        Some("1"),
        "harmless: how often garbage collection runs",
    ),
    s(
        "session.gc_divisor",
        Session,
        Int,
        Some("100"),
        "harmless: how often garbage collection runs",
    ),
    s(
        "session.use_strict_mode",
        Session,
        Bool,
        Some("0"),
        "harmless: ids are checked against the shared store",
    ),
    s(
        "session.use_cookies",
        Session,
        Bool,
        Some("1"),
        "lost: the node neither reads nor sends the cookie",
    ),
    s(
        "session.use_only_cookies",
        Session,
        Bool,
        Some("1"),
        "harmless: whether URL ids are accepted too",
    ),
    s(
        "session.use_trans_sid",
        Session,
        Bool,
        Some("0"),
        "harmless: ids added to URLs",
    ),
    s(
        "session.referer_check",
        Session,
        Text,
        Some(""),
        "lost when use_only_cookies is off, else harmless",
    ),
    s(
        "session.cookie_lifetime",
        Session,
        Int,
        Some("0"),
        "shorter (or 0 where the others keep it): expires_early; longer: harmless",
    ),
    s(
        "session.cookie_path",
        Session,
        Text,
        Some("/"),
        "cookie_dropped: the cookie is not sent outside its path",
    ),
    s(
        "session.cookie_domain",
        Session,
        Text,
        Some(""),
        "cookie_dropped: refused for fpmlb's server_name, or a second cookie of the same name",
    ),
    s(
        "session.cookie_secure",
        Session,
        Bool,
        Some("0"),
        "on behind a cleartext listener: cookie_dropped; else harmless",
    ),
    s(
        "session.cookie_httponly",
        Session,
        Bool,
        Some("0"),
        "harmless: scripts cannot read the cookie",
    ),
    s(
        "session.cookie_samesite",
        Session,
        Caseless,
        Some(""),
        "stricter, or None without Secure: cookie_dropped; looser: harmless",
    ),
    s(
        "session.cookie_partitioned",
        Session,
        Bool,
        Some("0"),
        "harmless: a first-party cookie is sent either way",
    ),
    s(
        "session.sid_length",
        Session,
        Int,
        Some("32"),
        "harmless: only shapes new ids (lost if memcached's 250-byte key limit is passed)",
    ),
    s(
        "session.sid_bits_per_character",
        Session,
        Int,
        Some("4"),
        "harmless: only shapes new ids",
    ),
    s(
        "session.lazy_write",
        Session,
        Bool,
        Some("1"),
        "harmless: an unchanged session is touched instead of written",
    ),
    s(
        "session.cache_limiter",
        Session,
        Text,
        Some("nocache"),
        "harmless: HTTP cache headers",
    ),
    s(
        "session.cache_expire",
        Session,
        Int,
        Some("180"),
        "harmless: HTTP cache headers",
    ),
    Setting {
        access: 2,
        ..s(
            "session.auto_start",
            Session,
            Bool,
            Some("0"),
            "harmless: the same session, started earlier",
        )
    },
    s(
        "memcached.sess_prefix",
        Memcached,
        Text,
        Some("memc.sess.key."),
        "lost: another key",
    ),
    s("memcached.sess_locking", Memcached, Bool, Some("1"), "race"),
    s(
        "memcached.sess_lock_wait_min",
        Memcached,
        Int,
        Some("150"),
        "harmless: lock retry timing",
    ),
    s(
        "memcached.sess_lock_wait_max",
        Memcached,
        Int,
        Some("150"),
        "harmless: lock retry timing",
    ),
    s(
        "memcached.sess_lock_retries",
        Memcached,
        Int,
        Some("5"),
        "harmless: lock retry timing",
    ),
    s(
        "memcached.sess_lock_expire",
        Memcached,
        Int,
        Some("0"),
        "harmless: how long an abandoned lock lives",
    ),
    s(
        "memcached.sess_consistent_hash",
        Memcached,
        Bool,
        Some("1"),
        "several servers: lost (another server); one: harmless",
    ),
    s(
        "memcached.sess_consistent_hash_type",
        Memcached,
        Text,
        Some("ketama"),
        "several servers: lost; one: harmless",
    ),
    s(
        "memcached.sess_binary_protocol",
        Memcached,
        Bool,
        Some("1"),
        "harmless: the wire protocol (replicas need it: fragile)",
    ),
    s(
        "memcached.sess_number_of_replicas",
        Memcached,
        Int,
        Some("0"),
        "several servers: fragile; one: harmless",
    ),
    s(
        "memcached.sess_randomize_replica_read",
        Memcached,
        Bool,
        Some("0"),
        "with replicas: race; without: harmless",
    ),
    s(
        "memcached.sess_remove_failed_servers",
        Memcached,
        Bool,
        Some("0"),
        "several servers: fragile; one: harmless",
    ),
    s(
        "memcached.sess_server_failure_limit",
        Memcached,
        Int,
        Some("0"),
        "several servers: fragile; one: harmless",
    ),
    s(
        "memcached.sess_connect_timeout",
        Memcached,
        Int,
        Some("0"),
        "harmless: transport tuning",
    ),
    s(
        "memcached.sess_persistent",
        Memcached,
        Bool,
        Some("0"),
        "harmless: transport tuning",
    ),
    s(
        "memcached.sess_sasl_username",
        Memcached,
        Text,
        Some(""),
        "lost: another login",
    ),
    s(
        "memcached.sess_sasl_password",
        Memcached,
        Text,
        Some(""),
        "lost: another login",
    ),
    s(
        "memcache.hash_strategy",
        Memcache,
        Caseless,
        Some("consistent"),
        "several servers: lost (race when every server holds every session); one: harmless",
    ),
    s(
        "memcache.hash_function",
        Memcache,
        Caseless,
        Some("crc32"),
        "several servers: lost (race when every server holds every session); one: harmless",
    ),
    s(
        "memcache.session_redundancy",
        Memcache,
        Int,
        Some("2"),
        "several servers: fragile; one: harmless",
    ),
    s(
        "memcache.session_prefix_static_key",
        Memcache,
        Text,
        None,
        "lost: another key",
    ),
    s(
        "memcache.session_prefix_host_key",
        Memcache,
        Bool,
        Some("0"),
        "lost: another key",
    ),
    s(
        "memcache.session_prefix_host_key_remove_www",
        Memcache,
        Bool,
        Some("1"),
        "lost when host keys are on, else harmless",
    ),
    s(
        "memcache.session_prefix_host_key_remove_subdomain",
        Memcache,
        Bool,
        Some("0"),
        "lost when host keys are on, else harmless",
    ),
    s(
        "memcache.lock_timeout",
        Memcache,
        Int,
        Some("15"),
        "harmless: how long a lock lives",
    ),
    s(
        "memcache.allow_failover",
        Memcache,
        Bool,
        Some("1"),
        "harmless: the session handler picks servers itself",
    ),
    s(
        "memcache.max_failover_attempts",
        Memcache,
        Int,
        Some("20"),
        "harmless: the session handler picks servers itself",
    ),
    s(
        "memcache.protocol",
        Memcache,
        Caseless,
        Some("ascii"),
        "harmless: the wire protocol",
    ),
    s(
        "memcache.compress_threshold",
        Memcache,
        Int,
        Some("20000"),
        "harmless: readers decompress by the item's flag",
    ),
    s(
        "memcache.chunk_size",
        Memcache,
        Int,
        Some("32768"),
        "harmless: network buffer size",
    ),
    s(
        "redis.session.locking_enabled",
        Redis,
        Bool,
        Some("0"),
        "redis: race; rediscluster: harmless (it never locks)",
    ),
    s(
        "redis.session.lock_expire",
        Redis,
        Int,
        Some("0"),
        "harmless: how long an abandoned lock lives",
    ),
    s(
        "redis.session.lock_wait_time",
        Redis,
        Int,
        Some("2000"),
        "harmless: lock retry timing",
    ),
    s(
        "redis.session.lock_retries",
        Redis,
        Int,
        Some("10"),
        "harmless: lock retry timing",
    ),
    s(
        "redis.session.compression",
        Redis,
        Caseless,
        Some("none"),
        "corrupt: the others cannot read what it compressed",
    ),
    s(
        "redis.session.compression_level",
        Redis,
        Int,
        Some("3"),
        "harmless: how hard it compresses",
    ),
    s(
        "redis.session.early_refresh",
        Redis,
        Bool,
        Some("0"),
        "harmless: when the expiry is renewed",
    ),
];

/// The setting `key`, if compared.
pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// The settings compared for a store of `handler`.
pub fn compared(handler: &Handler) -> Vec<&'static Setting> {
    SETTINGS
        .iter()
        .filter(|s| match s.scope {
            Scope::Session => true,
            Scope::Memcached => *handler == Handler::Memcached,
            Scope::Memcache => *handler == Handler::Memcache,
            Scope::Redis => matches!(handler, Handler::Redis | Handler::RedisCluster),
        })
        .collect()
}

/// The value of `key` as the extension understands it, for comparison; unset is the
/// built-in default.
pub fn normalise(key: &str, value: Option<&str>) -> String {
    let setting = setting(key);
    let value = value.or_else(|| setting.and_then(|s| s.default));
    let v = value.unwrap_or("").trim();
    match setting.map(|s| s.kind) {
        Some(Kind::Bool) => if parse_bool(v) { "1" } else { "0" }.to_string(),
        Some(Kind::Int) => int(v).to_string(),
        Some(Kind::Caseless) => v.to_ascii_lowercase(),
        Some(Kind::Text) | None => v.to_string(),
    }
}

/// The value of `key` for an operator.
pub fn display(key: &str, value: Option<&str>) -> String {
    match value {
        None => "(unset)".to_string(),
        Some(v) if setting(key).is_some_and(|s| s.kind == Kind::Bool) => {
            if parse_bool(v) { "on" } else { "off" }.to_string()
        }
        Some("") => "(empty)".to_string(),
        Some(v) => v.to_string(),
    }
}

/// PHP's reading of an integer setting: leading digits (atol), 0 when none.
fn int(v: &str) -> i64 {
    let v = v.trim();
    let (sign, digits) = match v.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, v.strip_prefix('+').unwrap_or(v)),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse::<i64>().map_or(0, |n| sign * n)
}

/// How far the round trip can speak to a judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proof {
    /// Configuration knowledge only (timings, HA, locking).
    #[default]
    Config,
    /// A round trip shows it whatever the session id: when it passes anyway, it wins.
    RoundTrip,
    /// It depends on where the session id hashes: a passing round trip proves nothing.
    PerId,
    /// The Set-Cookie the node sends shows it.
    Cookie,
    /// The expiry the store gives what the node wrote shows it.
    StoreTtl,
}

/// What one difference does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub consequence: Consequence,
    /// Why, in plain words.
    pub effect: String,
    pub proof: Proof,
}

fn j(consequence: Consequence, proof: Proof, effect: impl Into<String>) -> Judgement {
    Judgement {
        consequence,
        effect: effect.into(),
        proof,
    }
}

/// What the judgement of a node's difference may look at.
pub struct Context<'a> {
    /// The handler every node is expected to use.
    pub handler: &'a Handler,
    /// Servers of the expected store.
    pub servers: usize,
    /// The reference values.
    pub expected: &'a Ini,
    /// The node's values.
    pub found: &'a Ini,
    /// How fpmlb serves the site.
    pub listener: &'a SiteOrigin,
}

impl Context<'_> {
    fn want(&self, key: &str) -> String {
        normalise(key, self.expected.get(key).and_then(|v| v.as_deref()))
    }

    fn have(&self, key: &str) -> String {
        normalise(key, self.found.get(key).and_then(|v| v.as_deref()))
    }

    fn on(&self, ini: &Ini, key: &str) -> bool {
        normalise(key, ini.get(key).and_then(|v| v.as_deref())) == "1"
    }
}

/// Longest key memcached stores (memcached's protocol.txt: keys are at most 250
/// characters; php-memcached and pecl-memcache pass longer ones on and fail).
const MEMCACHED_MAX_KEY: i64 = 250;
/// What a lock key adds to a session key: php-memcached `lock.` (php_memcached_session.c
/// s_lock_session), pecl-memcache `.lock` (memcache_session.c php_mmc_session_read_request).
const LOCK_SUFFIX: i64 = 5;

/// The consequence of `key` being `found` on a node where `expected` is the reference.
pub fn judge(key: &str, ctx: &Context<'_>) -> Judgement {
    use Consequence::*;
    use Proof::*;
    let want = ctx.want(key);
    let have = ctx.have(key);
    let several = ctx.servers > 1;
    match key {
        // php-src ext/session/session.c php_session_start: the id is read from
        // $_COOKIE[session.name]; another name is another cookie.
        "session.name" => j(
            Lost,
            RoundTrip,
            format!(
                "this node reads and sets the cookie {have}, the others {want}: each starts a new session where the other's cookie is"
            ),
        ),
        // session.c php_session_decode: a serializer that cannot decode the data
        // destroys the session ("Failed to decode session object").
        "session.serialize_handler" => j(
            Corrupt,
            RoundTrip,
            format!(
                "sessions are written as {want} by the others and as {have} here: each side fails to decode the other's and PHP destroys the session"
            ),
        ),
        // The store expiry is gc_maxlifetime of the node that wrote last:
        // php_memcached_session.c PS_WRITE_FUNC (s_session_expiration(maxlifetime)),
        // redis_session.c PS_WRITE_FUNC (SETEX .. session_gc_maxlifetime()),
        // memcache_session.c PS_WRITE_FUNC (time() + session.gc_maxlifetime); for files,
        // mod_files.c ps_files_cleanup_dir deletes what is older than the collecting
        // node's gc_maxlifetime.
        "session.gc_maxlifetime" => {
            let (w, h) = (int(&want), int(&have));
            if h >= w {
                j(
                    Harmless,
                    StoreTtl,
                    format!(
                        "sessions it writes live {h} s instead of {w} s, until another node writes them again"
                    ),
                )
            } else if *ctx.handler == Handler::Files {
                if int(&ctx.have("session.gc_probability")) > 0 {
                    j(
                        ExpiresEarly,
                        Config,
                        format!(
                            "its garbage collection deletes every session file older than {h} s, the others keep them {w} s"
                        ),
                    )
                } else {
                    j(
                        Harmless,
                        Config,
                        format!(
                            "its garbage collection never runs (gc_probability 0), so its {h} s limit deletes nothing"
                        ),
                    )
                }
            } else {
                j(
                    ExpiresEarly,
                    StoreTtl,
                    format!(
                        "sessions it writes expire from the store after {h} s of inactivity, on the others after {w} s"
                    ),
                )
            }
        }
        // The stores expire sessions themselves: PS_GC_FUNC is a no-op in
        // php_memcached_session.c, memcache_session.c and redis_session.c; for files
        // the same files are deleted, only more or less often.
        "session.gc_probability" | "session.gc_divisor" => j(
            Harmless,
            Config,
            if *ctx.handler == Handler::Files {
                "only how often this node's garbage collection runs; it deletes the same old files"
            } else {
                "the store expires sessions itself: garbage collection does nothing for this handler"
            },
        ),
        // session.c php_session_initialize: strict mode asks s_validate_sid, which looks
        // in the (shared) store: php-memcached exists, phpredis EXISTS, files stat.
        "session.use_strict_mode" => j(
            Harmless,
            Config,
            "unknown ids are refused, but a session written by another node is in the shared store and accepted",
        ),
        // session.c php_session_start reads the cookie only `if (PS(use_cookies))`.
        // Not a round trip's to prove: the probe hands PHP the id itself
        // (session_id()); the Set-Cookie the node sends, or not, shows it.
        "session.use_cookies" => j(
            Lost,
            Cookie,
            if have == "0" {
                "this node neither reads nor sends the session cookie"
            } else {
                "the other nodes neither read nor send the session cookie this node relies on"
            },
        ),
        "session.use_only_cookies" | "session.use_trans_sid" => j(
            Harmless,
            Config,
            "only whether ids in URLs are used too; the cookie works the same",
        ),
        // session.c php_session_start (PHP 7.1+): the Referer check sits inside
        // `if (!PS(use_only_cookies))`, so with cookies only it is never applied.
        "session.referer_check" => {
            if have.is_empty() || ctx.on(ctx.found, "session.use_only_cookies") {
                j(
                    Harmless,
                    Config,
                    "not applied while session.use_only_cookies is on",
                )
            } else {
                j(
                    Lost,
                    Config,
                    format!(
                        "a request whose Referer lacks '{have}' (a link from another site) starts a new session on this node"
                    ),
                )
            }
        }
        // session.c php_session_send_cookie: Expires/Max-Age = now + cookie_lifetime,
        // none (until the browser closes) for 0.
        "session.cookie_lifetime" => {
            let (w, h) = (int(&want), int(&have));
            let shorter = (h > 0 && (w == 0 || h < w)) || (h == 0 && w > 0);
            if shorter {
                let theirs = if w == 0 {
                    "until the browser closes".to_string()
                } else {
                    format!("{w} s")
                };
                let here = if h == 0 {
                    "until the browser closes".to_string()
                } else {
                    format!("{h} s")
                };
                j(
                    ExpiresEarly,
                    Cookie,
                    format!("the cookie it sets lasts {here}, the others' {theirs}"),
                )
            } else {
                j(
                    Harmless,
                    Cookie,
                    format!(
                        "the cookie it sets lasts {} instead of {}",
                        secs(h),
                        secs(w)
                    ),
                )
            }
        }
        // RFC 6265 5.4: a cookie is sent only to paths below its Path. After an id
        // change on one node the browser keeps two cookies of the name; PHP reads the
        // first one sent (main/php_variables.c php_register_variable_ex keeps the first
        // of a duplicate cookie name).
        "session.cookie_path" => j(
            CookieDropped,
            Cookie,
            format!(
                "its cookie is sent back only under {}, the others' under {}: outside it the browser sends no session, or an older one",
                or_root(&have),
                or_root(&want)
            ),
        ),
        "session.cookie_domain" => judge_domain(&want, &have, ctx.listener),
        // RFC 6265bis 5.7 (storage model): a Secure cookie set over http:// is ignored.
        "session.cookie_secure" => {
            if have == "1" && !ctx.listener.https {
                j(
                    CookieDropped,
                    Cookie,
                    "its cookie is marked Secure and fpmlb serves cleartext (https: false): browsers refuse it (set https: true behind a TLS terminator)",
                )
            } else if have == "1" {
                j(
                    Harmless,
                    Cookie,
                    "its cookie is marked Secure; the site is served over https, so it is kept and sent",
                )
            } else {
                j(
                    Harmless,
                    Cookie,
                    "its cookie lacks Secure: it is kept and sent all the same",
                )
            }
        }
        "session.cookie_httponly" => j(
            Harmless,
            Cookie,
            "only whether scripts in the page can read the cookie",
        ),
        "session.cookie_samesite" => judge_samesite(&want, &have, ctx),
        "session.cookie_partitioned" => j(
            Harmless,
            Cookie,
            "a partitioned cookie is still sent on the site itself",
        ),
        // session.c php_session_valid_key accepts any id of [a-zA-Z0-9,-] up to 256
        // characters, whatever this node generates.
        "session.sid_length" | "session.sid_bits_per_character" => {
            if key == "session.sid_length" && key_too_long(ctx, int(&have)) {
                j(
                    Lost,
                    RoundTrip,
                    format!(
                        "ids of {have} characters plus the key prefix pass memcached's {MEMCACHED_MAX_KEY}-byte key limit: sessions this node starts cannot be stored"
                    ),
                )
            } else {
                j(
                    Harmless,
                    RoundTrip,
                    "only shapes the ids this node creates; every node accepts the others' ids",
                )
            }
        }
        // session.c php_session_save_current_state: lazy_write only chooses between
        // write and update_timestamp for unchanged data.
        "session.lazy_write" => j(
            Harmless,
            RoundTrip,
            "an unchanged session is touched instead of written: the same data, the same expiry",
        ),
        "session.cache_limiter" | "session.cache_expire" => j(
            Harmless,
            Config,
            "only the HTTP cache headers of pages that start a session",
        ),
        "session.auto_start" => j(
            Harmless,
            Config,
            "the session starts before the script runs: the same store, the same cookie",
        ),
        // php_memcached_session.c s_configure_from_ini_values: the prefix is the key
        // namespace (MEMCACHED_CALLBACK_NAMESPACE).
        "memcached.sess_prefix" => j(
            Lost,
            RoundTrip,
            format!("sessions are stored under {have}<id> here, {want}<id> on the others"),
        ),
        // php_memcached_session.c PS_READ_FUNC locks only `if (MEMC_SESS_INI(lock_enabled))`.
        "memcached.sess_locking" => j(
            Race,
            Config,
            if have == "0" {
                "this node takes no session lock: its requests do not wait for the others', the last write wins"
            } else {
                "only this node locks sessions: the others' requests do not wait for it, the last write wins"
            },
        ),
        "memcached.sess_lock_wait_min"
        | "memcached.sess_lock_wait_max"
        | "memcached.sess_lock_retries"
        | "redis.session.lock_wait_time"
        | "redis.session.lock_retries" => j(
            Harmless,
            Config,
            "only how long a request waits for a lock held by another",
        ),
        "memcached.sess_lock_expire" | "redis.session.lock_expire" | "memcache.lock_timeout" => j(
            Harmless,
            Config,
            "only how long a lock left by a request that died lives",
        ),
        // libmemcached places keys by ketama (consistent) or modula hashing
        // (php_memcached_session.c s_configure_from_ini_values sets the behaviour);
        // with one server every key is on it.
        "memcached.sess_consistent_hash"
        | "memcached.sess_consistent_hash_type"
        | "memcache.hash_strategy"
        | "memcache.hash_function" => {
            if !several {
                j(
                    Harmless,
                    Config,
                    "one server: every session is on it whatever the hashing",
                )
            } else if *ctx.handler == Handler::Memcache && memcache_everywhere(ctx) {
                // memcache_session.c PS_READ_FUNC tries the next servers up to
                // session_redundancy when the first lacks the session, and PS_WRITE_FUNC
                // writes that many copies: with as many copies as servers every server
                // has every session, but the lock key is taken on the first server of
                // each node's own hashing.
                j(
                    Race,
                    Config,
                    "every server holds every session (session_redundancy covers them all), but this node takes its lock on another server than the others: their requests do not wait for each other",
                )
            } else {
                j(
                    Lost,
                    PerId,
                    "this node looks for a session on another server than the node that wrote it",
                )
            }
        }
        "memcached.sess_binary_protocol" | "memcache.protocol" => j(
            Harmless,
            RoundTrip,
            "only the protocol on the wire: both read and write the same keys",
        ),
        // libmemcached storage.cc memcached_send_binary writes the copies to the next
        // servers; reads go to the primary first (memcached_behavior.rst).
        "memcached.sess_number_of_replicas" => replica_judgement(
            several,
            "keeps copies of its sessions on other servers where the others do not (or the reverse): when a server fails, only some sessions survive",
        ),
        "memcached.sess_randomize_replica_read" => {
            let replicas = int(&ctx.have("memcached.sess_number_of_replicas"))
                .max(int(&ctx.want("memcached.sess_number_of_replicas")));
            if several && replicas > 0 {
                j(
                    Race,
                    Config,
                    "reads may start at a copy another node did not update",
                )
            } else {
                j(Harmless, Config, "no copies to read from")
            }
        }
        "memcached.sess_remove_failed_servers" | "memcached.sess_server_failure_limit" => {
            replica_judgement(
                several,
                "when a server fails, this node moves its sessions to the other servers while the others keep looking on the failed one (or the reverse)",
            )
        }
        // memcache_session.c PS_WRITE_FUNC writes session_redundancy copies, PS_READ_FUNC
        // reads up to that many servers.
        "memcache.session_redundancy" => replica_judgement(
            several,
            format!(
                "keeps {have} copies of each session where the others keep {want}: when a server fails, the sessions with fewer copies are lost"
            ),
        ),
        "memcached.sess_connect_timeout" | "memcached.sess_persistent" => j(
            Harmless,
            RoundTrip,
            "only how this node connects: the same servers, the same keys",
        ),
        // php_memcached_session.c s_configure_from_ini_values: SASL credentials log in.
        "memcached.sess_sasl_username" | "memcached.sess_sasl_password" => j(
            Lost,
            RoundTrip,
            "this node logs in to memcached with other credentials",
        ),
        // memcache_session.c: keys are mmc_prepare_key_ex(id, .., session_key_prefix).
        "memcache.session_prefix_static_key" | "memcache.session_prefix_host_key" => j(
            Lost,
            RoundTrip,
            "sessions are stored under another key prefix",
        ),
        "memcache.session_prefix_host_key_remove_www"
        | "memcache.session_prefix_host_key_remove_subdomain" => {
            if ctx.on(ctx.found, "memcache.session_prefix_host_key")
                || ctx.on(ctx.expected, "memcache.session_prefix_host_key")
            {
                j(Lost, RoundTrip, "the host part of the key prefix differs")
            } else {
                j(Harmless, Config, "host key prefixes are off")
            }
        }
        // memcache_session.c uses mmc_pool_find_next itself, with a null failover handler.
        "memcache.allow_failover" | "memcache.max_failover_attempts" => j(
            Harmless,
            Config,
            "the session handler picks its servers itself",
        ),
        "memcache.compress_threshold" => j(
            Harmless,
            RoundTrip,
            "readers decompress by the flag stored with each item",
        ),
        "memcache.chunk_size" => j(Harmless, Config, "only the network buffer size"),
        // redis_session.c lock_acquire returns at once unless locking_enabled; the
        // rediscluster handler (PS_READ_FUNC(rediscluster)) never locks.
        "redis.session.locking_enabled" => {
            if *ctx.handler == Handler::RedisCluster {
                j(
                    Harmless,
                    Config,
                    "the rediscluster handler takes no lock whatever this says",
                )
            } else if have == "1" {
                j(
                    Race,
                    Config,
                    "only this node locks sessions: the others' requests do not wait for it, the last write wins",
                )
            } else {
                j(
                    Race,
                    Config,
                    "this node takes no session lock: its requests do not wait for the others', the last write wins",
                )
            }
        }
        // phpredis 6 redis_session.c session_compression_type: data is compressed with
        // the node's own setting and decompressed only when it has one.
        "redis.session.compression" => j(
            Corrupt,
            RoundTrip,
            format!(
                "sessions are compressed with {have} here and {want} on the others: each side cannot read the other's"
            ),
        ),
        "redis.session.compression_level" | "redis.session.early_refresh" => j(
            Harmless,
            Config,
            "only how hard sessions are compressed, or when their expiry is renewed",
        ),
        _ => j(
            Harmless,
            Config,
            "not known to change where sessions are kept",
        ),
    }
}

fn secs(n: i64) -> String {
    if n == 0 {
        "until the browser closes".to_string()
    } else {
        format!("{n} s")
    }
}

fn or_root(path: &str) -> &str {
    if path.is_empty() { "/ (unset)" } else { path }
}

fn replica_judgement(several: bool, effect: impl Into<String>) -> Judgement {
    if several {
        j(Consequence::Fragile, Proof::Config, effect)
    } else {
        j(
            Consequence::Harmless,
            Proof::Config,
            "one server: there is nowhere else to keep a copy",
        )
    }
}

/// Whether every pecl-memcache server holds every session, on both sides.
fn memcache_everywhere(ctx: &Context<'_>) -> bool {
    let servers = i64::try_from(ctx.servers).unwrap_or(i64::MAX);
    int(&ctx.want("memcache.session_redundancy")) >= servers
        && int(&ctx.have("memcache.session_redundancy")) >= servers
}

/// Whether a new id of `sid_length` characters, with the node's key prefix and lock
/// suffix, passes memcached's key limit.
fn key_too_long(ctx: &Context<'_>, sid_length: i64) -> bool {
    let prefix = match ctx.handler {
        Handler::Memcached => ctx.have("memcached.sess_prefix").len(),
        Handler::Memcache => ctx.have("memcache.session_prefix_static_key").len(),
        _ => return false,
    };
    // sid_length is the node's word: saturating, never overflowing.
    i64::try_from(prefix)
        .unwrap_or(i64::MAX)
        .saturating_add(sid_length)
        .saturating_add(LOCK_SUFFIX)
        > MEMCACHED_MAX_KEY
}

fn judge_domain(want: &str, have: &str, listener: &SiteOrigin) -> Judgement {
    use Consequence::*;
    // RFC 6265 5.3 step 6: a Domain that does not domain-match the request host
    // makes the browser ignore the cookie.
    if !have.is_empty()
        && let Some(host) = listener.host.as_deref()
        && !cookie::domain_match(host, have)
    {
        return j(
            CookieDropped,
            Proof::Cookie,
            format!(
                "its cookie is for {have}, the site is {host} (server_name): browsers refuse it"
            ),
        );
    }
    j(
        CookieDropped,
        Proof::Cookie,
        format!(
            "its cookie's domain is {}, the others' {}: after the id changes on one node the browser holds two cookies of the name and sends the older first",
            if have.is_empty() {
                "the host only"
            } else {
                have
            },
            if want.is_empty() {
                "the host only"
            } else {
                want
            }
        ),
    )
}

/// SameSite from loosest to strictest: None, then Lax (and unset, which browsers
/// treat as Lax: RFC 6265bis "Lax-allowing-unsafe" default), then Strict.
fn samesite_rank(value: &str) -> u8 {
    match value.to_ascii_lowercase().as_str() {
        "none" => 0,
        "strict" => 2,
        _ => 1,
    }
}

fn judge_samesite(want: &str, have: &str, ctx: &Context<'_>) -> Judgement {
    use Consequence::*;
    // RFC 6265bis 5.7: a SameSite=None cookie without Secure is ignored.
    if have.eq_ignore_ascii_case("none") && !ctx.on(ctx.found, "session.cookie_secure") {
        return j(
            CookieDropped,
            Proof::Cookie,
            "SameSite=None without Secure: browsers refuse the cookie",
        );
    }
    if samesite_rank(have) > samesite_rank(want) {
        return j(
            CookieDropped,
            Proof::Cookie,
            format!(
                "SameSite={have} here, {} on the others: its cookie is not sent on requests coming from other sites (links, payment returns), where the others' is, and the session started then replaces it",
                if want.is_empty() { "unset" } else { want }
            ),
        );
    }
    j(
        Harmless,
        Proof::Cookie,
        "its cookie is sent at least wherever the others' is",
    )
}

/// The consequence of a save path part that differs (`part` as in
/// `session.save_path <part>`), for the expected store `want` and the node's `have`.
pub fn judge_store(part: &str, want: &StoreSpec, have: &StoreSpec) -> Judgement {
    use Consequence::*;
    match part {
        "servers" => {
            if want.handler == Handler::RedisCluster {
                // phpredis cluster_library.c cluster_map_keyspace maps the whole
                // cluster from any seed that answers.
                return j(
                    Lost,
                    Proof::RoundTrip,
                    "no seed in common: another Redis Cluster",
                );
            }
            let mut a = want.servers.clone();
            let mut b = have.servers.clone();
            a.sort();
            b.sort();
            if a == b {
                j(
                    Lost,
                    Proof::PerId,
                    format!(
                        "the same servers in another order or weights: {} places each session on another server",
                        want.distribution
                    ),
                )
            } else {
                j(
                    Lost,
                    Proof::RoundTrip,
                    "another store: the other nodes will not find what this node writes",
                )
            }
        }
        "seeds" => j(
            Harmless,
            Proof::RoundTrip,
            "other seeds of the same Redis Cluster: phpredis maps the whole cluster from any seed",
        ),
        "weight" => j(
            Harmless,
            Proof::RoundTrip,
            "a weight with a single server: every session is on it",
        ),
        // rediscluster `failover=distribute`: reads may go to a replica
        // (phpredis redis_session.c PS_OPEN_FUNC(rediscluster), cluster_library.c).
        "failover" => {
            let distribute = |s: &StoreSpec| {
                s.tuning
                    .get("failover")
                    .is_some_and(|v| v.to_ascii_lowercase().starts_with("distribute"))
            };
            if distribute(want) || distribute(have) {
                j(
                    Race,
                    Proof::Config,
                    "reads may go to a replica that does not have the last write yet",
                )
            } else {
                j(
                    Harmless,
                    Proof::Config,
                    "only what happens when a master fails",
                )
            }
        }
        "prefix" | "database" | "auth" | "path" | "depth" | "save_path" => j(
            Lost,
            Proof::RoundTrip,
            match part {
                "prefix" => "sessions are stored under another key prefix",
                "database" => "sessions are stored in another database",
                "auth" => "this node logs in with another password",
                "depth" => "session files are looked for in other subdirectories",
                _ => "sessions are stored elsewhere",
            },
        ),
        // Transport tuning phpredis and pecl-memcache read from the save path
        // (timeout, read_timeout, persistent, persistent_id, retry_interval, udp_port).
        _ => j(
            Harmless,
            Proof::RoundTrip,
            "only how this node connects: the same servers, the same keys",
        ),
    }
}

/// Weaknesses of the store every node uses (the expected one): said once for the
/// cluster, not per node. `ini` is the reference node's settings.
pub fn store_weaknesses(spec: &StoreSpec, ini: &Ini) -> Vec<(Consequence, String)> {
    let mut out = Vec::new();
    let on = |key: &str| normalise(key, ini.get(key).and_then(|v| v.as_deref())) == "1";
    let num = |key: &str| int(&normalise(key, ini.get(key).and_then(|v| v.as_deref())));
    let servers = spec.servers.len();
    if spec.handler.store_kind().is_some() && servers == 1 && spec.handler != Handler::RedisCluster
    {
        out.push((
            Consequence::Fragile,
            format!(
                "one {} server ({}) holds every session: when it restarts or fails, every user is logged out",
                spec.handler.name(),
                spec.servers_text()
            ),
        ));
    }
    match spec.handler {
        Handler::Memcached => {
            // libmemcached storage.cc: only memcached_send_binary writes replicas.
            if num("memcached.sess_number_of_replicas") > 0 && !on("memcached.sess_binary_protocol") {
                out.push((
                    Consequence::Fragile,
                    "memcached.sess_number_of_replicas is set but memcached.sess_binary_protocol is off: libmemcached writes replicas only over the binary protocol, so there are none".to_string(),
                ));
            }
            if servers > 1 && !on("memcached.sess_consistent_hash") {
                out.push((
                    Consequence::Fragile,
                    format!("{servers} memcached servers without consistent hashing (memcached.sess_consistent_hash off): when one fails or comes back, modula hashing moves most sessions to another server"),
                ));
            }
        }
        Handler::Memcache => {
            let standard = normalise("memcache.hash_strategy", ini.get("memcache.hash_strategy").and_then(|v| v.as_deref())) == "standard";
            if servers > 1 && standard {
                out.push((
                    Consequence::Fragile,
                    format!("{servers} memcached servers with memcache.hash_strategy = standard: when one fails or comes back, most sessions move to another server"),
                ));
            }
        }
        // redis_session.c redis_pool_get_sock: a session goes to one server chosen by
        // weight ranges; nothing is copied.
        Handler::Redis if servers > 1 => out.push((
            Consequence::Fragile,
            format!("phpredis spreads sessions over the {servers} listed Redis servers, it does not replicate them: each holds a share, lost when it fails (list one server, with replication behind it, or use Redis Cluster)"),
        )),
        // redis_session.c: PS_READ_FUNC(rediscluster) reads without lock_acquire.
        Handler::RedisCluster => out.push((
            Consequence::Race,
            "phpredis' rediscluster handler takes no session lock (redis.session.locking_enabled does not apply to it): concurrent requests of one session overwrite each other".to_string(),
        )),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests;
