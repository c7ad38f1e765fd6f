//! PHP's response read ahead of the client (nginx's `fastcgi_buffering`).
//!
//! A php-fpm worker, and the connection fpmlb lent it, are held until the
//! response has been read to its END_REQUEST. Read at the client's pace, a
//! client that reads slowly (a phone on a bad network, or a few connections
//! that ask for a large page and read nothing) holds a worker for as long
//! as it likes, and a handful of them hold a whole pool. So, once the
//! client lags, a task of its own reads the response as fast as php-fpm
//! sends it: into memory, up to `memory` bytes per response while the
//! budget all responses share lasts, then into an anonymous temp file, up
//! to `max_temp_file` bytes per response while the temp budget lasts. The client takes it from there at
//! its own pace; the connection went back to its pool at END_REQUEST.
//! Past those limits, or when the temp file cannot be written, the task
//! waits for the client, as an unbuffered response does: memory and disk
//! stay bounded, and the worker follows the client.
//!
//! While the client keeps up, the response goes straight from php-fpm to
//! the client on the client's own task, as unbuffered: a hand-over between
//! two tasks for every read from php-fpm cost 10-25% more CPU on 64 KiB and
//! 1 MiB responses. A watch (that task, asleep until then) looks every
//! `WATCH`:
//! when the client's side has not asked for more during a whole period,
//! hyper is waiting for the client to take what it has, and the watch
//! takes the response over and reads it ahead from then on. So a slow
//! client holds a worker for at most two periods more than its script.
//!
//! Nothing is held back: what has come is the client's at once, so a
//! script that streams (server-sent events, a progress page) reaches the
//! client as it writes. A failure mid-response reaches the client after
//! everything that came before it, as an error, so the response is cut,
//! never passed on as complete. When the client goes away, the task stops
//! and the connection is closed, as without read-ahead.
//!
//! [`ReadAheadStats`] counts what read-ahead did, for the admin API: a few
//! relaxed atomic additions per response, one per temp file write.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

use crate::http::budget::{self, ByteBudget};
use crate::http::response::{self, BodyError};
use crate::upstream::backend::Backend;
use crate::upstream::exchange::Exchange;

/// How often the watch looks whether the client still keeps up: a response
/// whose client took nothing for a whole period is read ahead from then
/// on. Short next to a page a user waits for; long enough that a response
/// sent at full speed (1 MiB in a few milliseconds) ends before the watch
/// first wakes.
const WATCH: std::time::Duration = std::time::Duration::from_millis(25);

/// Bytes read back from the temp file at a time: a client reading from it
/// costs one such buffer, whatever the response's size (outside the
/// memory budget: one per response, so an HTTP/2 connection's 128 streams
/// hold at most 8 MiB of it, as of static files).
const FILE_CHUNK: u64 = crate::http::files::serve::STREAM_CHUNK as u64;

/// How far responses may be read ahead of their clients.
#[derive(Debug, Clone)]
pub struct ReadAhead {
    /// Bytes of one response in memory (`response_buffer_size`).
    pub memory: usize,
    /// Bytes of one response in its temp file (`response_max_temp_file`).
    pub max_temp_file: u64,
    /// Memory of all responses together.
    pub memory_budget: ByteBudget,
    /// Temp file bytes of all responses together (`response_temp_total`).
    pub temp_budget: ByteBudget,
    /// What read-ahead did, all responses together, across reloads.
    pub stats: Arc<ReadAheadStats>,
}

/// What read-ahead did since fpmlb started (the admin API's figures). Each
/// response is counted once in each that applies: a response that spilled
/// was taken over and streamed too.
#[derive(Debug, Default)]
pub struct ReadAheadStats {
    /// Responses streamed with read-ahead allowed: longer than what came
    /// with their head, and not `X-Accel-Buffering: no`.
    pub streamed: AtomicU64,
    /// Of those, responses whose client lagged, so that the watch read
    /// them ahead of it.
    pub taken_over: AtomicU64,
    /// Of those, responses that went on to a temp file.
    pub spilled: AtomicU64,
    /// Of those, responses that hit a limit (the memory, their temp file,
    /// the temp budget, or a failed write) and went at their client's pace
    /// for a while, holding their php-fpm worker.
    pub waited: AtomicU64,
    /// Bytes written to temp files.
    pub temp_bytes: AtomicU64,
    /// Temp files that could not be made or written to.
    pub temp_failures: AtomicU64,
}

impl ReadAheadStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Whether a response is read ahead: the script's `X-Accel-Buffering`
/// (`yes` or `no`, as nginx reads it) over the configured `default`.
pub fn wanted(headers: &[(http::HeaderName, http::HeaderValue)], default: bool) -> bool {
    headers
        .iter()
        .find(|(name, _)| name == "x-accel-buffering")
        .map_or(default, |(_, value)| {
            !value.as_bytes().trim_ascii().eq_ignore_ascii_case(b"no")
        })
}

/// The rest of a response, after `first`, read ahead of the client by a
/// task of its own.
pub fn body(
    first: Bytes,
    exchange: Exchange,
    backend: Arc<Backend>,
    limits: &ReadAhead,
) -> UnsyncBoxBody<Bytes, BodyError> {
    ReadAheadStats::add(&limits.stats.streamed, 1);
    let shared = Shared::new(first, Some(Box::new(Reader { exchange, backend })));
    tokio::spawn(watch(Arc::clone(&shared), limits.clone()));
    let stream = futures_util::stream::unfold(Taker(shared), |taker| async move {
        let next = taker.next().await?;
        Some((next.map(Frame::data), taker))
    });
    http_body_util::StreamBody::new(stream).boxed_unsync()
}

/// What the reading task and the client's body share.
struct Shared {
    state: Mutex<State>,
    /// Data or the end is queued (to the body).
    data: Notify,
    /// The body took some memory back (to the reading task).
    room: Notify,
    /// The body is gone: the client left, or the response was replaced.
    gone: CancellationToken,
    /// Times the body was asked for more (the watch compares them).
    asked: AtomicU64,
}

/// The response's source: the exchange, with its backend's books.
struct Reader {
    exchange: Exchange,
    backend: Arc<Backend>,
}

struct State {
    /// What the client has not taken yet, in order.
    queue: VecDeque<Piece>,
    /// Bytes of `queue` in memory.
    in_memory: usize,
    /// The temp file, once the memory was full.
    file: Option<Arc<File>>,
    /// Bytes written to the temp file (its size).
    written: u64,
    /// The temp budget the file holds, given back when the response ends.
    file_share: Option<OwnedSemaphorePermit>,
    /// A write failed: no more of this response goes to the file.
    file_failed: bool,
    /// The response has waited for its client once (it is counted once).
    waited: bool,
    end: End,
    /// Whoever reads the response next: the client's side while it keeps
    /// up, taking it out for each read; the reading task once it took over.
    reader: Option<Box<Reader>>,
}

enum Piece {
    Memory(Bytes),
    /// Small pieces copied into one buffer, with their budget share.
    Gathered {
        bytes: BytesMut,
        share: Option<OwnedSemaphorePermit>,
    },
    /// Bytes of the temp file.
    File {
        offset: u64,
        len: u64,
    },
}

enum End {
    Running,
    Done(Result<(), BodyError>),
    /// The body has said so.
    Told,
}

impl Shared {
    /// A response whose first bytes, read with its head, are `first`.
    fn new(first: Bytes, reader: Option<Box<Reader>>) -> Arc<Shared> {
        let mut queue = VecDeque::new();
        let in_memory = first.len();
        if !first.is_empty() {
            queue.push_back(Piece::Memory(first));
        }
        Arc::new(Shared {
            state: Mutex::new(State {
                queue,
                in_memory,
                file: None,
                written: 0,
                file_share: None,
                file_failed: false,
                waited: false,
                end: End::Running,
                reader,
            }),
            data: Notify::new(),
            room: Notify::new(),
            gone: CancellationToken::new(),
            asked: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn finish(&self, end: Result<(), BodyError>) {
        self.lock().end = End::Done(end);
        self.data.notify_one();
    }
}

/// Sleeps while the client keeps up, then reads the response ahead of it.
async fn watch(shared: Arc<Shared>, limits: ReadAhead) {
    let mut seen = shared.asked.load(Ordering::Relaxed);
    let reader = loop {
        tokio::select! {
            biased;
            () = shared.gone.cancelled() => return,
            () = tokio::time::sleep(WATCH) => {}
        }
        let asked = shared.asked.load(Ordering::Relaxed);
        let mut state = shared.lock();
        if !matches!(state.end, End::Running) {
            return;
        }
        // Out of the state: the client's side is reading, so it keeps up.
        if asked == seen
            && let Some(reader) = state.reader.take()
        {
            break reader;
        }
        seen = asked;
    };
    ReadAheadStats::add(&limits.stats.taken_over, 1);
    read(reader, &shared, &limits).await;
}

/// Ends the response with an error when the reading task stops without
/// having ended it (a panic), so that the client's side does not wait for
/// ever; after a normal end it does nothing.
struct EndsTheResponse<'a>(&'a Shared);

impl Drop for EndsTheResponse<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        if matches!(state.end, End::Running) {
            state.end = End::Done(Err(Box::new(std::io::Error::other(
                "the response's reading task failed",
            ))));
            drop(state);
            self.0.data.notify_one();
        }
    }
}

/// Reads the response to its end, queueing what comes for the client.
async fn read(reader: Box<Reader>, shared: &Shared, limits: &ReadAhead) {
    let _ends = EndsTheResponse(shared);
    let Reader {
        exchange: mut ex,
        backend,
    } = *reader;
    loop {
        let next = tokio::select! {
            biased;
            () = shared.gone.cancelled() => return,
            next = ex.next_chunk() => next,
        };
        match next {
            Ok(Some(chunk)) if ex.awaits_end() => {
                crate::upstream::exchange::finish_later(ex, &backend);
                if queue(shared, chunk, limits).await {
                    shared.finish(Ok(()));
                }
                return;
            }
            Ok(Some(chunk)) => {
                if !queue(shared, chunk, limits).await {
                    return;
                }
                // The client's side is woken once per read from php-fpm,
                // not once per record: php flushes every 8 KiB, and a read
                // takes several such records at once. Woken before any
                // other record (STDERR, the end), whose next may be a read.
                if !ex.has_buffered_data() {
                    shared.data.notify_one();
                }
            }
            Ok(None) => {
                shared.finish(Ok(()));
                return;
            }
            Err(failure) => {
                shared.finish(Err(response::cut_short(failure, &backend)));
                return;
            }
        }
    }
}

/// Where the next piece goes.
enum Place {
    Memory(Option<OwnedSemaphorePermit>),
    File,
    /// Neither has room: wait for the client.
    Wait,
}

/// Pieces under this are copied before they are held in memory, into one
/// buffer with the small pieces queued before them, up to this size.
const COPY_BELOW: usize = 32 * 1024;

/// Queues a small `chunk` (under [`COPY_BELOW`]) by copying it: a piece of
/// PHP's output is a slice of its connection's read buffer (64 KiB or
/// more), which it keeps whole while held, and each piece queued apart
/// costs a queue slot and two allocations (about 100 bytes) that the
/// budget does not count. A script that flushes a byte at a time to a
/// client that reads nothing would otherwise hold 64 KiB, or 100 bytes,
/// per byte counted: small pieces are gathered into the last one queued
/// while it is small too.
fn gather(queue: &mut VecDeque<Piece>, chunk: &[u8], share: Option<OwnedSemaphorePermit>) {
    if let Some(Piece::Gathered { bytes, share: held }) = queue.back_mut()
        && bytes.len() + chunk.len() <= COPY_BELOW
    {
        bytes.extend_from_slice(chunk);
        match (held.as_mut(), share) {
            (Some(h), Some(s)) => h.merge(s),
            (None, s) => *held = s,
            (Some(_), None) => {}
        }
        return;
    }
    queue.push_back(Piece::Gathered {
        bytes: BytesMut::from(chunk),
        share,
    });
}

/// Queues `chunk` for the client: in memory if it fits, else in the temp
/// file if that may grow, else once the client has taken enough. False
/// when the client is gone. The client's side is told of it before any
/// wait here, else by the caller.
async fn queue(shared: &Shared, chunk: Bytes, limits: &ReadAhead) -> bool {
    let len = chunk.len();
    loop {
        let to_file = {
            let mut state = shared.lock();
            match place(&mut state, len, limits) {
                Place::Memory(share) => {
                    state.in_memory += len;
                    if len < COPY_BELOW {
                        gather(&mut state.queue, &chunk, share);
                    } else {
                        let held = budget::holding(chunk, share);
                        state.queue.push_back(Piece::Memory(held));
                    }
                    return true;
                }
                Place::File => true,
                Place::Wait => {
                    if !state.waited {
                        state.waited = true;
                        ReadAheadStats::add(&limits.stats.waited, 1);
                    }
                    false
                }
            }
        };
        if to_file {
            match write(shared, &chunk).await {
                Ok(offset) => {
                    if offset == 0 {
                        ReadAheadStats::add(&limits.stats.spilled, 1);
                    }
                    ReadAheadStats::add(&limits.stats.temp_bytes, len as u64);
                    return true;
                }
                Err(e) => {
                    tracing::error!(
                        "cannot write a response to its temp file ({e}); the rest goes at the client's pace"
                    );
                    ReadAheadStats::add(&limits.stats.temp_failures, 1);
                    let mut state = shared.lock();
                    state.file_failed = true;
                    // The share taken for this piece: it is not in the file.
                    budget::give_back(len, &mut state.file_share);
                }
            }
        } else {
            shared.data.notify_one();
            tokio::select! {
                () = shared.gone.cancelled() => return false,
                () = shared.room.notified() => {}
            }
        }
        if shared.gone.is_cancelled() {
            return false;
        }
    }
}

/// The policy: memory while this response's share and the budget allow
/// (and always when nothing of it is in memory: one piece at a time is
/// what a response costs unbuffered), then the temp file while its limits
/// allow.
fn place(state: &mut State, len: usize, limits: &ReadAhead) -> Place {
    let empty = state.in_memory == 0;
    let fits = state.in_memory + len <= limits.memory;
    let mut share = None;
    let budgeted = (fits || empty) && limits.memory_budget.take(len, &mut share);
    if (budgeted && fits) || empty {
        return Place::Memory(share);
    }
    let fits_file = !state.file_failed
        && state.written.saturating_add(len as u64) <= limits.max_temp_file
        && limits.temp_budget.take(len, &mut state.file_share);
    if fits_file { Place::File } else { Place::Wait }
}

/// Appends `chunk` to the temp file (made on first use) and queues it;
/// the offset it was written at.
async fn write(shared: &Shared, chunk: &Bytes) -> std::io::Result<u64> {
    let (file, offset) = {
        let state = shared.lock();
        (state.file.clone(), state.written)
    };
    let file = match file {
        Some(f) => f,
        None => {
            let f = Arc::new(crate::http::body::temp_file().await?);
            shared.lock().file = Some(Arc::clone(&f));
            f
        }
    };
    let data = chunk.clone();
    tokio::task::spawn_blocking(move || file.write_all_at(&data, offset))
        .await
        .map_err(std::io::Error::other)??;
    let len = chunk.len() as u64;
    let mut state = shared.lock();
    state.written = offset + len;
    match state.queue.back_mut() {
        Some(Piece::File { offset: at, len: n }) if *at + *n == offset => *n += len,
        _ => state.queue.push_back(Piece::File { offset, len }),
    }
    Ok(offset)
}

/// The client's side; dropping it stops the reading task.
struct Taker(Arc<Shared>);

/// What the client's side does next.
enum Next {
    File(Arc<File>, u64, u64),
    Read(Box<Reader>),
    Wait,
}

impl Taker {
    /// The next piece for the client; None after the end.
    async fn next(&self) -> Option<Result<Bytes, BodyError>> {
        let shared = &self.0;
        shared.asked.fetch_add(1, Ordering::Relaxed);
        loop {
            let next = {
                let mut state = shared.lock();
                match state.queue.pop_front() {
                    Some(Piece::Memory(b)) => {
                        state.in_memory -= b.len();
                        drop(state);
                        shared.room.notify_one();
                        return Some(Ok(b));
                    }
                    Some(Piece::Gathered { bytes, share }) => {
                        state.in_memory -= bytes.len();
                        drop(state);
                        shared.room.notify_one();
                        return Some(Ok(budget::holding(bytes.freeze(), share)));
                    }
                    Some(Piece::File { offset, len }) => {
                        let take = len.min(FILE_CHUNK);
                        if take < len {
                            state.queue.push_front(Piece::File {
                                offset: offset + take,
                                len: len - take,
                            });
                        }
                        match state.file.clone() {
                            Some(file) => Next::File(file, offset, take),
                            None => return Some(Err("read-ahead: no temp file".into())),
                        }
                    }
                    None => match std::mem::replace(&mut state.end, End::Told) {
                        End::Running => {
                            state.end = End::Running;
                            match state.reader.take() {
                                Some(reader) => Next::Read(reader),
                                None => Next::Wait,
                            }
                        }
                        End::Done(Ok(())) | End::Told => return None,
                        End::Done(Err(e)) => return Some(Err(e)),
                    },
                }
            };
            match next {
                Next::File(file, offset, len) => return Some(read_back(file, offset, len).await),
                Next::Read(reader) => return self.read(reader).await,
                Next::Wait => shared.data.notified().await,
            }
        }
    }

    /// Reads the next piece straight from php-fpm (the client keeps up).
    async fn read(&self, mut reader: Box<Reader>) -> Option<Result<Bytes, BodyError>> {
        let next = reader.exchange.next_chunk().await;
        let mut state = self.0.lock();
        match next {
            Ok(Some(chunk)) if reader.exchange.awaits_end() => {
                // The last piece: there is nothing left to read ahead.
                state.end = End::Done(Ok(()));
                drop(state);
                let Reader { exchange, backend } = *reader;
                crate::upstream::exchange::finish_later(exchange, &backend);
                Some(Ok(chunk))
            }
            Ok(Some(chunk)) => {
                state.reader = Some(reader);
                Some(Ok(chunk))
            }
            Ok(None) => {
                state.end = End::Told;
                None
            }
            Err(failure) => {
                state.end = End::Told;
                drop(state);
                Some(Err(response::cut_short(failure, &reader.backend)))
            }
        }
    }
}

impl Drop for Taker {
    fn drop(&mut self) {
        self.0.gone.cancel();
    }
}

/// Reads `len` bytes of the temp file at `offset`: from the page cache
/// when it holds them, else on the blocking pool (as a static file's).
async fn read_back(file: Arc<File>, offset: u64, len: u64) -> Result<Bytes, BodyError> {
    crate::http::files::serve::read_chunk(file, offset, len)
        .await
        .map_err(|e| {
            tracing::error!("cannot read a response back from its temp file: {e}");
            Box::new(e) as BodyError
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(memory: usize, max_temp_file: u64, budget: usize, temp: usize) -> ReadAhead {
        ReadAhead {
            memory,
            max_temp_file,
            memory_budget: ByteBudget::new(budget),
            temp_budget: ByteBudget::new(temp),
            stats: Arc::default(),
        }
    }

    /// (spilled, waited, temp bytes, temp failures).
    fn counts(limits: &ReadAhead) -> (u64, u64, u64, u64) {
        let s = &limits.stats;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (
            load(&s.spilled),
            load(&s.waited),
            load(&s.temp_bytes),
            load(&s.temp_failures),
        )
    }

    fn chunk(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    async fn take_all(taker: &Taker) -> (Vec<u8>, Option<String>) {
        let mut got = Vec::new();
        while let Some(next) = taker.next().await {
            match next {
                Ok(b) => got.extend_from_slice(&b),
                Err(e) => return (got, Some(e.to_string())),
            }
        }
        (got, None)
    }

    /// Small pieces are copied out of their read buffer, and gathered:
    /// a script flushing a byte at a time to a client that reads nothing
    /// holds about what the budget counts, not 64 KiB or a queue slot and
    /// two allocations per byte.
    #[tokio::test]
    async fn small_pieces_are_gathered_apart_from_their_read_buffer() {
        let limits = limits(1 << 20, 0, 1 << 20, 0);
        let shared = Shared::new(Bytes::new(), None);
        let read_buf = Bytes::from(vec![7u8; 64 * 1024]);
        let within = |b: &Bytes| {
            let start = read_buf.as_ptr().addr();
            (start..start + read_buf.len()).contains(&b.as_ptr().addr())
        };
        let pieces = COPY_BELOW + 10;
        for i in 0..pieces {
            assert!(queue(&shared, read_buf.slice(i..i + 1), &limits).await);
        }
        let large = read_buf.slice(0..COPY_BELOW);
        assert!(queue(&shared, large, &limits).await);
        {
            let state = shared.lock();
            assert_eq!(state.queue.len(), 3, "two gathered, then the large piece");
            assert_eq!(state.in_memory, pieces + COPY_BELOW);
        }
        assert_eq!(limits.memory_budget.held(), pieces + COPY_BELOW);
        shared.finish(Ok(()));
        let taker = Taker(Arc::clone(&shared));
        let first = taker.next().await.unwrap().unwrap();
        assert_eq!(first.len(), COPY_BELOW);
        assert!(!within(&first), "a flushed byte keeps 64 KiB");
        assert_eq!(&first[..], &read_buf[..COPY_BELOW], "in order");
        let second = taker.next().await.unwrap().unwrap();
        assert_eq!(second.len(), 10);
        let third = taker.next().await.unwrap().unwrap();
        assert!(within(&third), "a large piece is not copied");
        drop((first, second, third));
        assert_eq!(limits.memory_budget.held(), 0, "every share given back");
    }

    #[test]
    fn the_script_may_say_yes_or_no() {
        let h = |v: &'static str| {
            vec![(
                http::HeaderName::from_static("x-accel-buffering"),
                http::HeaderValue::from_static(v),
            )]
        };
        assert!(wanted(&[], true));
        assert!(!wanted(&[], false));
        assert!(!wanted(&h("no"), true));
        assert!(!wanted(&h(" No "), true));
        assert!(wanted(&h("yes"), false));
    }

    /// A reading task that panics after queueing a piece: the client
    /// takes that piece, then an error (a cut response), not a wait for
    /// ever. A task that ended the response leaves its end alone.
    #[tokio::test]
    async fn a_reading_task_that_dies_cuts_the_response() {
        let limits = limits(10, 0, 1000, 0);
        let shared = Shared::new(Bytes::new(), None);
        let dying = {
            let shared = Arc::clone(&shared);
            let limits = limits.clone();
            tokio::spawn(async move {
                let _ends = EndsTheResponse(&shared);
                assert!(queue(&shared, chunk(b'a', 10), &limits).await);
                panic!("a bug in the reading task");
            })
        };
        assert!(dying.await.is_err());
        let taker = Taker(Arc::clone(&shared));
        let taken =
            tokio::time::timeout(std::time::Duration::from_secs(10), take_all(&taker)).await;
        let (got, err) = taken.expect("the client's side waits for ever");
        assert_eq!(got, vec![b'a'; 10]);
        assert!(err.is_some_and(|e| e.contains("reading task failed")));

        let shared = Shared::new(Bytes::new(), None);
        shared.finish(Ok(()));
        drop(EndsTheResponse(&shared));
        assert!(matches!(shared.lock().end, End::Done(Ok(()))));
    }

    #[tokio::test]
    async fn memory_first_then_the_temp_file_then_the_client_s_pace() {
        // 10 bytes of memory, 20 of file: 40 bytes in 10-byte pieces.
        let limits = limits(10, 20, 1000, 1000);
        let shared = Shared::new(Bytes::new(), None);
        for (i, byte) in [b'a', b'b', b'c'].into_iter().enumerate() {
            assert!(queue(&shared, chunk(byte, 10), &limits).await, "piece {i}");
        }
        {
            let state = shared.lock();
            assert_eq!((state.in_memory, state.written), (10, 20));
            assert_eq!(limits.memory_budget.available(), 990);
            assert_eq!(limits.temp_budget.available(), 980);
            assert_eq!(
                (limits.temp_budget.held(), limits.memory_budget.held()),
                (20, 10)
            );
        }
        assert_eq!(counts(&limits), (1, 0, 20, 0), "one spill, two writes");
        // Neither has room for the fourth: it waits for the client.
        let reader = {
            let shared = Arc::clone(&shared);
            let limits = limits.clone();
            tokio::spawn(async move {
                let queued = queue(&shared, chunk(b'd', 10), &limits).await;
                shared.finish(Ok(()));
                queued
            })
        };
        tokio::task::yield_now().await;
        assert!(!reader.is_finished());
        assert_eq!(counts(&limits), (1, 1, 20, 0), "and a wait");
        let taker = Taker(Arc::clone(&shared));
        let (got, err) = take_all(&taker).await;
        assert!(reader.await.unwrap());
        assert_eq!(err, None);
        let want: Vec<u8> = [b'a', b'b', b'c', b'd']
            .iter()
            .flat_map(|b| [*b; 10])
            .collect();
        assert_eq!(got, want, "in order, from memory and file alike");
        drop(taker);
        drop(shared);
        assert_eq!(
            limits.temp_budget.available(),
            1000,
            "the file's share is back"
        );
        assert_eq!(counts(&limits), (1, 1, 20, 0), "counted once per response");
    }

    #[tokio::test]
    async fn budgets_all_responses_share_send_the_rest_to_file_or_to_waiting() {
        // A budget of 15 bytes of memory, none of temp files.
        let limits = limits(100, 100, 15, 0);
        let shared = Shared::new(Bytes::new(), None);
        assert!(queue(&shared, chunk(b'a', 10), &limits).await);
        let other = limits.memory_budget.available();
        assert_eq!(other, 5);
        let waiting = {
            let shared = Arc::clone(&shared);
            let limits = limits.clone();
            tokio::spawn(async move { queue(&shared, chunk(b'b', 10), &limits).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "over budget, and no file: it waits");
        assert_eq!(counts(&limits), (0, 1, 0, 0));
        let taker = Taker(Arc::clone(&shared));
        assert_eq!(taker.next().await.unwrap().unwrap(), chunk(b'a', 10));
        assert!(waiting.await.unwrap());
        assert_eq!(limits.memory_budget.held(), 10, "b is held, a given back");
    }

    #[tokio::test]
    async fn one_piece_always_goes_even_past_the_budget() {
        let limits = limits(4, 0, 0, 0);
        let shared = Shared::new(Bytes::new(), None);
        assert!(queue(&shared, chunk(b'a', 10), &limits).await);
        assert_eq!(shared.lock().in_memory, 10);
        assert_eq!(counts(&limits), (0, 0, 0, 0), "no limit was hit");
    }

    #[tokio::test]
    async fn a_failure_comes_after_everything_before_it() {
        let limits = limits(10, 100, 1000, 1000);
        let shared = Shared::new(chunk(b'0', 3), None);
        assert!(queue(&shared, chunk(b'a', 10), &limits).await);
        assert!(queue(&shared, chunk(b'b', 10), &limits).await);
        shared.finish(Err("backend reset".into()));
        let taker = Taker(Arc::clone(&shared));
        let (got, err) = take_all(&taker).await;
        assert_eq!(got.len(), 23);
        assert_eq!(err.as_deref(), Some("backend reset"));
        assert!(taker.next().await.is_none(), "said once");
    }

    #[tokio::test]
    async fn the_reader_stops_when_the_client_is_gone() {
        let limits = limits(10, 0, 1000, 0);
        let shared = Shared::new(chunk(b'0', 10), None);
        let waiting = {
            let shared = Arc::clone(&shared);
            let limits = limits.clone();
            tokio::spawn(async move { queue(&shared, chunk(b'a', 10), &limits).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(Taker(Arc::clone(&shared)));
        assert!(!waiting.await.unwrap(), "gone: the piece is dropped");
    }
}
