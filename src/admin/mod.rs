//! The admin API and status page, on their own listener (`admin.listen`,
//! default 127.0.0.1:9180), never on the public one.
//!
//! | endpoint | method | token | answer |
//! |---|---|---|---|
//! | `/status` | GET | no | HTML page, a row per backend, reloads itself |
//! | `/status.json` | GET | no | the same figures as JSON |
//! | `/metrics` | GET | no | Prometheus, OpenMetrics text format |
//! | `/backends/{name}/drain` | POST | yes | no new requests; requests in flight finish; the last backend up in its group only with `?force=1` (409 otherwise) |
//! | `/backends/{name}/enable` | POST | yes | back in rotation (if alive and session-ok) |
//!
//! The read endpoints are open to whoever reaches the listener: keep it on
//! loopback or a management network. With `admin.token` set, the write
//! endpoints want `Authorization: Bearer <token>` (401 otherwise); without
//! it (allowed on a loopback listener only), anyone who reaches the
//! listener may drain. Before any of that, `guard` refuses what a browser
//! could be made to send: a foreign Host (DNS rebinding, 421), a cross-site
//! or form POST (403).
//!
//! HTTP/1.1 only (hyper's http1 connection), a bounded number of
//! connections, each closed after a while so a forgotten browser tab cannot
//! hold one for ever.

mod auth;
mod guard;
pub mod metrics;
pub mod page;
pub mod view;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HOST, LOCATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::upstream::backend::Backend;
use view::{StatusDoc, state_names};

/// What the admin API needs from the running daemon.
pub struct AdminState {
    pub upstream: Arc<crate::upstream::Upstream>,
    pub latest_report: Arc<arc_swap::ArcSwap<Option<crate::session::verdict::ClusterReport>>>,
    /// The proxy's read-ahead budgets and counters (swapped on reload).
    pub read_ahead: Arc<arc_swap::ArcSwap<crate::http::read_ahead::ReadAhead>>,
    /// What the compressors of all responses may hold (swapped on reload).
    pub compression_memory: Arc<arc_swap::ArcSwap<crate::http::budget::ByteBudget>>,
    pub token: Option<String>,
    /// `admin.hosts`: names the admin API answers to besides IP addresses
    /// and localhost.
    pub hosts: Vec<String>,
    pub started: tokio::time::Instant,
    /// The threads serving connections, for their counts.
    pub workers: Option<Arc<crate::runtime::Workers>>,
}

/// Most admin connections open at once; more are closed at accept.
const MAX_CONNECTIONS: usize = 64;
/// Longest wait for a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is asked to close (after the response in flight) this long
/// after it was accepted.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// How long `serve` waits for open connections once shut down.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

type Body = Full<Bytes>;

/// Serves the admin API on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let admin = Arc::new(Admin::new(state));
    let local = listener.local_addr().ok();
    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    tracing::warn!(client = %remote, "admin: {MAX_CONNECTIONS} connections open already; closing this one");
                    continue;
                };
                let admin = Arc::clone(&admin);
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    serve_connection(admin, stream, remote, shutdown).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::error!(listener = ?local, "admin: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracker.close();
    let _ = tokio::time::timeout(SHUTDOWN_WAIT, tracker.wait()).await;
    tracing::info!(listener = ?local, "admin: stopped");
}

async fn serve_connection(
    admin: Arc<Admin>,
    stream: TcpStream,
    remote: SocketAddr,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
        let admin = Arc::clone(&admin);
        async move { Ok::<_, Infallible>(admin.handle(&req, remote)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let lifetime = tokio::time::sleep(CONNECTION_LIFETIME);
    let mut lifetime = std::pin::pin!(lifetime);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(client = %remote, "admin: connection ended: {e}");
                }
                return;
            }
            _ = shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = lifetime.as_mut(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The admin API's request handling (no I/O: testable with plain requests).
struct Admin {
    state: Arc<AdminState>,
    registry: Registry,
}

/// What an operator asks of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Drain,
    Enable,
}

impl Admin {
    fn new(state: Arc<AdminState>) -> Admin {
        let registry = metrics::registry(metrics::UpstreamCollector {
            upstream: Arc::clone(&state.upstream),
            latest_report: Arc::clone(&state.latest_report),
            read_ahead: Arc::clone(&state.read_ahead),
            compression_memory: Arc::clone(&state.compression_memory),
            started: state.started,
            workers: state.workers.clone(),
        });
        Admin { state, registry }
    }

    fn handle<B>(&self, req: &Request<B>, remote: SocketAddr) -> Response<Body> {
        let path = req.uri().path();
        if let Err(refused) = guard::check(req.method(), req.headers(), &self.state.hosts) {
            tracing::warn!(client = %remote, path, status = refused.status.as_u16(), "admin: refused: {}", refused.reason);
            return error(refused.status, &refused.reason);
        }
        let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
        match path {
            "/" if read_only => redirect("/status"),
            "/status" if read_only => {
                let host = req.headers().get(HOST).and_then(|h| h.to_str().ok());
                self.status_page(host)
            }
            "/status.json" if read_only => self.status_json(),
            "/metrics" if read_only => self.metrics(),
            "/" | "/status" | "/status.json" | "/metrics" => method_not_allowed("GET, HEAD"),
            _ => match backend_action(path) {
                Some((name, action)) => {
                    if req.method() != Method::POST {
                        return method_not_allowed("POST");
                    }
                    if let Some(token) = &self.state.token
                        && !auth::authorized(req.headers(), token)
                    {
                        tracing::warn!(client = %remote, path, "admin: refused: missing or wrong bearer token");
                        return unauthorized();
                    }
                    let force = req
                        .uri()
                        .query()
                        .is_some_and(|q| q.split('&').any(|p| p == "force=1"));
                    self.operate(&name, action, remote, force)
                }
                None => error(StatusCode::NOT_FOUND, "no such page"),
            },
        }
    }

    /// Runs `f` on one snapshot of what the status page and status.json show.
    fn with_doc<R>(&self, f: impl FnOnce(&StatusDoc<'_>) -> R) -> R {
        let set = self.state.upstream.snapshot();
        let report = self.state.latest_report.load();
        let doc = StatusDoc::build(
            &set.backends,
            report.as_ref().as_ref(),
            &self.state.read_ahead.load(),
            &self.state.compression_memory.load(),
            self.state.started.elapsed().as_secs(),
            Instant::now(),
        );
        f(&doc)
    }

    fn doc_json(&self) -> serde_json::Result<Vec<u8>> {
        self.with_doc(|doc| serde_json::to_vec_pretty(doc))
    }

    fn status_json(&self) -> Response<Body> {
        match self.doc_json() {
            Ok(body) => respond(StatusCode::OK, "application/json", body),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }

    fn status_page(&self, host: Option<&str>) -> Response<Body> {
        let html = self.with_doc(|doc| page::render(doc, host));
        let mut resp = respond(StatusCode::OK, "text/html; charset=utf-8", html);
        let h = resp.headers_mut();
        h.insert(
            "content-security-policy",
            HeaderValue::from_static(page::CONTENT_SECURITY_POLICY),
        );
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        resp
    }

    fn metrics(&self) -> Response<Body> {
        match metrics::render(&self.registry) {
            Ok(text) => respond(StatusCode::OK, metrics::CONTENT_TYPE, text),
            Err(_) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics could not be encoded",
            ),
        }
    }

    fn operate(
        &self,
        name: &str,
        action: Action,
        remote: SocketAddr,
        force: bool,
    ) -> Response<Body> {
        let set = self.state.upstream.snapshot();
        let Some(backend) = set.find(name) else {
            return error(StatusCode::NOT_FOUND, &format!("no backend named {name:?}"));
        };
        let was_enabled = backend.is_enabled();
        match action {
            Action::Drain => {
                let now = Instant::now();
                let others_up = set.backends.iter().any(|b| {
                    b.group == backend.group && b.name != backend.name && b.is_available(now)
                });
                if backend.is_available(now) && !others_up && !force {
                    // A script or an app's SSRF on the same host can reach
                    // a loopback admin API without a token: it must not
                    // take the site down with one request per backend.
                    tracing::warn!(backend = %backend.name, client = %remote, "admin: drain refused: the last backend up in its group (?force=1 drains it anyway)");
                    return error(
                        StatusCode::CONFLICT,
                        &format!(
                            "{name} is the last backend up in its group: draining it would answer every request 503; POST with ?force=1 to drain it anyway"
                        ),
                    );
                }
                backend.set_enabled(false);
                let in_flight = backend.pool.figures().in_use;
                tracing::info!(
                    backend = %backend.name,
                    client = %remote,
                    was_enabled,
                    in_flight,
                    "backend DRAINED by operator: no new requests, requests in flight finish"
                );
            }
            Action::Enable => {
                backend.set_enabled(true);
                let (state, _) = state_names(backend.state(Instant::now()));
                tracing::info!(
                    backend = %backend.name,
                    client = %remote,
                    was_enabled,
                    state,
                    "backend ENABLED by operator"
                );
            }
        }
        answer_state(backend)
    }
}

/// `{"backend": name, "state": ..., "drained_by": ..., "enabled": ...}`.
fn answer_state(backend: &Backend) -> Response<Body> {
    let (state, drained_by) = state_names(backend.state(Instant::now()));
    let body = serde_json::json!({
        "backend": backend.name,
        "state": state,
        "drained_by": drained_by,
        "enabled": backend.is_enabled(),
    });
    respond(
        StatusCode::OK,
        "application/json",
        format!("{body}\n").into_bytes(),
    )
}

/// `/backends/{name}/drain|enable` → the decoded name and the action.
fn backend_action(path: &str) -> Option<(String, Action)> {
    let rest = path.strip_prefix("/backends/")?;
    let (name, action) = rest.split_once('/')?;
    let action = match action {
        "drain" => Action::Drain,
        "enable" => Action::Enable,
        _ => return None,
    };
    let name = percent_encoding::percent_decode_str(name)
        .decode_utf8()
        .ok()?;
    (!name.is_empty()).then(|| (name.into_owned(), action))
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// A JSON error: `{"error": message}`.
fn error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message });
    respond(status, "application/json", format!("{body}\n").into_bytes())
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

fn unauthorized() -> Response<Body> {
    let mut resp = error(
        StatusCode::UNAUTHORIZED,
        "this endpoint needs Authorization: Bearer <admin.token>",
    );
    resp.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"fpmlb admin\""),
    );
    resp
}

fn redirect(to: &'static str) -> Response<Body> {
    let mut resp = respond(StatusCode::FOUND, "text/plain; charset=utf-8", to);
    resp.headers_mut()
        .insert(LOCATION, HeaderValue::from_static(to));
    resp
}

#[cfg(test)]
mod tests;
