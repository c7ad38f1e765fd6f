//! The listening side: accept loops, per-connection HTTP (1.1 and 2 on the
//! same port, `serve.rs`, which parks quiet HTTP/1.1 connections without
//! hyper's buffers), connection limits (a global
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
//!
//! The accept loops run on the daemon's runtime; each accepted connection
//! is served on one of the serving threads (`crate::runtime`), the one
//! serving the fewest, for its whole life.

mod proxy_protocol;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Listener, RealIpConfig};
use crate::http::handler::Proxy;
use crate::http::limits::HeadLimits;
use crate::http::params::{ConnInfo, TlsInfo};
use crate::runtime::Workers;
use crate::tls::ACME_TLS_ALPN;
use proxy_protocol::{ClientStream, Proxied};

mod cancels;
mod rewind;
mod serve;
mod streams;
mod watched;

use crate::http::per_client::ClientSlot;
pub use crate::http::per_client::{PerClient, client_key};
use serve::{Protocols, Ready, Serving};

/// A connection refused by `max_connections_per_client` (already logged).
struct AtCap;

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
    protocols: Protocols,
    /// The threads connections are served on; `None`: the accept loop's
    /// own runtime (tests).
    workers: Option<Arc<Workers>>,
}

/// An accepted connection's stream after its PROXY header and TLS
/// handshake, cleartext (`Left`) or TLS (`Right`), as one type: hyper's
/// connection and the parked state are then one type too (one copy of the
/// code; the TLS stream is boxed, so a parked connection's task is as
/// small as the cleartext case allows).
pub type ClientIo = Either<ClientStream, Box<tokio_rustls::server::TlsStream<ClientStream>>>;

/// A connection ready for HTTP.
enum Accepted {
    Http(ClientIo),
    /// A TLS-ALPN-01 validation: the handshake was the whole answer.
    AcmeChallenge,
}

/// A connection just accepted, handed to its task boxed: an async fn keeps
/// its arguments for as long as it runs, and a parked connection's task
/// should not carry what only its first moments need.
struct Arrival {
    /// Taken off the accept loop's runtime, registered with the serving
    /// thread's when its task starts.
    stream: std::net::TcpStream,
    remote: SocketAddr,
    listener: Arc<Listener>,
    slot: Option<ClientSlot>,
}

impl HttpServer {
    pub fn new(
        proxy: Arc<arc_swap::ArcSwap<Proxy>>,
        limits: ClientLimits,
        shutdown: CancellationToken,
    ) -> HttpServer {
        HttpServer {
            proxy,
            limits,
            shutdown,
            tracker: TaskTracker::new(),
            tls: ArcSwapOption::empty(),
            real_ip: Arc::new(ArcSwap::from_pointee(RealIpConfig::default())),
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            per_client: PerClient::new(limits.per_client),
            protocols: Protocols::new(&limits),
            workers: None,
        }
    }

    /// Serves connections on `workers` rather than the accept loop's runtime.
    pub fn with_workers(mut self, workers: Arc<Workers>) -> HttpServer {
        self.workers = Some(workers);
        self
    }

    /// The serving threads, if any.
    pub fn workers(&self) -> Option<&Arc<Workers>> {
        self.workers.as_ref()
    }

    fn serving(&self) -> Serving<'_> {
        Serving {
            protocols: &self.protocols,
            proxy: &self.proxy,
            real_ip: &self.real_ip,
            limits: &self.limits,
            shutdown: &self.shutdown,
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
                    let stream = match stream.into_std() {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!(client = %remote, "connection gone before serving: {e}");
                            continue;
                        }
                    };
                    let arrival = Box::new(Arrival {
                        stream,
                        remote,
                        listener: options,
                        slot,
                    });
                    let serve = self
                        .tracker
                        .track_future(Arc::clone(&self).serve_connection(arrival, permit));
                    match &self.workers {
                        Some(workers) => workers.spawn_connection(serve),
                        None => drop(tokio::spawn(serve)),
                    }
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

    /// Serves one accepted connection; its per-client slot and its
    /// `permit` are held until it closes.
    async fn serve_connection(
        self: Arc<Self>,
        arrival: Box<Arrival>,
        permit: OwnedSemaphorePermit,
    ) {
        let Arrival {
            stream,
            remote,
            listener,
            mut slot,
        } = *arrival;
        let stream = match TcpStream::from_std(stream) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(client = %remote, "cannot serve a connection: {e}");
                return;
            }
        };
        // Boxed: the TLS handshake's future (rustls' connection state) is
        // big, and a task is as big as its biggest state.
        let ready = Box::pin(self.before_http(stream, remote, &listener, &mut slot)).await;
        drop(listener);
        if let Some(ready) = ready {
            self.serving().run(ready).await;
        }
        drop(slot);
        drop(permit);
    }

    /// The PROXY header and the TLS handshake, within `timeouts.client_header`.
    async fn before_http(
        &self,
        stream: TcpStream,
        remote: SocketAddr,
        listener: &Listener,
        slot: &mut Option<ClientSlot>,
    ) -> Option<Box<Ready>> {
        let _ = stream.set_nodelay(true);
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(client = %remote, "connection gone before serving: {e}");
                return None;
            }
        };
        let mut info = ConnInfo::plain(remote, local);
        info.redirect_https = listener.redirect_https;
        let deadline = Instant::now() + self.limits.header_timeout;
        let accepted = tokio::select! {
            _ = self.shutdown.cancelled() => return None,
            r = tokio::time::timeout_at(deadline, self.handshake(stream, listener, &mut info, slot)) => r,
        };
        match accepted {
            Err(_) => {
                tracing::debug!(client = %remote, listener = %local, "no PROXY header or TLS handshake within timeouts.client_header: closed");
                None
            }
            Ok(Err(e)) => {
                e.log(remote, local);
                None
            }
            Ok(Ok(Accepted::AcmeChallenge)) => {
                tracing::info!(client = %remote, sni = ?info.tls.as_ref().and_then(|t| t.sni.clone()), "ACME: answered a TLS-ALPN-01 challenge");
                None
            }
            Ok(Ok(Accepted::Http(io))) => {
                info.requests = slot.as_ref().and_then(ClientSlot::requests);
                Some(Box::new(Ready { io, info }))
            }
        }
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
            ClientStream::new(stream, bytes::Bytes::new())
        };
        if !listener.tls {
            return Ok(Accepted::Http(Either::Left(stream)));
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
        Ok(Accepted::Http(Either::Right(Box::new(tls))))
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
