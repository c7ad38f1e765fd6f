//! Errors of one proxied request, by the side that failed: the client
//! (4xx), a backend (502/503/504), or no backend at all (503).
//!
//! Each knows the HTTP status it becomes and whether trying another backend
//! is safe: a request that never reached a backend can always be retried; one
//! that reached it only if its method is safe to repeat and nothing of the
//! response was seen (nginx's `proxy_next_upstream error`, HAProxy's
//! `retry-on conn-failure`).
//!
//! Only the backend's own failures (connect errors, resets, timeouts, a
//! broken protocol) count toward `max_fails`, as with nginx's default
//! `fastcgi_next_upstream error timeout`. A response the script produced
//! that HTTP cannot carry (a 1xx, bad header bytes, an oversized head, a
//! bad `Status:` or `Content-Length`) is a 502 for that request alone:
//! never retried (the script ran), never counted (one crafted URL per
//! backend must not take the cluster out).

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
    /// A path php-fpm would walk back through (see `http::walk_back`): 404,
    /// as nginx's `try_files $fastcgi_script_name =404` answers it.
    #[error("refused, php-fpm would walk back: {0}")]
    WalkBack(&'static str),
    #[error("request body over max_body_size ({limit} bytes)")]
    BodyTooLarge { limit: u64 },
    #[error("reading the request body: {0}")]
    Body(String),
    #[error("request body shorter than its Content-Length")]
    BodyTruncated,
    #[error("no request body data for {0:?} (timeouts.client_body)")]
    BodyTimeout(std::time::Duration),
    /// The temp files of all request bodies together are at
    /// `request_temp_total`: fpmlb's limit, not the client's fault.
    #[error("request bodies in temp files are at request_temp_total ({total} bytes)")]
    NoTempRoom { total: usize },
    #[error("request line of {len} bytes over max_request_line ({limit})")]
    UriTooLong { len: usize, limit: usize },
    #[error("request head too large: {0}")]
    HeadTooLarge(String),
    #[error("bad request: {0}")]
    BadHeader(String),
    #[error("Transfer-Encoding {0:?} not implemented")]
    TransferEncoding(String),
    /// The client address has as many HTTP/2 requests at the backends as
    /// it may have connections (`max_connections_per_client`).
    #[error("{cap} requests of this address at the backends (max_connections_per_client)")]
    TooManyRequests { cap: usize },
    /// A location's rule or the static files refused the path.
    #[error("{status}: {why}")]
    Refused {
        status: StatusCode,
        why: &'static str,
    },
}

impl ClientError {
    pub fn status(&self) -> StatusCode {
        match self {
            ClientError::BadPath(_)
            | ClientError::Body(_)
            | ClientError::BodyTruncated
            | ClientError::BadHeader(_) => StatusCode::BAD_REQUEST,
            ClientError::NotFound | ClientError::WalkBack(_) => StatusCode::NOT_FOUND,
            ClientError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ClientError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ClientError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ClientError::HeadTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ClientError::TransferEncoding(_) => StatusCode::NOT_IMPLEMENTED,
            ClientError::NoTempRoom { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ClientError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ClientError::Refused { status, .. } => *status,
        }
    }

    /// Whether the request body may still be on its way: the connection
    /// cannot carry another request after this answer (HTTP/1.1 closes it).
    pub fn body_left_unread(&self) -> bool {
        matches!(
            self,
            ClientError::Body(_)
                | ClientError::BodyTruncated
                | ClientError::BodyTooLarge { .. }
                | ClientError::BodyTimeout(_)
                | ClientError::NoTempRoom { .. }
                | ClientError::TooManyRequests { .. }
                | ClientError::TransferEncoding(_)
        )
    }
}

/// The HTTP status of a backend failure: the front end's policy, kept
/// apart from the failure itself (the health checks use it without HTTP).
impl BackendFailure {
    pub fn status(&self) -> StatusCode {
        match self {
            BackendFailure::Pool(
                PoolError::QueueFull { .. } | PoolError::QueueTimeout(_) | PoolError::Local(_),
            ) => StatusCode::SERVICE_UNAVAILABLE,
            BackendFailure::Exchange(ExchangeError::Refused(_)) => StatusCode::SERVICE_UNAVAILABLE,
            BackendFailure::Exchange(
                ExchangeError::SendTimeout(_)
                | ExchangeError::BodyNotTaken(_)
                | ExchangeError::ReadTimeout(_),
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
    if failure.is_unusable_answer() || matches!(failure, BackendFailure::Pool(PoolError::Local(_)))
    {
        // The script's own answer; or fpmlb's own shortage, which another
        // backend would meet as well.
        return false;
    }
    if failure.before_sending() {
        // Not a byte left: even a body streamed from the client is whole.
        return true;
    }
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

/// How an attempt on one backend failed, as far as deciding what next needs.
#[derive(Debug)]
pub struct FailedAttempt<'a> {
    pub method: &'a http::Method,
    pub failure: &'a BackendFailure,
    /// Some byte of the response had arrived.
    pub got_response: bool,
    /// It ran on a connection kept alive from an earlier exchange.
    pub reused: bool,
    /// It was already the second try on a new connection to that backend.
    pub on_fresh_connection: bool,
    /// The body can be sent again (it is not being streamed from the
    /// client). A streamed body is still whole when the attempt failed
    /// before sending anything ([`BackendFailure::before_sending`]).
    pub body_replayable: bool,
    /// A failure a script may cause, excused by the backend's answers to
    /// other requests (`Backend::excuse_failure`).
    pub excused: bool,
}

/// Where a request goes after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Once more to the same backend, on a new connection.
    FreshConnection,
    /// To another backend.
    AnotherBackend,
    /// Nowhere: the client gets this failure's status.
    GiveUp,
}

/// What the handler does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub next: Next,
    /// The failure counts toward the backend's `max_fails`.
    pub counts_as_failure: bool,
}

/// The retry decision after a failed attempt, with no I/O.
///
/// A kept-alive connection php-fpm closed just as the request went out (a
/// worker leaving at pm.max_requests, a reload) gets the request once more
/// on a new connection to the same backend, not held against it. Only where
/// the request cannot have run twice: a safe method, or a failed write.
/// Otherwise another backend when [`retry_is_safe`], and the failure counts
/// toward max_fails unless the pool was only busy, the script answered
/// something unusable, or the failure is one a script may cause and the
/// caller found it excused (a script past `timeouts.read`, or killed by
/// php-fpm's `request_terminate_timeout` or a crash, on a backend that
/// answers other requests: nginx counts those, so a client who finds one
/// slow or crashing page could take every backend out, one request each).
pub fn after_failure(attempt: &FailedAttempt<'_>) -> Decision {
    let failure = attempt.failure;
    let stale = attempt.reused
        && !attempt.got_response
        && attempt.body_replayable
        && (matches!(failure, BackendFailure::Exchange(ExchangeError::Send(_)))
            || (is_safe_method(attempt.method)
                && matches!(
                    failure,
                    BackendFailure::Exchange(ExchangeError::Closed | ExchangeError::Read(_))
                )));
    if stale && !attempt.on_fresh_connection {
        return Decision {
            next: Next::FreshConnection,
            counts_as_failure: false,
        };
    }
    let retry = retry_is_safe(
        attempt.method,
        failure,
        attempt.got_response,
        attempt.body_replayable,
    );
    Decision {
        next: if retry {
            Next::AnotherBackend
        } else {
            Next::GiveUp
        },
        counts_as_failure: failure.counts_as_failure() && !attempt.excused,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fastcgi::cgi::CgiError;
    use crate::fastcgi::exchange::Unusable;
    use crate::fastcgi::record::ProtocolError;

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

    /// Which failures a script may cause once its request reached a worker
    /// (excusable when the backend answers others), and which only the
    /// backend or the way to it can.
    #[test]
    fn what_a_script_may_cause() {
        use crate::fastcgi::conn::ConnError;
        let io = || std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let script: [BackendFailure; 6] = [
            ExchangeError::ReadTimeout(Duration::from_secs(60)).into(),
            ExchangeError::Closed.into(),
            ExchangeError::Read(ConnError::Io(io())).into(),
            ExchangeError::Read(ConnError::TruncatedRecord).into(),
            ExchangeError::Send(io()).into(),
            ExchangeError::SendTimeout(Duration::from_secs(60)).into(),
        ];
        for f in &script {
            assert!(f.may_be_the_scripts(), "{f}");
            assert!(f.counts_as_failure(), "{f}: counted unless excused");
        }
        let backend: [BackendFailure; 4] = [
            PoolError::Connect(io()).into(),
            ExchangeError::Refused("overloaded").into(),
            ExchangeError::Read(ConnError::Protocol(ProtocolError::UnsupportedVersion(9))).into(),
            PoolError::QueueTimeout(Duration::from_secs(1)).into(),
        ];
        for f in &backend {
            assert!(!f.may_be_the_scripts(), "{f}");
        }
    }

    #[test]
    fn the_scripts_unusable_answer_is_502_never_retried_never_counted() {
        for f in [
            BackendFailure::from(ExchangeError::from(Unusable::Informational(100))),
            ExchangeError::from(CgiError::BadHeaderLine("Location: /x\u{1}".into())).into(),
            ExchangeError::from(Unusable::BodyLonger { declared: 2 }).into(),
        ] {
            assert_eq!(f.status(), StatusCode::BAD_GATEWAY, "{f}");
            assert!(!f.counts_as_failure(), "{f}");
            assert!(!f.never_reached_backend(), "{f}");
            assert!(!retry_is_safe(&http::Method::GET, &f, false, true), "{f}");
        }
    }

    /// fpmlb out of file descriptors (a client holding many open can
    /// bring it there): 503, not held against the backend, not tried on
    /// another, which would fail alike.
    #[test]
    fn fpmlbs_own_shortage_is_503_and_not_the_backends() {
        let f = BackendFailure::Pool(PoolError::Local(std::io::Error::from_raw_os_error(
            libc::EMFILE,
        )));
        assert_eq!(f.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!f.counts_as_failure());
        assert!(!retry_is_safe(&http::Method::GET, &f, false, true));
        let d = after_failure(&FailedAttempt {
            method: &http::Method::GET,
            failure: &f,
            got_response: false,
            reused: false,
            on_fresh_connection: false,
            body_replayable: true,
            excused: false,
        });
        assert_eq!(
            d,
            Decision {
                next: Next::GiveUp,
                counts_as_failure: false
            }
        );
    }

    #[test]
    fn a_full_queue_is_503_and_not_a_failure() {
        let f = BackendFailure::Pool(PoolError::QueueFull { waiting: 3 });
        assert_eq!(f.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!f.counts_as_failure());
    }

    /// The decisions of the table below.
    const FRESH: Decision = Decision {
        next: Next::FreshConnection,
        counts_as_failure: false,
    };
    const ANOTHER: Decision = Decision {
        next: Next::AnotherBackend,
        counts_as_failure: true,
    };
    const ANOTHER_UNCOUNTED: Decision = Decision {
        next: Next::AnotherBackend,
        counts_as_failure: false,
    };
    const GIVE_UP: Decision = Decision {
        next: Next::GiveUp,
        counts_as_failure: true,
    };
    const GIVE_UP_UNCOUNTED: Decision = Decision {
        next: Next::GiveUp,
        counts_as_failure: false,
    };

    /// One way an attempt fails, and the decision expected for each kind
    /// of request.
    struct Case {
        what: &'static str,
        failure: fn() -> BackendFailure,
        got_response: bool,
        reused: bool,
        on_fresh_connection: bool,
        /// GET, HEAD, OPTIONS with a body that can be sent again.
        safe: Decision,
        /// Any other method with a body that can be sent again.
        other: Decision,
        /// Any method with a body streamed from the client.
        streamed: Decision,
    }

    fn connect(kind: std::io::ErrorKind) -> BackendFailure {
        PoolError::Connect(std::io::Error::from(kind)).into()
    }

    fn write_reset() -> BackendFailure {
        ExchangeError::Send(std::io::Error::from(std::io::ErrorKind::ConnectionReset)).into()
    }

    fn read_reset() -> BackendFailure {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        ExchangeError::Read(crate::fastcgi::conn::ConnError::Io(reset)).into()
    }

    /// Makes the failure of a case (a fresh one for each use).
    type Failure = fn() -> BackendFailure;

    fn unusable(u: Unusable) -> BackendFailure {
        ExchangeError::Unusable(u).into()
    }

    fn foreign_record() -> BackendFailure {
        let wrong = ProtocolError::UnexpectedRequestId {
            got: 1,
            expected: 2,
        };
        ExchangeError::Read(crate::fastcgi::conn::ConnError::Protocol(wrong)).into()
    }

    fn case(what: &'static str, failure: fn() -> BackendFailure, expect: [Decision; 3]) -> Case {
        let [safe, other, streamed] = expect;
        Case {
            what,
            failure,
            got_response: false,
            reused: false,
            on_fresh_connection: false,
            safe,
            other,
            streamed,
        }
    }

    fn cases() -> Vec<Case> {
        use std::io::ErrorKind::{ConnectionRefused, TimedOut};
        let after_response = |c: Case| Case {
            got_response: true,
            ..c
        };
        let kept_alive = |c: Case| Case { reused: true, ..c };
        let on_fresh = |c: Case| Case {
            on_fresh_connection: true,
            ..c
        };
        let unusable_answers: [(&'static str, Failure); 9] = [
            ("1xx from the script", || {
                unusable(Unusable::Informational(100))
            }),
            ("a control byte in a header", || {
                unusable(Unusable::Head(CgiError::BadHeaderLine(
                    "Location: /x".into(),
                )))
            }),
            ("a head over the limit", || {
                unusable(Unusable::Head(CgiError::TooLong))
            }),
            ("a bad Status", || {
                unusable(Unusable::Head(CgiError::BadStatus("2000".into())))
            }),
            ("END_REQUEST before a whole head", || {
                unusable(Unusable::Head(CgiError::Incomplete))
            }),
            ("two different Content-Lengths", || {
                unusable(Unusable::BadContentLength("3".into()))
            }),
            ("a body past its Content-Length", || {
                unusable(Unusable::BodyLonger { declared: 2 })
            }),
            ("a body short of its Content-Length", || {
                unusable(Unusable::BodyShorter {
                    declared: 100,
                    sent: 10,
                })
            }),
            ("an answer over what fpmlb reads", || {
                unusable(Unusable::TooLarge(1 << 20))
            }),
        ];
        // The script ran and answered: whatever the request, the connection
        // or how far the answer got, no retry and no count.
        let never = [GIVE_UP_UNCOUNTED; 3];
        let mut table: Vec<Case> = unusable_answers
            .iter()
            .flat_map(|&(what, failure)| {
                [
                    case(what, failure, never),
                    after_response(case(what, failure, never)),
                    kept_alive(case(what, failure, never)),
                    kept_alive(after_response(case(what, failure, never))),
                ]
            })
            .collect();
        table.extend([
            // Nothing left fpmlb: any method and any body, even a streamed one.
            case(
                "connect refused",
                || connect(ConnectionRefused),
                [ANOTHER, ANOTHER, ANOTHER],
            ),
            case(
                "connect timed out",
                || connect(TimedOut),
                [ANOTHER, ANOTHER, ANOTHER],
            ),
            // php-fpm refused it after reading it: no script ran, but a
            // streamed body is gone.
            case(
                "php-fpm overloaded",
                || ExchangeError::Refused("overloaded").into(),
                [ANOTHER, ANOTHER, GIVE_UP],
            ),
            // A busy pool is not a broken one: never counted.
            case(
                "queue full",
                || PoolError::QueueFull { waiting: 8 }.into(),
                [ANOTHER_UNCOUNTED, ANOTHER_UNCOUNTED, ANOTHER_UNCOUNTED],
            ),
            case(
                "queue timeout",
                || PoolError::QueueTimeout(Duration::from_secs(5)).into(),
                [ANOTHER_UNCOUNTED, ANOTHER_UNCOUNTED, ANOTHER_UNCOUNTED],
            ),
            // Reached it, reset before any response: safe methods only.
            case("write reset", write_reset, [ANOTHER, GIVE_UP, GIVE_UP]),
            case(
                "closed before the response",
                reset,
                [ANOTHER, GIVE_UP, GIVE_UP],
            ),
            case("read reset", read_reset, [ANOTHER, GIVE_UP, GIVE_UP]),
            case(
                "record cut short",
                || ExchangeError::Read(crate::fastcgi::conn::ConnError::TruncatedRecord).into(),
                [ANOTHER, GIVE_UP, GIVE_UP],
            ),
            // Not a script's doing: php-fpm frames every record itself.
            case(
                "a record of another request",
                foreign_record,
                [ANOTHER, GIVE_UP, GIVE_UP],
            ),
            // The script may be running still, or answered badly: never again.
            case(
                "read timeout",
                || ExchangeError::ReadTimeout(Duration::from_secs(60)).into(),
                [GIVE_UP, GIVE_UP, GIVE_UP],
            ),
            case(
                "send timeout",
                || ExchangeError::SendTimeout(Duration::from_secs(60)).into(),
                [GIVE_UP, GIVE_UP, GIVE_UP],
            ),
            // The worker answered without taking its body: the script's.
            case(
                "send timeout behind an answer",
                || ExchangeError::BodyNotTaken(Duration::from_secs(60)).into(),
                [GIVE_UP_UNCOUNTED, GIVE_UP_UNCOUNTED, GIVE_UP_UNCOUNTED],
            ),
            after_response(case(
                "closed after the response began",
                reset,
                [GIVE_UP, GIVE_UP, GIVE_UP],
            )),
            after_response(case(
                "read reset after the response began",
                read_reset,
                [GIVE_UP, GIVE_UP, GIVE_UP],
            )),
            // A kept-alive connection php-fpm had closed: once more on a new
            // one, uncounted, where the request cannot have run twice.
            kept_alive(case(
                "write reset on a kept-alive connection",
                write_reset,
                [FRESH, FRESH, GIVE_UP],
            )),
            kept_alive(case(
                "closed on a kept-alive connection",
                reset,
                [FRESH, GIVE_UP, GIVE_UP],
            )),
            kept_alive(case(
                "read reset on a kept-alive connection",
                read_reset,
                [FRESH, GIVE_UP, GIVE_UP],
            )),
            // A record left over from the connection's previous exchange.
            kept_alive(case(
                "a record of another request on a kept-alive connection",
                foreign_record,
                [FRESH, GIVE_UP, GIVE_UP],
            )),
            kept_alive(case(
                "read timeout on a kept-alive connection",
                || ExchangeError::ReadTimeout(Duration::from_secs(60)).into(),
                [GIVE_UP, GIVE_UP, GIVE_UP],
            )),
            kept_alive(after_response(case(
                "closed on a kept-alive connection after the response began",
                reset,
                [GIVE_UP, GIVE_UP, GIVE_UP],
            ))),
            // The new connection failed too: no third try there.
            on_fresh(kept_alive(case(
                "write reset again on the new connection",
                write_reset,
                [ANOTHER, GIVE_UP, GIVE_UP],
            ))),
            on_fresh(kept_alive(case(
                "closed again on the new connection",
                reset,
                [ANOTHER, GIVE_UP, GIVE_UP],
            ))),
            on_fresh(case(
                "the new connection refused",
                || connect(ConnectionRefused),
                [ANOTHER, ANOTHER, ANOTHER],
            )),
            on_fresh(case(
                "no slot for the new connection",
                || PoolError::QueueTimeout(Duration::from_secs(5)).into(),
                [ANOTHER_UNCOUNTED, ANOTHER_UNCOUNTED, ANOTHER_UNCOUNTED],
            )),
        ]);
        table
    }

    /// The four kinds of request body, as `body::prepare` makes them from a
    /// request, with whether each can be sent again.
    async fn body_kinds() -> Vec<(&'static str, bool)> {
        use crate::http::body::{self, BodyLimits, RequestBody};
        use bytes::Bytes;
        use http_body_util::Full;
        // request_buffering off, so that a streamed body is among them.
        let limits = BodyLimits {
            max_body_size: 1 << 20,
            buffer_size: 4,
            buffering: false,
            timeout: std::time::Duration::from_secs(60),
        };
        let budgets = body::BodyBudgets {
            memory: crate::http::budget::ByteBudget::new(body::BODY_MEMORY),
            temp: crate::http::budget::ByteBudget::new(1 << 20),
        };
        let prepare = |data: &'static [u8], declared: Option<u64>| {
            body::prepare(
                Full::new(Bytes::from_static(data)),
                declared,
                limits,
                &budgets,
            )
        };
        let none = prepare(b"", Some(0)).await.unwrap();
        let small = prepare(b"abc", Some(3)).await.unwrap();
        let streamed = prepare(b"abcdefgh", Some(8)).await.unwrap();
        let spooled = prepare(b"abcdefgh", None).await.unwrap();
        assert!(matches!(none, RequestBody::Empty));
        assert!(matches!(small, RequestBody::Memory(_)));
        assert!(matches!(streamed, RequestBody::Stream { .. }));
        assert!(matches!(spooled, RequestBody::File { .. }));
        vec![
            ("no", none.is_replayable()),
            ("small", small.is_replayable()),
            ("streamed", streamed.is_replayable()),
            ("spooled", spooled.is_replayable()),
        ]
    }

    #[tokio::test]
    async fn retry_decisions_by_failure_method_and_body() {
        let safe = ["GET", "HEAD", "OPTIONS"];
        let other = ["POST", "PUT", "PATCH", "DELETE", "PROPFIND"];
        let bodies = body_kinds().await;
        for case in cases() {
            for (method, is_safe) in safe
                .iter()
                .map(|m| (m, true))
                .chain(other.iter().map(|m| (m, false)))
            {
                let method = http::Method::from_bytes(method.as_bytes()).unwrap();
                for &(body, replayable) in &bodies {
                    let expected = match (replayable, is_safe) {
                        (false, _) => case.streamed,
                        (true, true) => case.safe,
                        (true, false) => case.other,
                    };
                    let failure = (case.failure)();
                    let decide = |excused| {
                        after_failure(&FailedAttempt {
                            method: &method,
                            failure: &failure,
                            got_response: case.got_response,
                            reused: case.reused,
                            on_fresh_connection: case.on_fresh_connection,
                            body_replayable: replayable,
                            excused,
                        })
                    };
                    assert_eq!(
                        decide(false),
                        expected,
                        "{}: {method} with {body} body",
                        case.what
                    );
                    // Excused: the same route, never counted.
                    assert_eq!(
                        decide(true),
                        Decision {
                            counts_as_failure: false,
                            ..expected
                        },
                        "{}: {method} with {body} body, excused",
                        case.what
                    );
                }
            }
        }
    }
}
