//! php-fpm's PATH_INFO walk-back, closed from fpmlb's side whatever the
//! nodes are set to. Pure: decides on the routed SCRIPT_NAME and PATH_INFO.
//!
//! When SCRIPT_FILENAME names no file, php-fpm with `cgi.fix_pathinfo=1` (its
//! default) strips path segments from the end until it finds a regular file,
//! runs that file if its name ends in one of the pool's
//! `security.limit_extensions` (`.php .phar` by default), and takes the
//! start of PATH_INFO as the new SCRIPT_NAME (php-src
//! sapi/fpm/fpm/fpm_main.c, `init_request_info`). Its ping and status pages
//! answer when that SCRIPT_NAME is `ping.path` or `pm.status_path`, before
//! any script or extension check. Measured on php-fpm 8.2 behind fpmlb
//! without this guard:
//!
//! | request                                   | fix_pathinfo=1       | fix_pathinfo=0 |
//! |-------------------------------------------|----------------------|----------------|
//! | `/robots.txt/x.php/fpm-status/x.php?full` | the status page      | 404            |
//! | `/robots.txt/x.php/fpm-ping/x.php`        | `pong`               | 404            |
//! | `/uploads/avatar.phar/x.php`              | runs avatar.phar     | 404            |
//! | `/uploads/avatar.jpg/x.php`               | 403 (extension)      | 404            |
//! | `/hello.php/fpm-status`, `/nope.php/fpm-status` | the script, 404 | the status page |
//!
//! So `cgi.fix_pathinfo=0` on the nodes is no cure: php-fpm then takes
//! PATH_INFO itself as the URI its pages answer to, and as PHP_SELF (empty for
//! every request without PATH_INFO, which WordPress and phpMyAdmin read). A
//! per-request `PHP_ADMIN_VALUE cgi.fix_pathinfo=0` comes too late: php-fpm
//! applies it after the walk-back, and then keeps it in that worker.
//!
//! fpmlb needs no walk-back: it splits the path after the first `.php`
//! segment itself, so SCRIPT_FILENAME names the script, and php-fpm walks
//! back only for a script that does not exist, under a regular *file* named
//! as a directory. Two shapes are refused (404, never sent):
//! 1. a directory segment before the script whose name ends in an extension
//!    php-fpm can be told to run ([`RUNNABLE`]), with or without a name
//!    before it: `/uploads/avatar.phar/x.php`, `/uploads/.php/x.php`;
//! 2. a PATH_INFO that is one of php-fpm's pages (what `cgi.fix_pathinfo=0`
//!    answers), or starts with one when the script is under a directory (the
//!    walk-back makes a prefix of PATH_INFO the request URI):
//!    `/robots.txt/x.php/fpm-status/x.php`.
//!
//! PATH_INFO after a real script (`/index.php/users/42`,
//! `/wp-admin/post.php`, `/remote.php/dav/files`) and front controllers pass
//! untouched. A node whose pool runs other extensions (`security.limit_extensions`
//! empty, or with `.html`) is still open to rule 1's shape with those files:
//! `fpmlb check` reports it (`session::node_safety`).

/// Extensions php-fpm runs by default (`.php`, `.phar`), and those pools
/// are commonly given (`security.limit_extensions`). A directory segment
/// ending in `.php` after a name cannot appear (fpmlb's script is the first
/// such segment), but one that is only the extension can: `.php`, an
/// uploaded file named so, which php-fpm's suffix check runs.
pub const RUNNABLE: &[&str] = &[
    "php", "phar", "phtml", "pht", "phps", "phpt", "php3", "php4", "php5", "php7", "php8",
];

/// php-fpm's page paths refused as PATH_INFO besides the configured ones:
/// those of php-fpm's sample pool (`;ping.path = /ping`,
/// `;pm.status_path = /status`) and of fpmlb's examples.
pub const USUAL_PAGES: &[&str] = &["/ping", "/status", "/fpm-ping", "/fpm-status"];

/// The paths php-fpm answers itself, which no request may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkBackGuard {
    pages: Vec<Vec<u8>>,
}

impl Default for WalkBackGuard {
    fn default() -> Self {
        WalkBackGuard::new(std::iter::empty::<&str>())
    }
}

impl WalkBackGuard {
    /// Guards the [`USUAL_PAGES`] and `configured` ones (`health.ping_path`,
    /// `health.status_path`).
    pub fn new<'a>(configured: impl IntoIterator<Item = &'a str>) -> WalkBackGuard {
        let mut pages: Vec<Vec<u8>> = USUAL_PAGES
            .iter()
            .copied()
            .chain(configured)
            .filter(|p| p.len() > 1)
            .map(|p| p.as_bytes().to_vec())
            .collect();
        pages.sort();
        pages.dedup();
        WalkBackGuard { pages }
    }

    /// Why a request routed to `script_name` with `path_info` (both decoded)
    /// is refused, if it is.
    pub fn refuses(&self, script_name: &[u8], path_info: &[u8]) -> Option<&'static str> {
        let segments: Vec<&[u8]> = script_name
            .split(|&b| b == b'/')
            .filter(|s| !s.is_empty())
            .collect();
        let directories = &segments[..segments.len().saturating_sub(1)];
        if directories.iter().any(|d| runnable(d)) {
            return Some("a directory of the script is named like a script php-fpm runs");
        }
        for page in &self.pages {
            if path_info == page.as_slice() {
                return Some("PATH_INFO is a php-fpm page");
            }
            if !directories.is_empty() && path_info.starts_with(page) {
                return Some("PATH_INFO starts with a php-fpm page under a directory");
            }
        }
        None
    }
}

/// Whether a path segment ends in one of the [`RUNNABLE`] extensions (ASCII
/// case-insensitive, as a case-insensitive file system would take it),
/// with or without a name before it: php-fpm checks the end of the name
/// alone (php-src `fpm_php_limit_extensions`), so `.phar` runs as `a.phar`.
fn runnable(segment: &[u8]) -> bool {
    let Some(dot) = segment.iter().rposition(|&b| b == b'.') else {
        return false;
    };
    let ext = &segment[dot + 1..];
    RUNNABLE
        .iter()
        .any(|r| ext.eq_ignore_ascii_case(r.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> WalkBackGuard {
        WalkBackGuard::new(["/php-status", "/fpm-status"])
    }

    fn refused(script: &str, path_info: &str) -> bool {
        guard()
            .refuses(script.as_bytes(), path_info.as_bytes())
            .is_some()
    }

    #[test]
    fn the_issues_urls_are_refused() {
        // As fpmlb routes them: script up to the first .php, PATH_INFO after.
        assert!(refused("/robots.txt/x.php", "/fpm-status/x.php"));
        assert!(refused("/robots.txt/x.php", "/fpm-ping/x.php"));
        assert!(refused("/robots.txt/x.php", "/fpm-statusXXXXXX"));
        assert!(refused("/uploads/avatar.phar/x.php", ""));
        assert!(refused("/uploads/AVATAR.PHAR/x.php", ""));
        assert!(refused("/uploads/a.php5/x.php", ""));
        assert!(refused("/uploads/avatar.phar/index.php", ""));
        // An upload named `.php` or `.phar`, walked back to (the script
        // starts at the first segment ending in `.php` after a name).
        assert!(refused("/uploads/.php/x.php", ""));
        assert!(refused("/uploads/.phar/x.php", ""));
        assert!(refused("/.php/x.php", "/y"));
        // cgi.fix_pathinfo=0 answers its pages to PATH_INFO itself.
        assert!(refused("/index.php", "/status"));
        assert!(refused("/nope.php", "/fpm-status"));
        // The configured pages too.
        assert!(refused("/index.php", "/php-status"));
        assert!(refused("/LICENSE/x.php", "/php-status/x.php"));
    }

    #[test]
    fn applications_urls_pass() {
        for (script, path_info) in [
            ("/index.php", ""),
            ("/index.php", "/users/42"),
            ("/index.php", "/statusbar"), // a route, not php-fpm's page
            ("/index.php", "/pingdom/check"),
            ("/wp-admin/post.php", ""),
            ("/wp-admin/admin-ajax.php", ""),
            ("/wp-content/plugins/jetpack/x.php", ""),
            ("/remote.php", "/dav/files/alice"),
            ("/ocs/v2.php", "/apps/files_sharing/api/v1/shares"),
            ("/phpMyAdmin-5.2.1-all-languages/index.php", ""),
            ("/sites/example.com/x.php", ""),
            ("/app.phar.d/x.php", ""),
            ("/sub/page.php", "/x/y.php/z"),
            ("/sub/index.php", "/fpm"),
        ] {
            assert!(!refused(script, path_info), "{script} {path_info}");
        }
    }

    #[test]
    fn runnable_extensions_are_whole_extensions() {
        assert!(runnable(b"avatar.phar"));
        assert!(runnable(b"x.PhTmL"));
        // All extension and no name: php-fpm runs `.php` and `.phar` too.
        assert!(runnable(b".phar"));
        assert!(runnable(b".php"));
        assert!(runnable(b".PHP"));
        assert!(!runnable(b"graph.photos"));
        assert!(!runnable(b"phar"));
        assert!(!runnable(b"a.phar.jpg"));
    }
}
