//! What a node reports about its PHP session settings: the answer of `conf/probe.php` for
//! `FPMLB_PROBE_ACTION=config` ([`NodeConfig`]), deserialised; the values the application's
//! scripts get once its `.user.ini` files apply ([`NodeConfig::apply_user_ini`]); and the
//! store it makes the node use ([`NodeConfig::store_spec`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::save_path::{Handler, Ini, StoreSpec, parse_with};

/// Session extensions loaded on a node (`extension_loaded()` in the probe).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Extensions {
    /// php-memcached: the `memcached` save handler.
    #[serde(default)]
    pub memcached: bool,
    /// pecl-memcache: the `memcache` save handler.
    #[serde(default)]
    pub memcache: bool,
    /// phpredis: the `redis` and `rediscluster` save handlers.
    #[serde(default)]
    pub redis: bool,
}

impl Extensions {
    /// Whether the extension `name` (`memcached`, `memcache` or `redis`) is loaded.
    pub fn is_loaded(&self, name: &str) -> bool {
        match name {
            "memcached" => self.memcached,
            "memcache" => self.memcache,
            "redis" => self.redis,
            _ => false,
        }
    }
}

/// What a node reported (the probe's `config` JSON), deserialised.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct NodeConfig {
    /// Name the node gives itself (`NODE_NAME` of the pool, else its host name).
    pub node: String,
    /// `PHP_VERSION`.
    pub php_version: String,
    /// `PHP_SAPI`, `fpm-fcgi` on php-fpm.
    #[serde(default)]
    pub sapi: String,
    /// Session extensions loaded.
    pub extensions: Extensions,
    /// Effective `session.*`, `memcached.sess_*`, `memcache.*` and `redis.session.*` values,
    /// credentials digested.
    pub ini: Ini,
    /// Registered session save handlers (`files user memcached ...`), when the probe could
    /// tell.
    #[serde(default)]
    pub save_handler_registered: Vec<String>,
    /// How the probe found the registered handlers (`phpinfo`, `session_module_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_handler_registered_source: Option<String>,
    /// Version of the probe's answer format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_version: Option<u32>,
    /// PHP warnings the probe collected while answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where each reported value comes from, as PHP tells (probe version 2).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub origin: BTreeMap<String, Origin>,
    /// `php_ini_loaded_file()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub php_ini_loaded_file: Option<String>,
    /// `php_ini_scanned_files()`, one path each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub php_ini_scanned_files: Vec<String>,
    /// The `.user.ini` files the application's scripts get.
    #[serde(default)]
    pub user_ini: UserIni,
    /// `files` handler: whether PHP can list its directory (its garbage collection needs
    /// to; Debian's mode 1733 does not let it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_dir_listable: Option<bool>,
    /// Settings [`apply_user_ini`](Self::apply_user_ini) took from a `.user.ini`: key → file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub from_user_ini: BTreeMap<String, String>,
}

/// What PHP tells about where a setting's value comes from (`ini_get_all()` and
/// `get_cfg_var()` in the probe).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Origin {
    /// The value every request of the pool starts with: php.ini, then the pool's
    /// `php_value`/`php_admin_value` lines, which php-fpm writes over it at worker start
    /// (php-src sapi/fpm/fpm/fpm_php.c fpm_php_apply_defines).
    #[serde(default)]
    pub global: Option<String>,
    /// The levels that may still change it: 7 `PHP_INI_ALL`; a `php_admin_value` leaves 4
    /// (`PHP_INI_SYSTEM`), and then a `.user.ini` cannot change it.
    #[serde(default = "all_access")]
    pub access: u8,
    /// What php.ini and its scan directory say (`get_cfg_var()`: the pool's lines never
    /// reach it), `None` when they do not set it.
    #[serde(default)]
    pub php_ini: Option<String>,
}

fn all_access() -> u8 {
    7
}

/// The `.user.ini` files php-fpm applies to the application's scripts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct UserIni {
    /// `user_ini.filename` (empty: disabled).
    #[serde(default)]
    pub filename: String,
    /// From the document root down to the application script's directory.
    #[serde(default)]
    pub files: Vec<UserIniFile>,
}

/// One `.user.ini` file and its session-relevant settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct UserIniFile {
    pub path: String,
    /// Whether PHP could parse it (php-fpm ignores a file it cannot).
    #[serde(default)]
    pub parsed: bool,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

impl NodeConfig {
    /// Applies the application's `.user.ini` settings to [`ini`](Self::ini), where php-fpm
    /// would: a setting whose access allows `PHP_INI_PERDIR` (not a `php_admin_value`),
    /// deeper files winning (php-src sapi/fpm/fpm/fpm_main.c php_cgi_ini_activate_user_config).
    /// The probe does the same before its session actions, so the round trip runs with
    /// the values compared.
    pub fn apply_user_ini(&mut self) {
        const PHP_INI_PERDIR: u8 = 2;
        for file in self.user_ini.files.iter().filter(|f| f.parsed) {
            for (key, value) in &file.settings {
                if !self.ini.contains_key(key) {
                    continue; // the extension is not loaded: PHP ignores the line
                }
                let access = self.origin.get(key).map_or(7, |o| o.access);
                if access & PHP_INI_PERDIR == 0 {
                    continue;
                }
                self.ini.insert(key.clone(), Some(value.clone()));
                self.from_user_ini.insert(key.clone(), file.path.clone());
            }
        }
    }

    /// The reported value of ini setting `key`, `None` when unset or not reported.
    pub fn ini_value(&self, key: &str) -> Option<&str> {
        self.ini.get(key).and_then(|v| v.as_deref())
    }

    /// The effective `session.save_handler` (PHP's default `files` when not reported).
    pub fn save_handler(&self) -> Handler {
        Handler::from_name(self.ini_value("session.save_handler").unwrap_or("files"))
    }

    /// The save path the handler really uses: `memcache.session_save_path` replaces
    /// `session.save_path` for pecl-memcache whenever it is set.
    pub fn effective_save_path(&self) -> &str {
        if self.save_handler() == Handler::Memcache
            && let Some(path) = self.ini_value("memcache.session_save_path")
        {
            return path;
        }
        self.ini_value("session.save_path").unwrap_or("")
    }

    /// The node's session store, normalised with the node's own hashing settings.
    pub fn store_spec(&self) -> Result<StoreSpec, String> {
        parse_with(&self.save_handler(), self.effective_save_path(), &self.ini)
    }
}

#[cfg(test)]
mod tests {
    use crate::save_path::Handler;
    use crate::save_path::testing::{opts, servers};
    use crate::session::fixtures::*;

    #[test]
    fn real_probe_answers_deserialise() {
        let m = fixture(MEMCACHED_WEB01);
        assert_eq!(
            (m.node.as_str(), m.sapi.as_str(), m.probe_version),
            ("web01", "fpm-fcgi", Some(1))
        );
        assert!(m.extensions.memcached && m.extensions.memcache && m.extensions.redis);
        assert!(m.save_handler_registered.iter().any(|h| h == "memcached"));
        assert_eq!(m.save_handler(), Handler::Memcached);
        assert_eq!(
            servers(&m.store_spec().unwrap()),
            ["127.0.30.1:11211", "127.0.30.1:11212"]
        );
        assert_eq!(m.ini_value("memcache.session_save_path"), None);

        let f = fixture(FILES_WEB02);
        assert_eq!(f.node, "web02");
        assert_eq!(f.save_handler(), Handler::Files);
        assert_eq!(
            f.store_spec().unwrap().options["path"],
            "/var/lib/php/sessions"
        );

        let r = fixture(REDIS_WEB01);
        let s = r.store_spec().unwrap();
        assert_eq!(servers(&s), ["127.0.31.1:6379"]);
        assert_eq!(
            s.options,
            opts(&[
                ("auth", "sha256:2bb80d537b1da3e3"),
                ("database", "2"),
                ("prefix", "app_")
            ])
        );
        assert!(!REDIS_WEB01.contains("secret"));

        let mc = fixture(MEMCACHE_WEB01);
        assert_eq!(mc.save_handler(), Handler::Memcache);
        assert!(mc.store_spec().is_ok());
        // Round trip through serde keeps everything.
        assert_eq!(fixture(&serde_json::to_string(&m).unwrap()), m);
    }

    #[test]
    fn memcache_session_save_path_replaces_session_save_path() {
        let mut n = fixture(MEMCACHE_WEB01);
        assert_eq!(
            servers(&n.store_spec().unwrap()),
            ["127.0.32.1:11211", "127.0.32.1:11212"]
        );
        n.ini.insert(
            "memcache.session_save_path".into(),
            Some("tcp://10.9.9.9:11211".into()),
        );
        assert_eq!(n.effective_save_path(), "tcp://10.9.9.9:11211");
        assert_eq!(servers(&n.store_spec().unwrap()), ["10.9.9.9:11211"]);
        // Only for the memcache handler.
        let mut m = fixture(MEMCACHED_WEB01);
        m.ini.insert(
            "memcache.session_save_path".into(),
            Some("tcp://10.9.9.9:11211".into()),
        );
        assert_eq!(m.effective_save_path(), "127.0.30.1:11211,127.0.30.1:11212");
    }
}
