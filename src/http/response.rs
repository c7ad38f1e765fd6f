//! Responses to the client: PHP's response (whole or streamed), fpmlb's own
//! error pages, and the access log line written when a response is done.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::time::Instant;

use crate::fastcgi::exchange::ExchangeError;
use crate::http::send_clock;
use crate::upstream::backend::Backend;
use crate::upstream::exchange::{BackendFailure, Exchange};

/// The error type of response bodies: a backend failing mid-body. hyper
/// then resets the HTTP/2 stream or closes the HTTP/1.1 connection, so the
/// client never takes a cut response for a whole one.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response fpmlb sends.
pub type ResponseBody = LoggedBody;

/// Seconds a client is told to wait when no backend is up.
pub const RETRY_AFTER_SECS: &str = "5";

/// A whole body.
pub fn full(bytes: Bytes) -> UnsyncBoxBody<Bytes, BodyError> {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body of no stated length: for a HEAD answer whose script gave
/// no Content-Length (hyper adds `content-length: 0` to a body it knows is
/// empty, which would tell a HEAD client the GET's body is empty).
pub fn no_length() -> UnsyncBoxBody<Bytes, BodyError> {
    http_body_util::StreamBody::new(futures_util::stream::empty()).boxed_unsync()
}

/// A body read from `backend` as the client takes it.
pub fn streamed(
    first: Bytes,
    exchange: Exchange,
    backend: Arc<Backend>,
) -> UnsyncBoxBody<Bytes, BodyError> {
    let state = (Some(first), Some(exchange), backend);
    let stream = futures_util::stream::unfold(state, |(first, exchange, backend)| async move {
        if let Some(first) = first.filter(|b| !b.is_empty()) {
            return Some((Ok(Frame::data(first)), (None, exchange, backend)));
        }
        let mut ex = exchange?;
        match ex.next_chunk().await {
            // The whole Content-Length: the body ends here (hyper would
            // drop it unread), the script may work on.
            Ok(Some(chunk)) if ex.awaits_end() => {
                crate::upstream::exchange::finish_later(ex, &backend);
                Some((Ok(Frame::data(chunk)), (None, None, backend)))
            }
            Ok(Some(chunk)) => Some((Ok(Frame::data(chunk)), (None, Some(ex), backend))),
            Ok(None) => None,
            Err(failure) => {
                let err = cut_short(failure, &backend);
                Some((Err(err), (None, None, backend)))
            }
        }
    });
    http_body_util::StreamBody::new(stream).boxed_unsync()
}

/// A response that failed after its head went out: counted against the
/// backend when it is the backend's fault, logged, and turned into the body
/// error that makes hyper cut the response. The backend answered this very
/// request, so a failure a script may cause (a stream paused past
/// `timeouts.read`, a worker killed or crashed mid-body) is excused while
/// the backend answers twice as many requests as it has such failures.
pub fn cut_short(failure: ExchangeError, backend: &Backend) -> BodyError {
    let failure = BackendFailure::from(failure);
    let excused = failure.may_be_the_scripts()
        && backend.excuse_failure(Instant::now(), backend.answered().saturating_sub(1));
    if failure.counts_as_failure() && !excused {
        backend.record_failure(Instant::now());
    }
    if failure.is_unusable_answer() {
        tracing::warn!(backend = %backend.name, "response cut short: {failure}");
    } else {
        tracing::error!(backend = %backend.name, "response cut short: {failure}");
    }
    Box::new(crate::http::error::BackendError {
        backend: backend.name.clone(),
        failure,
        got_response: true,
    })
}

/// fpmlb's own short plain-text response for an error.
pub fn error_page(status: StatusCode) -> Response<UnsyncBoxBody<Bytes, BodyError>> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut resp = Response::new(full(Bytes::from(text)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(retry) = retry_after(status) {
        headers.insert(http::header::RETRY_AFTER, retry);
    }
    resp
}

/// The `Retry-After` fpmlb's own answer with `status` carries: on a 503
/// (no backend, or its queue full) or a 429 (a client's requests at its
/// cap), when to come back.
pub fn retry_after(status: StatusCode) -> Option<HeaderValue> {
    matches!(
        status,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
    )
    .then(|| HeaderValue::from_static(RETRY_AFTER_SECS))
}

/// What the access log line says of a request, filled in as it goes.
#[derive(Debug)]
pub struct AccessLog {
    pub client: std::net::SocketAddr,
    pub method: http::Method,
    pub uri: String,
    pub version: http::Version,
    pub status: u16,
    pub backend: Option<Arc<str>>,
    pub upstream_time: Option<Duration>,
    pub started: Instant,
    pub error: Option<String>,
}

/// A response body that counts what it sends and writes the access log line
/// when it is done or dropped (a client that goes away is logged too).
pub struct LoggedBody {
    inner: UnsyncBoxBody<Bytes, BodyError>,
    bytes: u64,
    log: Option<AccessLog>,
    failed: bool,
    done: bool,
    /// Released when the response is done: counts requests in flight for
    /// the connection's idle timer.
    _in_flight: Option<crate::http::activity::InFlight>,
    /// The response's Content-Length: hyper stops asking for an HTTP/1.1
    /// body once that much is sent, without polling it to its end.
    length: Option<u64>,
    /// A cut after some bytes went out, held back for [`CUT_GRACE`].
    cut: Option<(Option<BodyError>, Pin<Box<tokio::time::Sleep>>)>,
}

/// How long the cut of a response that failed after sending some of its
/// body is held back. hyper queues body pieces up to its write buffer's
/// size before it writes them, and on a body error drops the connection
/// with what it still had queued: the client would miss the last few KiB
/// before the cut (tests/faults.rs saw 4,753 bytes go). Held back, the
/// cut comes after hyper has written what it had, to a client that reads.
const CUT_GRACE: Duration = Duration::from_millis(250);

impl LoggedBody {
    /// `head`'s body, logged when done; `head` is the response as it goes
    /// out (its Content-Length, if any, is what the client will expect).
    pub fn new(
        inner: UnsyncBoxBody<Bytes, BodyError>,
        head: &http::HeaderMap,
        log: Option<AccessLog>,
        in_flight: Option<crate::http::activity::InFlight>,
    ) -> Self {
        let length = head
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        // Ready: over HTTP/2, the client is to ask for its first bytes.
        send_clock::waiting();
        LoggedBody {
            inner,
            bytes: 0,
            log,
            failed: false,
            done: false,
            _in_flight: in_flight,
            length,
            cut: None,
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        send_clock::asked();
        if let Some((error, after)) = this.cut.as_mut() {
            std::task::ready!(after.as_mut().poll(cx));
            return Poll::Ready(error.take().map(Err));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => {
                this.failed = true;
                if let Some(log) = this.log.as_mut() {
                    log.error = Some(e.to_string());
                }
                if this.bytes == 0 {
                    return Poll::Ready(Some(Err(e)));
                }
                let mut after = Box::pin(tokio::time::sleep(CUT_GRACE));
                // A fresh timer: pending, and it wakes this body.
                let _ = after.as_mut().poll(cx);
                this.cut = Some((Some(e), after));
                Poll::Pending
            }
            polled => {
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            this.bytes += data.len() as u64;
                        }
                        send_clock::waiting();
                    }
                    Poll::Ready(None) => this.done = true,
                    _ => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.cut.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let Some(log) = self.log.take() else { return };
        let complete = !self.failed
            && (self.done || self.inner.is_end_stream() || self.length == Some(self.bytes));
        let upstream_ms = log.upstream_time.map(millis);
        tracing::info!(
            target: "fpmlb::access",
            client = %log.client,
            method = %log.method,
            uri = %log.uri,
            proto = ?log.version,
            status = log.status,
            bytes = self.bytes,
            complete,
            backend = log.backend.as_deref().unwrap_or("-"),
            upstream_ms,
            total_ms = millis(log.started.elapsed()),
            error = log.error.as_deref(),
        );
    }
}

/// Milliseconds with microsecond precision, for log lines.
fn millis(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}
