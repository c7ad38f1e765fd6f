//! The whole site in the config: `static:` (files from a local root),
//! `error_pages:` and `locations:` (per-path rules in nginx's precedence),
//! from the raw YAML structs to typed values, with what `config test` says
//! of rules that overlap or can never match.
//!
//! The keys are those of the lead's schema for issue 14 (SCHEMA.md), which
//! `fpmlb import-nginx` writes. Matching a request against the locations is
//! `crate::http::locations`' business; here each `match:` is parsed and its
//! regex compiled, so that a bad one is a config error with its line.
//!
//! Regexes: nginx uses PCRE (backtracking; a pattern like `(a+)+$` can take
//! exponential time on a crafted URI). fpmlb compiles every pattern with
//! the `regex` crate, which matches in linear time; only a pattern that
//! crate refuses because it uses lookaround or backreferences (Laravel's
//! recommended `location ~ /\.(?!well-known).*`) goes to `fancy-regex`,
//! which runs the rest of the pattern on `regex` and bounds its own
//! backtracking ([`BACKTRACK_LIMIT`]): a URI that hits the bound is refused
//! with 500, never a stalled worker.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::defaults as d;
use super::locate::join;
use super::raw::Params;
use super::validate::{Validator, Zero};
use super::{BackendConfig, ConfigError};

/// Backtracking steps one match of a lookaround regex may take (fancy-regex's
/// own default): a URI of 8 KiB against `/\.(?!well-known).*` takes a few
/// thousand; a pathological pattern stops here instead of running for
/// minutes.
pub const BACKTRACK_LIMIT: usize = 1_000_000;

/// The backend group of backends without `group` and of locations without
/// `backends`.
pub const MAIN_GROUP: &str = "main";

/// `static:`: files served by fpmlb from a local copy of the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticConfig {
    /// nginx's `root` on this machine: absolute, without trailing `/`.
    pub root: PathBuf,
    /// Directory indexes served as files, tried after the PHP `index`.
    pub index: Vec<String>,
    /// Path prefixes (starting with `/`) served although they hold a dot segment.
    pub allow_dotfiles: Vec<String>,
    /// Serve `x.br`/`x.gz` for `x` when the client accepts them (nginx `gzip_static`).
    pub precompressed: bool,
    /// Cache-Control of static files; a location's `cache_control` overrides it.
    pub cache_control: Option<String>,
}

/// `static.open_file_cache:` what a lookup of a path under a root (the
/// static root, an alias) found, trusted for `valid` (nginx's
/// `open_file_cache` with `open_file_cache_valid`): a file's open
/// descriptor and metadata, a directory, a precompressed sibling's absence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileCacheConfig {
    /// How long a lookup is trusted; zero turns the cache off.
    pub valid: Duration,
    /// Paths held at most, per root (each file holds a descriptor).
    pub max: usize,
}

impl OpenFileCacheConfig {
    /// No cache: every request looks its path up.
    pub const OFF: OpenFileCacheConfig = OpenFileCacheConfig {
        valid: Duration::ZERO,
        max: 0,
    };
}

/// One entry of `error_pages:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    /// 300..=599, as nginx's `error_page` takes.
    pub status: u16,
    /// The page's path under the static root (or a location's alias), e.g. `/404.html`.
    pub path: String,
}

/// One entry of `locations:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub matcher: LocationMatch,
    /// The line of the entry, for logs and `config test`.
    pub line: usize,
    /// Answer 403 or 404 (nginx `deny all`, `return 404`).
    pub deny: Option<u16>,
    /// Answer this status, with a `Location` for redirects (nginx `return`).
    pub redirect: Option<Return>,
    /// Only reachable by an internal redirect: the front controller,
    /// `X-Accel-Redirect`, an error page (nginx `internal`).
    pub internal: bool,
    /// Files come from here instead of the static root; the location's
    /// prefix is replaced by it (nginx `alias`): absolute, as written.
    pub alias: Option<String>,
    /// Scripts that may run here; `Some([])`: none (a `.php` is 404).
    pub scripts: Option<Vec<String>>,
    /// Overrides the top-level `front_controller` here.
    pub front_controller: Option<String>,
    /// The backend group; `None`: [`MAIN_GROUP`].
    pub group: Option<String>,
    /// Overrides `timeouts.read` here.
    pub read_timeout: Option<Duration>,
    /// Overrides `timeouts.send` here.
    pub send_timeout: Option<Duration>,
    /// Overrides `max_body_size` here.
    pub max_body_size: Option<u64>,
    /// Overrides `response_buffering` here.
    pub response_buffering: Option<bool>,
    /// Params added to (and overriding) the top-level `params` here.
    pub params: Vec<(String, String)>,
    /// Cache-Control of the static files served here.
    pub cache_control: Option<String>,
}

/// `return: {status, url}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Return {
    pub status: u16,
    /// For 301, 302, 303, 307 and 308: the Location, with nginx's
    /// `$scheme`, `$host`, `$request_uri`, `$uri`, `$args`, `$query_string`
    /// and `$is_args` (checked to be one of these).
    pub url: Option<String>,
}

/// The variables a `return` URL may hold, as nginx names them.
pub const RETURN_VARIABLES: &[&str] = &[
    "scheme",
    "host",
    "request_uri",
    "uri",
    "args",
    "query_string",
    "is_args",
];

/// A location's `match:`, as nginx reads a `location` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationMatch {
    /// `= /x`: this path only.
    Exact(String),
    /// `^~ /x`: a prefix that, when it is the longest, stops the regex search.
    PrefixNoRegex(String),
    /// `/x`: a prefix.
    Prefix(String),
    /// `~ re`, `~* re` (case-insensitive).
    Regex(LocationRegex),
}

impl LocationMatch {
    /// The prefix or exact path, for the kinds that have one.
    #[must_use]
    pub fn path(&self) -> Option<&str> {
        match self {
            LocationMatch::Exact(p)
            | LocationMatch::PrefixNoRegex(p)
            | LocationMatch::Prefix(p) => Some(p),
            LocationMatch::Regex(_) => None,
        }
    }
}

impl fmt::Display for LocationMatch {
    /// The `match:` text, normalised (`=/x` is shown `= /x`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocationMatch::Exact(p) => write!(f, "= {p}"),
            LocationMatch::PrefixNoRegex(p) => write!(f, "^~ {p}"),
            LocationMatch::Prefix(p) => f.write_str(p),
            LocationMatch::Regex(r) => {
                write!(f, "{} {}", if r.caseless { "~*" } else { "~" }, r.source)
            }
        }
    }
}

/// A compiled location regex. Two are equal when their text and case
/// flag are (the compiled forms cannot be compared).
#[derive(Clone)]
pub struct LocationRegex {
    pub source: String,
    pub caseless: bool,
    engine: Engine,
}

#[derive(Clone)]
enum Engine {
    /// The `regex` crate: linear time.
    Linear(regex::bytes::Regex),
    /// fancy-regex, for lookaround and backreferences: bounded backtracking.
    Backtracking(fancy_regex::Regex),
}

/// A match that could not be decided: the backtracking bound was hit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("location regex {0:?} gave up on this path (backtracking limit)")]
pub struct RegexGaveUp(pub String);

impl LocationRegex {
    /// Compiles `source` as nginx's PCRE reads it where the two agree: on
    /// bytes (nginx matches the decoded `$uri`, which need not be UTF-8),
    /// ASCII classes and case folding (PCRE without its UTF flag, as nginx
    /// builds it).
    ///
    /// # Errors
    ///
    /// The pattern is not a regex either engine reads; the message is the
    /// `regex` crate's.
    pub fn new(source: &str, caseless: bool) -> Result<LocationRegex, String> {
        let linear = regex::bytes::RegexBuilder::new(source)
            .unicode(false)
            .case_insensitive(caseless)
            .build();
        let engine = match linear {
            Ok(re) => Engine::Linear(re),
            Err(linear_err) => {
                let fancy = fancy_regex::RegexBuilder::new(source)
                    .case_insensitive(caseless)
                    .bytes_mode(fancy_regex::BytesMode::Ascii)
                    .backtrack_limit(BACKTRACK_LIMIT)
                    .build();
                match fancy {
                    Ok(re) => Engine::Backtracking(re),
                    Err(_) => return Err(first_line(&linear_err.to_string())),
                }
            }
        };
        Ok(LocationRegex {
            source: source.to_owned(),
            caseless,
            engine,
        })
    }

    /// Whether `uri` matches anywhere (nginx's location regexes are not
    /// anchored unless they say `^`).
    ///
    /// # Errors
    ///
    /// A lookaround regex hit [`BACKTRACK_LIMIT`].
    pub fn is_match(&self, uri: &[u8]) -> Result<bool, RegexGaveUp> {
        match &self.engine {
            Engine::Linear(re) => Ok(re.is_match(uri)),
            Engine::Backtracking(re) => re
                .is_match(uri)
                .map_err(|_| RegexGaveUp(self.source.clone())),
        }
    }

    /// Whether this pattern needed the backtracking engine.
    #[must_use]
    pub fn backtracks(&self) -> bool {
        matches!(self.engine, Engine::Backtracking(_))
    }
}

/// The regex crate's errors draw the pattern over several lines; the
/// config error keeps the last, which says what is wrong.
fn first_line(message: &str) -> String {
    message
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("error:"))
        .map_or_else(|| message.to_owned(), |l| l.trim().to_owned())
}

impl fmt::Debug for LocationRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocationRegex")
            .field("source", &self.source)
            .field("caseless", &self.caseless)
            .field("backtracks", &self.backtracks())
            .finish()
    }
}

impl PartialEq for LocationRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.caseless == other.caseless
    }
}

impl Eq for LocationRegex {}

// ---- the raw layer ----

/// `static:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatic {
    pub root: Option<String>,
    pub index: Option<Vec<String>>,
    pub allow_dotfiles: Option<Vec<String>>,
    pub precompressed: Option<bool>,
    pub cache_control: Option<String>,
    pub open_file_cache: Option<RawOpenFileCache>,
}

/// `static.open_file_cache:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOpenFileCache {
    pub valid: Option<String>,
    pub max: Option<usize>,
}

/// An entry of `locations:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLocation {
    #[serde(rename = "match")]
    pub matcher: Option<String>,
    pub deny: Option<u16>,
    #[serde(rename = "return")]
    pub redirect: Option<RawReturn>,
    pub internal: Option<bool>,
    pub alias: Option<String>,
    pub scripts: Option<Vec<String>>,
    pub front_controller: Option<String>,
    pub backends: Option<String>,
    pub timeouts: Option<RawLocationTimeouts>,
    pub max_body_size: Option<String>,
    pub response_buffering: Option<bool>,
    pub params: Option<Params>,
    pub cache_control: Option<String>,
}

/// `locations[].return`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReturn {
    pub status: Option<u16>,
    pub url: Option<String>,
}

/// `locations[].timeouts`: the php-fpm side only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLocationTimeouts {
    pub read: Option<String>,
    pub send: Option<String>,
}

// ---- validation ----

impl Validator<'_> {
    /// `static:`; `None` when there is no root.
    pub(super) fn static_files(&mut self, raw: Option<RawStatic>) -> Option<StaticConfig> {
        let raw = raw?;
        let mut index = Vec::new();
        for (i, name) in raw
            .index
            .unwrap_or_else(|| vec!["index.html".to_owned()])
            .into_iter()
            .enumerate()
        {
            if name.is_empty() || name.contains(['/', '\0']) || name == "." || name == ".." {
                self.error(
                    &format!("static.index[{i}]"),
                    format!("must be a file name such as index.html, got {name:?}"),
                );
            } else {
                index.push(name);
            }
        }
        let mut allow_dotfiles = Vec::new();
        for (i, prefix) in raw
            .allow_dotfiles
            .unwrap_or_else(|| vec!["/.well-known/".to_owned()])
            .into_iter()
            .enumerate()
        {
            if !prefix.starts_with('/') || prefix.contains('\0') {
                self.error(
                    &format!("static.allow_dotfiles[{i}]"),
                    format!("must be a path prefix starting with '/', such as /.well-known/, got {prefix:?}"),
                );
            } else {
                allow_dotfiles.push(prefix);
            }
        }
        let cache_control = self.header_value("static.cache_control", raw.cache_control);
        let root = raw.root?;
        if !root.starts_with('/') || root.contains('\0') {
            self.error(
                "static.root",
                format!("must be an absolute path on this machine, got {root:?}"),
            );
            return None;
        }
        let trimmed = match root.trim_end_matches('/') {
            "" => "/",
            t => t,
        };
        Some(StaticConfig {
            root: PathBuf::from(trimmed),
            index,
            allow_dotfiles,
            precompressed: raw.precompressed.unwrap_or(true),
            cache_control,
        })
    }

    /// `static.open_file_cache:` (for the static root and every alias).
    pub(super) fn open_file_cache(&mut self, raw: Option<RawOpenFileCache>) -> OpenFileCacheConfig {
        let raw = raw.unwrap_or_default();
        let valid = self.duration(
            "static.open_file_cache.valid",
            raw.valid,
            d::OPEN_FILE_CACHE_VALID,
            Zero::Valid,
        );
        let max = raw.max.unwrap_or(d::OPEN_FILE_CACHE_MAX);
        if max > d::OPEN_FILE_CACHE_MAX_LIMIT {
            self.error(
                "static.open_file_cache.max",
                format!(
                    "must be at most {}, got {max}",
                    d::OPEN_FILE_CACHE_MAX_LIMIT
                ),
            );
        }
        if valid > d::OPEN_FILE_CACHE_VALID_LIMIT {
            self.error(
                "static.open_file_cache.valid",
                format!(
                    "must be at most {}s (a switched root link is followed that late), got {:?}",
                    d::OPEN_FILE_CACHE_VALID_LIMIT.as_secs(),
                    valid
                ),
            );
        }
        if valid.is_zero() || max == 0 {
            return OpenFileCacheConfig::OFF;
        }
        // Past a limit is an error above: the config is refused.
        OpenFileCacheConfig { valid, max }
    }

    /// `error_pages:` (needs a static root to read them from).
    pub(super) fn error_pages(
        &mut self,
        raw: Option<Params>,
        has_root: bool,
        locations: &[Location],
    ) -> Vec<ErrorPage> {
        let mut pages: Vec<ErrorPage> = Vec::new();
        for (status, path) in raw.map(|p| p.0).unwrap_or_default() {
            let key = join("error_pages", &status);
            let code = match status.parse::<u16>() {
                Ok(code) if (300..=599).contains(&code) => code,
                _ => {
                    self.error(
                        &key,
                        format!("must be an HTTP status of 300 to 599, got {status:?}"),
                    );
                    continue;
                }
            };
            if !path.starts_with('/')
                || path.contains(['\0', '?', '#'])
                || path.split('/').any(|s| s == "..")
                || path.ends_with('/')
            {
                self.error(
                    &key,
                    format!("must be a file's path such as /404.html, got {path:?}"),
                );
                continue;
            }
            if super::paths::is_php_source(path.as_bytes()) {
                self.error(
                    &key,
                    format!(
                        "{path} is PHP source: an error page is a static file, sent as it is, \
                         so its code would reach every client (nginx runs such a page through \
                         PHP; here the script's own error answer, or the front controller's, does)"
                    ),
                );
                continue;
            }
            if super::paths::has_dot_segment(path.as_bytes()) {
                self.error(&key, format!("{path} is a dotfile: those are never sent"));
                continue;
            }
            let aliased = locations.iter().any(|l| {
                l.alias.is_some() && l.matcher.path().is_some_and(|p| path.starts_with(p))
            });
            if !has_root && !aliased {
                self.error(
                    &key,
                    "error pages are files under static.root: set static.root",
                );
                continue;
            }
            if pages.iter().any(|p| p.status == code) {
                self.error(&key, format!("{code} is listed twice"));
                continue;
            }
            pages.push(ErrorPage { status: code, path });
        }
        pages
    }

    /// `locations:`, then what can be told of them as a whole.
    pub(super) fn locations(
        &mut self,
        raw: Option<Vec<RawLocation>>,
        backends: &[BackendConfig],
    ) -> Vec<Location> {
        let mut locations = Vec::new();
        for (i, raw) in raw.unwrap_or_default().into_iter().enumerate() {
            if let Some(location) = self.location(&format!("locations[{i}]"), raw, backends) {
                locations.push((i, location));
            }
        }
        self.overlaps(&locations);
        locations.into_iter().map(|(_, l)| l).collect()
    }

    fn location(
        &mut self,
        path: &str,
        raw: RawLocation,
        backends: &[BackendConfig],
    ) -> Option<Location> {
        let errors_before = self.error_count();
        let key = |k: &str| join(path, k);
        let matcher = match raw.matcher {
            None => {
                self.missing(path, "match");
                None
            }
            Some(text) => match parse_match(&text) {
                Ok(m) => Some(m),
                Err(message) => {
                    self.error(&key("match"), message);
                    None
                }
            },
        };
        if let Some(status) = raw.deny
            && status != 403
            && status != 404
        {
            self.error(&key("deny"), format!("must be 403 or 404, got {status}"));
        }
        let redirect = raw
            .redirect
            .and_then(|r| self.return_rule(&key("return"), r));
        let alias = raw.alias.and_then(|a| {
            if !a.starts_with('/') || a.contains('\0') {
                self.error(
                    &key("alias"),
                    format!("must be an absolute directory (or file) path, got {a:?}"),
                );
                return None;
            }
            if matches!(matcher, Some(LocationMatch::Regex(_))) {
                self.error(
                    &key("alias"),
                    "an alias replaces the location's prefix: use it with \"= /x\", \"^~ /x\" or \"/x\"",
                );
                return None;
            }
            if let Some(LocationMatch::Prefix(p) | LocationMatch::PrefixNoRegex(p)) = &matcher
                && !p.ends_with('/')
                && a.ends_with('/')
            {
                // gixy's "alias traversal": fpmlb refuses `/static../x`
                // (`files::join_path`), but `/staticx` still maps to `<alias>x`.
                self.warn(
                    &key("alias"),
                    format!(
                        "the location {p:?} does not end in \"/\" but its alias does: {p}x is served from {a}x (and {p}../x is refused); write the location as \"{p}/\""
                    ),
                );
            }
            Some(a)
        });
        let scripts = raw.scripts.map(|list| {
            list.into_iter()
                .enumerate()
                .filter_map(|(i, s)| match check_script(&s) {
                    Ok(()) => Some(s),
                    Err(message) => {
                        self.error(&format!("{}[{i}]", key("scripts")), message);
                        None
                    }
                })
                .collect()
        });
        let front_controller = raw.front_controller.and_then(|fc| match check_script(&fc) {
            Ok(()) => Some(fc),
            Err(message) => {
                self.error(&key("front_controller"), message);
                None
            }
        });
        let group = raw.backends.and_then(|g| {
            if backends.iter().any(|b| b.group == g) {
                Some(g)
            } else {
                self.error(
                    &key("backends"),
                    format!("no backend has group {g:?} (backends[].group)"),
                );
                None
            }
        });
        let timeouts = raw.timeouts.unwrap_or_default();
        let read_timeout = timeouts.read.map(|t| {
            self.duration(
                &key("timeouts.read"),
                Some(t),
                Duration::ZERO,
                Zero::Invalid,
            )
        });
        let send_timeout = timeouts.send.map(|t| {
            self.duration(
                &key("timeouts.send"),
                Some(t),
                Duration::ZERO,
                Zero::Invalid,
            )
        });
        let max_body_size = raw
            .max_body_size
            .map(|s| self.size(&key("max_body_size"), Some(s), 0));
        let params = self.params_at(&key("params"), raw.params.map(|p| p.0).unwrap_or_default());
        let cache_control = self.header_value(&key("cache_control"), raw.cache_control);
        let matcher = matcher?;
        if self.error_count() != errors_before {
            return None;
        }
        Some(Location {
            matcher,
            line: self.value_line(path),
            deny: raw.deny,
            redirect,
            internal: raw.internal.unwrap_or(false),
            alias,
            scripts,
            front_controller,
            group,
            read_timeout,
            send_timeout,
            max_body_size,
            response_buffering: raw.response_buffering,
            params,
            cache_control,
        })
    }

    fn return_rule(&mut self, key: &str, raw: RawReturn) -> Option<Return> {
        let Some(status) = raw.status else {
            self.missing(key, "status");
            return None;
        };
        let redirects = matches!(status, 301 | 302 | 303 | 307 | 308);
        if !(200..=599).contains(&status) {
            self.error(
                &join(key, "status"),
                format!("must be an HTTP status of 200 to 599, got {status}"),
            );
            return None;
        }
        match (&raw.url, redirects) {
            (None, true) => {
                self.missing(key, "url");
                return None;
            }
            (Some(_), false) => {
                self.error(
                    &join(key, "url"),
                    format!("only a redirect (301, 302, 303, 307, 308) has a url, not {status}"),
                );
                return None;
            }
            _ => {}
        }
        if let Some(url) = &raw.url
            && let Err(message) = check_return_url(url)
        {
            self.error(&join(key, "url"), message);
            return None;
        }
        Some(Return {
            status,
            url: raw.url,
        })
    }

    /// A header value from the file: printable, one line.
    fn header_value(&mut self, key: &str, value: Option<String>) -> Option<String> {
        let value = value?;
        if value.trim().is_empty() || value.bytes().any(|b| b < 0x20 || b == 0x7f) {
            self.error(
                key,
                format!("must be a header value on one line, such as \"public, max-age=3600\", got {value:?}"),
            );
            return None;
        }
        Some(value)
    }

    /// Locations that overlap (nginx refuses two with one path: "duplicate
    /// location") are errors; rules that can never match are warnings.
    fn overlaps(&mut self, locations: &[(usize, Location)]) {
        for (n, (i, loc)) in locations.iter().enumerate() {
            let key = format!("locations[{i}].match");
            let earlier = &locations[..n];
            match &loc.matcher {
                LocationMatch::Exact(p) => {
                    if let Some((_, first)) = earlier
                        .iter()
                        .find(|(_, e)| matches!(&e.matcher, LocationMatch::Exact(q) if q == p))
                    {
                        self.error(
                            &key,
                            format!("duplicate location \"= {p}\" (first on line {})", first.line),
                        );
                    }
                }
                LocationMatch::Prefix(p) | LocationMatch::PrefixNoRegex(p) => {
                    if let Some((_, first)) = earlier.iter().find(|(_, e)| {
                        matches!(&e.matcher, LocationMatch::Prefix(q) | LocationMatch::PrefixNoRegex(q) if q == p)
                    }) {
                        self.error(
                            &key,
                            format!(
                                "duplicate location: {} and \"{}\" (line {}) are the same prefix",
                                loc.matcher, first.matcher, first.line
                            ),
                        );
                    }
                }
                LocationMatch::Regex(re) => {
                    if let Some((_, first)) = earlier
                        .iter()
                        .find(|(_, e)| matches!(&e.matcher, LocationMatch::Regex(r) if r == re))
                    {
                        self.warn(
                            &key,
                            format!(
                                "never matches: the same regex on line {} comes first",
                                first.line
                            ),
                        );
                    } else if let Some(stop) = shadowing_prefix(re, locations) {
                        self.warn(
                            &key,
                            format!(
                                "never matches: every path it could match starts with \"^~ {stop}\", which stops the regex search"
                            ),
                        );
                    }
                }
            }
            if let Some(p) = loc.matcher.path()
                && !normalised(p)
            {
                self.warn(
                    &key,
                    format!(
                        "never matches: request paths are normalised (no //, /./, /../) before matching, {p:?} is not"
                    ),
                );
            }
        }
    }
}

/// Reads a `match:` as nginx reads a location line (`ngx_http_core_location`):
/// a modifier and a name, or one word with `=`, `~` or `~*` glued to it.
fn parse_match(text: &str) -> Result<LocationMatch, String> {
    let text = text.trim();
    let (modifier, rest) = match text.split_once(char::is_whitespace) {
        Some((m, rest)) if ["=", "^~", "~", "~*"].contains(&m) => (m, rest.trim_start()),
        _ if text.starts_with("~*") => ("~*", &text[2..]),
        _ if text.starts_with('~') => ("~", &text[1..]),
        _ if text.starts_with('=') => ("=", &text[1..]),
        _ if text.starts_with("^~") => {
            return Err(format!(
                "\"^~\" needs a space before its prefix, e.g. \"^~ /static/\", got {text:?}"
            ));
        }
        _ => ("", text),
    };
    if rest.is_empty() {
        return Err(format!(
            "{text:?} has no path or regex: use \"= /x\", \"^~ /x\", \"/x\", \"~ re\" or \"~* re\""
        ));
    }
    if rest.starts_with('@') && modifier.is_empty() {
        return Err(
            "named locations (@name) are not supported: fpmlb has no named internal redirects"
                .to_owned(),
        );
    }
    let path = |p: &str| -> Result<String, String> {
        if !p.starts_with('/') {
            return Err(format!(
                "never matches: request paths start with '/', {p:?} does not"
            ));
        }
        if p.contains('\0') {
            return Err("must not contain a NUL byte".to_owned());
        }
        Ok(p.to_owned())
    };
    match modifier {
        "=" => path(rest).map(LocationMatch::Exact),
        "^~" => path(rest).map(LocationMatch::PrefixNoRegex),
        "" => path(rest).map(LocationMatch::Prefix),
        m => LocationRegex::new(rest, m == "~*")
            .map(LocationMatch::Regex)
            .map_err(|e| format!("not a regex fpmlb can use: {e}")),
    }
}

/// `/index.php`: a script path starting with `/` and ending in `.php`.
fn check_script(value: &str) -> Result<(), String> {
    let ok = value.starts_with('/')
        && value.len() > "/.php".len()
        && value.to_ascii_lowercase().ends_with(".php")
        && !value.contains('\0')
        && !value.split('/').any(|s| s == ".." || s == ".");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be a script path starting with '/' and ending in \".php\", such as /index.php, got {value:?}"
        ))
    }
}

/// A `return` URL: one header line, with only the variables fpmlb fills.
fn check_return_url(url: &str) -> Result<(), String> {
    if url.is_empty() || url.bytes().any(|b| b < 0x20 || b == 0x7f || b == b' ') {
        return Err(format!(
            "must be a URL without spaces or control characters, got {url:?}"
        ));
    }
    for name in return_variables(url) {
        if !RETURN_VARIABLES.contains(&name) {
            return Err(format!(
                "${name} is not a variable fpmlb fills; it knows ${}",
                RETURN_VARIABLES.join(", $")
            ));
        }
    }
    Ok(())
}

/// The names of the `$name` and `${name}` variables in `text`, as nginx
/// reads them (letters, digits and `_`).
#[must_use]
pub fn return_variables(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => (braced, ""),
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        names.push(name);
        rest = after;
    }
    names
}

/// Whether a location path can equal a normalised request path.
fn normalised(p: &str) -> bool {
    !p.contains("//") && !p.split('/').skip(1).any(|s| s == "." || s == "..")
}

/// The `^~` prefix that takes every path `re` could match, if one does:
/// `re` is anchored at the start (`^/x...`), every literal it must begin
/// with starts with that prefix, and no plain prefix longer than it (which
/// would win the longest-prefix match and let the regexes run) sits under
/// it. Decidable only for such anchored regexes; the rest are not judged.
fn shadowing_prefix<'a>(re: &LocationRegex, locations: &'a [(usize, Location)]) -> Option<&'a str> {
    use regex_syntax::hir::Look;
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    if re.backtracks() {
        return None;
    }
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .case_insensitive(re.caseless)
        .build()
        .parse(&re.source)
        .ok()?;
    if !hir.properties().look_set_prefix().contains(Look::Start) {
        return None;
    }
    let mut extractor = Extractor::new();
    extractor.kind(ExtractKind::Prefix);
    let seq = extractor.extract(&hir);
    let literals = seq.literals()?;
    if literals.is_empty() {
        return None;
    }
    locations.iter().find_map(|(_, l)| {
        let LocationMatch::PrefixNoRegex(p) = &l.matcher else {
            return None;
        };
        let covers = literals
            .iter()
            .all(|lit| lit.as_bytes().starts_with(p.as_bytes()));
        let longer_plain = locations.iter().any(|(_, o)| {
            matches!(&o.matcher, LocationMatch::Prefix(q) if q.len() > p.len() && q.starts_with(p.as_str()))
        });
        (covers && !longer_plain).then_some(p.as_str())
    })
}

impl Validator<'_> {
    /// Records a warning: the config loads, `config test` prints it.
    pub(super) fn warn(&mut self, key: &str, message: impl Into<String>) {
        let warning = ConfigError {
            key: key.to_owned(),
            line: self.line(key),
            message: message.into(),
        };
        self.warnings.push(warning);
    }
}
