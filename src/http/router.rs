//! What answers a request: a location's rule (deny, return, internal), a
//! file from the static root or an alias, or a PHP script with its
//! location's settings (backend group, timeouts, body limit, params); and
//! what replaces a script's answer (X-Accel-Redirect) or fpmlb's own error
//! answers (`error_pages`).
//!
//! The order is nginx's for `root` + `try_files $uri $uri/
//! /index.php?$query_string` with a PHP location, seen from one request:
//!
//! 1. the location (`locations::select`); `internal` ones only after an
//!    internal redirect (404 otherwise), then `return`, then `deny` (nginx's
//!    rewrite phase comes before its access phase);
//! 2. a path with a `.php` segment is a script: it must be in the
//!    location's `scripts`, and, with a static root, exist there (nginx's
//!    `try_files $fastcgi_script_name =404`: php-fpm is never asked for a
//!    script that is not there, so its PATH_INFO walk-back never runs);
//! 3. else, with files here (static root or alias): dot segments and PHP
//!    source are 404 whatever exists; a file is sent (GET and HEAD; 405
//!    else); a directory without `/` is 301 to it with `/`; a directory
//!    with `/` tries `index` (a script, by an internal redirect), then
//!    `static.index` (files), then the front controller, else 403 (nginx:
//!    "directory index is forbidden"; never a listing); nothing there goes
//!    to the front controller (an internal redirect: the location is
//!    chosen again for it) or is 404;
//! 4. without files, today's routing (`params::route`): a directory's
//!    index with the front controller behind it, the front controller, or 404.
//!
//! Internal redirects are counted: more than nginx's 10 is a loop, 500.
//! A request's routing, with its file system work (stat, open, the checks
//! of `files::Root`, the first read), runs on the async thread, as nginx
//! opens files in its event loop: the first read takes only what the page
//! cache holds (`serve::Start::IfCached`), and what must come from a disk
//! is read on the blocking pool. Paths and metadata are expected on a
//! local file system (a lookup on a hung network mount would stall the
//! thread, as it stalls an nginx worker). X-Accel-Redirect targets and
//! error pages are rarer: they keep their hop to the blocking pool.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use percent_encoding::{AsciiSet, CONTROLS};

use crate::config::{Config, ErrorPage, Location, MAIN_GROUP};
use crate::fastcgi::exchange::ExchangeTimeouts;
use crate::fastcgi::params::ParamList;
use crate::http::body::BodyLimits;
use crate::http::error::{ClientError, ProxyError};
use crate::http::files::serve::{self, Extra, Plan, Start};
use crate::http::files::zero_copy::SendsWindows;
use crate::http::files::{self, Found, Root, StaticFiles};
use crate::http::locations;
use crate::http::params::{self, ConnInfo, Site};
use crate::http::response::{self, BodyError};

type Boxed = UnsyncBoxBody<Bytes, BodyError>;

/// nginx's limit of internal redirects for one request (NGX_HTTP_MAX_URI_CHANGES).
const MAX_REDIRECTS: u8 = 10;

/// What escapes in a URL fpmlb writes into a Location: controls, space,
/// the characters that end or break a URL, and every non-ASCII byte.
const LOCATION_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

/// Headers of a script's response that nginx keeps when it follows its
/// X-Accel-Redirect (ngx_http_upstream's `redirect` flag).
const ACCEL_KEPT: &[HeaderName] = &[
    header::CONTENT_TYPE,
    header::CONTENT_DISPOSITION,
    header::CACHE_CONTROL,
    header::EXPIRES,
    header::SET_COOKIE,
];

/// `X-Accel-*` headers never reach the client (nginx hides them by default).
const ACCEL_HIDDEN: &[&str] = &[
    "x-accel-redirect",
    "x-accel-expires",
    "x-accel-limit-rate",
    "x-accel-buffering",
    "x-accel-charset",
];

/// The site's rules from the config.
#[derive(Debug)]
pub struct Router {
    locations: Vec<Location>,
    /// Each location's alias as a root (same order as `locations`).
    aliases: Vec<Option<Root>>,
    /// Each location's Cache-Control (same order).
    cache_controls: Vec<Option<HeaderValue>>,
    files: Option<StaticFiles>,
    error_pages: Vec<ErrorPage>,
    index: String,
    front_controller: Option<String>,
}

/// Where a request goes.
pub enum Routed<'a> {
    /// fpmlb answers: a file, a redirect, a 304...
    Respond(Response<Boxed>),
    /// PHP runs a script.
    Script(ScriptRoute<'a>),
}

/// A script to run, and the settings of its location.
#[derive(Debug)]
pub struct ScriptRoute<'a> {
    pub script_name: Vec<u8>,
    pub path_info: Vec<u8>,
    /// Without a static root, for a directory's index: the script to run
    /// when php-fpm finds no index (see `params::Route::Script`).
    pub fallback: Option<Vec<u8>>,
    pub location: Option<&'a Location>,
}

impl ScriptRoute<'_> {
    /// The backend group to pick from.
    pub fn group(&self) -> &str {
        self.location
            .and_then(|l| l.group.as_deref())
            .unwrap_or(MAIN_GROUP)
    }

    /// The body limits, with the location's `max_body_size`.
    pub fn limits(&self, mut base: BodyLimits) -> BodyLimits {
        if let Some(size) = self.location.and_then(|l| l.max_body_size) {
            base.max_body_size = size;
        }
        base
    }

    /// Whether responses are read ahead of the client, with the location's
    /// `response_buffering`.
    pub fn response_buffering(&self, base: bool) -> bool {
        self.location
            .and_then(|l| l.response_buffering)
            .unwrap_or(base)
    }

    /// The php-fpm timeouts, with the location's.
    pub fn timeouts(&self, mut base: ExchangeTimeouts) -> ExchangeTimeouts {
        if let Some(l) = self.location {
            base.read = l.read_timeout.unwrap_or(base.read);
            base.send = l.send_timeout.unwrap_or(base.send);
        }
        base
    }

    /// Adds the location's params after the others, so they win.
    ///
    /// # Errors
    ///
    /// One does not fit a FastCGI record (431, as any param).
    pub fn add_params(&self, params: &mut ParamList) -> Result<(), ClientError> {
        let Some(l) = self.location else {
            return Ok(());
        };
        for (name, value) in &l.params {
            params.push(name.as_bytes(), value.as_bytes());
        }
        match params.refused() {
            None => Ok(()),
            Some(name) => Err(ClientError::HeadTooLarge(format!(
                "param {} does not fit one FastCGI record",
                String::from_utf8_lossy(name)
            ))),
        }
    }
}

/// What the blocking side decided.
enum Decision {
    Refuse(StatusCode, &'static str),
    /// The location (by index) answers with its `return`.
    Return(usize),
    /// A directory asked without its `/`: 301.
    AddSlash(Vec<u8>),
    File(Response<Plan>),
    Script {
        script_name: Vec<u8>,
        path_info: Vec<u8>,
        fallback: Option<Vec<u8>>,
        location: Option<usize>,
    },
}

/// What of the request the routing needs.
struct Req<'r> {
    method: Method,
    headers: &'r HeaderMap,
    /// How a file's first bytes are read: without waiting on the async
    /// thread, or whole on a blocking one.
    start: Start,
}

impl Router {
    pub fn new(config: &Config) -> Router {
        Router {
            aliases: config
                .locations
                .iter()
                .map(|l| {
                    l.alias
                        .as_ref()
                        .map(|a| Root::new(a.into(), config.open_file_cache))
                })
                .collect(),
            cache_controls: config
                .locations
                .iter()
                .map(|l| {
                    l.cache_control
                        .as_deref()
                        .and_then(|v| HeaderValue::from_str(v).ok())
                })
                .collect(),
            locations: config.locations.clone(),
            files: config
                .static_files
                .as_ref()
                .map(|s| StaticFiles::new(s, config.open_file_cache)),
            error_pages: config.error_pages.clone(),
            index: config.index.clone(),
            front_controller: config.front_controller.clone(),
        }
    }

    /// Closes the files the open file caches held past their `valid`.
    pub fn sweep_files(&self, now: std::time::Instant) {
        let aliases = self.aliases.iter().flatten();
        for root in self.files.iter().map(|f| &f.root).chain(aliases) {
            root.cache.sweep(now);
        }
    }

    /// Routes one request.
    ///
    /// # Errors
    ///
    /// fpmlb refuses it (bad path 400, deny 403/404, internal 404, 405...).
    pub async fn route<'a>(
        self: &'a Arc<Self>,
        parts: &http::request::Parts,
        conn: &ConnInfo,
        site: &Site,
    ) -> Result<Routed<'a>, ProxyError> {
        let uri = params::normalize_path(parts.uri.path()).map_err(ClientError::BadPath)?;
        let req = Req {
            method: parts.method.clone(),
            headers: &parts.headers,
            start: if parts.extensions.get::<SendsWindows>().is_some() {
                Start::Sendfile
            } else {
                Start::IfCached
            },
        };
        let decision = if self.locations.is_empty() && self.files.is_none() {
            match params::split_path_info(&uri) {
                Some(end) => Decision::Script {
                    script_name: uri[..end].to_vec(),
                    path_info: uri[end..].to_vec(),
                    fallback: None,
                    location: None,
                },
                None => self.legacy(&req, uri, self.front_controller.as_deref(), None, 0),
            }
        } else {
            self.decide(&req, uri, false, 0)
        };
        match decision {
            Decision::Refuse(status, why) => Err(ClientError::Refused { status, why }.into()),
            Decision::Return(i) => Ok(Routed::Respond(self.answer_return(i, parts, conn, site))),
            Decision::AddSlash(uri) => Ok(Routed::Respond(add_slash(&uri, parts, conn, site))),
            Decision::File(resp) => Ok(Routed::Respond(serve::response(resp))),
            Decision::Script {
                script_name,
                path_info,
                fallback,
                location,
            } => Ok(Routed::Script(ScriptRoute {
                script_name,
                path_info,
                fallback,
                location: location.and_then(|i| self.locations.get(i)),
            })),
        }
    }

    /// The location of `uri` with its index.
    fn select(&self, uri: &[u8]) -> Result<Option<(usize, &Location)>, StatusCode> {
        match locations::select(&self.locations, uri) {
            Ok(Some(l)) => {
                let i = self
                    .locations
                    .iter()
                    .position(|x| std::ptr::eq(x, l))
                    .unwrap_or(0);
                Ok(Some((i, l)))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::error!("{e}: 500");
                Err(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// Where files of location `i` come from: its alias (and how much of
    /// the URI it replaces), else the static root.
    fn base(&self, i: Option<usize>) -> Option<(&Root, usize)> {
        if let Some(i) = i
            && let Some(Some(alias)) = self.aliases.get(i)
        {
            let strip = self.locations[i].matcher.path().map_or(0, str::len);
            return Some((alias, strip));
        }
        self.files.as_ref().map(|f| (&f.root, 0))
    }

    fn hides(&self, uri: &[u8]) -> bool {
        match &self.files {
            Some(f) => f.hides(uri),
            None => files::has_dot_segment(uri),
        }
    }

    fn decide(&self, req: &Req<'_>, uri: Vec<u8>, internal: bool, hops: u8) -> Decision {
        if hops > MAX_REDIRECTS {
            tracing::error!(uri = %String::from_utf8_lossy(&uri), "more than {MAX_REDIRECTS} internal redirects: 500");
            return Decision::Refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal redirect loop");
        }
        let found = match self.select(&uri) {
            Ok(found) => found,
            Err(status) => return Decision::Refuse(status, "a location regex gave up"),
        };
        let (index, location) = (found.map(|(i, _)| i), found.map(|(_, l)| l));
        if let Some(l) = location {
            if l.internal && !internal {
                return Decision::Refuse(StatusCode::NOT_FOUND, "an internal location");
            }
            if l.redirect.is_some() {
                return Decision::Return(index.unwrap_or(0));
            }
            if let Some(status) = l.deny {
                return Decision::Refuse(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
                    "denied by its location",
                );
            }
        }
        let front_controller = location
            .and_then(|l| l.front_controller.as_deref())
            .or(self.front_controller.as_deref());
        if let Some(end) = params::split_path_info(&uri) {
            let script = &uri[..end];
            if self.hides(script) {
                // A tool's config (`.php-cs-fixer.php`), a repository's hooks.
                return Decision::Refuse(StatusCode::NOT_FOUND, "a dotfile");
            }
            if let Some(list) = location.and_then(|l| l.scripts.as_ref())
                && !list.iter().any(|s| s.as_bytes() == script)
            {
                return Decision::Refuse(StatusCode::NOT_FOUND, "not in its location's scripts");
            }
            if let Some(f) = &self.files
                && !files::join_path(&f.root.path, script, 0).is_some_and(|p| f.root.is_file(&p))
            {
                return Decision::Refuse(StatusCode::NOT_FOUND, "no such script under static.root");
            }
            return Decision::Script {
                script_name: script.to_vec(),
                path_info: uri[end..].to_vec(),
                fallback: None,
                location: index,
            };
        }
        let Some((root, strip)) = self.base(index) else {
            return self.legacy(req, uri, front_controller, index, hops);
        };
        if self.hides(&uri) {
            return Decision::Refuse(StatusCode::NOT_FOUND, "a dotfile");
        }
        if files::is_php_source(&uri) {
            return Decision::Refuse(StatusCode::NOT_FOUND, "PHP source");
        }
        let aliased = root_is_alias(self, index);
        let Some(path) = files::join_path(&root.path, &uri, strip) else {
            return Decision::Refuse(StatusCode::NOT_FOUND, "a path that climbs out of its alias");
        };
        match root.find(&path) {
            Found::Dir if uri.ends_with(b"/") => {
                if !aliased {
                    let mut script = uri.clone();
                    script.extend_from_slice(self.index.as_bytes());
                    if files::join_path(&root.path, &script, 0).is_some_and(|p| root.is_file(&p)) {
                        let d = self.decide(req, script, true, hops + 1);
                        if !matches!(d, Decision::Refuse(..)) {
                            return d;
                        }
                    }
                }
                for name in self.files.iter().flat_map(|f| &f.index) {
                    if matches!(root.find(&path.join(name)), Found::File(_)) {
                        let mut next = uri.clone();
                        next.extend_from_slice(name.as_bytes());
                        return self.decide(req, next, true, hops + 1);
                    }
                }
                match front_controller {
                    Some(_) => self.to_front_controller(req, front_controller, hops),
                    None => Decision::Refuse(StatusCode::FORBIDDEN, "a directory without an index"),
                }
            }
            Found::Dir => Decision::AddSlash(uri),
            Found::File(_) if uri.ends_with(b"/") => {
                self.to_front_controller(req, front_controller, hops)
            }
            Found::File(opened) => {
                if req.method != Method::GET && req.method != Method::HEAD {
                    return Decision::Refuse(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "a file takes GET and HEAD only",
                    );
                }
                let precompressed = self.files.as_ref().is_some_and(|f| f.precompressed);
                let choice = serve::choose(root, opened, req.headers, precompressed);
                let cache_control = index
                    .and_then(|i| self.cache_controls.get(i).cloned().flatten())
                    .or_else(|| self.files.as_ref().and_then(|f| f.cache_control.clone()));
                let extra = Extra {
                    cache_control,
                    headers: HeaderMap::new(),
                };
                match serve::prepare(&req.method, req.headers, choice, extra, req.start) {
                    Ok(resp) => Decision::File(resp),
                    Err(e) => {
                        tracing::error!(path = %path.display(), "reading a static file: {e}");
                        Decision::Refuse(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "the file could not be read",
                        )
                    }
                }
            }
            Found::Missing => self.to_front_controller(req, front_controller, hops),
            Found::Refused(why) => {
                tracing::info!(path = %path.display(), "static file refused: {why}");
                Decision::Refuse(StatusCode::NOT_FOUND, why)
            }
        }
    }

    fn to_front_controller(&self, req: &Req<'_>, fc: Option<&str>, hops: u8) -> Decision {
        match fc {
            Some(fc) => self.decide(req, fc.as_bytes().to_vec(), true, hops + 1),
            None => Decision::Refuse(StatusCode::NOT_FOUND, "no file or script at this path"),
        }
    }

    /// Without files: today's routing (a directory's index with the front
    /// controller behind it, the front controller, or 404); `uri` has no
    /// `.php` segment.
    fn legacy(
        &self,
        req: &Req<'_>,
        uri: Vec<u8>,
        fc: Option<&str>,
        index: Option<usize>,
        hops: u8,
    ) -> Decision {
        if uri.ends_with(b"/") {
            let mut script_name = uri;
            script_name.extend_from_slice(self.index.as_bytes());
            let allowed = index
                .and_then(|i| self.locations[i].scripts.as_ref())
                .is_none_or(|list| list.iter().any(|s| s.as_bytes() == script_name));
            if allowed {
                return Decision::Script {
                    script_name,
                    path_info: Vec::new(),
                    fallback: fc.map(|f| f.as_bytes().to_vec()),
                    location: index,
                };
            }
        }
        self.to_front_controller(req, fc, hops)
    }

    /// A location's `return`: a redirect with its URL filled in, or the
    /// status alone (an error status goes through `error_pages`).
    fn answer_return(
        &self,
        i: usize,
        parts: &http::request::Parts,
        conn: &ConnInfo,
        site: &Site,
    ) -> Response<Boxed> {
        let Some(r) = self.locations.get(i).and_then(|l| l.redirect.as_ref()) else {
            return response::error_page(StatusCode::INTERNAL_SERVER_ERROR);
        };
        let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let Some(url) = &r.url else {
            return short(status);
        };
        let filled = fill_url(url, parts, conn, site);
        match HeaderValue::from_str(&filled) {
            Ok(location) => {
                let mut resp = short(status);
                resp.headers_mut().insert(header::LOCATION, location);
                resp
            }
            Err(_) => response::error_page(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// A script's answer, after the X-Accel headers: the file it names
    /// with X-Accel-Redirect in an internal location, sent with the
    /// script's Content-Type, Content-Disposition, Cache-Control, Expires
    /// and cookies (as nginx keeps them); any other `X-Accel-*` removed.
    ///
    /// # Errors
    ///
    /// The redirect names no file fpmlb may send: 404, logged.
    pub async fn after_script(
        self: &Arc<Self>,
        mut response: Response<Boxed>,
        parts: &http::request::Parts,
    ) -> Result<Response<Boxed>, ProxyError> {
        let target = response
            .headers()
            .get("x-accel-redirect")
            .map(|v| v.as_bytes().to_vec());
        for name in ACCEL_HIDDEN {
            response.headers_mut().remove(*name);
        }
        let Some(target) = target else {
            return Ok(response);
        };
        let mut kept = HeaderMap::new();
        for name in ACCEL_KEPT {
            for value in response.headers().get_all(name) {
                kept.append(name.clone(), value.clone());
            }
        }
        drop(response);
        let refused = |why: &'static str| -> ProxyError {
            tracing::warn!(target = %String::from_utf8_lossy(&target), "X-Accel-Redirect refused: {why}");
            ClientError::Refused {
                status: StatusCode::NOT_FOUND,
                why,
            }
            .into()
        };
        let path = target.split(|&b| b == b'?').next().unwrap_or_default();
        let Ok(path) = std::str::from_utf8(path) else {
            return Err(refused("not a path"));
        };
        let uri = params::normalize_path(path).map_err(|_| refused("not a path under the root"))?;
        // nginx follows the redirect as a GET (HEAD stays HEAD).
        let method = if parts.method == Method::HEAD {
            Method::HEAD
        } else {
            Method::GET
        };
        let headers = parts.headers.clone();
        let me = Arc::clone(self);
        let decided = tokio::task::spawn_blocking(move || {
            let req = Req {
                method,
                headers: &headers,
                start: Start::Read,
            };
            me.accel_file(&req, &uri, kept)
        })
        .await
        .unwrap_or(Err("the file task failed"));
        match decided {
            Ok(resp) => Ok(serve::response(resp)),
            Err(why) => Err(refused(why)),
        }
    }

    fn accel_file(
        &self,
        req: &Req<'_>,
        uri: &[u8],
        kept: HeaderMap,
    ) -> Result<Response<Plan>, &'static str> {
        let (i, location) = self
            .select(uri)
            .map_err(|_| "a location regex gave up")?
            .ok_or("no location takes it")?;
        if !location.internal {
            return Err("its location is not internal");
        }
        if location.deny.is_some() || location.redirect.is_some() {
            return Err("its location denies or redirects");
        }
        let (root, strip) = self
            .base(Some(i))
            .ok_or("its location has no alias and there is no static.root")?;
        if self.hides(uri) || files::is_php_source(uri) {
            return Err("a dotfile or PHP source");
        }
        let path = files::join_path(&root.path, uri, strip)
            .ok_or("a path that climbs out of its alias")?;
        let Found::File(opened) = root.find(&path) else {
            return Err("no file there");
        };
        let choice = serve::choose(root, opened, req.headers, false);
        let mut extra = Extra {
            cache_control: self.cache_controls.get(i).cloned().flatten(),
            headers: HeaderMap::new(),
        };
        for (name, value) in &kept {
            if name == header::SET_COOKIE {
                continue;
            }
            extra.headers.insert(name, value.clone());
        }
        let mut resp =
            serve::prepare(&req.method, req.headers, choice, extra, req.start).map_err(|e| {
                tracing::error!(path = %path.display(), "reading a file for X-Accel-Redirect: {e}");
                "the file could not be read"
            })?;
        for cookie in kept.get_all(header::SET_COOKIE) {
            resp.headers_mut()
                .append(header::SET_COOKIE, cookie.clone());
        }
        Ok(resp)
    }

    /// The configured page for an error fpmlb answers itself, if there is
    /// one and it can be read; `None` keeps fpmlb's plain page. PHP's own
    /// error answers are passed as they are (nginx's
    /// `fastcgi_intercept_errors off`).
    pub async fn error_page(
        self: &Arc<Self>,
        status: StatusCode,
        method: &Method,
    ) -> Option<Response<Boxed>> {
        let page = self
            .error_pages
            .iter()
            .find(|p| p.status == status.as_u16())?;
        let uri = page.path.clone().into_bytes();
        let head = method == Method::HEAD;
        let me = Arc::clone(self);
        let read = tokio::task::spawn_blocking(move || me.error_file(&uri, head))
            .await
            .ok()
            .flatten();
        let Some((content_type, plan, len)) = read else {
            tracing::warn!(page = %page.path, "error page cannot be read: fpmlb's own page instead");
            return None;
        };
        let mut resp = Response::new(serve::body(plan));
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        Some(resp)
    }

    fn error_file(&self, uri: &[u8], head: bool) -> Option<(HeaderValue, Plan, u64)> {
        // The config refuses such pages; kept here too, as for every file sent.
        if self.hides(uri) || files::is_php_source(uri) {
            return None;
        }
        let index = self.select(uri).ok()?.map(|(i, _)| i);
        let (root, strip) = self.base(index)?;
        let path = files::join_path(&root.path, uri, strip)?;
        let Found::File(opened) = root.find(&path) else {
            return None;
        };
        let len = opened.meta.len();
        let method = if head { Method::HEAD } else { Method::GET };
        let headers = HeaderMap::new();
        let choice = serve::choose(root, opened, &headers, false);
        let content_type = choice.content_type.clone();
        let resp = serve::prepare(&method, &headers, choice, Extra::default(), Start::Read).ok()?;
        Some((content_type, resp.into_body(), len))
    }
}

/// Whether location `i`'s files come from its alias.
fn root_is_alias(router: &Router, i: Option<usize>) -> bool {
    i.is_some_and(|i| matches!(router.aliases.get(i), Some(Some(_))))
}

/// A short text answer for `status` (a `return` without a page of its own).
fn short(status: StatusCode) -> Response<Boxed> {
    let mut resp = response::error_page(status);
    if status.is_redirection() {
        resp.headers_mut().remove(header::RETRY_AFTER);
    }
    resp
}

/// `scheme://host` of the request, as nginx's absolute redirects write it.
fn origin(parts: &http::request::Parts, conn: &ConnInfo, site: &Site) -> String {
    let scheme = if conn.https(site) { "https" } else { "http" };
    format!("{scheme}://{}", host_header(parts, conn, site))
}

/// The Host as the client sent it (with its port), else `server_name`,
/// else the address the request came in on.
fn host_header(parts: &http::request::Parts, conn: &ConnInfo, site: &Site) -> String {
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
        .or_else(|| site.server_name.clone())
        .unwrap_or_else(|| conn.local.to_string())
}

/// The 301 of a directory asked without its `/`, query kept (nginx's
/// static module).
fn add_slash(
    uri: &[u8],
    parts: &http::request::Parts,
    conn: &ConnInfo,
    site: &Site,
) -> Response<Boxed> {
    let mut url = origin(parts, conn, site);
    url.push_str(&escape(uri));
    url.push('/');
    if let Some(q) = parts.uri.query() {
        url.push('?');
        url.push_str(q);
    }
    let mut resp = short(StatusCode::MOVED_PERMANENTLY);
    match HeaderValue::from_str(&url) {
        Ok(location) => {
            resp.headers_mut().insert(header::LOCATION, location);
            resp
        }
        Err(_) => response::error_page(StatusCode::BAD_REQUEST),
    }
}

fn escape(uri: &[u8]) -> String {
    percent_encoding::percent_encode(uri, LOCATION_ESCAPE).to_string()
}

/// A `return` URL with its variables filled as nginx fills them; a URL
/// that starts with `/` gets the request's scheme and host (nginx's
/// `absolute_redirect on`). `$uri` is escaped (it is decoded: a `%0d%0a`
/// in it must not become a header line).
fn fill_url(url: &str, parts: &http::request::Parts, conn: &ConnInfo, site: &Site) -> String {
    let query = parts.uri.query().unwrap_or("");
    let host = host_header(parts, conn, site);
    let host_only = host
        .parse::<http::uri::Authority>()
        .map_or_else(|_| host.clone(), |a| a.host().to_owned())
        .to_ascii_lowercase();
    let value = |name: &str| -> String {
        match name {
            "scheme" => if conn.https(site) { "https" } else { "http" }.to_owned(),
            "host" => host_only.clone(),
            "request_uri" => parts
                .uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_owned(),
            "uri" => {
                escape(&params::normalize_path(parts.uri.path()).unwrap_or_else(|_| b"/".to_vec()))
            }
            "args" | "query_string" => query.to_owned(),
            "is_args" if !query.is_empty() => "?".to_owned(),
            _ => String::new(),
        }
    };
    let mut out = String::with_capacity(url.len() + 64);
    let mut rest = url;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let (name, after) = match rest.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => (braced, ""),
            },
            None => {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        out.push_str(&value(name));
        rest = after;
    }
    out.push_str(rest);
    if out.starts_with('/') {
        out = format!("{}{out}", origin(parts, conn, site));
    }
    out
}
