//! The life of one HTTP request: check its head, route it, take its body
//! (whole, by default, before any backend is picked), pick a backend, run
//! the FastCGI exchange, retry on another backend when that is safe,
//! and turn the outcome into a response (PHP's, or 4xx/5xx of our own).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::time::Instant;

use crate::config::CompressionConfig;
use crate::fastcgi::cgi::CgiError;
use crate::fastcgi::exchange::{ExchangeError, ExchangeTimeouts, Unusable};
use crate::fastcgi::params::ParamList;
use crate::http::activity::{Dispatched, InFlight};
use crate::http::body::{self, AsyncChunk, BodyBudgets, BodyLimits, FileSendError, RequestBody};
use crate::http::budget::ByteBudget;
use crate::http::compress;
use crate::http::edge::{self, Edge};
use crate::http::error::{
    BackendError, ClientError, FailedAttempt, Next, ProxyError, after_failure,
};
use crate::http::headers;
use crate::http::limits::{self, HeadLimits};
use crate::http::params::{self, ConnInfo, Site};
use crate::http::per_client::RequestSlot;
use crate::http::read_ahead::{self, ReadAhead};
use crate::http::response::{self, AccessLog, BodyError, LoggedBody};
use crate::http::router::{Routed, Router};
use crate::http::session_watch;
use crate::http::walk_back::WalkBackGuard;
use crate::upstream::Upstream;
use crate::upstream::backend::Backend;
use crate::upstream::exchange::{self, BackendFailure, Exchange};
use crate::upstream::pool::Slot;

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub struct Proxy {
    pub site: Site,
    pub upstream: Arc<Upstream>,
    pub limits: BodyLimits,
    /// What request bodies may hold in memory, all requests together.
    pub body_budgets: BodyBudgets,
    /// Read PHP's responses ahead of their clients (`response_buffering`).
    pub response_buffering: bool,
    /// How far ahead, in memory and temp files.
    pub read_ahead: ReadAhead,
    pub head: HeadLimits,
    pub timeouts: ExchangeTimeouts,
    pub access_log: bool,
    /// Longest wait for a connection slot (timeouts.queue).
    pub queue_timeout: std::time::Duration,
    /// The session cookie's name (PHP's session.name, as the session checker
    /// learns it), for the passive session watch.
    pub session_cookie: Arc<arc_swap::ArcSwap<String>>,
    /// ACME HTTP-01 answers, the HTTPS redirect, HSTS.
    pub edge: Edge,
    /// Compression of responses.
    pub compression: CompressionConfig,
    /// What the compressors of all responses may hold at once.
    pub compression_memory: ByteBudget,
    /// Locations, static files, error pages, X-Accel-Redirect.
    pub router: Arc<Router>,
    /// Paths php-fpm would walk back through to another script or its pages.
    pub walk_back: WalkBackGuard,
}

/// How to run one attempt.
#[derive(Clone, Copy)]
struct Attempt<'a> {
    /// A HEAD request: read the body to the end, send none.
    head_only: bool,
    /// The session id the request brought, for the passive session watch.
    session_id: Option<&'a [u8]>,
    /// On a new connection (a kept-alive one died under the request).
    fresh: bool,
    /// "Primary script unknown" is not an answer: the route has a fallback.
    fallback_on_unknown: bool,
    /// php-fpm timeouts (the location's, else the config's).
    timeouts: ExchangeTimeouts,
    /// Read the response ahead of the client unless the script says not
    /// to (the location's `response_buffering`, else the config's).
    read_ahead: bool,
}

/// How one attempt on one backend failed.
enum AttemptError {
    /// `reused`: it ran on a kept-alive connection.
    Backend {
        failure: BackendFailure,
        got_response: bool,
        reused: bool,
    },
    /// The client's body failed while we streamed it: not the backend's fault.
    Client(ClientError),
    /// php-fpm found no script there, and the route has a fallback.
    ScriptUnknown,
}

impl From<BackendFailure> for AttemptError {
    fn from(failure: BackendFailure) -> Self {
        AttemptError::Backend {
            failure,
            got_response: false,
            reused: false,
        }
    }
}

type Boxed = UnsyncBoxBody<Bytes, BodyError>;

impl Proxy {
    /// Answers one request; never fails (errors become responses).
    pub async fn handle<B>(
        &self,
        req: Request<B>,
        conn: &ConnInfo,
        in_flight: Option<InFlight>,
    ) -> Response<LoggedBody>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let (parts, body) = req.into_parts();
        let mut log = AccessLog {
            client: conn.client(),
            method: parts.method.clone(),
            uri: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.to_string(), |pq| pq.as_str().to_owned()),
            version: parts.version,
            status: 0,
            backend: None,
            upstream_time: None,
            started: Instant::now(),
            error: None,
        };
        let answered = edge::answer(&parts, conn, &self.edge, &self.site);
        let mut place = None;
        let result = match answered {
            Some(response) => Ok(response),
            None => self.proxy(&parts, body, conn, &mut log, &mut place).await,
        };
        let mut response = match result {
            Ok(response) => response,
            Err(err) => {
                // The body may still be coming: HTTP/1.1 cannot carry another
                // request on this connection (HTTP/2 resets the stream).
                let close = matches!(&err, ProxyError::Client(e) if e.body_left_unread())
                    && is_http1(log.version);
                match &err {
                    // fpmlb's own limit, not the client's doing alone.
                    ProxyError::Client(e @ ClientError::NoTempRoom { .. }) => {
                        tracing::warn!(client = %conn.client(), uri = %log.uri, "{e}: 503")
                    }
                    ProxyError::Client(e) => {
                        tracing::info!(client = %conn.client(), uri = %log.uri, "{e}")
                    }
                    // The script's own unusable answer is its request's
                    // failure, not the backend's: a warning naming both.
                    ProxyError::Backend(e) if e.failure.is_unusable_answer() => {
                        let status = e.failure.status().as_u16();
                        tracing::warn!(backend = %e.backend, uri = %log.uri, "{e}: {status}")
                    }
                    ProxyError::Backend(e) => {
                        tracing::error!(backend = %e.backend, uri = %log.uri, "{e}")
                    }
                    ProxyError::NoBackend => {
                        tracing::error!(uri = %log.uri, "no backend is up: 503")
                    }
                }
                log.error = Some(err.to_string());
                let mut page = match self.router.error_page(err.status(), &parts.method).await {
                    Some(mut page) => {
                        if let Some(retry) = response::retry_after(err.status()) {
                            page.headers_mut().insert(http::header::RETRY_AFTER, retry);
                        }
                        page
                    }
                    None => response::error_page(err.status()),
                };
                if close {
                    page.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                page
            }
        };
        edge::add_hsts(&mut response, conn, &self.edge);
        let request = compress::RequestView {
            method: &parts.method,
            version: parts.version,
            headers: &parts.headers,
        };
        let response = compress::apply(
            request,
            response,
            &self.compression,
            &self.compression_memory,
        );
        log.status = response.status().as_u16();
        let log = self.access_log.then_some(log);
        let (head, body) = response.into_parts();
        let in_flight = in_flight.map(|mut f| {
            if let Some(place) = place {
                f.hold(place);
            }
            f
        });
        let body = LoggedBody::new(body, &head.headers, log, in_flight);
        Response::from_parts(head, body)
    }

    async fn proxy<B>(
        &self,
        parts: &http::request::Parts,
        body: B,
        conn: &ConnInfo,
        log: &mut AccessLog,
        place: &mut Option<RequestSlot>,
    ) -> Result<Response<Boxed>, ProxyError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        // Refused before anything else: such a request never reaches, nor
        // counts against, a backend.
        limits::check_head(parts, &self.head)?;
        headers::check(parts)?;
        let mut route = match self.router.route(parts, conn, &self.site).await? {
            Routed::Respond(response) => return Ok(response),
            Routed::Script(route) => route,
        };
        let mut fallback = route.fallback.take();
        let (script_name, path_info) = (&route.script_name, &route.path_info);
        if let Some(why) = self.walk_back.refuses(script_name, path_info) {
            return Err(ClientError::WalkBack(why).into());
        }
        // Taken before the body is read (an address at its cap does not
        // fill the body budgets first), held until the response body ends.
        *place = count_request(parts, conn)?;
        let declared = body::declared_length(&parts.headers)?;
        let limits = route.limits(self.limits);
        let mut body = body::prepare(body, declared, limits, &self.body_budgets).await?;
        let mut params = params::build_params(
            parts,
            script_name,
            path_info,
            body.content_length(declared),
            conn,
            &self.site,
        )?;
        route.add_params(&mut params)?;
        if !body.is_replayable() {
            fallback = None; // the body cannot be sent a second time
        }

        let snapshot = self.upstream.snapshot();
        let head_only = parts.method == http::Method::HEAD;
        let cookie_name = self.session_cookie.load();
        let session_id = session_watch::request_session_id(&parts.headers, &cookie_name);
        let mut tried: Vec<Arc<Backend>> = Vec::new();
        let mut last: Option<BackendError> = None;
        // Whether any backend was reached at all: when none was (every one
        // refused or was out), the cluster is down for this request: 503.
        let mut reached_any = false;
        let mut fresh_retry: Option<Arc<Backend>> = None;
        loop {
            let fresh = fresh_retry.take();
            let picked = match &fresh {
                Some(b) => Some((Arc::clone(b), None)),
                None => match snapshot
                    .pick_slot(Instant::now(), &tried, self.queue_timeout, route.group())
                    .await
                {
                    Ok(found) => found.map(|(b, slot)| (b, Some(slot))),
                    Err((backend, e)) => {
                        // Every pool it may use stayed full: the cluster is
                        // saturated, and another try would only wait again.
                        let failure = BackendFailure::Pool(e);
                        return Err(BackendError {
                            backend: backend.name.clone(),
                            failure,
                            got_response: false,
                        }
                        .into());
                    }
                },
            };
            let Some((backend, slot)) = picked else {
                return Err(match last {
                    Some(err) if reached_any => ProxyError::Backend(err),
                    Some(err) => {
                        tracing::error!(backend = %err.backend, "{err}");
                        ProxyError::NoBackend
                    }
                    None => ProxyError::NoBackend,
                });
            };
            log.backend = Some(Arc::from(backend.name.as_str()));
            if let Some(dispatched) = parts.extensions.get::<Dispatched>() {
                dispatched.set();
            }
            let started = Instant::now();
            let how = Attempt {
                head_only,
                session_id,
                fresh: fresh.is_some(),
                fallback_on_unknown: fallback.is_some(),
                timeouts: route.timeouts(self.timeouts),
                read_ahead: route.response_buffering(self.response_buffering),
            };
            let answered_before = backend.answered();
            let outcome = self.attempt(&backend, slot, &params, &mut body, how).await;
            match outcome {
                Ok(response) => {
                    let elapsed = started.elapsed();
                    log.upstream_time = Some(elapsed);
                    backend.record_exchange(response.status().as_u16(), elapsed);
                    return self.router.after_script(response, parts).await;
                }
                Err(AttemptError::Client(e)) => return Err(e.into()),
                Err(AttemptError::ScriptUnknown) => {
                    // The directory has no index: the front controller
                    // takes the request, REQUEST_URI unchanged.
                    let Some(fc) = fallback.take() else { continue };
                    let content_length = body.content_length(declared);
                    params =
                        params::build_params(parts, &fc, b"", content_length, conn, &self.site)?;
                    route.add_params(&mut params)?;
                    continue;
                }
                Err(AttemptError::Backend {
                    failure,
                    got_response,
                    reused,
                }) => {
                    let decision = after_failure(&FailedAttempt {
                        method: &parts.method,
                        failure: &failure,
                        got_response,
                        reused,
                        on_fresh_connection: fresh.is_some(),
                        body_replayable: body.is_replayable(),
                        excused: failure.may_be_the_scripts()
                            && backend.excuse_failure(Instant::now(), answered_before),
                    });
                    if decision.next == Next::FreshConnection {
                        if failure.is_protocol_error() {
                            // Not a worker leaving: records php-fpm should
                            // never have sent (one left over from before).
                            tracing::warn!(backend = %backend.name, "kept-alive connection out of step ({failure}); retrying on a new one");
                        } else {
                            tracing::debug!(backend = %backend.name, "kept-alive connection died under the request ({failure}); retrying on a new one");
                        }
                        fresh_retry = Some(backend);
                        continue;
                    }
                    reached_any |= !failure.never_reached_backend();
                    let now = Instant::now();
                    let err = BackendError {
                        backend: backend.name.clone(),
                        failure,
                        got_response,
                    };
                    if decision.counts_as_failure && backend.record_failure(now) {
                        tracing::warn!(backend = %backend.name, "backend out of rotation for fail_timeout after: {err}");
                    }
                    if decision.next == Next::GiveUp {
                        return Err(err.into());
                    }
                    tracing::warn!(backend = %backend.name, "{err}; trying another backend");
                    tried.push(backend);
                    last = Some(err);
                }
            }
        }
    }

    /// One try on one backend.
    async fn attempt<B>(
        &self,
        backend: &Arc<Backend>,
        slot: Option<Slot>,
        params: &ParamList,
        body: &mut RequestBody<B>,
        how: Attempt<'_>,
    ) -> Result<Response<Boxed>, AttemptError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let Attempt {
            head_only,
            session_id,
            fresh,
            fallback_on_unknown,
            timeouts,
            read_ahead,
        } = how;
        let conn = match slot {
            Some(slot) => slot.connect(!fresh).await,
            None => backend.pool.acquire_fresh().await,
        };
        let conn = conn.map_err(BackendFailure::from)?;
        let reused = conn.reused;
        let mut ex = exchange::begin(conn, Arc::clone(backend), timeouts);
        let fail = |ex: &Exchange, failure: ExchangeError| AttemptError::Backend {
            failure: failure.into(),
            got_response: ex.got_response(),
            reused,
        };
        if let Err(f) = ex.send_request(params, in_memory(body)).await {
            return Err(fail(&ex, f));
        }
        match body {
            RequestBody::Empty | RequestBody::Memory(_) => {}
            RequestBody::Stream { body, len } => {
                let mut sent = 0u64;
                loop {
                    match body::next_data(body, self.limits.timeout).await {
                        Ok(Some(data)) => {
                            sent += data.len() as u64;
                            if sent > *len {
                                return Err(AttemptError::Client(ClientError::Body(
                                    "body longer than Content-Length".into(),
                                )));
                            }
                            if let Err(f) = ex.send_stdin(&data).await {
                                return Err(fail(&ex, f));
                            }
                        }
                        Ok(None) if sent == *len => break,
                        Ok(None) => return Err(AttemptError::Client(ClientError::BodyTruncated)),
                        Err(e) => return Err(AttemptError::Client(e)),
                    }
                }
                if let Err(f) = ex.end_stdin().await {
                    return Err(fail(&ex, f));
                }
            }
            RequestBody::File { file, .. } => {
                match body::read_file_chunks(file, &mut ex).await {
                    Ok(()) => {}
                    Err(FileSendError::Sink(f)) => return Err(fail(&ex, f)),
                    Err(FileSendError::Io(e)) => {
                        tracing::error!("reading a spooled request body: {e}");
                        return Err(AttemptError::Client(ClientError::Body(format!(
                            "spooled body: {e}"
                        ))));
                    }
                }
                if let Err(f) = ex.end_stdin().await {
                    return Err(fail(&ex, f));
                }
            }
        }
        let start = match ex.read_head(head_only).await {
            Ok(start) => start,
            Err(f) => return Err(fail(&ex, f)),
        };
        // The exchange refused 1xx; the head's status is within 200..=599.
        let Ok(status) = StatusCode::from_u16(start.head.status) else {
            let bad = CgiError::BadStatus(start.head.status.to_string());
            return Err(fail(&ex, Unusable::Head(bad).into()));
        };
        if ex.script_unknown {
            if fallback_on_unknown && start.complete {
                return Err(AttemptError::ScriptUnknown);
            }
            tracing::info!(backend = %backend.name, "php-fpm: Primary script unknown (404)");
        }
        let read_ahead = read_ahead::wanted(&start.head.headers, read_ahead);
        let mut builder = Response::builder().status(status);
        // A reason phrase of the script's own ("Status: 404 Gone Fishing")
        // goes out on HTTP/1.1 as nginx passes it; HTTP/2 has none.
        if let Some(reason) = start.head.reason.as_deref()
            && Some(reason) != status.canonical_reason()
            && let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason.as_bytes().to_vec())
        {
            builder = builder.extension(phrase);
        }
        if let Some(headers) = builder.headers_mut() {
            headers.reserve(start.head.headers.len());
            for (name, value) in start.head.headers {
                headers.append(name, value);
            }
            if let Some(sent) = session_id {
                backend
                    .stats
                    .session_requests
                    .fetch_add(1, Ordering::Relaxed);
                if session_watch::resets_session(headers, &self.session_cookie.load(), sent) {
                    backend.stats.session_resets.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let body: Boxed = if head_only {
            // The exchange read the head, and its end unless the script
            // works on (finish_later reads it then). No length is made up
            // for it: a HEAD answer's length is the GET's, or absent (RFC
            // 9110 section 9.3.2), and the script gave one or not.
            exchange::finish_later(ex, backend);
            response::no_length()
        } else if start.complete {
            exchange::finish_later(ex, backend);
            response::full(start.body)
        } else if read_ahead {
            read_ahead::body(start.body, ex, Arc::clone(backend), &self.read_ahead)
        } else {
            response::streamed(start.body, ex, Arc::clone(backend))
        };
        builder.body(body).map_err(|e| {
            let bad = CgiError::BadHeaderLine(e.to_string());
            fail_static(ExchangeError::from(Unusable::Head(bad)).into())
        })
    }
}

/// An HTTP/2 request's place among its client's requests at the backends
/// (`http::per_client`); HTTP/1.1 needs none (a connection each).
fn count_request(
    parts: &http::request::Parts,
    conn: &ConnInfo,
) -> Result<Option<RequestSlot>, ClientError> {
    let Some(requests) = conn
        .requests
        .as_ref()
        .filter(|_| parts.version == http::Version::HTTP_2)
    else {
        return Ok(None);
    };
    match requests.take() {
        Ok(slot) => Ok(Some(slot)),
        Err(at_cap) => {
            let cap = requests.cap();
            if at_cap.warn {
                tracing::warn!(address = %requests.address(), "{cap} HTTP/2 requests of this address at the backends (max_connections_per_client): 429 to more");
            }
            Err(ClientError::TooManyRequests { cap })
        }
    }
}

fn is_http1(version: http::Version) -> bool {
    matches!(version, http::Version::HTTP_10 | http::Version::HTTP_11)
}

fn fail_static(failure: BackendFailure) -> AttemptError {
    AttemptError::Backend {
        failure,
        got_response: true,
        reused: false,
    }
}

impl AsyncChunk for &mut Exchange {
    async fn chunk(&mut self, data: &[u8]) -> Result<(), ExchangeError> {
        self.send_stdin(data).await
    }
}

/// The body to send with the request head when it is in memory; None when
/// it is streamed after it.
fn in_memory<B>(body: &RequestBody<B>) -> Option<&[u8]> {
    match body {
        RequestBody::Empty => Some(&[]),
        RequestBody::Memory(b) => Some(b),
        RequestBody::Stream { .. } | RequestBody::File { .. } => None,
    }
}
