//! `fpmlb check --explain`: every session-relevant setting of a node, the value
//! the application gets, and where it came from as far as PHP can tell.
//!
//! What PHP tells (the probe's `origin`, see `session::node`): the pool-wide
//! value (php.ini, then the pool's lines), whether a `php_admin_value` locked it
//! (access 4), and what php.ini and its scan directory say (`get_cfg_var()`,
//! which the pool's lines never reach). So:
//!
//! * a `.user.ini` of the application set it → that file;
//! * locked to `PHP_INI_SYSTEM` where PHP declares it changeable → the pool's
//!   `php_admin_value`;
//! * php.ini has it and the pool-wide value is the same → php.ini (the file PHP
//!   loaded, or one of its scanned files: PHP does not say which);
//! * php.ini has it but the pool-wide value differs → the pool's `php_value`;
//! * php.ini does not have it: the built-in default when the value is the
//!   extension's default, else the pool's `php_value`, or a default a
//!   distribution patched into its build (Debian's `session.save_path`).
//!
//! A pool line that sets the value php.ini (or the default) already has is
//! indistinguishable from none.

use crate::save_path::Handler;
use crate::session::compare::Difference;
use crate::session::node::NodeConfig;
use crate::session::rules;
use crate::session::verdict::SettingReport;

/// Settings shown besides the compared ones: (key, built-in default).
const EXTRA: &[(&str, &str)] = &[
    ("session.save_handler", "files"),
    ("session.save_path", ""),
    ("memcache.session_save_path", ""),
    ("max_execution_time", "0"),
];

/// Where `key`'s value on node `cfg` comes from, in words.
pub fn source(cfg: &NodeConfig, key: &str) -> String {
    if let Some(path) = cfg.from_user_ini.get(key) {
        return format!(".user.ini ({path})");
    }
    let Some(origin) = cfg.origin.get(key) else {
        return "not reported (probe too old)".to_string();
    };
    const PHP_INI_SYSTEM: u8 = 4;
    let declared = rules::setting(key).map_or(7, |s| s.access);
    let local = cfg.ini_value(key);
    let global = origin.global.as_deref();
    if rules::normalise(key, local) != rules::normalise(key, global) {
        return "this request only (a PHP_VALUE param of the web server?)".to_string();
    }
    if origin.access == PHP_INI_SYSTEM && declared != PHP_INI_SYSTEM {
        return "pool php_admin_value".to_string();
    }
    let php_ini = cfg.php_ini_loaded_file.as_deref().unwrap_or("php.ini");
    match origin.php_ini.as_deref() {
        Some(ini) if rules::normalise(key, Some(ini)) == rules::normalise(key, global) => {
            if cfg.php_ini_scanned_files.is_empty() {
                php_ini.to_string()
            } else {
                format!("{php_ini} or its conf.d")
            }
        }
        Some(ini) => format!(
            "pool php_value ({php_ini} says {})",
            rules::display(key, Some(ini))
        ),
        None => {
            let default = rules::setting(key)
                .and_then(|s| s.default)
                .or_else(|| EXTRA.iter().find(|(k, _)| *k == key).map(|(_, d)| *d));
            match default {
                Some(d) if rules::normalise(key, Some(d)) == rules::normalise(key, global) => {
                    "built-in default".to_string()
                }
                // Distributions patch some defaults (Debian's session.save_path is
                // /var/lib/php/sessions): PHP cannot tell those from a pool line.
                _ => "pool php_value (or this PHP build's default)".to_string(),
            }
        }
    }
}

/// Every session-relevant setting `cfg` reports, with its source, and the
/// reference value and consequence where it differs.
pub fn settings(cfg: &NodeConfig, differences: &[Difference]) -> Vec<SettingReport> {
    let handler = cfg.save_handler();
    let mut keys: Vec<&str> = EXTRA.iter().map(|(k, _)| *k).collect();
    keys.extend(rules::compared(&handler).iter().map(|s| s.key));
    keys.into_iter()
        .filter(|k| cfg.ini.contains_key(*k))
        .filter(|k| *k != "memcache.session_save_path" || handler == Handler::Memcache)
        .map(|key| {
            let diff = differences.iter().find(|d| d.setting == key);
            SettingReport {
                setting: key.to_string(),
                value: rules::display(key, cfg.ini_value(key).or(Some(""))),
                source: source(cfg, key),
                expected: diff.map(|d| d.expected.clone()),
                consequence: diff.map(|d| d.consequence),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::fixtures::node;
    use crate::session::node::{Origin, UserIni, UserIniFile};

    fn origin(global: &str, access: u8, php_ini: Option<&str>) -> Origin {
        Origin {
            global: Some(global.to_string()),
            access,
            php_ini: php_ini.map(str::to_string),
        }
    }

    #[test]
    fn sources_as_php_tells_them() {
        // What PHP 8.2's php-fpm showed for each layer (ini_get_all, get_cfg_var).
        let mut n = node(
            "web01",
            &[
                ("session.gc_maxlifetime", Some("600")),
                ("session.save_handler", Some("memcached")),
                ("session.cookie_secure", Some("1")),
                ("session.gc_probability", Some("0")),
                ("session.cookie_httponly", Some("0")),
                ("session.name", Some("PHPSESSID")),
            ],
        );
        n.php_ini_loaded_file = Some("/etc/php/8.2/fpm/php.ini".to_string());
        n.origin.insert(
            "session.gc_maxlifetime".into(),
            origin("600", 7, Some("1440")),
        );
        n.origin.insert(
            "session.save_handler".into(),
            origin("memcached", 4, Some("files")),
        );
        n.origin
            .insert("session.cookie_secure".into(), origin("1", 7, None));
        n.origin
            .insert("session.gc_probability".into(), origin("0", 7, Some("0")));
        n.origin
            .insert("session.cookie_httponly".into(), origin("0", 7, None));
        n.origin.insert(
            "session.name".into(),
            origin("PHPSESSID", 7, Some("PHPSESSID")),
        );
        assert_eq!(
            source(&n, "session.gc_maxlifetime"),
            "pool php_value (/etc/php/8.2/fpm/php.ini says 1440)"
        );
        assert_eq!(source(&n, "session.save_handler"), "pool php_admin_value");
        assert_eq!(
            source(&n, "session.cookie_secure"),
            "pool php_value (or this PHP build's default)"
        );
        assert_eq!(
            source(&n, "session.gc_probability"),
            "/etc/php/8.2/fpm/php.ini"
        );
        assert_eq!(source(&n, "session.cookie_httponly"), "built-in default");
        assert_eq!(
            source(&n, "session.lazy_write"),
            "not reported (probe too old)"
        );

        // A .user.ini in the document root changes what the application gets, unless
        // a php_admin_value locked the setting.
        n.user_ini = UserIni {
            filename: ".user.ini".into(),
            files: vec![UserIniFile {
                path: "/var/www/html/.user.ini".into(),
                parsed: true,
                settings: [
                    ("session.name".to_string(), "USERINI".to_string()),
                    ("session.save_handler".to_string(), "files".to_string()),
                ]
                .into_iter()
                .collect(),
            }],
        };
        n.apply_user_ini();
        assert_eq!(n.ini_value("session.name"), Some("USERINI"));
        assert_eq!(n.ini_value("session.save_handler"), Some("memcached"));
        assert_eq!(
            source(&n, "session.name"),
            ".user.ini (/var/www/html/.user.ini)"
        );
        let rows = settings(&n, &[]);
        let name = rows.iter().find(|r| r.setting == "session.name").unwrap();
        assert_eq!(
            (name.value.as_str(), name.expected.as_deref()),
            ("USERINI", None)
        );
    }
}
