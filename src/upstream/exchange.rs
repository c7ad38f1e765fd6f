//! One FastCGI exchange with a backend: a connection from its pool, lent to
//! `fastcgi::exchange`, and given back when the response ended cleanly.
//!
//! `BackendFailure` is what can go wrong: no connection from the pool, or
//! the exchange itself failed. It is used by the proxy, the liveness check
//! and the session probe alike; the HTTP status it becomes and when a retry
//! is safe are the front end's policy, in `http::error`.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::fastcgi::cgi::CgiHead;
use crate::fastcgi::conn::{ConnError, Connection};
use crate::fastcgi::exchange::{self, ExchangeError, ExchangeTimeouts, LentConn, Unusable};
use crate::fastcgi::params::ParamList;
use crate::upstream::backend::Backend;
use crate::upstream::pool::{self, PoolError, PooledConn};

/// What went wrong with a backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendFailure {
    #[error("{0}")]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

impl BackendFailure {
    /// True when no script can have run: no connection from the pool, or
    /// php-fpm's END_REQUEST refused the request. The script's own answer,
    /// however unusable, is never this (the script ran).
    pub fn never_reached_backend(&self) -> bool {
        matches!(
            self,
            BackendFailure::Pool(_) | BackendFailure::Exchange(ExchangeError::Refused(_))
        )
    }

    /// True when nothing of the request left fpmlb: the pool had no
    /// connection for it, so even a body streamed from the client is still
    /// whole and can go to another backend.
    pub fn before_sending(&self) -> bool {
        matches!(self, BackendFailure::Pool(_))
    }

    /// True when a script may be the cause: the request reached a worker,
    /// and what failed is what a script's own doing looks like from here (no
    /// answer within the read timeout, the connection closed or reset by a
    /// worker killed for `request_terminate_timeout` or a crash, a body the
    /// script never read) rather than a connection refused or a broken
    /// FastCGI stream.
    pub fn may_be_the_scripts(&self) -> bool {
        matches!(
            self,
            BackendFailure::Exchange(
                ExchangeError::ReadTimeout(_)
                    | ExchangeError::Closed
                    | ExchangeError::Send(_)
                    | ExchangeError::SendTimeout(_)
                    | ExchangeError::Read(ConnError::Io(_) | ConnError::TruncatedRecord)
            )
        )
    }

    /// True when the backend broke the FastCGI protocol (garbage, a record
    /// of another request): nothing a script can cause.
    pub fn is_protocol_error(&self) -> bool {
        matches!(
            self,
            BackendFailure::Exchange(ExchangeError::Read(ConnError::Protocol(_)))
        )
    }

    /// True when the script ran and answered something HTTP cannot carry:
    /// the request's failure alone, not the backend's.
    pub fn is_unusable_answer(&self) -> bool {
        matches!(
            self,
            BackendFailure::Exchange(ExchangeError::Unusable(_) | ExchangeError::BodyNotTaken(_))
        )
    }

    /// True when the backend, not its load or a script, is at fault: counts
    /// toward max_fails (nginx's `fastcgi_next_upstream error timeout`:
    /// connect errors, resets, timeouts, a broken protocol). A full queue is
    /// a busy pool, not a broken one; an unusable answer is one script's.
    pub fn counts_as_failure(&self) -> bool {
        !matches!(
            self,
            BackendFailure::Pool(
                PoolError::QueueFull { .. } | PoolError::QueueTimeout(_) | PoolError::Local(_)
            ) | BackendFailure::Exchange(
                ExchangeError::Unusable(_) | ExchangeError::BodyNotTaken(_)
            )
        )
    }
}

/// A pooled connection of a backend, lent to one exchange.
#[derive(Debug)]
pub struct BackendConn {
    conn: PooledConn,
    backend: Arc<Backend>,
    /// A client's request (not one of fpmlb's own): its clean end clears
    /// the backend's recent failures.
    proxied: bool,
}

impl LentConn for BackendConn {
    fn conn(&mut self) -> Option<&mut Connection> {
        self.conn.conn()
    }

    /// END_REQUEST came: the script ended and the backend answered whole.
    /// A client's request counts as a success here, whichever way its body
    /// went out (a body sent by its Content-Length is dropped by hyper
    /// without being read to its end).
    fn release(self) {
        if self.proxied {
            self.backend.record_success();
        }
        self.conn.release();
    }

    fn name(&self) -> &str {
        &self.backend.name
    }

    fn worker_patience(&self) -> Option<Duration> {
        let typical = self.backend.stats.latency.quantile_bound(0.9);
        self.conn
            .watch_for_worker()
            .then(|| pool::worker_patience(typical))
    }

    fn waiting_for_worker(&mut self, patience: Duration) {
        self.conn.waiting_for_worker(patience);
    }

    fn worker_wait_over(&mut self) {
        self.conn.wait_over();
    }

    fn check_ready(&mut self, read_timeout: Duration) -> bool {
        self.conn.check_ready(read_timeout)
    }

    fn waited_for_script(&mut self, waited: Duration) {
        self.conn.waited_for_script(waited);
    }

    fn closed_after_check(&mut self) {
        self.conn.closed_after_check();
    }

    fn response_started(&mut self) {
        if let Some(cap) = self.conn.first_answer() {
            tracing::warn!(
                backend = %self.backend.name,
                "a new connection waited for a php-fpm worker until a kept-alive connection was closed to free one: \
                 the pool has fewer workers for fpmlb than its connections (max_conns above pm.max_children, or \
                 workers held by others); the cap is now {cap}, the workers seen, for {:?} (set max_conns, or \
                 health.status_path for a static pool)",
                crate::upstream::pool::LEARNED_CAP_HOLD,
            );
        }
    }
}

/// An exchange on a backend's pooled connection.
pub type Exchange = exchange::Exchange<BackendConn>;

/// Starts an exchange for a client's request on `conn`, a connection of
/// `backend`'s pool.
pub fn begin(conn: PooledConn, backend: Arc<Backend>, timeouts: ExchangeTimeouts) -> Exchange {
    let conn = BackendConn {
        conn,
        backend,
        proxied: true,
    };
    Exchange::new(conn, timeouts)
}

/// Reads the rest of a response whose whole Content-Length went out, on a
/// task of its own, when its script works on (see
/// [`exchange::END_GRACE`]): the worker's connection goes back to the pool
/// when the script ends, and is closed if it fails or says more. Neither
/// is the backend's failure: the client had the whole response.
pub fn finish_later(ex: Exchange, backend: &Backend) {
    if !ex.awaits_end() {
        return;
    }
    let name = backend.name.clone();
    tokio::spawn(async move {
        if let Err(e) = ex.finish().await {
            tracing::info!(backend = %name, "after a response's whole Content-Length: {e}; connection closed");
        }
    });
}

/// A whole, small response to one of fpmlb's own requests.
#[derive(Debug)]
pub struct SmallResponse {
    pub head: CgiHead,
    pub body: Bytes,
    /// php-fpm said "Primary script unknown": SCRIPT_FILENAME names no file.
    pub script_unknown: bool,
}

/// Runs one request of fpmlb's own (ping, status page, session probe) on a
/// pooled connection of `backend` that it never keeps (see
/// `Pool::acquire_for_probe`), waiting at most `acquire` for a slot, and
/// reads the whole response, refusing one over `max_body` bytes.
///
/// The timeouts count between two records, and a record may carry nothing
/// (STDERR, an empty STDOUT) or one byte: the whole exchange has
/// `timeouts.send + timeouts.read` besides, so that a backend (or a script)
/// that trickles cannot hold the health checks or `fpmlb check` for ever.
pub async fn small_request(
    backend: &Arc<Backend>,
    params: &ParamList,
    body: &[u8],
    acquire: Duration,
    timeouts: ExchangeTimeouts,
    max_body: usize,
) -> Result<SmallResponse, BackendFailure> {
    let conn = BackendConn {
        conn: backend.pool.acquire_for_probe(acquire).await?,
        backend: Arc::clone(backend),
        proxied: false,
    };
    let total = timeouts.send.saturating_add(timeouts.read);
    let exchange = small_exchange(conn, params, body, timeouts, max_body);
    match tokio::time::timeout(total, exchange).await {
        Ok(result) => result,
        Err(_) => Err(ExchangeError::ReadTimeout(total).into()),
    }
}

async fn small_exchange(
    conn: BackendConn,
    params: &ParamList,
    body: &[u8],
    timeouts: ExchangeTimeouts,
    max_body: usize,
) -> Result<SmallResponse, BackendFailure> {
    let too_large = || BackendFailure::from(ExchangeError::Unusable(Unusable::TooLarge(max_body)));
    let mut ex = Exchange::new(conn, timeouts);
    ex.send_request(params, Some(body)).await?;
    let start = ex.read_head(false).await?;
    if start.body.len() > max_body {
        return Err(too_large());
    }
    let mut out = BytesMut::from(&start.body[..]);
    if !start.complete {
        while let Some(chunk) = ex.next_chunk().await? {
            if out.len() + chunk.len() > max_body {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
    }
    Ok(SmallResponse {
        head: start.head,
        body: out.freeze(),
        script_unknown: ex.script_unknown,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::fastcgi::conn::Endpoint;
    use crate::fastcgi::record::{self, RecordType};

    /// A backend that answers every request with `answer`, then a STDERR
    /// record every 50 ms, never ending.
    async fn trickling(answer: Vec<u8>) -> Arc<Backend> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::Tcp(listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = s.read(&mut request).await;
                    let _ = s.write_all(&answer).await;
                    let mut stderr = bytes::BytesMut::new();
                    record::encode_stream(&mut stderr, RecordType::Stderr, 1, b"x");
                    loop {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        if s.write_all(&stderr).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        crate::upstream::backend::for_tests("t", endpoint)
    }

    fn stdout(data: &[u8]) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        record::encode_stream(&mut out, RecordType::Stdout, 1, data);
        out.to_vec()
    }

    async fn ask(backend: &Arc<Backend>, max_body: usize) -> Result<SmallResponse, BackendFailure> {
        let timeouts = ExchangeTimeouts {
            send: Duration::from_millis(200),
            read: Duration::from_millis(200),
        };
        let params = ParamList::with_capacity(0, 0);
        let hang_guard = Duration::from_secs(60);
        let asked = small_request(
            backend,
            &params,
            b"",
            Duration::from_secs(1),
            timeouts,
            max_body,
        );
        tokio::time::timeout(hang_guard, asked)
            .await
            .expect("an answer or an error within the hang guard")
    }

    /// STDERR records, each within the read timeout, never end the wait
    /// for the rest: the whole exchange's deadline does.
    #[tokio::test]
    async fn a_backend_that_trickles_stderr_meets_the_whole_deadline() {
        let backend = trickling(stdout(b"Status: 200\r\n\r\npar")).await;
        let Err(e) = ask(&backend, 4096).await else {
            panic!("a response that never ended was taken as whole");
        };
        assert!(
            matches!(e, BackendFailure::Exchange(ExchangeError::ReadTimeout(t)) if t == Duration::from_millis(400)),
            "{e:?}"
        );
    }

    /// The body that came with the head counts against `max_body` too.
    #[tokio::test]
    async fn the_first_piece_counts_against_max_body() {
        let mut answer = stdout(b"Status: 200\r\n\r\n0123456789");
        // END_REQUEST, request 1, status 0.
        answer.extend_from_slice(&[1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let backend = trickling(answer).await;
        let Err(e) = ask(&backend, 4).await else {
            panic!("10 bytes taken for a limit of 4");
        };
        assert!(
            matches!(
                e,
                BackendFailure::Exchange(ExchangeError::Unusable(Unusable::TooLarge(4)))
            ),
            "{e:?}"
        );
    }
}
