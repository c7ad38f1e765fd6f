//! The listening side: accept loops, per-connection HTTP (1.1 and 2 on the
//! same port, by hyper-util's auto builder), connection limits, idle timers
//! and graceful shutdown.
//!
//! Who holds what: each accepted connection holds one permit of the
//! connection semaphore until it closes, and is tracked by the
//! `TaskTracker`; shutdown is carried by a `CancellationToken`. On shutdown
//! the accept loops stop, every connection is asked to finish gracefully
//! (HTTP/1.1: after the response in flight; HTTP/2: GOAWAY), and the server
//! waits up to `shutdown_grace` for them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http::activity::{ConnActivity, InFlight, idle_expired};
use crate::http::handler::Proxy;
use crate::http::params::ConnInfo;

/// Most client connections open at once; beyond it, accepting waits (the
/// kernel's backlog holds the rest). Far above what php-fpm pools behind one
/// balancer can serve, low enough to keep file descriptors in check.
const MAX_CLIENT_CONNECTIONS: usize = 16 * 1024;

/// Listen backlog, as nginx's default on Linux (511) rounded up.
const LISTEN_BACKLOG: i32 = 1024;

/// Client-side timeouts.
#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    /// Longest wait for a request head (nginx client_header_timeout).
    pub header: Duration,
    /// Longest idle time of a connection with no request in flight
    /// (nginx keepalive_timeout).
    pub idle: Duration,
}

/// Binds a listening socket with SO_REUSEADDR (restarts do not wait for
/// TIME_WAIT) and our backlog.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// The HTTP side of the server: serves `proxy` on listeners until `shutdown`.
pub struct HttpServer {
    pub proxy: Arc<arc_swap::ArcSwap<Proxy>>,
    pub timeouts: ClientTimeouts,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    permits: Arc<Semaphore>,
    builder: Arc<auto::Builder<TokioExecutor>>,
}

impl HttpServer {
    pub fn new(
        proxy: Arc<arc_swap::ArcSwap<Proxy>>,
        timeouts: ClientTimeouts,
        shutdown: CancellationToken,
    ) -> HttpServer {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.header)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20));
        HttpServer {
            proxy,
            timeouts,
            shutdown,
            tracker: TaskTracker::new(),
            permits: Arc::new(Semaphore::new(MAX_CLIENT_CONNECTIONS)),
            builder: Arc::new(builder),
        }
    }

    /// Accepts on `listener` until shutdown or `stop` (a listener removed by reload).
    pub async fn accept_loop(self: Arc<Self>, listener: TcpListener, stop: CancellationToken) {
        let local = listener.local_addr().ok();
        loop {
            let permit = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = stop.cancelled() => break,
                permit = Arc::clone(&self.permits).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let accepted = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = stop.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, remote)) => {
                    let server = Arc::clone(&self);
                    self.tracker.spawn(async move {
                        server.serve_connection(stream, remote).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::error!(listener = ?local, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tracing::info!(listener = ?local, "stopped accepting");
    }

    async fn serve_connection(&self, stream: TcpStream, remote: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(client = %remote, "connection gone before serving: {e}");
                return;
            }
        };
        let info = ConnInfo { remote, local };
        let activity = Arc::new(ConnActivity::default());
        let epoch = Instant::now();
        let proxy = Arc::clone(&self.proxy);
        let svc_activity = Arc::clone(&activity);
        let service = service_fn(move |req| {
            let proxy = proxy.load_full();
            let in_flight = InFlight::begin(&svc_activity, epoch);
            async move { Ok::<_, Infallible>(proxy.handle(req, info, Some(in_flight)).await) }
        });
        let conn = self.builder.serve_connection(TokioIo::new(stream), service);
        let mut conn = std::pin::pin!(conn);
        let mut closing = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(client = %remote, "connection ended: {e}");
                    }
                    return;
                }
                _ = self.shutdown.cancelled(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = idle_expired(&activity, epoch, self.timeouts.idle), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
