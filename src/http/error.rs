//! Errors of one proxied request, by the side that failed: the client
//! (4xx), a backend (502/503/504), or no backend at all (503).
//!
//! Each knows the HTTP status it becomes and whether trying another backend
//! is safe: a request that never reached a backend can always be retried; one
//! that reached it only if its method is safe to repeat and nothing of the
//! response was seen (nginx's `proxy_next_upstream error`, HAProxy's
//! `retry-on conn-failure`).

use http::StatusCode;

use crate::fastcgi::exchange::ExchangeError;
use crate::upstream::exchange::BackendFailure;
use crate::upstream::pool::PoolError;

/// The client sent something fpmlb will not pass on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad request: {0}")]
    BadPath(&'static str),
    #[error("no PHP script at this path")]
    NotFound,
    #[error("request body over max_body_size ({limit} bytes)")]
    BodyTooLarge { limit: u64 },
    #[error("reading the request body: {0}")]
    Body(String),
    #[error("request body shorter than its Content-Length")]
    BodyTruncated,
}

impl ClientError {
    pub fn status(&self) -> StatusCode {
        match self {
            ClientError::BadPath(_) | ClientError::Body(_) | ClientError::BodyTruncated => {
                StatusCode::BAD_REQUEST
            }
            ClientError::NotFound => StatusCode::NOT_FOUND,
            ClientError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// The HTTP status of a backend failure: the front end's policy, kept
/// apart from the failure itself (the health checks use it without HTTP).
impl BackendFailure {
    pub fn status(&self) -> StatusCode {
        match self {
            BackendFailure::Pool(PoolError::QueueFull { .. } | PoolError::QueueTimeout(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            BackendFailure::Exchange(ExchangeError::Refused(_)) => StatusCode::SERVICE_UNAVAILABLE,
            BackendFailure::Exchange(
                ExchangeError::SendTimeout(_) | ExchangeError::ReadTimeout(_),
            ) => StatusCode::GATEWAY_TIMEOUT,
            BackendFailure::Pool(PoolError::Connect(e))
                if e.kind() == std::io::ErrorKind::TimedOut =>
            {
                StatusCode::GATEWAY_TIMEOUT
            }
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// A failure on one backend, and how far the exchange had got.
#[derive(Debug, thiserror::Error)]
#[error("backend {backend}: {failure}")]
pub struct BackendError {
    pub backend: String,
    pub failure: BackendFailure,
    /// Some byte of the response had arrived.
    pub got_response: bool,
}

/// Why a request got no response from PHP.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("no backend is up")]
    NoBackend,
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Client(e) => e.status(),
            ProxyError::Backend(e) => e.failure.status(),
            ProxyError::NoBackend => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Whether a request that reached a backend may be sent again to another:
/// only methods that are safe to repeat (nginx's non-idempotent rule, kept
/// strict: GET, HEAD, OPTIONS), only when no response byte was seen, and only
/// when its body can be sent again.
pub fn retry_is_safe(
    method: &http::Method,
    failure: &BackendFailure,
    got_response: bool,
    body_replayable: bool,
) -> bool {
    if failure.never_reached_backend() {
        return body_replayable;
    }
    if got_response || !body_replayable {
        return false;
    }
    let resets = matches!(
        failure,
        BackendFailure::Exchange(
            ExchangeError::Send(_) | ExchangeError::Read(_) | ExchangeError::Closed
        )
    );
    resets && is_safe_method(method)
}

/// Methods whose request may run twice without harm, for retries: nginx's
/// non-idempotent rule kept strict.
pub fn is_safe_method(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn reset() -> BackendFailure {
        ExchangeError::Closed.into()
    }

    #[test]
    fn connect_errors_retry_for_any_method() {
        let f = BackendFailure::Pool(PoolError::Connect(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(retry_is_safe(&http::Method::POST, &f, false, true));
        assert_eq!(f.status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn resets_retry_only_safe_methods_before_any_response() {
        assert!(retry_is_safe(&http::Method::GET, &reset(), false, true));
        assert!(!retry_is_safe(&http::Method::POST, &reset(), false, true));
        assert!(!retry_is_safe(&http::Method::GET, &reset(), true, true));
        assert!(!retry_is_safe(&http::Method::GET, &reset(), false, false));
    }

    #[test]
    fn timeouts_are_504_and_not_retried() {
        let f = BackendFailure::from(ExchangeError::ReadTimeout(Duration::from_secs(60)));
        assert_eq!(f.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(!retry_is_safe(&http::Method::GET, &f, false, true));
    }

    #[test]
    fn a_full_queue_is_503_and_not_a_failure() {
        let f = BackendFailure::Pool(PoolError::QueueFull { waiting: 3 });
        assert_eq!(f.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!f.counts_as_failure());
    }
}
