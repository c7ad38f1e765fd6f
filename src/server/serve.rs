//! HTTP on one accepted connection: which protocol (HTTP/2's preface, or an
//! HTTP/1 request line), then hyper's HTTP/1.1 or HTTP/2 connection, under
//! fpmlb's head, idle and shutdown timers.
//!
//! **Parking.** hyper keeps an HTTP/1.1 connection's read and write buffers
//! (8 KiB each) for as long as the connection lives, so 10,000 idle
//! keep-alive clients would hold about 190 MiB. An HTTP/1.1 connection
//! that has been quiet for [`PARK_AFTER`] (no request in flight, no head
//! coming) is handed back by hyper without closing the socket
//! (`graceful_shutdown` while idle, then `into_parts`): hyper's state and
//! buffers are dropped and the task waits for the client's next byte on the
//! bare stream. That byte, and anything hyper had read but not parsed, are
//! replayed into a fresh hyper connection (`Rewind`). The client sees one
//! kept-alive connection throughout. A parked connection costs its socket,
//! the task and a few small shared structs (see README, Performance).
//!
//! A request that asked to close (HTTP/1.0 without keep-alive, `Connection:
//! close`) is never parked: hyper ends that connection itself.
//!
//! Futures that are big only while busy (the opening bytes, HTTP/2, each
//! hyper HTTP/1.1 connection; the TLS handshake in `server.rs`) are boxed,
//! and what a connection starts with comes boxed too, so that what a parked
//! connection's task holds is small (768 B): a task's future is as big as
//! its biggest state, and an async fn keeps its arguments for as long as
//! it runs.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::config::RealIpConfig;
use crate::http::activity::{
    ConnActivity, Dispatched, InFlight, head_expired, idle_expired, quiet_for,
};
use crate::http::files::zero_copy::{self, Windows};
use crate::http::handler::Proxy;
use crate::http::params::ConnInfo;
use crate::http::response::ResponseBody;

use super::cancels::Cancels;
use super::rewind::Rewind;
use super::streams::{StreamExec, Streams};
use super::watched::Watched;
use super::{ClientIo, ClientLimits};

/// What a connection opens with on HTTP/2 with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long an HTTP/1.1 connection stays quiet before it is parked. Well
/// above the gap between a client's back-to-back requests (a page's
/// assets, a load generator's next request: microseconds to a few ms), so
/// busy connections never pay for a new hyper connection; short enough
/// that connections opened in a burst and left idle hold hyper's buffers
/// only briefly, and the allocator reuses what they gave back.
pub const PARK_AFTER: Duration = Duration::from_millis(100);

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

/// How long closing a connection may take (TLS close_notify, FIN).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// hyper's HTTP/1.1 settings, built once, and HTTP/2's, built for each
/// connection around its own executor (`streams.rs`).
pub struct Protocols {
    h1: http1::Builder,
    h2_max_header_list_size: u32,
}

impl Protocols {
    pub fn new(limits: &ClientLimits) -> Protocols {
        let mut h1 = http1::Builder::new();
        // hyper's header timer runs from the end of the previous response,
        // so it would cut kept-alive connections at client_header: the head
        // timer is fpmlb's own (see http::activity).
        h1.timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_buf_size(limits.head.h1_max_buf_size())
            // Body frames queued and written as they are, never copied into
            // hyper's buffer: the placeholders of a static body's file
            // windows reach the socket as such (`http::files::zero_copy`).
            .writev(true)
            .keep_alive(true);
        Protocols {
            h1,
            h2_max_header_list_size: limits.head.h2_max_header_list_size(),
        }
    }

    /// HTTP/2 for one connection, whose streams run on its task.
    fn h2(&self, exec: StreamExec) -> http2::Builder<StreamExec> {
        let mut h2 = http2::Builder::new(exec);
        // HTTP/2 limits, set here rather than left to hyper's defaults so
        // that a dependency update cannot loosen them (see the constants).
        // The CONTINUATION flood protection (h2 >= 0.4.4) follows
        // max_header_list_size: more CONTINUATION frames than that list
        // needs, or a header block past it, is a GOAWAY.
        h2.timer(TokioTimer::new())
            .max_header_list_size(self.h2_max_header_list_size)
            .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
            .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .max_send_buf_size(H2_MAX_SEND_BUF)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20));
        h2
    }
}

/// What one connection's requests share.
pub struct Serving<'a> {
    pub protocols: &'a Protocols,
    pub proxy: &'a Arc<arc_swap::ArcSwap<Proxy>>,
    /// Which peers' forwarding headers name the client (per request).
    pub real_ip: &'a Arc<arc_swap::ArcSwap<RealIpConfig>>,
    pub limits: &'a ClientLimits,
    pub shutdown: &'a CancellationToken,
}

/// A connection ready for HTTP: its stream after the PROXY header and the
/// TLS handshake, and what is known of it. Handed over boxed, so that the
/// connection's task does not carry a copy of it while parked (an async
/// fn keeps its arguments for as long as it runs).
pub struct Ready {
    pub io: ClientIo,
    pub info: ConnInfo,
}

type Reply =
    Pin<Box<dyn Future<Output = Result<hyper::Response<ResponseBody>, Infallible>> + Send>>;

/// The request handler of one connection. Its futures are boxed: hyper
/// hands a connection back (`poll_without_shutdown`) only for a service
/// whose future is `Unpin`.
struct RequestService {
    proxy: Arc<arc_swap::ArcSwap<Proxy>>,
    real_ip: Arc<arc_swap::ArcSwap<RealIpConfig>>,
    info: Arc<ConnInfo>,
    activity: Arc<ConnActivity>,
    /// HTTP/2 only: the requests the client cancels (rapid reset).
    cancels: Option<Arc<Cancels>>,
    /// Cleartext HTTP/1.1 only: the socket's file windows, for static
    /// bodies sent with `sendfile` (`http::files::zero_copy`).
    zero_copy: Option<Arc<Windows>>,
}

impl hyper::service::Service<Request<Incoming>> for RequestService {
    type Response = hyper::Response<ResponseBody>;
    type Error = Infallible;
    type Future = Reply;

    fn call(&self, mut req: Request<Incoming>) -> Reply {
        let proxy = self.proxy.load_full();
        if !keeps_alive(&req) {
            self.activity.set_closing();
        }
        let in_flight = InFlight::begin(&self.activity);
        let watch = self.cancels.as_ref().map(|cancels| {
            let dispatched = Dispatched::default();
            req.extensions_mut().insert(dispatched.clone());
            cancels.watch(dispatched)
        });
        // What a trusted proxy's headers say of this request's client.
        let real_ip = self.real_ip.load();
        let info = if real_ip.trusts(self.info.transport_client().ip()) {
            Arc::new(self.info.for_request(req.headers(), &real_ip))
        } else {
            Arc::clone(&self.info)
        };
        let zero_copy = self.zero_copy.clone();
        if zero_copy.is_some() {
            req.extensions_mut().insert(zero_copy::SendsWindows);
        }
        Box::pin(async move {
            let mut response = proxy.handle(req, &info, Some(in_flight)).await;
            if let Some(windows) = &zero_copy {
                zero_copy::take_up(&mut response, windows);
            }
            if let Some(watch) = watch {
                watch.answered();
            }
            Ok(response)
        })
    }
}

/// Whether an HTTP/1 request lets the connection stay open after it
/// (HTTP/1.1 without `Connection: close`, HTTP/1.0 with `keep-alive`), as
/// hyper decides.
fn keeps_alive<B>(req: &Request<B>) -> bool {
    let tokens = || {
        req.headers()
            .get_all(hyper::header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
    };
    match req.version() {
        hyper::Version::HTTP_11 => !tokens().any(|t| t.eq_ignore_ascii_case(b"close")),
        hyper::Version::HTTP_10 => tokens().any(|t| t.eq_ignore_ascii_case(b"keep-alive")),
        _ => true,
    }
}

/// The protocol a connection opened with.
enum Opening {
    Http1(Bytes),
    Http2(Bytes),
    /// Closed (or failed) before saying.
    Gone,
}

/// Reads until the bytes either differ from HTTP/2's preface (HTTP/1) or
/// are the whole preface; what was read is handed back for replay.
async fn opening<S: AsyncRead + Unpin>(io: &mut S) -> Opening {
    let mut seen = [0u8; H2_PREFACE.len()];
    let mut n = 0;
    loop {
        match io.read(&mut seen[n..]).await {
            Ok(0) | Err(_) => return Opening::Gone,
            Ok(got) => n += got,
        }
        let ahead = Bytes::copy_from_slice(&seen[..n]);
        if seen[..n] != H2_PREFACE[..n] {
            return Opening::Http1(ahead);
        }
        if n == H2_PREFACE.len() {
            return Opening::Http2(ahead);
        }
    }
}

/// An HTTP/1.1 connection between two hyper connections: what a parked
/// connection holds.
struct Http1 {
    io: Watched<ClientIo>,
    svc: RequestService,
    /// Read but not parsed yet: the start of the next request.
    ahead: Bytes,
}

/// An HTTP/2 connection about to be served.
struct Http2 {
    io: Rewind<Watched<ClientIo>>,
    svc: RequestService,
    cancels: Arc<Cancels>,
}

impl Serving<'_> {
    /// Serves HTTP/1.1 or HTTP/2 on a connection until it closes.
    ///
    /// Everything that is big only while busy (reading the opening bytes,
    /// hyper's connection and its timers) runs boxed, so that the parked
    /// state of this future, which a parked connection's task is made of,
    /// stays small.
    pub async fn run(&self, ready: Box<Ready>) {
        let Some(mut conn) = Box::pin(self.start(ready)).await else {
            return;
        };
        loop {
            conn = match Box::pin(self.http1_until_quiet(conn)).await {
                Some(conn) => conn,
                None => return,
            };
            // Parked unless the next request (or a part of it) was
            // already read: nothing of hyper's is held until the next byte.
            if conn.ahead.is_empty() && !self.park(&mut conn).await {
                return;
            }
        }
    }

    /// The connection's first bytes, under the head timer, tell the
    /// protocol: an HTTP/2 connection is served here to its end, an
    /// HTTP/1.1 one is handed back (`None`: closed).
    async fn start(&self, ready: Box<Ready>) -> Option<Http1> {
        let Ready { io, info } = *ready;
        let remote = info.transport_client();
        let activity = Arc::new(ConnActivity::new());
        let mut io = Watched::new(io, remote, Arc::clone(&activity), self.limits.send_timeout);
        let header_timeout = self.limits.header_timeout;
        let opened = tokio::select! {
            _ = self.shutdown.cancelled() => return None,
            _ = head_expired(&activity, header_timeout) => {
                log_head_timeout(remote, header_timeout);
                return None;
            }
            opened = opening(&mut io) => opened,
        };
        let svc = |cancels, zero_copy| RequestService {
            proxy: Arc::clone(self.proxy),
            real_ip: Arc::clone(self.real_ip),
            info: Arc::new(info),
            activity: Arc::clone(&activity),
            cancels,
            zero_copy,
        };
        match opened {
            Opening::Gone => None,
            Opening::Http1(ahead) => Some(Http1 {
                svc: svc(None, io.zero_copy()),
                io,
                ahead,
            }),
            Opening::Http2(ahead) => {
                // Heads are frames of streams from now on, bounded by h2.
                activity.set_multiplexed();
                // A trusted proxy's connection carries many users' aborts:
                // the share of cancels only, not their rate.
                let cancels = Cancels::new(!self.real_ip.load().trusts(remote.ip()));
                let conn = Http2 {
                    svc: svc(Some(Arc::clone(&cancels)), None),
                    io: Rewind::new(io, ahead),
                    cancels,
                };
                self.http2(conn).await;
                None
            }
        }
    }

    /// A parked HTTP/1.1 connection waits for the client's next byte;
    /// `false` when it is to be closed (the client closed, the idle
    /// timeout, shutdown).
    async fn park(&self, conn: &mut Http1) -> bool {
        let mut first = [0u8; 1];
        // Nothing is in flight while parked: the deadline stays put.
        let idle = conn
            .svc
            .activity
            .since_last_request(self.limits.idle_timeout);
        tokio::select! {
            read = conn.io.read(&mut first) => match read {
                Ok(1) => {
                    conn.ahead = Bytes::copy_from_slice(&first);
                    true
                }
                _ => false,
            },
            _ = self.shutdown.cancelled() => false,
            () = tokio::time::sleep_until(idle) => false,
        }
    }

    /// One hyper HTTP/1.1 connection over `conn` (after its `ahead`), until
    /// it ends (`None`: the connection is closed) or has been quiet for
    /// [`PARK_AFTER`]: then the stream, the service and what hyper had read
    /// but not parsed are handed back to be parked.
    async fn http1_until_quiet(&self, conn: Http1) -> Option<Http1> {
        let activity = Arc::clone(&conn.svc.activity);
        // Bytes read ahead are the start of the next head; replayed, they
        // do not pass through `Watched` again, so its timer starts here
        // (a client that sent a request and half of the next in one write
        // would otherwise hold the connection with no timer running).
        if !conn.ahead.is_empty() {
            activity.saw_head_bytes();
        }
        let remote = conn.io.remote();
        let mut conn = self
            .protocols
            .h1
            .serve_connection(TokioIo::new(Rewind::new(conn.io, conn.ahead)), conn.svc);
        let mut closing = false;
        let mut parking = false;
        loop {
            tokio::select! {
                done = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                    if let Err(e) = done {
                        log_connection_error(remote, &e);
                        return None;
                    }
                    break;
                }
                _ = self.shutdown.cancelled(), if !closing => {
                    closing = true;
                    Pin::new(&mut conn).graceful_shutdown();
                }
                _ = idle_expired(&activity, self.limits.idle_timeout), if !closing => {
                    closing = true;
                    Pin::new(&mut conn).graceful_shutdown();
                }
                _ = quiet_for(&activity, PARK_AFTER), if !closing && !parking && !activity.is_closing() => {
                    parking = true;
                    Pin::new(&mut conn).graceful_shutdown();
                }
                // Not graceful: the client is in the middle of a head it
                // does not finish. Dropping the connection closes it.
                _ = head_expired(&activity, self.limits.header_timeout) => {
                    log_head_timeout(remote, self.limits.header_timeout);
                    return None;
                }
            }
        }
        let parts = conn.into_parts();
        let (mut io, unread) = parts.io.into_inner().into_parts();
        // Copied, so that hyper's read buffer goes now (see `unparsed`).
        let ahead = unparsed(&unread, &parts.read_buf);
        drop((unread, parts.read_buf));
        if closing || !parking || activity.is_closing() {
            // hyper ended the connection (the client closed, asked to
            // close, or fpmlb is stopping): close it as hyper would.
            let _ = tokio::time::timeout(CLOSE_GRACE, io.shutdown()).await;
            return None;
        }
        Some(Http1 {
            io,
            svc: parts.service,
            ahead,
        })
    }

    async fn http2(&self, conn: Http2) {
        let activity = Arc::clone(&conn.svc.activity);
        let remote = conn.io.inner().remote();
        let cancels = conn.cancels;
        let (exec, mut streams) = Streams::new(self.limits.send_timeout, remote);
        let mut conn = Box::pin(
            self.protocols
                .h2(exec)
                .serve_connection(TokioIo::new(conn.io), conn.svc),
        );
        let mut closing = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        log_connection_error(remote, &e);
                    }
                    break;
                }
                () = std::future::poll_fn(|cx| streams.poll_run(cx)) => {}
                _ = self.shutdown.cancelled(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = idle_expired(&activity, self.limits.idle_timeout), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = cancels.exceeded(), if !closing => {
                    let (cancelled, requests) = cancels.counts();
                    tracing::info!(client = %remote, "the client cancelled {cancelled} of its {requests} requests before their answer (HTTP/2 rapid reset?): GOAWAY, connection closed");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
        drop(conn);
        streams.finish().await;
    }
}

fn log_head_timeout(remote: SocketAddr, timeout: Duration) {
    tracing::info!(client = %remote, "no complete request head within {timeout:?} (timeouts.client_header): connection closed");
}

/// What hyper had read but not parsed (`a`: left in the rewind buffer;
/// `b`: hyper's read buffer), copied out. Never a slice of `b`: even empty,
/// a `Bytes` frozen from hyper's read buffer holds that whole buffer (8 to
/// 16 KiB), which a parked connection would then keep for as long as it
/// is parked.
fn unparsed(a: &[u8], b: &[u8]) -> Bytes {
    if a.is_empty() && b.is_empty() {
        return Bytes::new();
    }
    let mut both = BytesMut::with_capacity(a.len() + b.len());
    both.extend_from_slice(a);
    both.extend_from_slice(b);
    both.freeze()
}

/// A connection that hyper ended with an error: a head hyper refused
/// (it answered 400 or 431 itself) is the client's, worth a line at info;
/// HTTP/2 abuse that h2 itself stopped too; the rest (resets, a client
/// gone) at debug.
fn log_connection_error(remote: SocketAddr, e: &hyper::Error) {
    if e.is_parse_too_large() {
        tracing::info!(client = %remote, "request head too large (max_header_size): 431, connection closed");
    } else if e.is_parse() {
        tracing::info!(client = %remote, "malformed request head ({e}): 400, connection closed");
    } else if let Some(h2e) = h2_abuse(e) {
        tracing::info!(client = %remote, "HTTP/2: {h2e} (too many resets or CONTINUATION frames): GOAWAY ENHANCE_YOUR_CALM, connection closed");
    } else {
        tracing::debug!(client = %remote, "connection ended: {e}");
    }
}

/// The h2 error under `e` when h2 itself closed the connection for abuse
/// (rapid reset, a CONTINUATION flood, too many malformed streams).
fn h2_abuse(e: &hyper::Error) -> Option<&h2::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: hyper::Version, connection: Option<&str>) -> Request<()> {
        let mut b = Request::builder().version(version);
        if let Some(c) = connection {
            b = b.header("connection", c);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn keep_alive_follows_the_version_and_the_connection_header() {
        use hyper::Version;
        assert!(keeps_alive(&request(Version::HTTP_11, None)));
        assert!(keeps_alive(&request(Version::HTTP_11, Some("keep-alive"))));
        assert!(!keeps_alive(&request(
            Version::HTTP_11,
            Some("Upgrade, Close")
        )));
        assert!(!keeps_alive(&request(Version::HTTP_10, None)));
        assert!(keeps_alive(&request(Version::HTTP_10, Some("Keep-Alive"))));
    }

    /// What a parked connection keeps of hyper's read buffer: a copy of
    /// the unparsed bytes, never the buffer itself (hyper's `read_buf` is
    /// frozen from its whole read buffer, even when empty).
    #[test]
    fn unparsed_bytes_are_copied_out_of_hypers_buffer() {
        let mut hyper_buf = BytesMut::with_capacity(16 * 1024);
        hyper_buf.extend_from_slice(b"GET /next HTTP/1.1\r\n");
        let read_buf = hyper_buf.freeze();
        let buf_range = read_buf.as_ptr_range();

        let kept = unparsed(b"", &read_buf);
        assert_eq!(&kept[..], &read_buf[..]);
        assert!(
            !buf_range.contains(&kept.as_ptr()),
            "a slice of hyper's buffer"
        );

        let kept = unparsed(b"G", &read_buf.slice(1..));
        assert_eq!(&kept[..], &read_buf[..]);
        assert!(!buf_range.contains(&kept.as_ptr()));

        // Nothing unparsed: nothing held.
        let kept = unparsed(b"", &read_buf.slice(0..0));
        assert!(kept.is_empty());
        assert!(!buf_range.contains(&kept.as_ptr()));
    }

    #[tokio::test]
    async fn the_opening_bytes_tell_http2_from_http1() {
        let mut h2: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04";
        assert!(matches!(opening(&mut h2).await, Opening::Http2(b) if b.len() == 24));
        let mut h1: &[u8] = b"GET / HTTP/1.1\r\n";
        assert!(
            matches!(opening(&mut h1).await, Opening::Http1(b) if &b[..] == b"GET / HTTP/1.1\r\n")
        );
        let mut short: &[u8] = b"PRI *";
        assert!(matches!(opening(&mut short).await, Opening::Gone));
    }

    /// The preface may come in pieces: the protocol is settled only when it
    /// is whole, or at the first byte that differs from it.
    #[tokio::test]
    async fn the_preface_is_recognised_in_pieces() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let reading = tokio::spawn(async move { opening(&mut server).await });
        client.write_all(&H2_PREFACE[..5]).await.unwrap();
        tokio::task::yield_now().await;
        client.write_all(&H2_PREFACE[5..]).await.unwrap();
        assert!(matches!(reading.await.unwrap(), Opening::Http2(b) if &b[..] == H2_PREFACE));

        let (mut client, mut server) = tokio::io::duplex(64);
        let reading = tokio::spawn(async move { opening(&mut server).await });
        client.write_all(b"PRI").await.unwrap();
        tokio::task::yield_now().await;
        client.write_all(b" /x HTTP/1.1\r\n").await.unwrap();
        assert!(matches!(reading.await.unwrap(), Opening::Http1(b) if b.starts_with(b"PRI /x")));
    }
}
