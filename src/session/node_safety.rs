//! Is a node open to php-fpm's PATH_INFO walk-back? `fpmlb check` asks
//! each node, through the probe, for what decides it, and warns.
//!
//! fpmlb refuses the walk-back's shapes itself (`http::walk_back`), but a
//! node is also reached by whatever else talks FastCGI to it, and a pool
//! that runs more than `.php` leaves a shape fpmlb cannot see. What is
//! known, and how:
//! - `cgi.fix_pathinfo`: read by the probe (`ini_get`). 1 (PHP's default)
//!   walks back; 0 does not, but then php-fpm answers its ping and status
//!   pages to PATH_INFO and sets PHP_SELF to it (empty without one), so
//!   fpmlb recommends 1 and warns about 0.
//! - `security.limit_extensions`: a pool setting PHP cannot read. The probe
//!   leaves two text files in the node's temp dir, one named `.phar` and one
//!   of a made-up extension, and fpmlb asks php-fpm to run each: 403
//!   "Access denied." means refused; their text back means php-fpm runs
//!   such files as PHP.
//!
//! [`warnings`] is the judgement, pure; [`inspect`] gathers the facts.

use std::sync::Arc;
use std::time::Duration;

use crate::fastcgi::exchange::ExchangeTimeouts;
use crate::fastcgi::params;
use crate::session::probe::Probe;
use crate::upstream::backend::Backend;
use crate::upstream::exchange::small_request;

/// What the probe's test files hold (conf/probe.php).
const TEST_TEXT: &str = "fpmlb limit_extensions test";

/// Whether php-fpm runs a file of some extension as a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runs {
    /// 403 "Access denied.": `security.limit_extensions` refuses it.
    Refused,
    /// It ran (its text came back).
    Runs,
    /// Could not tell, and why.
    Unknown(String),
}

/// What decides the walk-back on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    /// `cgi.fix_pathinfo`; None when the probe did not say (an older probe).
    pub fix_pathinfo: Option<bool>,
    /// A file named `.phar` (php-fpm's default allows it).
    pub phar: Runs,
    /// A file of an extension nobody allows on purpose.
    pub other: Runs,
}

/// The warnings a node's exposure deserves, for `fpmlb check`.
pub fn warnings(e: &Exposure) -> Vec<String> {
    let mut out = Vec::new();
    let walks_back = e.fix_pathinfo != Some(false);
    if e.other == Runs::Runs {
        out.push(
            "php-fpm runs files of any extension as PHP (security.limit_extensions is empty): \
             an uploaded image runs as /uploads/x.jpg/y.php through anything but fpmlb; \
             set security.limit_extensions = .php in the pool"
                .to_string(),
        );
    } else if e.phar == Runs::Runs && walks_back {
        out.push(
            "php-fpm walks back PATH_INFO (cgi.fix_pathinfo=1) and runs .phar files \
             (security.limit_extensions, default .php .phar): an uploaded avatar.phar runs as \
             /uploads/avatar.phar/x.php through anything but fpmlb; set \
             security.limit_extensions = .php in the pool"
                .to_string(),
        );
    }
    if e.fix_pathinfo == Some(false) {
        out.push(
            "cgi.fix_pathinfo=0: php-fpm answers its ping and status pages to PATH_INFO \
             (/index.php/status) and gives PHP_SELF the PATH_INFO (empty without one); fpmlb \
             refuses the page paths it knows (health.ping_path, health.status_path, /ping, \
             /status, /fpm-ping, /fpm-status): keep cgi.fix_pathinfo=1 behind fpmlb"
                .to_string(),
        );
    }
    let unknown: Vec<String> = [
        ("a .phar file", &e.phar),
        ("an unknown extension", &e.other),
    ]
    .into_iter()
    .filter_map(|(what, runs)| match runs {
        Runs::Unknown(why) => Some(format!("{what}: {why}")),
        _ => None,
    })
    .collect();
    if !unknown.is_empty() && e.phar != Runs::Runs && e.other != Runs::Runs {
        out.push(format!(
            "could not tell which files php-fpm runs (security.limit_extensions): {}",
            unknown.join("; ")
        ));
    }
    out
}

/// The probe's `php_fpm` report: `cgi.fix_pathinfo` and the test files.
fn facts(config: &serde_json::Value) -> (Option<bool>, Option<String>, Option<String>) {
    let fpm = &config["php_fpm"];
    let fix = match &fpm["cgi.fix_pathinfo"] {
        serde_json::Value::String(v) => Some(!matches!(v.trim(), "0" | "" | "off" | "Off")),
        _ => None,
    };
    let path = |key: &str| {
        fpm["limit_extensions_test"][key]
            .as_str()
            .filter(|p| p.starts_with('/'))
            .map(str::to_string)
    };
    (fix, path("phar"), path("other"))
}

/// Asks php-fpm to run the file at `path` (as the node sees it).
async fn runs(backend: &Arc<Backend>, path: Option<&str>, timeout: Duration) -> Runs {
    let Some(path) = path else {
        return Runs::Unknown("the probe made no test file (temp dir not writable?)".into());
    };
    let name = path.rsplit('/').next().unwrap_or(path);
    let params = params::internal_get(path, &format!("/{name}"), "");
    let timeouts = ExchangeTimeouts {
        send: timeout,
        read: timeout,
    };
    match small_request(backend, &params, b"", timeout, timeouts, 4096).await {
        Ok(resp) if resp.head.status == 403 => Runs::Refused,
        Ok(resp) if resp.head.status == 200 && resp.body.starts_with(TEST_TEXT.as_bytes()) => {
            Runs::Runs
        }
        Ok(resp) => Runs::Unknown(format!("php-fpm answered {}", resp.head.status)),
        Err(e) => Runs::Unknown(e.to_string()),
    }
}

/// The facts about `backend`, from its probe and two requests.
pub async fn inspect(probe: &Probe, backend: &Arc<Backend>) -> Result<Exposure, String> {
    let config = probe.config(backend).await.map_err(|e| e.to_string())?;
    let (fix_pathinfo, phar, other) = facts(&config);
    Ok(Exposure {
        fix_pathinfo,
        phar: runs(backend, phar.as_deref(), probe.timeout).await,
        other: runs(backend, other.as_deref(), probe.timeout).await,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure(fix: Option<bool>, phar: Runs, other: Runs) -> Exposure {
        Exposure {
            fix_pathinfo: fix,
            phar,
            other,
        }
    }

    #[test]
    fn php_fpms_defaults_are_warned_about() {
        let w = warnings(&exposure(Some(true), Runs::Runs, Runs::Refused));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("avatar.phar") && w[0].contains(".php in the pool"));
    }

    #[test]
    fn the_recommended_pool_is_quiet() {
        let w = warnings(&exposure(Some(true), Runs::Refused, Runs::Refused));
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn any_extension_is_worse_than_phar() {
        let w = warnings(&exposure(Some(true), Runs::Runs, Runs::Runs));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("any extension"));
    }

    #[test]
    fn fix_pathinfo_0_is_its_own_warning() {
        // No walk-back, so a .phar cannot be reached by one; but the pages can.
        let w = warnings(&exposure(Some(false), Runs::Runs, Runs::Refused));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("cgi.fix_pathinfo=0"));
    }

    #[test]
    fn what_could_not_be_told_is_said() {
        let w = warnings(&exposure(
            Some(true),
            Runs::Unknown("php-fpm answered 404".into()),
            Runs::Refused,
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("could not tell") && w[0].contains("404"));
    }

    #[test]
    fn facts_come_from_the_probes_php_fpm_report() {
        let config = serde_json::json!({
            "php_fpm": {
                "cgi.fix_pathinfo": "1",
                "limit_extensions_test": {"phar": "/tmp/fpmlb-limit-extensions.phar", "other": null}
            }
        });
        assert_eq!(
            facts(&config),
            (
                Some(true),
                Some("/tmp/fpmlb-limit-extensions.phar".to_string()),
                None
            )
        );
        let old_probe = serde_json::json!({"node": "web01"});
        assert_eq!(facts(&old_probe), (None, None, None));
        let off = serde_json::json!({"php_fpm": {"cgi.fix_pathinfo": "0"}});
        assert_eq!(facts(&off).0, Some(false));
    }
}
