//! One FastCGI connection to a php-fpm pool: where it goes, the socket and
//! its read buffer.
//!
//! Owns the I/O the codec in `record` leaves out: connecting (TCP or unix
//! socket) to an `Endpoint`, writing a request head in one call, and reading
//! whole records. It knows nothing of pooling or HTTP.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::fastcgi::record::{self, ProtocolError, Record};

/// How much to make room for before each read: php-fpm writes STDOUT in
/// records of up to 64 KiB, so one read takes a whole record. Measured with
/// integration/bench.sh (1 MiB responses, 32 connections): 16 KiB reads gave
/// 706 req/s at 110 CPU s per 100k requests, 64 KiB 948 req/s at 68 s.
const READ_RESERVE: usize = 64 * 1024;

/// How much to make room for before a response's first read, which takes
/// most responses whole: a small allocation (jemalloc's largest slab
/// class), where 64 KiB is a large one, made for every response whose
/// bytes are still on their way to the client when the connection is
/// read again. Reads after the first make room for [`READ_RESERVE`].
const FIRST_READ_RESERVE: usize = 14 * 1024;

/// How much of a response [`Connection::write_all`] takes in while a write
/// is blocked. A script may answer before it reads its request body (PHP
/// reads a PUT body only when the script asks for `php://input`, and the
/// rest of any body after the script): php-fpm then blocks writing its
/// response while fpmlb blocks writing the body, each waiting for the other
/// to read. Taking the response in while the body goes out breaks that
/// wait for any answer up to this size (beyond the sockets' own buffers);
/// a script that writes more before it reads still waits until
/// `timeouts.send`, as it would behind nginx. Per connection, so at most
/// this much per php-fpm worker.
pub const READ_WHILE_WRITING: usize = 1024 * 1024;

/// Where a backend's FastCGI listener is, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Why reading from a backend failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("backend closed the connection in the middle of a record")]
    TruncatedRecord,
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
}

/// The socket of a backend connection, TCP or unix.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// An open connection to a php-fpm pool.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    read_buf: BytesMut,
    /// Reads since the last write: the first read of a response needs no
    /// quick ACK (see `ack_now`), so most small responses cost no setsockopt.
    reads_since_write: u32,
    /// The request id of the last exchange begun on this connection.
    request_id: u16,
    /// Readiness checks (GET_VALUES) sent behind requests whose answers
    /// have not been read: see [`Connection::check_ready_now`]. At most two:
    /// the last request's, and the one before it when the connection was
    /// lent again before that one's answer came.
    checks_pending: u8,
    /// A readiness check was answered on this connection once.
    checked: bool,
}

/// Whether the php-fpm worker behind a connection is back waiting for a
/// request, as its answer to the readiness check sent behind the last
/// request tells (see [`Connection::check_ready_now`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Answered (or none was asked): the worker reads the next request at once.
    Ready,
    /// Not answered yet: the worker still runs the last script, which sent
    /// its whole response and works on (`fastcgi_finish_request()`).
    Busy,
    /// Closed, or something other than the answer came: not reusable.
    Broken,
}

impl Connection {
    /// Connects within `timeout`. TCP connections get TCP_NODELAY: a request
    /// head and its body go out as they are written, never held by Nagle.
    pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> io::Result<Connection> {
        let connect = async {
            match endpoint {
                Endpoint::Tcp(addr) => {
                    let stream = TcpStream::connect(addr).await?;
                    stream.set_nodelay(true)?;
                    Ok::<_, io::Error>(Stream::Tcp(stream))
                }
                Endpoint::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
            }
        };
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        Ok(Connection {
            stream,
            // Sized by what it starts with: a buffer that must grow while
            // its bytes are still referenced grows to at least this.
            read_buf: BytesMut::with_capacity(FIRST_READ_RESERVE),
            reads_since_write: 0,
            request_id: 0,
            checks_pending: 0,
            checked: false,
        })
    }

    /// The same connection, registered with the I/O driver of the runtime
    /// this runs on rather than the one it was opened on (two `epoll_ctl`s):
    /// its readiness then wakes this thread directly, not the other thread
    /// to pass it on (`crate::runtime`).
    pub fn rehome(self) -> io::Result<Connection> {
        let stream = match self.stream {
            Stream::Tcp(s) => Stream::Tcp(TcpStream::from_std(s.into_std()?)?),
            Stream::Unix(s) => Stream::Unix(UnixStream::from_std(s.into_std()?)?),
        };
        Ok(Connection { stream, ..self })
    }

    /// A request id for the next exchange on this connection: 1 for the
    /// first, then each exchange a new one (1..=65535, 0 being the
    /// management id). A record that arrives late from an earlier exchange
    /// carries that exchange's id, so it can never be taken for part of the
    /// answer to the next request on a kept-alive connection.
    pub fn next_request_id(&mut self) -> u16 {
        self.request_id = self.request_id.checked_add(1).unwrap_or(1);
        self.request_id
    }

    /// Writes all of `buf` (a whole request head, or a piece of body).
    /// While the socket takes no more, whatever php-fpm sends meanwhile is
    /// read into the read buffer, up to [`READ_WHILE_WRITING`] bytes, for
    /// [`Connection::read_record`] to find (see there why).
    pub async fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        self.reads_since_write = 0;
        let mut read_closed = false;
        std::future::poll_fn(|cx| {
            loop {
                if buf.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                match Pin::new(&mut self.stream).poll_write(cx, buf) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        buf = buf.get(n..).unwrap_or_default();
                        continue;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
                if read_closed || self.read_buf.len() >= READ_WHILE_WRITING {
                    return Poll::Pending;
                }
                self.read_buf.reserve(READ_RESERVE);
                match tokio_util::io::poll_read_buf(
                    Pin::new(&mut self.stream),
                    cx,
                    &mut self.read_buf,
                ) {
                    // php-fpm closed its side: the write fails next, or the
                    // reads after it find the end.
                    Poll::Ready(Ok(0)) => read_closed = true,
                    Poll::Ready(Ok(_)) => self.reads_since_write = 1,
                    // The write tells of a broken connection too; the
                    // reads after it see this error again.
                    Poll::Ready(Err(_)) => read_closed = true,
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await
    }

    /// Whether the read buffer holds response records of request `id`
    /// (taken in while writing): the script ran, whatever befalls the write.
    pub fn holds_output_for(&self, id: u16) -> bool {
        record::holds_output_for(&self.read_buf, id)
    }

    /// Whether [`Connection::write_all`] holds as much of a response as it
    /// takes in while writing: a write that waits now waits for a script
    /// that answered without reading its body.
    pub fn read_while_writing_full(&self) -> bool {
        self.read_buf.len() >= READ_WHILE_WRITING
    }

    /// Reads the next whole record. `Ok(None)` is a clean close between records.
    pub async fn read_record(&mut self) -> Result<Option<(u16, Record)>, ConnError> {
        loop {
            if let Some(found) = self.buffered_record()? {
                return Ok(Some(found));
            }
            if self.reads_since_write > 0 {
                // Data came and the response goes on: ACK it now.
                self.ack_now();
            }
            let reserve = if self.reads_since_write == 0 {
                FIRST_READ_RESERVE
            } else {
                READ_RESERVE
            };
            self.reads_since_write = self.reads_since_write.saturating_add(1);
            self.read_buf.reserve(reserve);
            let n = self.stream.read_buf(&mut self.read_buf).await?;
            if n == 0 {
                return if self.read_buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ConnError::TruncatedRecord)
                };
            }
        }
    }

    /// A readiness check went out behind the request just sent: php-fpm
    /// answers it when its worker comes back for the next request, that is
    /// when the script has ended, which can be well after its END_REQUEST
    /// (`fastcgi_finish_request()`).
    pub fn ready_check_sent(&mut self) {
        self.checks_pending = self.checks_pending.saturating_add(1);
    }

    /// Readiness checks whose answers have not been read.
    pub fn checks_pending(&self) -> u8 {
        self.checks_pending
    }

    /// An exchange read the answer to the oldest check pending.
    pub fn check_answered(&mut self) {
        self.checks_pending = self.checks_pending.saturating_sub(1);
        self.checked = true;
    }

    /// Whether a readiness check was answered on this connection once.
    pub fn was_checked(&self) -> bool {
        self.checked
    }

    /// Whether the worker is back for the next request, without waiting:
    /// the check's answer buffered already, or read now (one non-blocking
    /// read).
    pub fn check_ready_now(&mut self) -> Readiness {
        if self.checks_pending == 0 {
            return Readiness::Ready;
        }
        if self.read_buf.is_empty() {
            let mut chunk = [0u8; 64];
            match self.try_read(&mut chunk) {
                Ok(0) => return Readiness::Broken,
                Ok(n) => self.read_buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Readiness::Busy,
                Err(_) => return Readiness::Broken,
            }
        }
        loop {
            match record::parse(&mut self.read_buf) {
                Ok(Some(answer)) => match self.take_answer(answer) {
                    Readiness::Busy if !self.read_buf.is_empty() => {}
                    readiness => return readiness,
                },
                // Part of the answer: the rest is on its way.
                Ok(None) => return Readiness::Busy,
                Err(_) => return Readiness::Broken,
            }
        }
    }

    /// Waits for the readiness check's answer (the worker ends the script
    /// it runs).
    pub async fn await_ready(&mut self) -> Readiness {
        // The answer is a few dozen bytes: read into a small buffer, not
        // the response's 64 KiB reserve.
        let mut chunk = [0u8; 64];
        while self.checks_pending > 0 {
            match record::parse(&mut self.read_buf) {
                Ok(Some(answer)) => {
                    if self.take_answer(answer) == Readiness::Broken {
                        return Readiness::Broken;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(_) => return Readiness::Broken,
            }
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Readiness::Broken,
                Ok(n) => self.read_buf.extend_from_slice(&chunk[..n]),
            }
        }
        Readiness::Ready
    }

    /// The record read where a check's answer belongs: that answer makes
    /// the connection ready once no other is pending; anything else breaks
    /// it.
    fn take_answer(&mut self, (id, record): (u16, Record)) -> Readiness {
        if id != 0 || !matches!(record, Record::GetValuesResult(_)) {
            return Readiness::Broken;
        }
        self.check_answered();
        match (self.checks_pending, self.read_buf.is_empty()) {
            (0, true) => Readiness::Ready,
            (0, false) => Readiness::Broken,
            _ => Readiness::Busy,
        }
    }

    /// The next record if it is buffered in full, without reading.
    ///
    /// # Errors
    ///
    /// The buffered bytes are no valid record.
    pub fn buffered_record(&mut self) -> Result<Option<(u16, Record)>, ConnError> {
        Ok(record::parse(&mut self.read_buf)?)
    }

    /// Whether the next record, buffered in full, is STDOUT with data: the
    /// next piece of body needs no read.
    pub fn has_buffered_data(&self) -> bool {
        matches!(record::whole_at_front(&self.read_buf),
            Some((kind, len)) if kind == record::RecordType::Stdout as u8 && len > 0)
    }

    /// php-fpm leaves Nagle on for its sockets. It writes a response's STDOUT,
    /// then the small END_REQUEST record, which Nagle holds back until our ACK
    /// for the STDOUT arrives; a delayed ACK (40 ms on Linux) then stalls every
    /// kept-alive response that spans more than one segment (nginx with
    /// fastcgi_keep_conn and HAProxy with keep-conn both show it). Setting
    /// TCP_QUICKACK sends the pending ACK at once; it is done before every read
    /// but the first of a response. Measured with `make bench` (64 KiB, 32
    /// connections): 275 req/s and p50 124 ms without it, 5100 req/s and
    /// p50 5.7 ms with it. The answer to a readiness check, a small segment
    /// behind the small END_REQUEST one, waits for the same ACK.
    pub fn ack_now(&self) {
        if let Stream::Tcp(stream) = &self.stream {
            // Best effort: an error here only costs the optimisation.
            let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
        }
    }

    /// Whether a kept-alive connection taken from the pool can carry a new
    /// request: php-fpm closes it when a worker exits (pm.max_requests,
    /// reload), and any byte waiting on it now is left over from an earlier
    /// exchange. Both make it unusable; checking costs one non-blocking read.
    pub fn is_reusable(&mut self) -> bool {
        if !self.read_buf.is_empty() || self.checks_pending > 0 {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// One non-blocking read into `buf`.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.stream {
            Stream::Tcp(s) => s.try_read(buf),
            Stream::Unix(s) => s.try_read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::fastcgi::record::RecordType;

    fn stdout(data: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        record::encode_stream(&mut out, RecordType::Stdout, 1, data);
        out
    }

    /// A small response read while the one before is still held (on its
    /// way to a client) takes a small buffer, not 64 KiB; a large one is
    /// still read whole.
    #[tokio::test]
    async fn a_small_response_takes_a_small_buffer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::Tcp(listener.local_addr().unwrap());
        let big = vec![b'x'; 60_000];
        let answers = [stdout(b"small"), stdout(b"small"), stdout(&big)];
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for answer in answers {
                let mut request = [0u8; 1];
                s.read_exact(&mut request).await.unwrap();
                s.write_all(&answer).await.unwrap();
            }
        });
        let mut conn = Connection::connect(&endpoint, Duration::from_secs(5))
            .await
            .unwrap();
        let mut held = Vec::new();
        for expected in [b"small".to_vec(), b"small".to_vec(), big] {
            conn.write_all(b"?").await.unwrap();
            let Some((1, Record::Stdout(data))) = conn.read_record().await.unwrap() else {
                panic!("a STDOUT record");
            };
            assert_eq!(data, expected);
            if expected.len() < 100 {
                assert!(
                    conn.read_buf.capacity() <= FIRST_READ_RESERVE,
                    "capacity {} for a small response",
                    conn.read_buf.capacity()
                );
            }
            held.push(data);
        }
    }

    /// A backend that answers before it reads the request (a script that
    /// sends its response, then reads its body): the write goes through,
    /// as the response is taken in meanwhile, and the records are read
    /// after it. Written first and read after, each side would wait for
    /// the other for ever (the hang guard fails the test).
    #[tokio::test]
    async fn a_response_sent_before_the_body_is_read_does_not_block_the_write() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::Tcp(listener.local_addr().unwrap());
        let answer = vec![b'a'; 60_000];
        let records = 12;
        let body = vec![b'b'; 8 * 1024 * 1024];
        let body_len = body.len();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // Small, so that the answer cannot wait in the kernel instead.
            socket2::SockRef::from(&s)
                .set_send_buffer_size(16 * 1024)
                .unwrap();
            for _ in 0..records {
                s.write_all(&stdout(&answer)).await.unwrap();
            }
            let mut got = vec![0u8; body_len];
            s.read_exact(&mut got).await.unwrap();
        });
        let mut conn = Connection::connect(&endpoint, Duration::from_secs(5))
            .await
            .unwrap();
        let hang_guard = Duration::from_secs(60);
        tokio::time::timeout(hang_guard, conn.write_all(&body))
            .await
            .expect("the write went through")
            .unwrap();
        for _ in 0..records {
            let Some((1, Record::Stdout(data))) = conn.read_record().await.unwrap() else {
                panic!("a STDOUT record");
            };
            assert_eq!(data.len(), 60_000);
        }
        server.await.unwrap();
    }
}
