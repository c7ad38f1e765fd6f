//! What lookups under a root found, trusted for a short while: nginx's
//! `open_file_cache` with `open_file_cache_valid` (`static.open_file_cache`).
//!
//! A lookup costs four to six system calls (the root's `stat`, the path's,
//! `openat2`, `fstat`, and `close` after the answer): a quarter of fpmlb's
//! CPU for a 1 KiB file (perf). A path looked up within `valid` of its
//! lookup answers from here: a directory or a precompressed sibling's
//! absence with no system call, a file with one `fstat` of its held
//! descriptor (shared; every read is positional), which must show the size
//! and times its held metadata says (and a small file's bytes once a
//! response read them whole, `Shared::content`). A file written over in
//! place, replaced by a rename or deleted (its link count, hence its change
//! time, moves) is looked up again at once: its length, ETag and bytes
//! always agree. The root directory's own check (a switched `current` link)
//! is trusted for `valid`.
//!
//! Held only what exists, or a sibling of a file that does: a client asking
//! for paths that are not there fills nothing. At most `max` paths per root
//! (and a quarter of the open file limit); when it is full of paths still
//! valid, a new one is looked up every time. Paths expire `valid` after
//! their lookup, whether used or not, and the daemon sweeps expired ones
//! out (closing their descriptors) four times a second, so a deleted file's
//! space is given back within `valid` and a sweep. What `valid` trades: a
//! switched root link or a renamed directory on the way is followed, and a
//! new `.gz` beside a file offered, up to `valid` late (1 s by default;
//! nginx's 60 s when its cache is on, and nginx trusts a held file whole).

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Found, Opened};
use crate::config::OpenFileCacheConfig;

/// A lookup's answer that may be held.
#[derive(Debug, Clone)]
enum Known {
    File(Box<Opened>),
    Dir,
    Missing,
}

#[derive(Debug)]
struct Entry {
    known: Known,
    until: Instant,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<PathBuf, Entry>,
    /// When expired entries were last dropped to make room.
    made_room: Option<Instant>,
}

/// One root's cache of lookups.
#[derive(Debug)]
pub struct OpenFileCache {
    valid: Duration,
    max: usize,
    entries: Mutex<Entries>,
    /// The clock's origin for `root_until`.
    born: Instant,
    /// Until when the root directory's check holds, in nanoseconds since
    /// `born` (0: not checked).
    root_until: AtomicU64,
}

impl OpenFileCache {
    pub fn new(config: OpenFileCacheConfig) -> OpenFileCache {
        OpenFileCache {
            valid: config.valid,
            max: config.max.min(fd_room()),
            entries: Mutex::new(Entries::default()),
            born: Instant::now(),
            root_until: AtomicU64::new(0),
        }
    }

    fn is_off(&self) -> bool {
        self.valid.is_zero() || self.max == 0
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What `path` was found to be, if that is still trusted at `now`. A
    /// file held is `fstat`ed first: written over in place since (its size
    /// or times changed), it is not trusted, so its metadata (length, ETag)
    /// never disagrees with its bytes; the caller looks it up again.
    pub(super) fn get(&self, path: &Path, now: Instant) -> Option<Found> {
        if self.is_off() {
            return None;
        }
        let held = {
            let entries = self.entries();
            let entry = entries.map.get(path)?;
            if entry.until <= now {
                return None;
            }
            match &entry.known {
                Known::File(opened) => Opened::clone(opened),
                Known::Dir => return Some(Found::Dir),
                Known::Missing => return Some(Found::Missing),
            }
        };
        let unchanged = held
            .file
            .metadata()
            .is_ok_and(|now| same_version(&now, &held.meta));
        unchanged.then_some(Found::File(held))
    }

    /// Holds what a lookup of `path` found at `now`: a file or a
    /// directory, and a missing path only if `missing_too` (a sibling of a
    /// file). Anything else (refused) is not held, and drops what was.
    pub(super) fn put(&self, path: &Path, found: &Found, missing_too: bool, now: Instant) {
        if self.is_off() {
            return;
        }
        let known = match found {
            Found::File(opened) => Known::File(Box::new(opened.clone())),
            Found::Dir => Known::Dir,
            Found::Missing if missing_too => Known::Missing,
            Found::Missing | Found::Refused(_) => {
                self.entries().map.remove(path);
                return;
            }
        };
        let entry = Entry {
            known,
            until: now + self.valid,
        };
        let mut entries = self.entries();
        if let Some(held) = entries.map.get_mut(path) {
            *held = entry;
            return;
        }
        if entries.map.len() >= self.max {
            // Full: expired entries go, at most twice per `valid` (a site
            // with more live paths than `max` pays no scan per request).
            if entries
                .made_room
                .is_some_and(|at| now < at + self.valid / 2)
            {
                return;
            }
            entries.made_room = Some(now);
            entries.map.retain(|_, e| e.until > now);
            if entries.map.len() >= self.max {
                return;
            }
        }
        entries.map.insert(path.to_path_buf(), entry);
    }

    /// Drops what expired by `now`, closing the files it held.
    pub fn sweep(&self, now: Instant) {
        if self.is_off() {
            return;
        }
        let dropped: Vec<Entry> = {
            let mut entries = self.entries();
            if entries.map.values().all(|e| e.until > now) {
                return;
            }
            let map = std::mem::take(&mut entries.map);
            let (keep, dropped): (HashMap<_, _>, HashMap<_, _>) =
                map.into_iter().partition(|(_, e)| e.until > now);
            entries.map = keep;
            dropped.into_values().collect()
        };
        // The descriptors close here, outside the lock.
        drop(dropped);
    }

    /// How many paths are held.
    pub fn len(&self) -> usize {
        self.entries().map.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the root directory's last check still holds at `now`.
    pub(super) fn root_trusted(&self, now: Instant) -> bool {
        !self.is_off() && self.nanos(now) < self.root_until.load(Ordering::Relaxed)
    }

    /// The root directory was checked at `now`.
    pub(super) fn root_checked(&self, now: Instant) {
        if !self.is_off() {
            let until = self.nanos(now).saturating_add(nanos_of(self.valid));
            self.root_until.store(until, Ordering::Relaxed);
        }
    }

    fn nanos(&self, now: Instant) -> u64 {
        nanos_of(now.saturating_duration_since(self.born))
    }
}

fn nanos_of(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Whether two `fstat`s of one file show the same content: size, and the
/// modification and change times to the nanosecond.
fn same_version(a: &Metadata, b: &Metadata) -> bool {
    a.len() == b.len()
        && (a.mtime(), a.mtime_nsec()) == (b.mtime(), b.mtime_nsec())
        && (a.ctime(), a.ctime_nsec()) == (b.ctime(), b.ctime_nsec())
}

/// A quarter of the soft open file limit: descriptors held by the cache
/// leave room for connections (a limit of 1024 holds 256 files).
fn fd_room() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit
        .current
        .and_then(|n| usize::try_from(n / 4).ok())
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::files::Root;

    fn cfg(valid_ms: u64, max: usize) -> OpenFileCacheConfig {
        OpenFileCacheConfig {
            valid: Duration::from_millis(valid_ms),
            max,
        }
    }

    fn file_in(dir: &Path, name: &str) -> (PathBuf, Found) {
        let path = dir.join(name);
        std::fs::write(&path, name).unwrap();
        let found = Root::new(dir.to_path_buf(), OpenFileCacheConfig::OFF).find(&path);
        assert!(matches!(found, Found::File(_)));
        (path, found)
    }

    #[test]
    fn an_answer_is_held_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let (path, found) = file_in(dir.path(), "a.css");
        let cache = OpenFileCache::new(cfg(1000, 10));
        let t0 = Instant::now();
        assert!(cache.get(&path, t0).is_none());
        cache.put(&path, &found, false, t0);
        assert!(matches!(cache.get(&path, t0), Some(Found::File(_))));
        let later = t0 + Duration::from_millis(999);
        assert!(matches!(cache.get(&path, later), Some(Found::File(_))));
        let expired = t0 + Duration::from_millis(1000);
        assert!(cache.get(&path, expired).is_none());
        assert_eq!(cache.len(), 1);
        cache.sweep(expired);
        assert!(cache.is_empty());
    }

    /// A file written over in place (new size or times), replaced by a
    /// rename or deleted (its link count, hence its change time, moved) is
    /// not trusted: the caller looks it up again.
    #[test]
    fn a_file_changed_replaced_or_deleted_is_looked_up_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = OpenFileCache::new(cfg(60_000, 10));
        let t0 = Instant::now();
        let (path, found) = file_in(dir.path(), "a.css");
        cache.put(&path, &found, false, t0);
        assert!(matches!(cache.get(&path, t0), Some(Found::File(_))));
        std::fs::write(&path, "longer than before").unwrap();
        assert!(cache.get(&path, t0).is_none(), "written over");
        let (path, found) = file_in(dir.path(), "b.css");
        cache.put(&path, &found, false, t0);
        std::fs::write(dir.path().join("new"), "other").unwrap();
        std::fs::rename(dir.path().join("new"), &path).unwrap();
        assert!(cache.get(&path, t0).is_none(), "replaced");
        let (path, found) = file_in(dir.path(), "c.css");
        cache.put(&path, &found, false, t0);
        std::fs::remove_file(&path).unwrap();
        assert!(cache.get(&path, t0).is_none(), "deleted");
    }

    #[test]
    fn only_what_exists_is_held_and_a_refusal_drops_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, found) = file_in(dir.path(), "a.css");
        let cache = OpenFileCache::new(cfg(1000, 10));
        let t0 = Instant::now();
        let gone = dir.path().join("nope");
        cache.put(&gone, &Found::Missing, false, t0);
        assert!(cache.get(&gone, t0).is_none(), "a miss of a request path");
        cache.put(&gone, &Found::Missing, true, t0);
        assert!(matches!(cache.get(&gone, t0), Some(Found::Missing)));
        cache.put(&dir.path().join("d"), &Found::Dir, false, t0);
        assert!(matches!(
            cache.get(&dir.path().join("d"), t0),
            Some(Found::Dir)
        ));
        cache.put(&path, &found, false, t0);
        cache.put(&path, &Found::Refused("no"), false, t0);
        assert!(cache.get(&path, t0).is_none());
        cache.put(&path, &found, false, t0);
        cache.put(&path, &Found::Missing, false, t0);
        assert!(cache.get(&path, t0).is_none(), "gone since");
    }

    #[test]
    fn a_full_cache_makes_room_only_from_expired_paths() {
        let dir = tempfile::tempdir().unwrap();
        let (a, fa) = file_in(dir.path(), "a");
        let (b, fb) = file_in(dir.path(), "b");
        let (c, fc) = file_in(dir.path(), "c");
        let cache = OpenFileCache::new(cfg(1000, 2));
        let t0 = Instant::now();
        cache.put(&a, &fa, false, t0);
        let t1 = t0 + Duration::from_millis(500);
        cache.put(&b, &fb, false, t1);
        cache.put(&c, &fc, false, t1);
        assert!(cache.get(&c, t1).is_none(), "full of valid paths");
        // a expired: it makes room (half a `valid` after the last try).
        let t2 = t0 + Duration::from_millis(1200);
        cache.put(&c, &fc, false, t2);
        assert!(cache.get(&c, t2).is_some());
        assert!(cache.get(&b, t2).is_some());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn off_holds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (path, found) = file_in(dir.path(), "a");
        let cache = OpenFileCache::new(OpenFileCacheConfig::OFF);
        let t0 = Instant::now();
        cache.put(&path, &found, true, t0);
        assert!(cache.get(&path, t0).is_none());
        cache.root_checked(t0);
        assert!(!cache.root_trusted(t0));
    }

    #[test]
    fn the_root_check_is_trusted_for_valid() {
        let cache = OpenFileCache::new(cfg(1000, 2));
        let t0 = Instant::now();
        assert!(!cache.root_trusted(t0));
        cache.root_checked(t0);
        assert!(cache.root_trusted(t0 + Duration::from_millis(999)));
        assert!(!cache.root_trusted(t0 + Duration::from_millis(1000)));
    }
}
