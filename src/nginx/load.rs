//! Reading a config from disk: the main file and every file it `include`s,
//! spliced into one tree, each directive keeping its own file and line.
//!
//! nginx resolves a relative include against its configuration prefix (the
//! directory of the main file given with `-c`), not against the including
//! file. So does this loader, with `--prefix` as nginx's `-p`. When the main
//! file is a site file (its directory is `sites-available`, `sites-enabled`
//! or `conf.d`), the prefix is that directory's parent, as on Debian and Red
//! Hat, where `include snippets/fastcgi-php.conf` means /etc/nginx/snippets.
//! A relative include not found under the prefix is looked for next to the
//! including file, and the outcome is reported either way.
//!
//! Every file is input from outside: sizes, the number of files, include
//! depth and the number of directives are bounded, only regular files are
//! read, and an include cycle is refused rather than followed.

use std::collections::HashMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::tree::{At, Directive, FileId, MAX_DEPTH, parse};

/// Entries an include pattern may match, directories and files, per file
/// the loader may read ([`Limits`]'s `files`).
const GLOB_VISITS: usize = 16;

/// Path components of an include pattern that may hold wildcards.
const MAX_WILD_COMPONENTS: usize = 2;

/// Bounds on what a config may make the loader read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest file read; nginx.conf files are a few KiB, mime.types 5 KiB.
    pub file_bytes: u64,
    /// All files together.
    pub total_bytes: u64,
    /// Distinct files.
    pub files: usize,
    /// Includes within includes.
    pub include_depth: usize,
    /// Directives in the spliced tree (a file included many times counts
    /// each time).
    pub directives: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            file_bytes: 1 << 20,
            total_bytes: 16 << 20,
            files: 512,
            include_depth: 16,
            directives: 200_000,
        }
    }
}

/// What became of one `include` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Included {
    /// Spliced in place, in this order (a glob's matches sorted by name).
    Files(Vec<FileId>),
    /// A glob that matched no file (nginx accepts that silently).
    NoMatch,
    /// A file that does not exist where nginx (and the loader) looked.
    Missing(Vec<PathBuf>),
}

/// One `include` and its outcome.
#[derive(Debug, Clone)]
pub struct Include {
    /// Where the `include` directive is.
    pub at: At,
    /// Its argument as written.
    pub pattern: String,
    pub outcome: Included,
    /// Found next to the including file rather than under the prefix.
    pub beside_includer: bool,
}

/// A config read from disk with its includes spliced in.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Every file read; [`FileId`] indexes it; the main file is first.
    pub files: Vec<PathBuf>,
    /// nginx's configuration prefix used for relative includes.
    pub prefix: PathBuf,
    /// The main file's directives, each `include` replaced by what it read.
    pub directives: Vec<Directive>,
    /// Every `include`, in the order met.
    pub includes: Vec<Include>,
}

impl Loaded {
    /// A file's path for messages: relative to the prefix when under it.
    #[must_use]
    pub fn show(&self, file: FileId) -> String {
        let Some(path) = self.files.get(file.0 as usize) else {
            return "?".to_owned();
        };
        path.strip_prefix(&self.prefix)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// `file:line` of a directive.
    #[must_use]
    pub fn at(&self, at: At) -> String {
        format!("{}:{}", self.show(at.file), at.line)
    }
}

/// Why a config could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    pub line: Option<u32>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LoadError {}

/// The prefix nginx would use for `main` when none is given.
#[must_use]
pub fn default_prefix(main: &Path) -> PathBuf {
    let dir = main.parent().unwrap_or(Path::new(".")).to_path_buf();
    let site_dir = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| matches!(n, "sites-available" | "sites-enabled" | "conf.d"));
    match dir.parent() {
        Some(parent) if site_dir => parent.to_path_buf(),
        _ => dir,
    }
}

/// Reads `main` and everything it includes.
///
/// # Errors
///
/// A file that cannot be read, a syntax error, an include cycle, or a bound
/// of [`Limits`] passed; each names the file and, when it has one, the line.
pub fn load(main: &Path, prefix: Option<&Path>, limits: Limits) -> Result<Loaded, LoadError> {
    let main = absolute(main);
    let prefix = prefix.map_or_else(|| default_prefix(&main), absolute);
    let mut loader = Loader {
        limits,
        files: Vec::new(),
        by_path: HashMap::new(),
        parsed: HashMap::new(),
        total_bytes: 0,
        directives: 0,
        includes: Vec::new(),
        prefix: prefix.clone(),
    };
    let id = loader.read(&main, None)?;
    let tree = loader.parsed.get(&id).cloned().unwrap_or_default();
    let directives = loader.expand(tree, id, &mut vec![id], 0)?;
    Ok(Loaded {
        files: loader.files,
        prefix,
        directives,
        includes: loader.includes,
    })
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

struct Loader {
    limits: Limits,
    files: Vec<PathBuf>,
    /// Canonical path -> id, so a file included twice is read once.
    by_path: HashMap<PathBuf, FileId>,
    parsed: HashMap<FileId, Vec<Directive>>,
    total_bytes: u64,
    directives: usize,
    includes: Vec<Include>,
    prefix: PathBuf,
}

impl Loader {
    fn error(&self, file: &Path, line: Option<u32>, message: impl Into<String>) -> LoadError {
        LoadError {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    fn path_of(&self, id: FileId) -> PathBuf {
        self.files.get(id.0 as usize).cloned().unwrap_or_default()
    }

    /// Reads and parses one file (once), returning its id.
    fn read(&mut self, path: &Path, from: Option<At>) -> Result<FileId, LoadError> {
        let (err_file, err_line) = match from {
            Some(at) => (self.path_of(at.file), Some(at.line)),
            None => (path.to_path_buf(), None),
        };
        let canonical = std::fs::canonicalize(path)
            .map_err(|e| self.error(&err_file, err_line, format!("{}: {e}", path.display())))?;
        if let Some(&id) = self.by_path.get(&canonical) {
            return Ok(id);
        }
        let meta = std::fs::metadata(&canonical)
            .map_err(|e| self.error(&err_file, err_line, format!("{}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(self.error(
                &err_file,
                err_line,
                format!("{} is not a regular file", path.display()),
            ));
        }
        if self.files.len() >= self.limits.files {
            return Err(self.error(
                &err_file,
                err_line,
                format!("more than {} files included", self.limits.files),
            ));
        }
        let mut bytes = Vec::new();
        let file = std::fs::File::open(&canonical)
            .map_err(|e| self.error(&err_file, err_line, format!("{}: {e}", path.display())))?;
        file.take(self.limits.file_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.error(path, None, format!("reading: {e}")))?;
        if bytes.len() as u64 > self.limits.file_bytes {
            return Err(self.error(
                path,
                None,
                format!("larger than {} bytes", self.limits.file_bytes),
            ));
        }
        self.total_bytes += bytes.len() as u64;
        if self.total_bytes > self.limits.total_bytes {
            return Err(self.error(
                path,
                None,
                format!(
                    "the config and its includes pass {} bytes",
                    self.limits.total_bytes
                ),
            ));
        }
        let id = FileId(u32::try_from(self.files.len()).unwrap_or(u32::MAX));
        self.files.push(path.to_path_buf());
        self.by_path.insert(canonical, id);
        let tree = parse(&bytes, id).map_err(|e| LoadError {
            file: path.to_path_buf(),
            line: Some(e.line),
            message: e.message,
        })?;
        self.parsed.insert(id, tree);
        Ok(id)
    }

    /// Replaces each `include` in `tree` (of file `id`) by what it reads.
    /// `chain` holds the files being expanded, outermost first.
    fn expand(
        &mut self,
        tree: Vec<Directive>,
        id: FileId,
        chain: &mut Vec<FileId>,
        depth: usize,
    ) -> Result<Vec<Directive>, LoadError> {
        let mut out = Vec::with_capacity(tree.len());
        for mut d in tree {
            self.directives += 1;
            if self.directives > self.limits.directives {
                return Err(self.error(
                    &self.path_of(id),
                    Some(d.at.line),
                    format!("more than {} directives", self.limits.directives),
                ));
            }
            if d.name == "include" && d.block.is_none() && d.args.len() == 1 {
                let spliced = self.include(&d, chain, depth)?;
                out.extend(spliced);
                continue;
            }
            if let Some(body) = d.block.take() {
                if depth + 1 > MAX_DEPTH {
                    return Err(self.error(
                        &self.path_of(id),
                        Some(d.at.line),
                        format!("blocks nested deeper than {MAX_DEPTH} across includes"),
                    ));
                }
                d.block = Some(self.expand(body, id, chain, depth + 1)?);
            }
            out.push(d);
        }
        Ok(out)
    }

    fn include(
        &mut self,
        d: &Directive,
        chain: &mut Vec<FileId>,
        depth: usize,
    ) -> Result<Vec<Directive>, LoadError> {
        let pattern = d.args[0].clone();
        let includer = self.path_of(d.at.file);
        let includer_dir = includer.parent().unwrap_or(Path::new("/")).to_path_buf();
        let glob = pattern.contains(['*', '?', '[']);
        let mut bases = vec![self.prefix.clone()];
        if Path::new(&pattern).is_relative() && includer_dir != self.prefix {
            bases.push(includer_dir);
        }
        let mut found: Vec<PathBuf> = Vec::new();
        let mut beside_includer = false;
        let mut looked = Vec::new();
        for (i, base) in bases.iter().enumerate() {
            let full = base.join(&pattern);
            looked.push(full.clone());
            if glob {
                found = self.glob(&full, d)?;
            } else if full.exists() {
                found = vec![full];
            }
            if !found.is_empty() {
                beside_includer = i > 0;
                break;
            }
            if Path::new(&pattern).is_absolute() {
                break;
            }
        }
        let outcome = if found.is_empty() {
            if glob {
                Included::NoMatch
            } else {
                Included::Missing(looked)
            }
        } else {
            Included::Files(Vec::new())
        };
        let index = self.includes.len();
        self.includes.push(Include {
            at: d.at,
            pattern,
            outcome,
            beside_includer,
        });
        let mut spliced = Vec::new();
        for path in found {
            let id = self.read(&path, Some(d.at))?;
            if chain.contains(&id) {
                let names: Vec<String> = chain
                    .iter()
                    .chain(std::iter::once(&id))
                    .map(|f| self.path_of(*f).display().to_string())
                    .collect();
                return Err(self.error(
                    &self.path_of(d.at.file),
                    Some(d.at.line),
                    format!("include cycle: {}", names.join(" -> ")),
                ));
            }
            if chain.len() >= self.limits.include_depth {
                return Err(self.error(
                    &self.path_of(d.at.file),
                    Some(d.at.line),
                    format!("includes nested deeper than {}", self.limits.include_depth),
                ));
            }
            if let Some(Include {
                outcome: Included::Files(ids),
                ..
            }) = self.includes.get_mut(index)
            {
                ids.push(id);
            }
            let tree = self.parsed.get(&id).cloned().unwrap_or_default();
            chain.push(id);
            let expanded = self.expand(tree, id, chain, depth);
            chain.pop();
            spliced.extend(expanded?);
        }
        Ok(spliced)
    }

    /// The files a glob matches, sorted by name as glob(3) gives them,
    /// hidden files only when the pattern names the dot.
    ///
    /// `**` is glob(3)'s: two `*`, within one directory level, where the
    /// glob crate would descend every directory below (and around for ever
    /// through a link to `.`). Wildcards in at most [`MAX_WILD_COMPONENTS`]
    /// components, and at most [`GLOB_VISITS`] times the file limit of
    /// matches, directories and files.
    fn glob(&self, full: &Path, d: &Directive) -> Result<Vec<PathBuf>, LoadError> {
        let mut text = full.to_string_lossy().into_owned();
        while text.contains("**") {
            text = text.replace("**", "*");
        }
        // Each wildcard directory multiplies the walk (the glob crate
        // reads every match of one level to try the next): nginx's own
        // configs use one or two (`sites-enabled/*`, `conf.d/*.conf`).
        let wild = text
            .split('/')
            .filter(|c| c.contains(['*', '?', '[']))
            .count();
        if wild > MAX_WILD_COMPONENTS {
            return Err(self.error(
                &self.path_of(d.at.file),
                Some(d.at.line),
                format!(
                    "include pattern {:?} has wildcards in {wild} path components; at most \
                     {MAX_WILD_COMPONENTS} are read",
                    d.args[0]
                ),
            ));
        }
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let paths = glob::glob_with(&text, options).map_err(|e| {
            self.error(
                &self.path_of(d.at.file),
                Some(d.at.line),
                format!("bad include pattern {:?}: {e}", d.args[0]),
            )
        })?;
        let mut out = Vec::new();
        let most = self.limits.files.saturating_mul(GLOB_VISITS);
        for (visited, entry) in paths.enumerate() {
            if visited >= most {
                return Err(self.error(
                    &self.path_of(d.at.file),
                    Some(d.at.line),
                    format!(
                        "include pattern {:?} matches more than {most} entries",
                        d.args[0]
                    ),
                ));
            }
            // An unreadable directory entry is skipped, as glob(3) does.
            let Ok(path) = entry else { continue };
            if path.is_file() {
                out.push(path);
            }
            if out.len() > self.limits.files {
                break;
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn names(ds: &[Directive]) -> Vec<String> {
        ds.iter().map(Directive::head).collect()
    }

    #[test]
    fn includes_are_spliced_with_their_own_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(
            dir.path(),
            "nginx.conf",
            "http {\n  include conf.d/*.conf;\n  include snippet;\n}\n",
        );
        write(dir.path(), "conf.d/b.conf", "b 2;\n");
        write(dir.path(), "conf.d/a.conf", "\na 1;\n");
        write(dir.path(), "conf.d/.hidden.conf", "hidden;\n");
        write(dir.path(), "conf.d/c.txt", "c;\n");
        write(dir.path(), "snippet", "s { include conf.d/a.conf; }\n");
        let l = load(&main, None, Limits::default()).unwrap();
        let http = &l.directives[0];
        assert_eq!(names(http.children()), ["a 1", "b 2", "s"]);
        let a = &http.children()[0];
        assert_eq!(l.at(a.at), "conf.d/a.conf:2");
        // The same file included twice is read once and spliced twice.
        assert_eq!(names(http.children()[2].children()), ["a 1"]);
        assert_eq!(l.files.len(), 4);
        assert_eq!(l.includes.len(), 3);
        assert!(matches!(&l.includes[0].outcome, Included::Files(f) if f.len() == 2));
    }

    #[test]
    fn relative_includes_resolve_against_the_prefix_then_the_includer() {
        let dir = tempfile::tempdir().unwrap();
        let site = write(
            dir.path(),
            "sites-available/site",
            "include snippets/x.conf;\ninclude local.conf;\ninclude none/*.conf;\ninclude gone.conf;\n",
        );
        write(dir.path(), "snippets/x.conf", "x;\n");
        write(dir.path(), "sites-available/local.conf", "local;\n");
        let l = load(&site, None, Limits::default()).unwrap();
        assert_eq!(l.prefix, dir.path());
        assert_eq!(names(&l.directives), ["x", "local"]);
        assert!(!l.includes[0].beside_includer);
        assert!(l.includes[1].beside_includer);
        assert_eq!(l.includes[2].outcome, Included::NoMatch);
        assert!(matches!(&l.includes[3].outcome, Included::Missing(p) if p.len() == 2));
        // With an explicit prefix the site's directory is only the fallback.
        let other = tempfile::tempdir().unwrap();
        let l = load(&site, Some(other.path()), Limits::default()).unwrap();
        assert_eq!(names(&l.directives), ["local"]);
    }

    /// `**` is two `*` in one level, as glob(3) reads it: a loop of links
    /// to `.` below is never walked (the glob crate's `**` walked it for
    /// ever), and a pattern matching more entries than it may is refused.
    #[test]
    fn a_double_star_stays_in_its_level() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(
            dir.path(),
            "nginx.conf",
            "include d/**/x.conf;
include d/**.conf;
",
        );
        write(
            dir.path(),
            "d/one.conf",
            "one;
",
        );
        write(
            dir.path(),
            "d/sub/x.conf",
            "x;
",
        );
        write(
            dir.path(),
            "d/sub/deeper/x.conf",
            "deeper;
",
        );
        for l in ["l1", "l2", "l3"] {
            std::os::unix::fs::symlink(".", dir.path().join("d/sub").join(l)).unwrap();
        }
        let l = load(&main, None, Limits::default()).unwrap();
        assert_eq!(names(&l.directives), ["x", "one"]);

        // Directories the pattern matches: looked at, never included.
        for i in 0..40 {
            std::fs::create_dir_all(dir.path().join(format!("many/d{i}.conf"))).unwrap();
        }
        let main = write(
            dir.path(),
            "many.conf",
            "include many/*.conf;
",
        );
        let limits = Limits {
            files: 2,
            ..Limits::default()
        };
        let e = load(&main, None, limits).unwrap_err();
        assert!(e.message.contains("matches more than 32 entries"), "{e}");
        // Wildcard directories multiply the walk: three are refused.
        let main = write(dir.path(), "deep.conf", "include d/*/*/*/none.conf;\n");
        let e = load(&main, None, Limits::default()).unwrap_err();
        assert!(e.message.contains("wildcards in 3 path components"), "{e}");
    }

    #[test]
    fn cycles_and_bounds_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.conf", "include b.conf;\n");
        write(dir.path(), "b.conf", "x;\ninclude a.conf;\n");
        let e = load(&a, None, Limits::default()).unwrap_err();
        assert!(e.message.starts_with("include cycle: "), "{e}");
        assert_eq!((e.line, e.file.ends_with("b.conf")), (Some(2), true));

        let big = write(dir.path(), "big.conf", &"x;\n".repeat(100));
        let limits = Limits {
            file_bytes: 100,
            ..Limits::default()
        };
        let e = load(&big, None, limits).unwrap_err();
        assert_eq!(e.message, "larger than 100 bytes");

        // A file including itself twice per level: bounded by the count.
        let bomb = write(dir.path(), "bomb.conf", "x { include bomb.conf; }\n");
        let e = load(&bomb, None, Limits::default()).unwrap_err();
        assert!(e.message.contains("include cycle"), "{e}");

        let chain: Vec<PathBuf> = (0..20)
            .map(|i| {
                write(
                    dir.path(),
                    &format!("c{i}.conf"),
                    &format!("include c{}.conf;\n", i + 1),
                )
            })
            .collect();
        write(dir.path(), "c20.conf", "end;\n");
        let e = load(&chain[0], None, Limits::default()).unwrap_err();
        assert!(e.message.contains("nested deeper than 16"), "{e}");

        let e = load(&dir.path().join("nope.conf"), None, Limits::default()).unwrap_err();
        assert!(e.message.contains("No such file"), "{e}");
        let d = write(dir.path(), "dir.conf", "include sub;\n");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let e = load(&d, None, Limits::default()).unwrap_err();
        assert!(e.message.ends_with("is not a regular file"), "{e}");
    }

    #[test]
    fn syntax_errors_name_the_included_file() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(dir.path(), "main.conf", "include bad.conf;\n");
        write(dir.path(), "bad.conf", "ok;\n\nbroken {\n");
        let e = load(&main, None, Limits::default()).unwrap_err();
        assert!(e.file.ends_with("bad.conf"));
        assert_eq!(e.line, Some(4));
    }
}
