//! Static files sent with `sendfile(2)` on cleartext HTTP/1.1 connections.
//!
//! hyper takes a response body as buffers and writes them to the socket
//! itself: the body never sees the socket. So a body that may go out
//! zero-copy yields, for each window of its file, a frame of placeholder
//! bytes (a slice of `MARKS`, never read and never sent) and queues the
//! window in its connection's [`Windows`]. hyper passes body frames to the
//! socket untouched (its vectored write queue: fpmlb's sockets are all
//! vectored); the connection's socket (`server/watched.rs`) tells a
//! placeholder slice among those hyper writes by its address and sends the
//! file window it stands for with `sendfile` instead: the bytes go from the
//! page cache to the socket without a copy through fpmlb. hyper advances
//! past what was sent as it would past written bytes, so a partial send
//! resumes at the right offset.
//!
//! Safe by construction, in three places:
//! - a body yields placeholders only once its connection took up its
//!   [`Offer`], which the connection does only for a cleartext HTTP/1.1
//!   response that goes out as the body made it (its Content-Length is the
//!   body's exact size: compression, which drops the Content-Length, or
//!   any other rewrite of the body would change that);
//! - a placeholder the socket cannot match to a window of its own fails
//!   the write (the connection closes): placeholder bytes never reach a
//!   client;
//! - a window goes out this way only if the page cache holds it (probed
//!   with `preadv2(RWF_NOWAIT)`, see `serve::cached`), so `sendfile` does
//!   not wait for a disk on an async thread; otherwise the body reads it
//!   as before (the blocking pool).

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;

/// The largest window a placeholder stands for.
pub const WINDOW: usize = 1 << 20;

/// Placeholder regions: a window's slot is its region, so windows queued
/// at once are told apart. A slot is taken again only once its window went
/// out whole; with none free, a piece is read instead (hyper may queue
/// many small frames, a multipart range's parts).
const SLOTS: usize = 4;

/// The placeholder bytes: never read, never written to a socket (zeros in
/// the binary's .bss: no memory until touched, and nothing touches them).
static MARKS: [u8; WINDOW * SLOTS] = [0; WINDOW * SLOTS];

/// Whether `buf` is (a part of) a placeholder.
pub fn is_mark(buf: &[u8]) -> bool {
    !buf.is_empty() && slot_of(buf).is_some()
}

/// The slot `buf` starts in, and how far into it.
fn slot_of(buf: &[u8]) -> Option<(usize, usize)> {
    let at = buf.as_ptr().addr().checked_sub(MARKS.as_ptr().addr())?;
    (at < MARKS.len()).then_some((at / WINDOW, at % WINDOW))
}

/// A window of a file queued for sending.
struct Window {
    slot: usize,
    file: Arc<File>,
    offset: u64,
    len: usize,
}

/// What a placeholder slice stands for: `len` bytes of `file` at `offset`.
pub struct Segment {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: usize,
}

/// One connection's file windows, from its bodies to its socket.
#[derive(Default)]
pub struct Windows {
    queued: Mutex<VecDeque<Window>>,
}

impl Windows {
    /// Queues `len` bytes (at most [`WINDOW`]) of `file` at `offset`; the
    /// placeholder frame that stands for them is what the body yields.
    /// `None` while every slot holds a window not yet sent whole: the body
    /// reads that piece (a slot is never shared, so a placeholder never
    /// stands for another window than its own).
    pub fn push(&self, file: Arc<File>, offset: u64, len: usize) -> Option<Bytes> {
        let len = len.min(WINDOW);
        let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = (0..SLOTS).find(|s| queued.iter().all(|w| w.slot != *s))?;
        queued.push_back(Window {
            slot,
            file,
            offset,
            len,
        });
        let start = slot * WINDOW;
        Some(Bytes::from_static(&MARKS[start..start + len]))
    }

    /// What the placeholder slice `buf` (or what is left of it) stands for.
    ///
    /// # Errors
    ///
    /// `buf` is not a placeholder of a window queued here, or runs past it.
    pub fn resolve(&self, buf: &[u8]) -> io::Result<Segment> {
        let unknown = || io::Error::other("a file placeholder with no window queued for it");
        let (slot, at) = slot_of(buf).ok_or_else(unknown)?;
        let queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
        let window = queued.iter().find(|w| w.slot == slot).ok_or_else(unknown)?;
        if at + buf.len() > window.len {
            return Err(unknown());
        }
        Ok(Segment {
            file: Arc::clone(&window.file),
            offset: window.offset + at as u64,
            len: buf.len(),
        })
    }

    /// `n` bytes of the placeholder slice `buf` went out: a window sent to
    /// its end is done.
    pub fn sent(&self, buf: &[u8], n: usize) {
        let Some((slot, at)) = slot_of(buf) else {
            return;
        };
        let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
        queued.retain(|w| !(w.slot == slot && at + n >= w.len));
    }

    /// Windows queued and not sent to their end.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A request extension: its connection sends file windows (cleartext
/// HTTP/1.1), so a file body may leave large pieces unread for it
/// (`serve::Start::Sendfile`).
#[derive(Clone, Copy, Debug)]
pub struct SendsWindows;

/// A file body's offer to go out zero-copy, carried in its response's
/// extensions; the connection takes it up with its [`Windows`].
#[derive(Clone, Default)]
pub struct Offer(Arc<OnceLock<Arc<Windows>>>);

impl Offer {
    /// The connection will send this body's placeholders.
    pub fn accept(&self, windows: Arc<Windows>) {
        let _ = self.0.set(windows);
    }

    /// The connection's windows, once it took the offer up.
    pub fn windows(&self) -> Option<&Arc<Windows>> {
        self.0.get()
    }
}

/// Takes up a response's [`Offer`] for a connection that can send file
/// windows, if the response goes out as its body made it: a Content-Length
/// equal to the body's exact size. The offer is removed either way.
pub fn take_up<B: http_body::Body>(response: &mut http::Response<B>, windows: &Arc<Windows>) {
    let Some(offer) = response.extensions_mut().remove::<Offer>() else {
        return;
    };
    let length = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if length.is_some() && length == response.body().size_hint().exact() {
        offer.accept(Arc::clone(windows));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<File> {
        Arc::new(tempfile::tempfile().unwrap())
    }

    #[test]
    fn a_placeholder_resolves_to_its_window_as_it_is_sent() {
        let windows = Windows::default();
        let frame = windows.push(file(), 1000, 300).unwrap();
        assert_eq!(frame.len(), 300);
        assert!(is_mark(&frame));
        let seg = windows.resolve(&frame).unwrap();
        assert_eq!((seg.offset, seg.len), (1000, 300));
        // A partial send: what is left resolves further into the file.
        windows.sent(&frame, 100);
        assert_eq!(windows.pending(), 1);
        let rest = &frame[100..];
        let seg = windows.resolve(rest).unwrap();
        assert_eq!((seg.offset, seg.len), (1100, 200));
        windows.sent(rest, 200);
        assert_eq!(windows.pending(), 0);
        // Sent to its end, the window is gone: its placeholder is unknown.
        assert!(windows.resolve(rest).is_err());
    }

    #[test]
    fn placeholders_of_queued_windows_are_told_apart() {
        let windows = Windows::default();
        let a = windows.push(file(), 0, 10).unwrap();
        let b = windows.push(file(), 5000, 20).unwrap();
        assert_eq!(windows.resolve(&b).unwrap().offset, 5000);
        assert_eq!(windows.resolve(&a).unwrap().offset, 0);
        // A window is at most WINDOW long.
        let big = windows.push(file(), 0, 3 * WINDOW).unwrap();
        assert_eq!(big.len(), WINDOW);
    }

    #[test]
    fn other_bytes_are_no_placeholders() {
        let windows = Windows::default();
        let bytes = Bytes::from_static(b"hello");
        assert!(!is_mark(&bytes));
        assert!(!is_mark(&[]));
        assert!(!is_mark(&[0u8; 16]));
        assert!(windows.resolve(&bytes).is_err());
        // A placeholder of another connection's windows is refused here.
        let other = Windows::default();
        let frame = other.push(file(), 0, 8).unwrap();
        assert!(windows.resolve(&frame).is_err());
    }

    #[test]
    fn a_slot_is_taken_again_only_once_its_window_went_out() {
        let windows = Windows::default();
        let first = windows.push(file(), 0, 64).unwrap();
        for _ in 1..SLOTS {
            windows.push(file(), 0, 8).unwrap();
        }
        // Every slot holds a window not sent yet: the next piece is read.
        assert!(windows.push(file(), 7, 64).is_none());
        assert_eq!(windows.resolve(&first).unwrap().offset, 0);
        // `first` goes out whole: its slot is free again.
        windows.sent(&first, 64);
        let again = windows.push(file(), 7, 64).unwrap();
        assert_eq!(first.as_ptr(), again.as_ptr());
        assert_eq!(windows.resolve(&again).unwrap().offset, 7);
    }

    #[test]
    fn an_offer_is_taken_up_only_for_a_body_sent_as_made() {
        use http_body_util::Full;
        let windows = Arc::new(Windows::default());
        let response = |length: Option<&str>| {
            let offer = Offer::default();
            let mut r = http::Response::new(Full::new(Bytes::from_static(b"12345")));
            r.extensions_mut().insert(offer.clone());
            if let Some(l) = length {
                r.headers_mut()
                    .insert(http::header::CONTENT_LENGTH, l.parse().unwrap());
            }
            (r, offer)
        };
        let (mut r, offer) = response(Some("5"));
        take_up(&mut r, &windows);
        assert!(offer.windows().is_some());
        assert!(r.extensions().get::<Offer>().is_none());
        for length in [None, Some("6")] {
            let (mut r, offer) = response(length);
            take_up(&mut r, &windows);
            assert!(offer.windows().is_none(), "{length:?}");
        }
    }
}
