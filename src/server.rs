//! The listening side: accept loops, per-connection HTTP (1.1 and 2 on the
//! same port, by hyper-util's auto builder), connection limits (a global
//! cap, and a cap per client address in `per_client`), the head and idle
//! timers, and graceful shutdown.
//!
//! A connection goes TCP -> PROXY header (`proxy_protocol` listeners,
//! `proxy_protocol.rs`) -> TLS handshake (`tls` listeners, certificates from
//! `crate::tls`) -> HTTP. The PROXY header and the handshake share one
//! deadline, `timeouts.client_header` (nginx's before its
//! `ssl_handshake_timeout`), and hold the connection's permit: a slowloris
//! on the handshake is bounded in time and counted like any connection.
//!
//! Who holds what: each accepted connection holds one permit of the
//! connection semaphore and one slot of its client address until it
//! closes, and is tracked by the `TaskTracker`; shutdown is carried by a
//! `CancellationToken`. On shutdown the accept loops stop, every connection
//! is asked to finish gracefully (HTTP/1.1: after the response in flight;
//! HTTP/2: GOAWAY), and the server waits up to `shutdown_grace` for them.

mod proxy_protocol;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Listener, RealIpConfig};
use crate::http::activity::{ConnActivity, InFlight, head_expired, idle_expired};
use crate::http::handler::Proxy;
use crate::http::limits::HeadLimits;
use crate::http::params::{ConnInfo, TlsInfo};
use crate::tls::ACME_TLS_ALPN;
use proxy_protocol::{ClientStream, Proxied};

mod cancels;
mod per_client;
mod watched;

use cancels::Cancels;
use per_client::ClientSlot;
pub use per_client::{PerClient, client_key};

/// A connection refused by `max_connections_per_client` (already logged).
struct AtCap;
use watched::Watched;

/// Streams one HTTP/2 connection may have open, nginx's
/// `http2_max_concurrent_streams` default (hyper's is 200): each may hold
/// up to `body_buffer_size` of a body in memory while it is read.
const H2_MAX_CONCURRENT_STREAMS: u32 = 128;

/// Streams the client may reset before the server accepted them, at once,
/// before the connection is closed with GOAWAY ENHANCE_YOUR_CALM: h2's
/// counter (0.3.17) and default (20) for the rapid reset attack
/// (CVE-2023-44487), kept explicitly. Resets of accepted streams are
/// fpmlb's own count (`server/cancels.rs`). The h2 in Cargo.lock (0.4.20)
/// also has the error-reset limit (0.4.2) and the CONTINUATION flood limit
/// (0.4.4).
const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;

/// Streams fpmlb may reset because the client broke the protocol on them,
/// before GOAWAY (h2's default since 0.4.2): floods of malformed streams.
const H2_MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// A request body may be 1 MiB ahead of fpmlb per stream, and all streams
/// of a connection together 1 MiB too (hyper's defaults): bodies are read
/// as they come (`http/body.rs`), so this bounds what a connection holds
/// unread, whatever its number of streams.
const H2_STREAM_WINDOW: u32 = 1024 * 1024;
const H2_CONNECTION_WINDOW: u32 = 1024 * 1024;

/// Response bytes queued per stream before the body is polled again
/// (hyper's default is 400 KiB): 128 streams of a client that reads
/// slowly hold at most 8 MiB, not 50; a 1 MiB response still goes at full
/// speed (measured: README, HTTP/2 at the edge).
const H2_MAX_SEND_BUF: usize = 64 * 1024;

/// Listen backlog, as nginx's default on Linux (511) rounded up.
const LISTEN_BACKLOG: i32 = 1024;

/// What the client side of the server enforces (the config's, at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// From a head's first byte (or the connection's start) to its end
    /// (HAProxy's timeout http-request).
    pub header_timeout: Duration,
    /// Longest idle time of a connection with no request in flight and no
    /// head coming (nginx keepalive_timeout).
    pub idle_timeout: Duration,
    /// Longest a client may take nothing of its response (nginx send_timeout).
    pub send_timeout: Duration,
    /// Client connections open at once; beyond it, accepting waits (the
    /// kernel's backlog holds the rest).
    pub max_connections: usize,
    /// Connections one client address may hold (0: no cap).
    pub per_client: usize,
    /// hyper's head buffers follow the request head limits.
    pub head: HeadLimits,
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
    pub limits: ClientLimits,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    /// The rustls config of TLS listeners; `None` while no TLS is configured.
    pub tls: ArcSwapOption<rustls::ServerConfig>,
    /// Which peers may send PROXY headers and forwarding headers
    /// (`real_ip`); read per connection and per request, so a reload
    /// applies at once.
    pub real_ip: Arc<ArcSwap<RealIpConfig>>,
    permits: Arc<Semaphore>,
    per_client: Arc<PerClient>,
    builder: Arc<auto::Builder<TokioExecutor>>,
}

/// A connection ready for HTTP.
enum Accepted {
    Plain(ClientStream),
    Tls(Box<tokio_rustls::server::TlsStream<ClientStream>>),
    /// A TLS-ALPN-01 validation: the handshake was the whole answer.
    AcmeChallenge,
}

impl HttpServer {
    pub fn new(
        proxy: Arc<arc_swap::ArcSwap<Proxy>>,
        limits: ClientLimits,
        shutdown: CancellationToken,
    ) -> HttpServer {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // hyper's header timer runs from the end of the previous response,
        // so it would cut kept-alive connections at client_header: the head
        // timer is fpmlb's own (see http::activity).
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_buf_size(limits.head.h1_max_buf_size())
            .keep_alive(true);
        // HTTP/2 limits, set here rather than left to hyper's defaults so
        // that a dependency update cannot loosen them (see the constants).
        // The CONTINUATION flood protection (h2 >= 0.4.4) follows
        // max_header_list_size: more CONTINUATION frames than that list
        // needs, or a header block past it, is a GOAWAY.
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(limits.head.h2_max_header_list_size())
            .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
            .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .max_send_buf_size(H2_MAX_SEND_BUF)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20));
        HttpServer {
            proxy,
            limits,
            shutdown,
            tracker: TaskTracker::new(),
            tls: ArcSwapOption::empty(),
            real_ip: Arc::new(ArcSwap::from_pointee(RealIpConfig::default())),
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            per_client: PerClient::new(limits.per_client),
            builder: Arc::new(builder),
        }
    }

    /// Accepts on `listener` until shutdown or `stop` (a listener removed by
    /// reload); each connection gets the `options` of that moment.
    pub async fn accept_loop(
        self: Arc<Self>,
        listener: TcpListener,
        options: Arc<ArcSwap<Listener>>,
        stop: CancellationToken,
    ) {
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
                    let options = options.load_full();
                    // On a PROXY listener the client is only known once the
                    // header is read: it is counted then (see `handshake`).
                    let slot = if options.proxy_protocol {
                        None
                    } else {
                        match self.admit(remote.ip(), remote) {
                            Ok(slot) => slot,
                            Err(AtCap) => {
                                drop(stream);
                                continue;
                            }
                        }
                    };
                    let server = Arc::clone(&self);
                    self.tracker.spawn(async move {
                        server.serve_connection(stream, remote, options, slot).await;
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

    /// The per-client slot of a connection whose transport client is
    /// `ip`: none for a trusted proxy, which carries many clients (their
    /// addresses come in its headers); `Err` (logged) when the address is
    /// at `max_connections_per_client`.
    fn admit(&self, ip: IpAddr, remote: SocketAddr) -> Result<Option<ClientSlot>, AtCap> {
        if self.real_ip.load().trusts(ip) {
            return Ok(None);
        }
        match self.per_client.admit(ip) {
            Ok(slot) => Ok(Some(slot)),
            Err(at_cap) => {
                let key = client_key(ip);
                let cap = self.limits.per_client;
                if at_cap.warn {
                    tracing::warn!(client = %remote, address = %key, "{cap} connections open from this address (max_connections_per_client): refusing more");
                } else {
                    tracing::debug!(client = %remote, "refused: max_connections_per_client");
                }
                Err(AtCap)
            }
        }
    }

    /// Serves one accepted connection; `slot` (its per-client count) is
    /// held until it closes.
    async fn serve_connection(
        &self,
        stream: TcpStream,
        remote: SocketAddr,
        listener: Arc<Listener>,
        mut slot: Option<ClientSlot>,
    ) {
        let _ = stream.set_nodelay(true);
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(client = %remote, "connection gone before serving: {e}");
                return;
            }
        };
        let mut info = ConnInfo::plain(remote, local);
        info.redirect_https = listener.redirect_https;
        let deadline = Instant::now() + self.limits.header_timeout;
        let accepted = tokio::select! {
            _ = self.shutdown.cancelled() => return,
            r = tokio::time::timeout_at(deadline, self.handshake(stream, &listener, &mut info, &mut slot)) => r,
        };
        match accepted {
            Err(_) => {
                tracing::debug!(client = %remote, listener = %local, "no PROXY header or TLS handshake within timeouts.client_header: closed");
            }
            Ok(Err(e)) => e.log(remote, local),
            Ok(Ok(Accepted::AcmeChallenge)) => {
                tracing::info!(client = %remote, sni = ?info.tls.as_ref().and_then(|t| t.sni.clone()), "ACME: answered a TLS-ALPN-01 challenge");
            }
            Ok(Ok(Accepted::Plain(io))) => self.serve_http(io, info).await,
            Ok(Ok(Accepted::Tls(io))) => self.serve_http(io, info).await,
        }
        drop(slot);
    }

    /// What comes before HTTP: the PROXY header (then the client it names
    /// takes its per-client `slot`), the TLS handshake.
    async fn handshake(
        &self,
        stream: TcpStream,
        listener: &Listener,
        info: &mut ConnInfo,
        slot: &mut Option<ClientSlot>,
    ) -> Result<Accepted, HandshakeError> {
        let stream = if listener.proxy_protocol {
            let real_ip = self.real_ip.load();
            if !real_ip.trusted_proxies.is_empty() && !real_ip.trusts(info.peer.ip()) {
                return Err(HandshakeError::UntrustedProxy);
            }
            let (proxied, stream) = proxy_protocol::read_header(stream)
                .await
                .map_err(HandshakeError::Proxy)?;
            if let Proxied::Tcp { source, .. } = proxied {
                info.proxied = Some(source);
            }
            // The PROXY source, or the balancer itself for a LOCAL header
            // (its health checks).
            let client = info.transport_client();
            *slot = self
                .admit(client.ip(), client)
                .map_err(|AtCap| HandshakeError::PerClient)?;
            stream
        } else {
            ClientStream::new(stream)
        };
        if !listener.tls {
            return Ok(Accepted::Plain(stream));
        }
        let config = self.tls.load_full().ok_or(HandshakeError::NoTlsConfig)?;
        let tls = tokio_rustls::TlsAcceptor::from(config)
            .accept(stream)
            .await
            .map_err(HandshakeError::Tls)?;
        let (_, conn) = tls.get_ref();
        info.tls = Some(TlsInfo {
            sni: conn.server_name().map(Arc::from),
        });
        if conn.alpn_protocol() == Some(ACME_TLS_ALPN) {
            return Ok(Accepted::AcmeChallenge);
        }
        Ok(Accepted::Tls(Box::new(tls)))
    }

    /// Serves HTTP/1.1 or HTTP/2 on an accepted connection until it closes.
    async fn serve_http<I>(&self, io: I, info: ConnInfo)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let remote = info.transport_client();
        let info = Arc::new(info);
        let real_ip = Arc::clone(&self.real_ip);
        let activity = Arc::new(ConnActivity::new());
        let epoch = Instant::now();
        let proxy = Arc::clone(&self.proxy);
        let svc_activity = Arc::clone(&activity);
        let cancels = Cancels::new();
        let svc_cancels = Arc::clone(&cancels);
        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let proxy = proxy.load_full();
            let in_flight = InFlight::begin(&svc_activity, epoch);
            let watch = svc_cancels.watch();
            // What a trusted proxy's headers say of this request's client.
            let real_ip = real_ip.load();
            let info = if real_ip.trusts(info.transport_client().ip()) {
                Arc::new(info.for_request(req.headers(), &real_ip))
            } else {
                Arc::clone(&info)
            };
            async move {
                let response = proxy.handle(req, &info, Some(in_flight)).await;
                watch.answered();
                Ok::<_, Infallible>(response)
            }
        });
        let io = Watched::new(
            io,
            remote,
            Arc::clone(&activity),
            epoch,
            self.limits.send_timeout,
        );
        let conn = self.builder.serve_connection(TokioIo::new(io), service);
        let mut conn = std::pin::pin!(conn);
        let mut closing = false;
        let header_timeout = self.limits.header_timeout;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        log_connection_error(remote, e.as_ref());
                    }
                    return;
                }
                _ = self.shutdown.cancelled(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = idle_expired(&activity, epoch, self.limits.idle_timeout), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = cancels.exceeded(), if !closing => {
                    let (cancelled, requests) = cancels.counts();
                    tracing::info!(client = %remote, "the client cancelled {cancelled} of its {requests} requests before their answer (HTTP/2 rapid reset?): GOAWAY, connection closed");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                // Not graceful: the client is in the middle of a head it
                // does not finish. Dropping the connection closes it.
                _ = head_expired(&activity, epoch, header_timeout) => {
                    tracing::info!(client = %remote, "no complete request head within {header_timeout:?} (timeouts.client_header): connection closed");
                    return;
                }
            }
        }
    }
}

/// Why a connection was closed before HTTP.
#[derive(Debug)]
enum HandshakeError {
    UntrustedProxy,
    /// The PROXY header's client is at `max_connections_per_client` (logged).
    PerClient,
    Proxy(proxy_protocol::ProxyHeaderError),
    NoTlsConfig,
    Tls(std::io::Error),
}

impl HandshakeError {
    /// PROXY refusals are an operator's business (a balancer misconfigured,
    /// or someone reaching a port meant for it): info. TLS failures are
    /// everyday scanner noise: debug.
    fn log(&self, client: SocketAddr, listener: SocketAddr) {
        match self {
            HandshakeError::UntrustedProxy => tracing::info!(
                %client, %listener,
                "PROXY protocol listener: peer not in real_ip.trusted_proxies: closed"
            ),
            HandshakeError::PerClient => {}
            HandshakeError::Proxy(e) => {
                tracing::info!(%client, %listener, "PROXY protocol listener: {e}: closed");
            }
            HandshakeError::NoTlsConfig => {
                tracing::error!(%client, %listener, "TLS listener without a TLS config: closed");
            }
            HandshakeError::Tls(e) => {
                tracing::debug!(%client, %listener, "TLS handshake failed: {e}");
            }
        }
    }
}

/// A connection that hyper ended with an error: a head hyper refused
/// (it answered 400 or 431 itself) is the client's, worth a line at info;
/// the rest (resets, a client gone) at debug.
fn log_connection_error(remote: SocketAddr, e: &(dyn std::error::Error + 'static)) {
    match e.downcast_ref::<hyper::Error>() {
        Some(he) if he.is_parse_too_large() => {
            tracing::info!(client = %remote, "request head too large (max_header_size): 431, connection closed");
        }
        Some(he) if he.is_parse() => {
            tracing::info!(client = %remote, "malformed request head ({he}): 400, connection closed");
        }
        _ => match h2_abuse(e) {
            Some(h2e) => {
                tracing::info!(client = %remote, "HTTP/2: {h2e} (too many resets or CONTINUATION frames): GOAWAY ENHANCE_YOUR_CALM, connection closed")
            }
            None => tracing::debug!(client = %remote, "connection ended: {e}"),
        },
    }
}

/// The h2 error under `e` when h2 itself closed the connection for abuse
/// (rapid reset, a CONTINUATION flood, too many malformed streams).
fn h2_abuse<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a h2::Error> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(h2e) = c.downcast_ref::<h2::Error>() {
            return (h2e.is_go_away()
                && h2e.is_library()
                && h2e.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM))
            .then_some(h2e);
        }
        cause = c.source();
    }
    None
}
