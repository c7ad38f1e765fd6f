//! Files served by fpmlb itself: from `static.root` (nginx `root`) or a
//! location's `alias`, never from outside them.
//!
//! `mod.rs` owns what may be opened and how: the policies (no dotfiles
//! unless allowed, never PHP source) and the opening itself; `conditional`
//! the validators and preconditions (RFC 9110 §8.8, §13), `range` the
//! `Range` header (§14), `serve` the response and its streamed body.
//!
//! Opening: a path is built from the normalised URI (no `..`, no NUL: see
//! `params::normalize_path`) and opened by one of two ways.
//!
//! The fast path ([`Root::find`] first): the root directory is held open
//! (`O_PATH`); per lookup its path is `stat`ed and compared (device, inode)
//! with what is held, and opened again when they differ, so a root that is
//! a symlink (a deploy's `current` release link) may be switched at any
//! time and the next request follows it. The path relative to the root is
//! `stat`ed (only a regular file or a directory is ever opened: a device's
//! open may act), then opened with `openat2(RESOLVE_BENEATH)`
//! (`O_NONBLOCK`, so a FIFO swapped in cannot block a thread; `O_NOCTTY`),
//! which the kernel refuses (EXDEV) when any step would leave the root:
//! `..`, an absolute symlink, a relative one climbing out. What it opens is
//! under the root by construction, so swapping a link between a check and
//! the open (TOCTOU) gains nothing; `fstat` then says what was opened. The
//! precompressed siblings (`.br`, `.gz`) are looked up the same way under
//! the same directory. Four system calls per file (`stat` of the root,
//! `stat`, `openat2`, `fstat`) where the path checks take four that each
//! walk the whole path, one of them a `readlink` of `/proc` (7% of fpmlb's
//! CPU for a 1 KiB file, perf): a file and its two siblings cost 27% less
//! to look up, fpmlb's CPU per 1 KiB response 5-14% less (README,
//! Performance).
//!
//! The path checks answer whatever the fast path does not answer plainly
//! (found, missing): a link out of the root, an absolute link, a FIFO or
//! device, a permission error, a rename racing the lookup (EAGAIN), a root
//! that is not a directory (an alias naming a file), a kernel without
//! `openat2` (ENOSYS, or EPERM from an older seccomp filter: remembered,
//! every lookup takes the path checks then). The path is `stat`ed, opened
//! (`O_NONBLOCK | O_NOCTTY`), checked to be a regular file with `fstat`,
//! then the path the kernel reports for the opened descriptor
//! (`/proc/self/fd/N`) must lie under the root's canonical path (resolved
//! again when a check fails) or the way there pass the rule below.
//!
//! Symlinks inside the root are followed. One that leads out of it is
//! followed only when every symlink on the way belongs to root (uid 0): a
//! package's or an administrator's link (Debian's phpMyAdmin links its
//! jQuery to /usr/share/javascript), never one the web application's user
//! could have made (an unpacked upload). This is nginx's
//! `disable_symlinks if_not_owner` narrowed to links owned by root.
//!
//! What a lookup found (a file opened, a directory, a sibling's absence)
//! and the root's check are held for `static.open_file_cache.valid`
//! (`cache`): within it a path costs no system call at all.
//!
//! Residual risks: on the path checks' way only (a link out of the root),
//! the links' owners are read after the open, so a root-owned link moved
//! into place in between (rename needs write access to both directories)
//! would pass; a hard link under the root to a file elsewhere is served
//! (whoever can write in the root can do that; Linux's
//! `fs.protected_hardlinks` limits it to files they own); without `/proc`
//! the path checks serve nothing (they fail closed), so only what the fast
//! path finds is served.

pub mod cache;
pub mod conditional;
pub mod range;
pub mod serve;
pub mod zero_copy;

use std::fs::{File, Metadata};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use self::cache::OpenFileCache;
pub use crate::config::paths::{PHP_SOURCE_EXTENSIONS, has_dot_segment, is_php_source};
use crate::config::{OpenFileCacheConfig, StaticConfig};

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
#[derive(Debug, Clone)]
pub struct Opened {
    pub file: Arc<File>,
    pub meta: Metadata,
    /// Where it was opened (for the MIME type and the log).
    pub path: Arc<Path>,
    /// The root directory it was opened under by the fast path, for its
    /// precompressed siblings ([`Root::find_beside`]): the same request
    /// looks in the same directory without checking the root again.
    under: Option<Arc<RootDir>>,
    /// What every copy the open file cache hands out shares.
    pub shared: Arc<Shared>,
}

/// What the copies of one [`Opened`] share.
#[derive(Debug)]
pub struct Shared {
    /// A small file's bytes once a response read them whole
    /// ([`serve::SMALL`] or less): later responses send them without a
    /// read.
    pub content: OnceLock<Bytes>,
    /// Its Content-Type, by the path's extension ([`serve::mime_type`]):
    /// looked up once per open, not per response.
    pub mime: &'static str,
}

impl Opened {
    fn new(file: File, meta: Metadata, path: &Path, under: Option<Arc<RootDir>>) -> Opened {
        Opened {
            file: Arc::new(file),
            meta,
            path: Arc::from(path),
            under,
            shared: Arc::new(Shared {
                content: OnceLock::new(),
                mime: serve::mime_type(path),
            }),
        }
    }
}

/// The root directory, opened (`O_PATH`), and which inode it was: the
/// root's path is checked to still be that inode before each use.
#[derive(Debug)]
struct RootDir {
    fd: OwnedFd,
    dev: u64,
    ino: u64,
}

/// Set once `openat2` answered ENOSYS or EPERM (a kernel before 5.6, or a
/// seccomp filter that does not know the call): every lookup takes the path
/// checks from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// A directory files are served from, with its canonical path.
#[derive(Debug)]
pub struct Root {
    /// As configured (or an alias as written).
    pub path: PathBuf,
    /// Its canonical path, resolved again when a check fails (a root that is
    /// a symlink may be switched by a deploy).
    canonical: RwLock<Option<PathBuf>>,
    /// The root opened for the fast path, replaced when the root's path
    /// names another directory (a switched `current` link).
    dir: ArcSwapOption<RootDir>,
    /// What lookups found, trusted for a while.
    pub cache: OpenFileCache,
}

impl Root {
    pub fn new(path: PathBuf, cache: OpenFileCacheConfig) -> Root {
        let canonical = std::fs::canonicalize(&path).ok();
        Root {
            path,
            canonical: RwLock::new(canonical),
            dir: ArcSwapOption::empty(),
            cache: OpenFileCache::new(cache),
        }
    }

    /// The root directory as its path names it now: one `stat` of the path,
    /// compared with the directory held open; opened again when they differ.
    /// `None` when the root is not a directory that can be opened (an alias
    /// naming a file, a root gone) or without `openat2`: the path checks
    /// answer then. Within the open file cache's `valid` of the last check,
    /// the held directory answers with no `stat`.
    fn current_dir(&self, now: Instant) -> Option<Arc<RootDir>> {
        if NO_OPENAT2.load(Ordering::Relaxed) {
            return None;
        }
        if self.cache.root_trusted(now)
            && let Some(dir) = self.dir.load_full()
        {
            return Some(dir);
        }
        let st = rustix::fs::stat(&self.path).ok()?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return None;
        }
        if let Some(dir) = self.dir.load_full()
            && dir.dev == st.st_dev
            && dir.ino == st.st_ino
        {
            self.cache.root_checked(now);
            return Some(dir);
        }
        let fd = rustix::fs::open(
            &self.path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        // What was opened, which a switch in between may have changed.
        let st = rustix::fs::fstat(&fd).ok()?;
        let dir = Arc::new(RootDir {
            fd,
            dev: st.st_dev,
            ino: st.st_ino,
        });
        self.dir.store(Some(Arc::clone(&dir)));
        self.cache.root_checked(now);
        Some(dir)
    }

    /// The fast path: `path` looked up and opened relative to the root
    /// directory with `openat2(RESOLVE_BENEATH)`, which the kernel refuses
    /// (EXDEV) when any step (`..`, an absolute symlink, a relative one
    /// climbing out) would leave the root; what is opened is under the root
    /// by construction. `None` (anything but a plain answer: found, missing)
    /// leaves it to the path checks: a link out of the root (root's own,
    /// perhaps), a permission error, a race with a rename (EAGAIN), a
    /// FIFO or device, no `openat2`.
    fn find_under(&self, dir: &Arc<RootDir>, path: &Path) -> Option<Found> {
        let Ok(rel) = path.strip_prefix(&self.path) else {
            return None;
        };
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        // The type before the open, as the path checks do: nothing but a
        // regular file or a directory is ever opened (a device's open may
        // act). A link out of the root is stat'ed here, then refused by the
        // open below.
        let st = match rustix::fs::statat(&dir.fd, rel, AtFlags::empty()) {
            Ok(st) => st,
            Err(e) if is_missing_errno(e) => return Some(Found::Missing),
            Err(_) => return None,
        };
        let kind = FileType::from_raw_mode(st.st_mode);
        let flags = match kind {
            FileType::RegularFile => OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
            FileType::Directory => OFlags::PATH | OFlags::DIRECTORY,
            _ => return None,
        };
        let fd = match rustix::fs::openat2(
            &dir.fd,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH,
        ) {
            Ok(fd) => fd,
            Err(e) if is_missing_errno(e) => return Some(Found::Missing),
            // No openat2 here (EPERM: a seccomp filter older than it).
            Err(Errno::NOSYS | Errno::PERM) => {
                NO_OPENAT2.store(true, Ordering::Relaxed);
                return None;
            }
            Err(_) => return None,
        };
        if kind == FileType::Directory {
            return Some(Found::Dir);
        }
        let file = File::from(fd);
        Some(match file.metadata() {
            Ok(m) if m.is_file() => Found::File(Opened::new(file, m, path, Some(Arc::clone(dir)))),
            // Swapped for a directory between the stat and the open.
            Ok(m) if m.is_dir() => Found::Dir,
            Ok(_) => Found::Refused("not a regular file"),
            Err(_) => Found::Refused("cannot stat it"),
        })
    }

    /// What `path`, a sibling of `opened` (its `.br`, `.gz`), is: under the
    /// root directory `opened` was found under when the fast path found it.
    /// Its absence is held in the open file cache as well.
    pub fn find_beside(&self, opened: &Opened, path: &Path) -> Found {
        self.find_held(path, true, |_| opened.under.clone())
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
    /// system calls on paths and metadata (stat, open, fstat; no read):
    /// quick on a local file system, whose metadata the kernel caches.
    /// A file or directory found is held in the open file cache, which
    /// answers within its `valid`.
    pub fn find(&self, path: &Path) -> Found {
        self.find_held(path, false, |now| self.current_dir(now))
    }

    /// What the open file cache holds for `path`, else what the fast path
    /// under the directory `dir` gives (asked only then), else the path
    /// checks; held as [`OpenFileCache::put`] says (`missing_too`: a
    /// sibling's absence too).
    fn find_held(
        &self,
        path: &Path,
        missing_too: bool,
        dir: impl FnOnce(Instant) -> Option<Arc<RootDir>>,
    ) -> Found {
        let now = Instant::now();
        if let Some(found) = self.cache.get(path, now) {
            return found;
        }
        let found = dir(now)
            .and_then(|dir| self.find_under(&dir, path))
            .unwrap_or_else(|| self.find_by_path(path));
        self.cache.put(path, &found, missing_too, now);
        found
    }

    /// The path checks: `path` stat'ed, opened, and where the opened file
    /// is read back from `/proc`; links out of the root owned by root.
    fn find_by_path(&self, path: &Path) -> Found {
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
            Ok(real) if self.holds(&real) || self.links_of_root(path) => {
                Found::File(Opened::new(file, meta, path, None))
            }
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

/// [`is_missing`] for rustix's errors.
fn is_missing_errno(e: Errno) -> bool {
    matches!(e, Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG)
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
    pub fn new(config: &StaticConfig, cache: OpenFileCacheConfig) -> StaticFiles {
        StaticFiles {
            root: Root::new(config.root.clone(), cache),
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

/// `base` + the part of `uri` after `strip` (a location's prefix for an
/// alias, else nothing), as a path. `uri` is normalised: no `..`, no NUL.
///
/// `None` when that part climbs out of `base`: a location whose prefix
/// does not end in `/` (`location /static` with `alias /srv/static/`)
/// leaves `../x` of `/static../x`, which nginx serves from `/srv/x` (the
/// "alias traversal" misconfiguration); fpmlb refuses it.
pub fn join_path(base: &Path, uri: &[u8], strip: usize) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let rest = uri.get(strip..).unwrap_or_default();
    let rest = rest.strip_prefix(b"/").unwrap_or(rest);
    if rest.split(|&b| b == b'/').any(|segment| segment == b"..") {
        return None;
    }
    let mut path = base.to_path_buf();
    if !rest.is_empty() {
        path.push(std::ffi::OsStr::from_bytes(rest));
    }
    Some(path)
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
            root: Root::new(PathBuf::from("/nonexistent"), OpenFileCacheConfig::OFF),
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
        assert_eq!(p.as_deref(), Some(Path::new("/srv/private/a/b.pdf")));
        let p = join_path(Path::new("/srv/www"), b"/a b/c", 0);
        assert_eq!(p.as_deref(), Some(Path::new("/srv/www/a b/c")));
        assert_eq!(
            join_path(Path::new("/srv/f.txt"), b"/file", 5).as_deref(),
            Some(Path::new("/srv/f.txt"))
        );
    }

    /// `location /static` (no `/` at its end) with `alias /srv/static/`:
    /// `/static../x` is normalised as it is (`static..` is a name), and
    /// what is left after the prefix would climb out of the alias.
    #[test]
    fn an_alias_is_not_climbed_out_of() {
        let base = Path::new("/srv/static/");
        for uri in [&b"/static../x"[..], b"/static..", b"/static../"] {
            assert_eq!(
                join_path(base, uri, 7),
                None,
                "{:?}",
                String::from_utf8_lossy(uri)
            );
        }
        // Names with dots that are no step up pass.
        for (uri, want) in [
            (&b"/static/..x/y"[..], "/srv/static/..x/y"),
            (b"/static/a../b", "/srv/static/a../b"),
            (b"/staticx", "/srv/static/x"),
        ] {
            assert_eq!(join_path(base, uri, 7).as_deref(), Some(Path::new(want)));
        }
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
        let root = Root::new(root_dir.clone(), OpenFileCacheConfig::OFF);
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

    /// The content of the file `find` opens at `path`, or what it found.
    fn content(root: &Root, path: &Path) -> Result<String, String> {
        match root.find(path) {
            Found::File(o) => Ok(std::fs::read_to_string(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&*o.file)
            ))
            .unwrap()),
            other => Err(format!("{other:?}")),
        }
    }

    /// The fast path (`openat2(RESOLVE_BENEATH)`) answers for what stays
    /// under the root, and leaves every link out of it to the path checks,
    /// whose root-owned exception still holds.
    #[test]
    fn the_fast_path_stays_beneath_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root_dir = dir.path().join("root");
        std::fs::create_dir_all(root_dir.join("sub")).unwrap();
        std::fs::write(root_dir.join("sub/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        let link = |to: &Path, name: &str, uid: u32| {
            std::os::unix::fs::symlink(to, root_dir.join(name)).unwrap();
            std::os::unix::fs::lchown(root_dir.join(name), Some(uid), None).unwrap();
        };
        link(Path::new("sub/a.txt"), "rel", 65534);
        link(Path::new("../secret"), "climb", 65534);
        link(&dir.path().join("secret"), "abs_out", 65534);
        link(&root_dir.join("sub/a.txt"), "abs_in", 65534);
        link(Path::new("../secret"), "pkg", 0);
        let root = Root::new(root_dir.clone(), OpenFileCacheConfig::OFF);
        let Some(rd) = root.current_dir(Instant::now()) else {
            panic!("the root directory could not be opened")
        };
        let fast = |name: &str| match root.find_under(&rd, &root_dir.join(name)) {
            Some(Found::File(o)) => {
                assert!(o.under.is_some());
                "file"
            }
            Some(Found::Dir) => "dir",
            Some(Found::Missing) => "missing",
            Some(Found::Refused(_)) => "refused",
            None => "fallback",
        };
        if NO_OPENAT2.load(Ordering::Relaxed) {
            return; // a kernel before 5.6: the path checks answer everything
        }
        assert_eq!(fast("sub/a.txt"), "file");
        assert_eq!(fast("rel"), "file");
        assert_eq!(fast("sub"), "dir");
        assert_eq!(fast(""), "dir");
        assert_eq!(fast("nope"), "missing");
        assert_eq!(fast("sub/a.txt/x"), "missing");
        // Out of the root, or absolute: never opened by the fast path.
        assert_eq!(fast("climb"), "fallback");
        assert_eq!(fast("abs_out"), "fallback");
        assert_eq!(fast("abs_in"), "fallback");
        assert_eq!(fast("pkg"), "fallback");
        // ... and answered by the path checks as before.
        assert_eq!(content(&root, &root_dir.join("rel")).as_deref(), Ok("a"));
        assert!(matches!(
            root.find(&root_dir.join("climb")),
            Found::Refused(_)
        ));
        assert!(matches!(
            root.find(&root_dir.join("abs_out")),
            Found::Refused(_)
        ));
        assert_eq!(content(&root, &root_dir.join("abs_in")).as_deref(), Ok("a"));
        assert_eq!(content(&root, &root_dir.join("pkg")).as_deref(), Ok("s"));
        // A FIFO is never opened as a file.
        let fifo = root_dir.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert_eq!(fast("fifo"), "fallback");
        assert!(matches!(root.find(&fifo), Found::Refused(_)));
    }

    /// A root that is a symlink (a deploy's `current`) is followed to
    /// wherever it points now, file by file.
    #[test]
    fn a_switched_root_link_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        for (release, v) in [("r1", "1"), ("r2", "2")] {
            std::fs::create_dir(dir.path().join(release)).unwrap();
            std::fs::write(dir.path().join(release).join("v.txt"), v).unwrap();
        }
        std::fs::write(dir.path().join("r1/old.txt"), "old").unwrap();
        let current = dir.path().join("current");
        std::os::unix::fs::symlink("r1", &current).unwrap();
        let root = Root::new(current.clone(), OpenFileCacheConfig::OFF);
        assert_eq!(content(&root, &current.join("v.txt")).as_deref(), Ok("1"));
        assert_eq!(
            content(&root, &current.join("old.txt")).as_deref(),
            Ok("old")
        );
        // Switched as deploy tools do: a new link renamed over the old one.
        std::os::unix::fs::symlink("r2", dir.path().join("next")).unwrap();
        std::fs::rename(dir.path().join("next"), &current).unwrap();
        assert_eq!(content(&root, &current.join("v.txt")).as_deref(), Ok("2"));
        assert!(matches!(
            root.find(&current.join("old.txt")),
            Found::Missing
        ));
        // A directory renamed into the root's place is followed too.
        std::fs::remove_file(&current).unwrap();
        std::fs::rename(dir.path().join("r1"), &current).unwrap();
        assert_eq!(content(&root, &current.join("v.txt")).as_deref(), Ok("1"));
        // Gone: nothing, and back again.
        std::fs::rename(&current, dir.path().join("r1")).unwrap();
        assert!(matches!(root.find(&current.join("v.txt")), Found::Missing));
        std::os::unix::fs::symlink("r2", &current).unwrap();
        assert_eq!(content(&root, &current.join("v.txt")).as_deref(), Ok("2"));
    }

    /// An alias may name a file: its "root" is that file, found by the
    /// path checks.
    #[test]
    fn a_root_that_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f.txt");
        std::fs::write(&f, "f").unwrap();
        let root = Root::new(f.clone(), OpenFileCacheConfig::OFF);
        assert!(root.current_dir(Instant::now()).is_none());
        assert_eq!(content(&root, &f).as_deref(), Ok("f"));
    }
}
