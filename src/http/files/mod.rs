//! Files served by fpmlb itself: from `static.root` (nginx `root`) or a
//! location's `alias`, never from outside them.
//!
//! `mod.rs` owns what may be opened and how: the policies (no dotfiles
//! unless allowed, never PHP source) and the opening itself; `conditional`
//! the validators and preconditions (RFC 9110 §8.8, §13), `range` the
//! `Range` header (§14), `serve` the response and its streamed body.
//!
//! Opening: a path is built from the normalised URI (no `..`, no NUL: see
//! `params::normalize_path`), opened (`O_NONBLOCK`, so a FIFO planted under
//! the root cannot block a thread), checked to be a regular file with
//! `fstat`, then the path the kernel reports for the opened descriptor
//! (`/proc/self/fd/N`) must lie under the root's canonical path: what was
//! opened is what is checked, so swapping a link between a check and the
//! open (TOCTOU) gains nothing.
//!
//! Symlinks inside the root are followed. One that leads out of it is
//! followed only when every symlink on the way belongs to root (uid 0): a
//! package's or an administrator's link (Debian's phpMyAdmin links its
//! jQuery to /usr/share/javascript), never one the web application's user
//! could have made (an unpacked upload). This is nginx's
//! `disable_symlinks if_not_owner` narrowed to links owned by root.
//!
//! Residual risks, without `unsafe` (no `openat2(RESOLVE_BENEATH)` in std):
//! the links' owners are read after the open, so a root-owned link moved
//! into place in between (rename needs write access to both directories)
//! would pass;
//! a hard link under the root to a file elsewhere is served (whoever can
//! write in the root can do that; Linux's `fs.protected_hardlinks` limits it
//! to files they own); without `/proc` nothing is served (the check fails
//! closed); and the root's own path is resolved again only when a check
//! fails, so a root that is a symlink (a `current` release link) may be
//! switched at any time.

pub mod conditional;
pub mod range;
pub mod serve;

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::config::StaticConfig;

/// Extensions that are PHP source, whatever the server's handler list: PHP
/// never gets them as scripts from fpmlb (only `.php` is split), and they
/// are never sent as files (Apache's and distributions' PHP handlers take
/// `.phtml`, `.php3`..`.php8`, `.phar`; `.phps` is highlighted source).
pub const PHP_SOURCE_EXTENSIONS: &[&str] = &[
    "php", "php3", "php4", "php5", "php7", "php8", "phtml", "pht", "phps", "phar",
];

/// What a path under a root is.
#[derive(Debug)]
pub enum Found {
    /// A regular file, opened and checked to be under the root.
    File(Opened),
    /// A directory under the root.
    Dir,
    /// Nothing there (or a path through a file).
    Missing,
    /// Something that must not be served: why, for the log.
    Refused(&'static str),
}

/// An opened regular file and what `fstat` said of it.
#[derive(Debug)]
pub struct Opened {
    pub file: Arc<File>,
    pub meta: Metadata,
    /// Where it was opened (for the MIME type and the log).
    pub path: PathBuf,
}

/// A directory files are served from, with its canonical path.
#[derive(Debug)]
pub struct Root {
    /// As configured (or an alias as written).
    pub path: PathBuf,
    /// Its canonical path, resolved again when a check fails (a root that is
    /// a symlink may be switched by a deploy).
    canonical: RwLock<Option<PathBuf>>,
}

impl Root {
    pub fn new(path: PathBuf) -> Root {
        let canonical = std::fs::canonicalize(&path).ok();
        Root {
            path,
            canonical: RwLock::new(canonical),
        }
    }

    fn canonical(&self) -> Option<PathBuf> {
        match self.canonical.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Resolves the root's path again; `None` when it is gone.
    fn refresh(&self) -> Option<PathBuf> {
        let fresh = std::fs::canonicalize(&self.path).ok();
        match self.canonical.write() {
            Ok(mut c) => c.clone_from(&fresh),
            Err(poisoned) => poisoned.into_inner().clone_from(&fresh),
        }
        fresh
    }

    /// Whether `real` (a canonical path) is the root or under it, resolving
    /// the root again once if it is not.
    fn holds(&self, real: &Path) -> bool {
        if self.canonical().is_some_and(|root| real.starts_with(root)) {
            return true;
        }
        self.refresh().is_some_and(|root| real.starts_with(root))
    }

    /// What `path` (under this root) is; a file is opened and checked. Runs
    /// system calls on paths and metadata (stat, open, fstat, readlink; no
    /// read): quick on a local file system, whose metadata the kernel caches.
    pub fn find(&self, path: &Path) -> Found {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if is_missing(&e) => return Found::Missing,
            Err(e) => {
                tracing::warn!(path = %path.display(), "static file: {e}");
                return Found::Refused("cannot read its metadata");
            }
        };
        if meta.is_dir() {
            return match std::fs::canonicalize(path) {
                Ok(real) if self.holds(&real) || self.links_of_root(path) => Found::Dir,
                Ok(_) => Found::Refused("a directory outside the root (symlink)"),
                Err(e) if is_missing(&e) => Found::Missing,
                Err(_) => Found::Refused("cannot resolve the directory"),
            };
        }
        if !meta.is_file() {
            return Found::Refused("not a regular file");
        }
        self.open(path)
    }

    /// Opens a file and checks it: a regular file, under the root.
    pub fn open(&self, path: &Path) -> Found {
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if is_missing(&e) => return Found::Missing,
            Err(e) => {
                tracing::warn!(path = %path.display(), "static file: {e}");
                return Found::Refused("cannot open it");
            }
        };
        let meta = match file.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(m) if m.is_dir() => return Found::Dir,
            Ok(_) => return Found::Refused("not a regular file"),
            Err(_) => return Found::Refused("cannot stat it"),
        };
        match opened_path(&file) {
            Ok(real) if self.holds(&real) || self.links_of_root(path) => Found::File(Opened {
                file: Arc::new(file),
                meta,
                path: path.to_path_buf(),
            }),
            Ok(real) => {
                tracing::warn!(
                    path = %path.display(),
                    real = %real.display(),
                    "static file refused: it resolves outside the root"
                );
                Found::Refused("outside the root (symlink)")
            }
            Err(e) => {
                tracing::error!(path = %path.display(), "cannot tell where an opened file is (is /proc mounted?): {e}");
                Found::Refused("cannot check where it is")
            }
        }
    }

    /// Whether `path` (under this root's path as written) leaves the root
    /// only through symlinks that all belong to root (uid 0), at least one.
    fn links_of_root(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(rel) = path.strip_prefix(&self.path) else {
            return false;
        };
        let mut at = self.path.clone();
        let mut linked = false;
        for part in rel.components() {
            at.push(part);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => {
                    if m.uid() != 0 {
                        return false;
                    }
                    linked = true;
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        linked
    }

    /// Whether a regular file is at `path` (a script's existence: it is not
    /// opened, php-fpm reads it on its node).
    pub fn is_file(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| m.is_file())
    }
}

/// The path of the file `file` is, as the kernel sees it now.
fn opened_path(file: &File) -> io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    ) || e.raw_os_error() == Some(libc::ENAMETOOLONG)
}

/// The static side of the config, ready to serve.
#[derive(Debug)]
pub struct StaticFiles {
    pub root: Root,
    pub index: Vec<String>,
    pub allow_dotfiles: Vec<String>,
    pub precompressed: bool,
    pub cache_control: Option<http::HeaderValue>,
}

impl StaticFiles {
    pub fn new(config: &StaticConfig) -> StaticFiles {
        StaticFiles {
            root: Root::new(config.root.clone()),
            index: config.index.clone(),
            allow_dotfiles: config.allow_dotfiles.clone(),
            precompressed: config.precompressed,
            cache_control: config
                .cache_control
                .as_deref()
                .and_then(|v| http::HeaderValue::from_str(v).ok()),
        }
    }

    /// Whether `uri` (normalised) holds a segment starting with a dot that
    /// no `allow_dotfiles` prefix covers: `.env`, `.git/config`, `.htaccess`.
    pub fn hides(&self, uri: &[u8]) -> bool {
        let rest = self
            .allow_dotfiles
            .iter()
            .filter_map(|p| uri.strip_prefix(p.as_bytes()))
            .min_by_key(|rest| rest.len())
            .unwrap_or(uri);
        has_dot_segment(rest)
    }
}

/// Whether a path has a segment that starts with `.`.
pub fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|&b| b == b'/').any(|s| s.first() == Some(&b'.'))
}

/// Whether the last segment of `uri` names PHP source: an extension of
/// [`PHP_SOURCE_EXTENSIONS`] anywhere after its first dot (`x.php`,
/// `x.PHTML`, `x.php.bak`, `x.php~`, `x.php.swp`: editors' and admins'
/// copies leak source as surely as the script itself).
pub fn is_php_source(uri: &[u8]) -> bool {
    let name = uri.rsplit(|&b| b == b'/').next().unwrap_or(uri);
    name.split(|&b| b == b'.').skip(1).any(|ext| {
        let ext = ext.strip_suffix(b"~").unwrap_or(ext);
        PHP_SOURCE_EXTENSIONS
            .iter()
            .any(|p| ext.eq_ignore_ascii_case(p.as_bytes()))
    })
}

/// `base` + the part of `uri` after `strip` (a location's prefix for an
/// alias, else nothing), as a path. `uri` is normalised: no `..`, no NUL.
pub fn join_path(base: &Path, uri: &[u8], strip: usize) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let rest = uri.get(strip..).unwrap_or_default();
    let rest = rest.strip_prefix(b"/").unwrap_or(rest);
    let mut path = base.to_path_buf();
    if !rest.is_empty() {
        path.push(std::ffi::OsStr::from_bytes(rest));
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_source_is_recognised_in_every_disguise() {
        for uri in [
            "/x.php",
            "/x.PHP",
            "/a/x.phtml",
            "/x.php5",
            "/lib.phar",
            "/x.php.bak",
            "/x.php~",
            "/.x.php.swp",
            "/x.phps",
        ] {
            assert!(is_php_source(uri.as_bytes()), "{uri}");
        }
        for uri in [
            "/x.css",
            "/php/x.js",
            "/x.phpx",
            "/phpinfo",
            "/a.php/x.css",
            "/x.inc",
        ] {
            assert!(!is_php_source(uri.as_bytes()), "{uri}");
        }
    }

    #[test]
    fn dotfiles_hidden_unless_their_prefix_is_allowed() {
        let files = StaticFiles {
            root: Root::new(PathBuf::from("/nonexistent")),
            index: vec![],
            allow_dotfiles: vec!["/.well-known/".into()],
            precompressed: false,
            cache_control: None,
        };
        assert!(files.hides(b"/.env"));
        assert!(files.hides(b"/a/.git/config"));
        assert!(files.hides(b"/.well-known"));
        assert!(files.hides(b"/.well-known/.secret"));
        assert!(!files.hides(b"/.well-known/security.txt"));
        assert!(!files.hides(b"/a/b.c/d"));
    }

    #[test]
    fn alias_replaces_the_prefix() {
        let p = join_path(Path::new("/srv/private"), b"/protected/a/b.pdf", 10);
        assert_eq!(p, Path::new("/srv/private/a/b.pdf"));
        let p = join_path(Path::new("/srv/www"), b"/a b/c", 0);
        assert_eq!(p, Path::new("/srv/www/a b/c"));
        assert_eq!(
            join_path(Path::new("/srv/f.txt"), b"/file", 5),
            Path::new("/srv/f.txt")
        );
    }

    #[test]
    fn opening_checks_type_and_place() {
        let dir = tempfile::tempdir().unwrap();
        let root_dir = dir.path().join("root");
        std::fs::create_dir_all(root_dir.join("sub")).unwrap();
        std::fs::write(root_dir.join("a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        let link = |to: &Path, name: &str, uid: u32| {
            std::os::unix::fs::symlink(to, root_dir.join(name)).unwrap();
            std::os::unix::fs::lchown(root_dir.join(name), Some(uid), None).unwrap();
        };
        // Links a web application's user (nobody here) could have made...
        link(&dir.path().join("secret"), "out", 65534);
        link(&root_dir.join("a.txt"), "in", 65534);
        link(dir.path(), "up", 65534);
        // ... and a package's: root's.
        link(&dir.path().join("secret"), "pkg", 0);
        link(dir.path(), "pkgdir", 0);
        let root = Root::new(root_dir.clone());
        assert!(matches!(root.find(&root_dir.join("a.txt")), Found::File(_)));
        assert!(matches!(root.find(&root_dir.join("in")), Found::File(_)));
        assert!(matches!(root.find(&root_dir.join("sub")), Found::Dir));
        assert!(matches!(root.find(&root_dir.join("nope")), Found::Missing));
        assert!(matches!(
            root.find(&root_dir.join("a.txt/x")),
            Found::Missing
        ));
        assert!(matches!(
            root.find(&root_dir.join("out")),
            Found::Refused(_)
        ));
        assert!(matches!(root.find(&root_dir.join("up")), Found::Refused(_)));
        assert!(matches!(
            root.find(&root_dir.join("up/secret")),
            Found::Refused(_)
        ));
        assert!(matches!(root.find(&root_dir.join("pkg")), Found::File(_)));
        assert!(matches!(root.find(&root_dir.join("pkgdir")), Found::Dir));
        assert!(matches!(
            root.find(&root_dir.join("pkgdir/secret")),
            Found::File(_)
        ));
        // Root's link to a directory, then a user's link in it: refused.
        std::os::unix::fs::symlink(dir.path().join("secret"), dir.path().join("mine")).unwrap();
        std::os::unix::fs::lchown(dir.path().join("mine"), Some(65534), None).unwrap();
        assert!(matches!(
            root.find(&root_dir.join("pkgdir/mine")),
            Found::Refused(_)
        ));
    }
}
