//! The request body on its way to FCGI_STDIN, in bounded memory.
//!
//! php-fpm needs CONTENT_LENGTH before the body, and a php-fpm worker that
//! waits for a slow client serves nobody else, so by default (nginx's
//! `fastcgi_request_buffering on`) every body is read whole before a backend
//! is picked: in memory up to `buffer_size`, then in an anonymous temp file,
//! up to `max_body_size` (413 beyond). A client that sends nothing for
//! `timeout` between two reads gets 408; either way it never held a worker.
//!
//! Memory is bounded twice: per request by `buffer_size`, and for all
//! requests at once by a budget ([`ByteBudget`]): when it is taken, bodies
//! go straight to temp files, so many clients each sending a body just
//! under `buffer_size` cannot grow fpmlb's memory without bound.
//!
//! With buffering off, a body with a Content-Length streams to the backend
//! as it arrives (read whole first when it is small, so head and body leave
//! in one write and a retry can send it again); a body without one (chunked,
//! or HTTP/2 without content-length) is still read first, so that php-fpm
//! gets its CONTENT_LENGTH (nginx streams such a body without one).

use std::io::SeekFrom;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;

use crate::http::budget::{self, ByteBudget};
use crate::http::error::ClientError;

/// How much of a spooled body is read from its temp file per STDIN write.
const FILE_CHUNK: usize = 64 * 1024;

/// Request body bytes all requests together may hold in memory: a thousand
/// bodies of the default `body_buffer_size` (64 KiB). Beyond it, bodies are
/// read into temp files: slower, but the RSS stays flat.
pub const BODY_MEMORY: usize = 64 * 1024 * 1024;

/// What all request bodies together may hold.
#[derive(Debug, Clone)]
pub struct BodyBudgets {
    /// In memory: [`BODY_MEMORY`].
    pub memory: ByteBudget,
    /// In temp files: `request_temp_total` (a tmpfs is memory too).
    pub temp: ByteBudget,
}

/// Limits from the config.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// 0 means no limit, as nginx's client_max_body_size 0.
    pub max_body_size: u64,
    pub buffer_size: usize,
    /// Read every body whole before a backend is picked (request_buffering).
    pub buffering: bool,
    /// Longest wait for the next piece of a body (timeouts.client_body).
    pub timeout: Duration,
}

/// A request body ready to be sent.
#[derive(Debug)]
pub enum RequestBody<B> {
    Empty,
    /// All of it, in memory.
    Memory(Bytes),
    /// All of it, in a temp file (deleted when dropped), with its share of
    /// `request_temp_total`.
    File {
        file: tokio::fs::File,
        len: u64,
        share: Option<OwnedSemaphorePermit>,
    },
    /// Still with the client: sent as it arrives, once (request_buffering off).
    Stream {
        body: B,
        len: u64,
    },
}

impl<B> RequestBody<B> {
    /// The CONTENT_LENGTH to declare (None: no body and none declared).
    pub fn content_length(&self, declared: Option<u64>) -> Option<u64> {
        match self {
            RequestBody::Empty => declared,
            RequestBody::Memory(b) => Some(b.len() as u64),
            RequestBody::File { len, .. } | RequestBody::Stream { len, .. } => Some(*len),
        }
    }

    /// Whether it can be sent again to another backend.
    pub fn is_replayable(&self) -> bool {
        !matches!(self, RequestBody::Stream { .. })
    }
}

/// The Content-Length header's value, if valid; a malformed one is a 400
/// (hyper rejects those on HTTP/1 already; HTTP/2 passes them on).
pub fn declared_length(headers: &http::HeaderMap) -> Result<Option<u64>, ClientError> {
    match headers.get(http::header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or(ClientError::Body("malformed Content-Length".into())),
    }
}

/// Takes the body of a request as far as needed before contacting a backend.
pub async fn prepare<B>(
    body: B,
    declared: Option<u64>,
    limits: BodyLimits,
    budgets: &BodyBudgets,
) -> Result<RequestBody<B>, ClientError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let over = |n: u64| limits.max_body_size > 0 && n > limits.max_body_size;
    match declared {
        Some(n) if over(n) => Err(ClientError::BodyTooLarge {
            limit: limits.max_body_size,
        }),
        Some(0) => Ok(RequestBody::Empty),
        Some(n) if limits.buffering || n <= limits.buffer_size as u64 => {
            spool(body, limits, Some(n), budgets).await
        }
        Some(n) => Ok(RequestBody::Stream { body, len: n }),
        None if body.is_end_stream() => Ok(RequestBody::Empty),
        None => spool(body, limits, None, budgets).await,
    }
}

/// The next data frame (trailers are skipped: CGI has no place for them),
/// waiting at most `timeout` for it.
pub async fn next_data<B>(body: &mut B, timeout: Duration) -> Result<Option<Bytes>, ClientError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    loop {
        let frame = tokio::time::timeout(timeout, body.frame())
            .await
            .map_err(|_| ClientError::BodyTimeout(timeout))?;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => return Err(ClientError::Body(e.to_string())),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data()
                    && !data.is_empty()
                {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Reads a whole body: in memory up to `buffer_size` (and while the memory
/// budget lasts), then in a temp file (while the temp budget lasts: 503
/// past it). With `expected` (a Content-Length), the body must have
/// exactly that length.
async fn spool<B>(
    mut body: B,
    limits: BodyLimits,
    expected: Option<u64>,
    budgets: &BodyBudgets,
) -> Result<RequestBody<B>, ClientError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    // Grown as the body comes, never allocated ahead of the budget.
    let mut memory = BytesMut::new();
    let mut share: Option<OwnedSemaphorePermit> = None;
    let mut file: Option<tokio::fs::File> = None;
    let mut file_share: Option<OwnedSemaphorePermit> = None;
    let no_room = || ClientError::NoTempRoom {
        total: budgets.temp.total(),
    };
    let mut len: u64 = 0;
    while let Some(data) = next_data(&mut body, limits.timeout).await? {
        len += data.len() as u64;
        if limits.max_body_size > 0 && len > limits.max_body_size {
            return Err(ClientError::BodyTooLarge {
                limit: limits.max_body_size,
            });
        }
        if expected.is_some_and(|n| len > n) {
            return Err(ClientError::Body("body longer than Content-Length".into()));
        }
        if let Some(f) = file.as_mut() {
            if !budgets.temp.take(data.len(), &mut file_share) {
                return Err(no_room());
            }
            f.write_all(&data).await.map_err(spool_error)?;
        } else if memory.len() + data.len() <= limits.buffer_size
            && budgets.memory.take(data.len(), &mut share)
        {
            memory.extend_from_slice(&data);
        } else {
            if !budgets
                .temp
                .take(memory.len() + data.len(), &mut file_share)
            {
                return Err(no_room());
            }
            let std_file = temp_file().await.map_err(spool_error)?;
            let mut f = tokio::fs::File::from_std(std_file);
            f.write_all(&memory).await.map_err(spool_error)?;
            f.write_all(&data).await.map_err(spool_error)?;
            memory = BytesMut::new();
            share = None;
            file = Some(f);
        }
    }
    if expected.is_some_and(|n| len != n) {
        return Err(ClientError::BodyTruncated);
    }
    match file {
        Some(mut f) => {
            f.flush().await.map_err(spool_error)?;
            Ok(RequestBody::File {
                file: f,
                len,
                share: file_share,
            })
        }
        None if len == 0 => Ok(RequestBody::Empty),
        None => Ok(RequestBody::Memory(budget::holding(memory.freeze(), share))),
    }
}

/// An anonymous temp file (in `TMPDIR`, unlinked), made on the blocking
/// pool: a slow or stalled disk holds that thread, not this one's requests.
pub async fn temp_file() -> std::io::Result<std::fs::File> {
    tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(std::io::Error::other)?
}

fn spool_error(e: std::io::Error) -> ClientError {
    tracing::error!("cannot spool a request body to a temp file: {e}");
    ClientError::Body(format!("spooling the body: {e}"))
}

/// Reads a spooled body from the start, a piece at a time, for `each`.
pub async fn read_file_chunks(
    file: &mut tokio::fs::File,
    mut each: impl AsyncChunk,
) -> Result<(), FileSendError> {
    file.seek(SeekFrom::Start(0))
        .await
        .map_err(FileSendError::Io)?;
    let mut buf = vec![0u8; FILE_CHUNK];
    loop {
        let n = file.read(&mut buf).await.map_err(FileSendError::Io)?;
        if n == 0 {
            return Ok(());
        }
        each.chunk(&buf[..n]).await.map_err(FileSendError::Sink)?;
    }
}

/// Where [`read_file_chunks`] sends each piece.
pub trait AsyncChunk {
    fn chunk(
        &mut self,
        data: &[u8],
    ) -> impl std::future::Future<Output = Result<(), crate::fastcgi::exchange::ExchangeError>>;
}

/// A spooled body could not be sent: our file or the backend failed.
#[derive(Debug)]
pub enum FileSendError {
    Io(std::io::Error),
    Sink(crate::fastcgi::exchange::ExchangeError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn limits(max: u64, buffer: usize) -> BodyLimits {
        BodyLimits {
            max_body_size: max,
            buffer_size: buffer,
            buffering: true,
            timeout: Duration::from_secs(60),
        }
    }

    fn budget() -> BodyBudgets {
        budgets(BODY_MEMORY, 1 << 30)
    }

    fn budgets(memory: usize, temp: usize) -> BodyBudgets {
        BodyBudgets {
            memory: ByteBudget::new(memory),
            temp: ByteBudget::new(temp),
        }
    }

    fn streaming(max: u64, buffer: usize) -> BodyLimits {
        BodyLimits {
            buffering: false,
            ..limits(max, buffer)
        }
    }

    type Chunks = StreamBody<
        futures_util::stream::Iter<std::vec::IntoIter<Result<http_body::Frame<Bytes>, String>>>,
    >;

    fn chunked(parts: &[&[u8]]) -> Chunks {
        let frames: Vec<Result<http_body::Frame<Bytes>, String>> = parts
            .iter()
            .map(|p| Ok(http_body::Frame::data(Bytes::copy_from_slice(p))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn declared_over_limit_is_413_before_reading() {
        let r = prepare(
            Full::new(Bytes::from_static(b"x")),
            Some(2_000_000),
            limits(1 << 20, 1024),
            &budget(),
        )
        .await;
        assert!(matches!(r, Err(ClientError::BodyTooLarge { .. })));
    }

    #[tokio::test]
    async fn small_declared_body_is_read_whole() {
        let r = prepare(
            chunked(&[b"ab", b"cd"]),
            Some(4),
            limits(1 << 20, 1024),
            &budget(),
        )
        .await
        .unwrap();
        assert!(matches!(&r, RequestBody::Memory(b) if &b[..] == b"abcd"));
        assert!(r.is_replayable());
    }

    #[tokio::test]
    async fn short_declared_body_is_an_error() {
        let r = prepare(chunked(&[b"ab"]), Some(4), limits(1 << 20, 1024), &budget()).await;
        assert!(matches!(r, Err(ClientError::BodyTruncated)));
    }

    #[tokio::test]
    async fn large_declared_body_streams_with_buffering_off() {
        let r = prepare(
            chunked(&[b"abcd"]),
            Some(4),
            streaming(1 << 20, 2),
            &budget(),
        )
        .await
        .unwrap();
        assert!(matches!(r, RequestBody::Stream { len: 4, .. }));
        assert!(!r.is_replayable());
        // Small ones are still read whole, so they can be retried.
        let r = prepare(chunked(&[b"ab"]), Some(2), streaming(1 << 20, 2), &budget())
            .await
            .unwrap();
        assert!(matches!(&r, RequestBody::Memory(b) if &b[..] == b"ab"));
    }

    #[tokio::test]
    async fn large_declared_body_is_spooled_whole_before_the_pick() {
        let r = prepare(
            chunked(&[b"01234", b"56789"]),
            Some(10),
            limits(1 << 20, 4),
            &budget(),
        )
        .await
        .unwrap();
        let RequestBody::File { len: 10, .. } = &r else {
            panic!("expected a file, got {r:?}")
        };
        assert!(r.is_replayable());
        // Short of its Content-Length: the client's fault, before any backend.
        let r = prepare(
            chunked(&[b"01234"]),
            Some(10),
            limits(1 << 20, 4),
            &budget(),
        )
        .await;
        assert!(matches!(r, Err(ClientError::BodyTruncated)));
        let r = prepare(
            chunked(&[b"01234", b"56789"]),
            Some(6),
            limits(1 << 20, 4),
            &budget(),
        )
        .await;
        assert!(matches!(r, Err(ClientError::Body(_))), "{r:?}");
    }

    /// A body that never ends: one piece, then nothing.
    #[derive(Debug)]
    struct Stalled(Option<Bytes>);

    impl Body for Stalled {
        type Data = Bytes;
        type Error = String;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, String>>> {
            match self.0.take() {
                Some(b) => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(b)))),
                None => std::task::Poll::Pending,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out_between_reads() {
        for declared in [Some(100_000), None] {
            let started = tokio::time::Instant::now();
            let r = prepare(
                Stalled(Some(Bytes::from_static(b"A"))),
                declared,
                limits(1 << 20, 16),
                &budget(),
            )
            .await;
            assert!(matches!(r, Err(ClientError::BodyTimeout(_))), "{r:?}");
            assert_eq!(r.unwrap_err().status(), http::StatusCode::REQUEST_TIMEOUT);
            // Paused time: exactly the configured wait, not more.
            assert_eq!(started.elapsed(), Duration::from_secs(60));
        }
    }

    #[tokio::test]
    async fn chunked_body_spills_to_a_file_and_reads_back() {
        let r = prepare(
            chunked(&[b"0123", b"4567", b"89"]),
            None,
            limits(1 << 20, 6),
            &budget(),
        )
        .await
        .unwrap();
        let RequestBody::File { mut file, len, .. } = r else {
            panic!("expected a file")
        };
        assert_eq!(len, 10);
        struct Collect(Vec<u8>);
        impl AsyncChunk for &mut Collect {
            async fn chunk(
                &mut self,
                data: &[u8],
            ) -> Result<(), crate::fastcgi::exchange::ExchangeError> {
                self.0.extend_from_slice(data);
                Ok(())
            }
        }
        let mut got = Collect(Vec::new());
        read_file_chunks(&mut file, &mut got).await.unwrap();
        assert_eq!(got.0, b"0123456789");
        // Replayable: a second read gives the same.
        let mut again = Collect(Vec::new());
        read_file_chunks(&mut file, &mut again).await.unwrap();
        assert_eq!(again.0, b"0123456789");
    }

    #[tokio::test]
    async fn chunked_body_over_limit_is_413() {
        let r = prepare(chunked(&[b"0123", b"4567"]), None, limits(6, 2), &budget()).await;
        assert!(matches!(r, Err(ClientError::BodyTooLarge { limit: 6 })));
    }

    #[tokio::test]
    async fn bodies_in_memory_share_one_budget_then_spill_to_files() {
        let budgets = budgets(10, 12);
        let budget = &budgets.memory;
        let first = prepare(
            chunked(&[b"0123", b"4567"]),
            Some(8),
            limits(0, 16),
            &budgets,
        )
        .await
        .unwrap();
        assert!(matches!(first, RequestBody::Memory(_)));
        assert_eq!(budget.available(), 2);
        // Fits this request's buffer, not what is left of the budget.
        let second = prepare(chunked(&[b"abcd"]), None, limits(0, 16), &budgets)
            .await
            .unwrap();
        assert!(
            matches!(second, RequestBody::File { len: 4, .. }),
            "{second:?}"
        );
        assert_eq!(budget.available(), 2);
        assert_eq!(
            budgets.temp.available(),
            8,
            "the file holds its bytes of the temp budget"
        );
        // A body gives its share back when done with.
        drop(first);
        assert_eq!(budget.available(), 10);
        drop(second);
        assert_eq!(budget.available(), 10);
        assert_eq!(budgets.temp.available(), 12);
    }

    /// Temp files of all bodies together stay within `request_temp_total`:
    /// a body that would pass it is refused (503), whether it spills or
    /// grows its file, and what it had taken is given back.
    #[tokio::test]
    async fn bodies_in_temp_files_share_one_budget() {
        let budgets = budgets(0, 10);
        let held = prepare(chunked(&[b"0123", b"45"]), None, limits(0, 2), &budgets)
            .await
            .unwrap();
        assert!(matches!(held, RequestBody::File { len: 6, .. }), "{held:?}");
        assert_eq!(budgets.temp.available(), 4);
        for parts in [&[&b"01234"[..]][..], &[b"012", b"34"]] {
            let refused = prepare(chunked(parts), None, limits(0, 2), &budgets).await;
            assert!(
                matches!(refused, Err(ClientError::NoTempRoom { total: 10 })),
                "{refused:?}"
            );
            assert_eq!(
                refused.unwrap_err().status(),
                http::StatusCode::SERVICE_UNAVAILABLE
            );
            assert_eq!(budgets.temp.available(), 4, "given back");
        }
        drop(held);
        assert_eq!(budgets.temp.available(), 10);
    }

    #[tokio::test]
    async fn chunked_small_body_stays_in_memory() {
        let r = prepare(chunked(&[b"ab", b"c"]), None, limits(0, 16), &budget())
            .await
            .unwrap();
        assert!(matches!(&r, RequestBody::Memory(b) if &b[..] == b"abc"));
        assert_eq!(r.content_length(None), Some(3));
    }
}
