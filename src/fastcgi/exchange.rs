//! One request and its response over a FastCGI connection it is lent.
//!
//! The caller drives it in order: `send_request` (BEGIN_REQUEST and PARAMS,
//! maybe the whole STDIN), `send_stdin` for a streamed body and `end_stdin`,
//! then `read_head` for the CGI head, then `next_chunk` until it returns
//! None, which is the moment END_REQUEST arrived and the connection is given
//! back to its owner ([`LentConn::release`]: upstream's pool). Anything else
//! (an error, a timeout, the caller dropping it) closes the connection: its
//! state is unknown, so it is never reused. A response that ends without
//! END_REQUEST is an error, never a short body that looks complete.
//!
//! Each exchange on a connection has a request id of its own, and a record
//! for any other id fails it: a record left over from an earlier exchange is
//! never read as this one's answer.
//!
//! The response framing is checked here, so no caller passes on a body its
//! head misdescribes: a 1xx status, a `Content-Length` that is not one
//! number, or a body longer or shorter than it is [`Unusable`] (the script's
//! failure, not the backend's). Memory stays bounded: what is held before the
//! head is returned is at most what was already read, or the declared length.
//!
//! STDERR records go to the log with the backend's name, bounded per request
//! so a script that floods STDERR costs log lines, not memory, and escaped so
//! it cannot forge log lines.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue};

use crate::fastcgi::cgi::{self, CgiError, CgiHead};
use crate::fastcgi::conn::{ConnError, Connection};
use crate::fastcgi::params::ParamList;
use crate::fastcgi::record::{self, ProtocolError, ProtocolStatus, Record, RecordType};

/// STDERR records logged per request; the rest are counted in one line.
const STDERR_LOG_LIMIT: u32 = 20;
/// Bytes of one STDERR record put in the log.
const STDERR_LOG_BYTES: usize = 2048;

/// php-fpm's answer when SCRIPT_FILENAME names no file: one STDERR record
/// holding exactly this, before the 404 head (php-src
/// sapi/fpm/fpm/fpm_main.c; measured on php-fpm 8.2, where the record has
/// no newline; older versions end it with one).
pub const PRIMARY_SCRIPT_UNKNOWN: &[u8] = b"Primary script unknown";

/// How long the piece that completes a response's `Content-Length` waits
/// for the END_REQUEST behind it. php-fpm sends END_REQUEST when the
/// script ends, nearly always with its last output or a few ms later (the
/// session written, shutdown functions): then the connection goes back to
/// the pool at once, and a backend that dies before it cuts the response.
/// A script that sends its whole length, flushes and works on (PHP's
/// "answer early" idiom) gets its response sent after this, and the rest
/// is read on a task of its own ([`Exchange::finish`]).
pub const END_GRACE: Duration = Duration::from_millis(50);

/// What went wrong in one exchange, once it had a connection.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("sending the request: {0}")]
    Send(std::io::Error),
    #[error("no progress sending the request for {0:?}")]
    SendTimeout(Duration),
    /// No progress sending the request body for the send timeout, while
    /// php-fpm had sent more response than fpmlb takes in meanwhile
    /// ([`READ_WHILE_WRITING`](crate::fastcgi::conn::READ_WHILE_WRITING)):
    /// a script that answers before it reads its body. The worker is alive
    /// and the script's doing is the request's failure alone.
    #[error(
        "the script sent over {kib} KiB of response and took no more of the request body for {0:?}",
        kib = crate::fastcgi::conn::READ_WHILE_WRITING / 1024
    )]
    BodyNotTaken(Duration),
    #[error("reading the response: {0}")]
    Read(#[from] ConnError),
    #[error("no response for {0:?}")]
    ReadTimeout(Duration),
    #[error("connection closed before the response was complete")]
    Closed,
    /// php-fpm's END_REQUEST said it did not take the request (overloaded,
    /// cannot multiplex, unknown role): no script ran.
    #[error("backend refused the request: {0}")]
    Refused(&'static str),
    /// The script ran and answered, but with something HTTP cannot carry.
    /// The backend works: this is the request's failure alone.
    #[error("unusable response from the script: {0}")]
    Unusable(#[from] Unusable),
}

impl From<CgiError> for ExchangeError {
    fn from(e: CgiError) -> Self {
        ExchangeError::Unusable(Unusable::Head(e))
    }
}

/// A response a script produced that HTTP cannot carry (nginx answers 502 to
/// each, and neither retries it nor counts it against the server with its
/// default `fastcgi_next_upstream error timeout`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unusable {
    /// A head that does not parse: bad bytes in a header, a bad `Status:`,
    /// over [`cgi::MAX_HEAD_LEN`], or no head at all.
    #[error("{0}")]
    Head(#[from] CgiError),
    /// `http_response_code(100)` and the like: a 1xx is never a final
    /// response, and passing it on would leave the client waiting for one.
    #[error("status {0}: a 1xx status is not a final response")]
    Informational(u16),
    /// A `Content-Length` that is not digits, or several that differ.
    #[error("Content-Length {0:?} is not one length")]
    BadContentLength(String),
    /// More body than the script's `Content-Length`: passed on, the rest
    /// would be read by the client as the next response.
    #[error("body longer than its Content-Length {declared}")]
    BodyLonger { declared: u64 },
    /// The script ended its response before its `Content-Length`.
    #[error("body of {sent} bytes for a Content-Length of {declared}")]
    BodyShorter { declared: u64, sent: u64 },
    /// A response to one of fpmlb's own requests over what it reads.
    #[error("response over {0} bytes")]
    TooLarge(usize),
}

/// A connection lent to one exchange by whoever keeps it (upstream's pool).
pub trait LentConn {
    /// The connection; None once it was given back.
    fn conn(&mut self) -> Option<&mut Connection>;
    /// Gives the connection back: its exchange ended cleanly (END_REQUEST),
    /// so it can carry another. Dropping it instead closes it.
    fn release(self);
    /// Whose connection it is, for log lines (the backend's name).
    fn name(&self) -> &str;
    /// How long the first response byte may take before the owner hears of
    /// it through [`LentConn::waiting_for_worker`]; None: nobody asks.
    fn worker_patience(&self) -> Option<Duration> {
        None
    }
    /// No response byte came within `patience` ([`LentConn::worker_patience`]):
    /// the request may be waiting in the backend's listen queue for a worker.
    fn waiting_for_worker(&mut self, _patience: Duration) {}
    /// No response byte came within twice the patience either: likely not a
    /// request waiting for a worker (one given back would most likely have
    /// reached it, unless others queued before it).
    fn worker_wait_over(&mut self) {}
    /// The first response record arrived.
    fn response_started(&mut self) {}
    /// Whether to send a readiness check (GET_VALUES) behind the request,
    /// which its owner reads before lending the connection again (see
    /// [`Connection::check_ready_now`]); its answer may take as long as
    /// the exchange's `read_timeout`.
    fn check_ready(&mut self, _read_timeout: Duration) -> bool {
        false
    }
    /// The answer to the check sent behind the last exchange on this
    /// connection came `waited` after this exchange's request went out:
    /// the request waited that long for the script before it to end.
    fn waited_for_script(&mut self, _waited: Duration) {}
    /// php-fpm closed the connection right after answering a check, before
    /// answering the request behind it.
    fn closed_after_check(&mut self) {}
}

/// The start of a response: the CGI head and the body bytes read with it.
#[derive(Debug)]
pub struct ResponseStart {
    pub head: CgiHead,
    /// Body bytes already read.
    pub body: Bytes,
    /// True when END_REQUEST was read too: `body` is the whole body.
    pub complete: bool,
}

/// Timeouts of one exchange (nginx's fastcgi_send_timeout and
/// fastcgi_read_timeout: the longest pause between two writes or reads, not
/// the whole exchange).
#[derive(Debug, Clone, Copy)]
pub struct ExchangeTimeouts {
    pub send: Duration,
    pub read: Duration,
}

/// An exchange in progress over a connection `C` it was lent.
#[derive(Debug)]
pub struct Exchange<C: LentConn> {
    conn: Option<C>,
    timeouts: ExchangeTimeouts,
    /// The request id of this exchange (see [`Connection::next_request_id`]).
    id: u16,
    /// A readiness check goes out behind the request's end (see
    /// [`LentConn::check_ready`]).
    check_ready: bool,
    /// When the request went out whole, if the check sent behind the
    /// exchange before it was not answered yet: its answer tells how long
    /// this request waited for that script.
    behind_check: Option<std::time::Instant>,
    /// A check's answer was read in this exchange.
    check_answered: bool,
    buf: BytesMut,
    /// Some response byte (STDOUT or STDERR) arrived.
    got_response: bool,
    /// Some STDOUT byte arrived.
    got_stdout: bool,
    /// The first record arrived (the owner was told, see `LentConn`).
    started: bool,
    /// Left to wait for the first record before telling the owner.
    patience: Option<Duration>,
    stderr_records: u32,
    /// php-fpm said "Primary script unknown": SCRIPT_FILENAME names no
    /// file. Set only for its exact STDERR record before a 404 head, never
    /// for a script's own output that quotes those words.
    pub script_unknown: bool,
    /// The body length the head announced, checked as the body arrives.
    declared: Option<u64>,
    /// Body bytes read so far.
    received: u64,
    ended: bool,
    /// [`END_GRACE`] was waited once (the length is complete).
    end_awaited: bool,
    /// The answer has no body (HEAD, 204, 304): STDOUT after the head is
    /// dropped.
    discard: bool,
}

impl<C: LentConn> Exchange<C> {
    pub fn new(mut conn: C, timeouts: ExchangeTimeouts) -> Exchange<C> {
        let id = conn.conn().map_or(1, Connection::next_request_id);
        let patience = conn.worker_patience();
        let check_ready = conn.check_ready(timeouts.read);
        Exchange {
            conn: Some(conn),
            timeouts,
            id,
            check_ready,
            behind_check: None,
            check_answered: false,
            buf: BytesMut::new(),
            got_response: false,
            got_stdout: false,
            started: false,
            patience,
            stderr_records: 0,
            script_unknown: false,
            declared: None,
            received: 0,
            ended: false,
            end_awaited: false,
            discard: false,
        }
    }

    /// Some byte of the response arrived: from here a retry is unsafe.
    pub fn got_response(&self) -> bool {
        self.got_response
    }

    /// Sends the request head: BEGIN_REQUEST (keep the connection), PARAMS,
    /// and the whole STDIN when `stdin` is given (a body already in memory,
    /// maybe empty), in one write. With `stdin` None the caller streams the
    /// body with [`Exchange::send_stdin`] and [`Exchange::end_stdin`].
    pub async fn send_request(
        &mut self,
        params: &ParamList,
        stdin: Option<&[u8]>,
    ) -> Result<(), ExchangeError> {
        let check = self.check_ready && stdin.is_some();
        let head = encode_request_head(params, stdin, self.id, check);
        // Timed only when the whole request goes out here: a body streamed
        // after it (a slow upload) would count as a wait for the worker.
        if stdin.is_some()
            && let Some(conn) = self.conn.as_mut().and_then(C::conn)
            && conn.checks_pending() > 0
        {
            self.behind_check = Some(std::time::Instant::now());
        }
        self.send(&head).await?;
        if check {
            self.ready_check_sent();
        }
        Ok(())
    }

    /// The request's end went out with a readiness check behind it.
    fn ready_check_sent(&mut self) {
        if let Some(conn) = self.conn.as_mut().and_then(C::conn) {
            conn.ready_check_sent();
        }
    }

    /// Sends bytes already encoded as records.
    async fn send(&mut self, bytes: &[u8]) -> Result<(), ExchangeError> {
        let timeout = self.timeouts.send;
        let conn = self
            .conn
            .as_mut()
            .and_then(C::conn)
            .ok_or(ExchangeError::Closed)?;
        let result = match tokio::time::timeout(timeout, conn.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ExchangeError::Send(e)),
            Err(_) if conn.read_while_writing_full() => Err(ExchangeError::BodyNotTaken(timeout)),
            Err(_) => Err(ExchangeError::SendTimeout(timeout)),
        };
        // Output of this request taken in while writing: the script ran,
        // so the request must not be sent again (a failed write on a kept
        // connection is otherwise retried as a stale one).
        if result.is_err() && conn.holds_output_for(self.id) {
            self.got_response = true;
        }
        result
    }

    /// Sends a piece of request body as STDIN records.
    pub async fn send_stdin(&mut self, data: &[u8]) -> Result<(), ExchangeError> {
        let mut out = std::mem::take(&mut self.buf);
        out.clear();
        record::encode_stream(&mut out, RecordType::Stdin, self.id, data);
        let result = self.send(&out).await;
        self.buf = out;
        result
    }

    /// Sends the empty STDIN record that ends the body.
    pub async fn end_stdin(&mut self) -> Result<(), ExchangeError> {
        let mut out = BytesMut::with_capacity(record::HEADER_LEN + READY_CHECK_LEN);
        record::encode_end_of_stream(&mut out, RecordType::Stdin, self.id);
        if self.check_ready {
            encode_ready_check(&mut out);
        }
        self.send(&out).await?;
        if self.check_ready {
            self.ready_check_sent();
        }
        Ok(())
    }

    /// Reads records until the CGI head is complete, then takes whatever
    /// else is already buffered without waiting, so a short response comes
    /// back whole and gets a Content-Length.
    ///
    /// `no_body`: the answer to a HEAD request. Its body, and that of a 204
    /// or 304, is read to END_REQUEST and dropped: HTTP carries none, and
    /// holding it would cost memory for nothing. Otherwise the body is
    /// checked against the head's `Content-Length` as it arrives.
    pub async fn read_head(&mut self, no_body: bool) -> Result<ResponseStart, ExchangeError> {
        let mut head_buf = BytesMut::new();
        let (mut head, first) = loop {
            match self.next_record().await? {
                Some(chunk) => {
                    let parsed = if head_buf.is_empty() {
                        match cgi::parse_head(&chunk)? {
                            Some((head, start)) => Some((head, chunk.slice(start..))),
                            None => {
                                head_buf.extend_from_slice(&chunk);
                                None
                            }
                        }
                    } else {
                        // What came before holds no end of head: the scan
                        // goes on from there (linear, whatever the pieces).
                        let scanned = head_buf.len();
                        head_buf.extend_from_slice(&chunk);
                        cgi::parse_head_from(&head_buf, scanned)?
                            .map(|(head, start)| (head, head_buf.split_off(start).freeze()))
                    };
                    if let Some(done) = parsed {
                        break done;
                    }
                }
                None => {
                    // END_REQUEST with no complete head. php-fpm sends a head
                    // for every response it makes, so this is a broken one.
                    return Err(CgiError::Incomplete.into());
                }
            }
        };
        if head.status < 200 {
            return Err(Unusable::Informational(head.status).into());
        }
        if head.status != 404 {
            self.script_unknown = false;
        }
        let declared = declared_length(&mut head.headers)?;
        if no_body || matches!(head.status, 204 | 304) {
            // No body goes out: what the script writes after its head is
            // read and dropped, and the answer is whole with its head.
            self.discard = true;
            self.await_end(END_GRACE).await?;
            return Ok(ResponseStart {
                head,
                body: Bytes::new(),
                complete: true,
            });
        }
        self.declared = declared;
        self.count_body(first.len())?;
        let mut body = first;
        let mut complete = false;
        let mut more: Option<BytesMut> = None;
        // Only what the connection's buffer holds in full (at most a read's
        // worth): a STDERR record there must not lead to a read of the
        // socket, which would hold the head back and gather the body here
        // for as long as the script writes.
        while !self.ended {
            let Some(next) = self.next_buffered()? else {
                break;
            };
            match self.body_step(next).await? {
                Some(chunk) => {
                    let acc = more.get_or_insert_with(|| BytesMut::from(&body[..]));
                    acc.extend_from_slice(&chunk);
                }
                None => complete = true,
            }
        }
        // The piece that completed the length came with its END_REQUEST.
        complete |= self.ended;
        if let Some(acc) = more {
            body = acc.freeze();
        }
        // When the head says the body is all here (its Content-Length has
        // arrived), the response is whole: wait a little for END_REQUEST
        // (see END_GRACE), so that the connection goes back to the pool
        // now. Any byte past the Content-Length fails the exchange, so
        // nothing more is held in memory while waiting.
        if !complete && self.length_complete() {
            self.await_end(END_GRACE).await?;
            complete = true;
        }
        Ok(ResponseStart {
            head,
            body,
            complete,
        })
    }

    /// Whether the next record is body data already read (STDOUT, not
    /// STDERR or the end): the next [`Self::next_chunk`] returns without
    /// a read from the socket.
    pub fn has_buffered_data(&mut self) -> bool {
        self.conn
            .as_mut()
            .and_then(C::conn)
            .is_some_and(|c| c.has_buffered_data())
    }

    /// The next piece of body; None once END_REQUEST arrived (the connection
    /// is back in the pool then). Fails when the body runs past or stops
    /// short of the head's `Content-Length`.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ExchangeError> {
        if self.ended {
            return Ok(None);
        }
        self.next_body().await
    }

    /// The next STDOUT data after the head, counted against the declared
    /// length; at END_REQUEST, checks that the whole length came.
    ///
    /// The piece that completes the declared length comes back once
    /// END_REQUEST has been read, or after [`END_GRACE`] without it: hyper
    /// asks for no more of a body once its Content-Length is sent, so the
    /// caller then hands the exchange to [`Exchange::finish`] when
    /// [`Exchange::awaits_end`]. Any byte past the length fails here.
    async fn next_body(&mut self) -> Result<Option<Bytes>, ExchangeError> {
        let next = self.next_record().await?;
        self.body_step(next).await
    }

    /// [`Self::next_body`] for a record already taken: `Some` data, or
    /// `None` at END_REQUEST.
    async fn body_step(&mut self, next: Option<Bytes>) -> Result<Option<Bytes>, ExchangeError> {
        match next {
            Some(data) => {
                self.count_body(data.len())?;
                if self.length_complete() {
                    self.await_end(END_GRACE).await?;
                }
                Ok(Some(data))
            }
            None => match self.declared {
                Some(declared) if self.received < declared => Err(Unusable::BodyShorter {
                    declared,
                    sent: self.received,
                }
                .into()),
                _ => Ok(None),
            },
        }
    }

    /// Whether the whole declared length has arrived.
    fn length_complete(&self) -> bool {
        self.declared.is_some_and(|d| self.received >= d)
    }

    /// True when the response's whole `Content-Length` (or the head of an
    /// answer with no body) has arrived but its END_REQUEST has not: the
    /// script works on. Dropping the exchange
    /// would close a connection whose worker is still busy; hand it to
    /// [`Exchange::finish`] instead.
    pub fn awaits_end(&self) -> bool {
        !self.ended && self.conn.is_some() && (self.discard || self.length_complete())
    }

    /// Reads to END_REQUEST, for at most `grace`, once: whether it came.
    async fn await_end(&mut self, grace: Duration) -> Result<bool, ExchangeError> {
        if std::mem::replace(&mut self.end_awaited, true) {
            return Ok(self.ended);
        }
        // Reading a record is cancel-safe: a record cut by the grace stays
        // in the connection's buffer for the next read.
        match tokio::time::timeout(grace, self.read_end()).await {
            Ok(read) => read.map(|()| true),
            Err(_) => Ok(false),
        }
    }

    /// Reads to END_REQUEST (the connection goes back to its pool then);
    /// any body byte now runs past the length and fails, or is dropped
    /// when the answer has no body.
    async fn read_end(&mut self) -> Result<(), ExchangeError> {
        while let Some(more) = self.next_record().await? {
            if !self.discard {
                self.count_body(more.len())?;
            }
        }
        Ok(())
    }

    /// Reads what is left of a response whose whole `Content-Length` has
    /// arrived (see [`Exchange::awaits_end`]): its END_REQUEST, each record
    /// within the read timeout. An error closes the connection; the
    /// response itself was whole.
    pub async fn finish(mut self) -> Result<(), ExchangeError> {
        if self.ended {
            return Ok(());
        }
        self.read_end().await
    }

    /// Counts `len` more body bytes; an error when they run past the length.
    fn count_body(&mut self, len: usize) -> Result<(), ExchangeError> {
        self.received = self.received.saturating_add(len as u64);
        match self.declared {
            Some(declared) if self.received > declared => {
                Err(Unusable::BodyLonger { declared }.into())
            }
            _ => Ok(()),
        }
    }

    /// Reads one record, telling the connection's owner when the first one
    /// is slow to come (see [`LentConn::worker_patience`]).
    async fn read_record(&mut self) -> Result<(u16, Record), ExchangeError> {
        let timeout = self.timeouts.read;
        let mut left = timeout;
        if let Some(patience) = self.patience.take().filter(|p| *p < timeout) {
            // Reading a record is cancel-safe (bytes stay in the
            // connection's buffer): tell the owner, then go on.
            if let Some(read) = self.read_record_within(patience).await? {
                return Ok(read);
            }
            if let Some(c) = self.conn.as_mut() {
                c.waiting_for_worker(patience);
            }
            left -= patience;
            // A worker given back reaches a connection that waits for one
            // within about an exchange: past one more patience, this one is
            // a slow script's, and its owner stops giving workers back.
            let window = patience.min(left);
            if let Some(read) = self.read_record_within(window).await? {
                return Ok(read);
            }
            if let Some(c) = self.conn.as_mut() {
                c.worker_wait_over();
            }
            left -= window;
        }
        self.read_record_within(left)
            .await?
            .ok_or(ExchangeError::ReadTimeout(timeout))
    }

    /// One record, or None when none came within `wait`.
    async fn read_record_within(
        &mut self,
        wait: Duration,
    ) -> Result<Option<(u16, Record)>, ExchangeError> {
        let conn = self.conn_mut()?;
        match tokio::time::timeout(wait, conn.read_record()).await {
            Ok(read) => finish_read(read).map(Some),
            Err(_) => Ok(None),
        }
    }

    fn conn_mut(&mut self) -> Result<&mut Connection, ExchangeError> {
        self.conn
            .as_mut()
            .and_then(C::conn)
            .ok_or(ExchangeError::Closed)
    }

    /// Reads records, logging STDERR, until STDOUT data or the end.
    async fn next_record(&mut self) -> Result<Option<Bytes>, ExchangeError> {
        loop {
            let read = match self.read_record().await {
                Err(ExchangeError::Closed) if self.check_answered && !self.got_response => {
                    if let Some(c) = self.conn.as_mut() {
                        c.closed_after_check();
                    }
                    return Err(ExchangeError::Closed);
                }
                read => read?,
            };
            if let Some(next) = self.take(read)? {
                return Ok(next);
            }
        }
    }

    /// As [`Self::next_record`], from the records the connection holds in
    /// full, never reading the socket: `None` when they ran out before
    /// STDOUT data or the end.
    fn next_buffered(&mut self) -> Result<Option<Option<Bytes>>, ExchangeError> {
        loop {
            let Some(conn) = self.conn.as_mut().and_then(C::conn) else {
                return Ok(None);
            };
            let Some(read) = conn.buffered_record()? else {
                return Ok(None);
            };
            if let Some(next) = self.take(read)? {
                return Ok(Some(next));
            }
        }
    }

    /// Applies one record of the response: `Some(Some(data))` for STDOUT
    /// data, `Some(None)` at END_REQUEST, `None` for a record that carries
    /// neither (STDERR, logged; the empty STDOUT; management answers).
    fn take(
        &mut self,
        (id, record): (u16, Record),
    ) -> Result<Option<Option<Bytes>>, ExchangeError> {
        if id == 0 && matches!(record, Record::GetValuesResult(_)) {
            self.check_answer();
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            if let Some(c) = self.conn.as_mut() {
                c.response_started();
            }
        }
        let management = matches!(record, Record::GetValuesResult(_) | Record::UnknownType(_));
        let expected = if management { 0 } else { self.id };
        if id != expected {
            return Err(ConnError::Protocol(ProtocolError::UnexpectedRequestId {
                got: id,
                expected,
            })
            .into());
        }
        match record {
            Record::Stdout(data) => {
                self.got_response = true;
                self.got_stdout = true;
                if data.is_empty() {
                    return Ok(None); // end of the STDOUT stream; END_REQUEST follows
                }
                Ok(Some(Some(data)))
            }
            Record::Stderr(data) => {
                self.got_response = true;
                self.log_stderr(&data);
                Ok(None)
            }
            Record::EndRequest {
                protocol_status, ..
            } => {
                let refused = match protocol_status {
                    ProtocolStatus::RequestComplete => {
                        self.ended = true;
                        if let Some(conn) = self.conn.take() {
                            conn.release();
                        }
                        return Ok(Some(None));
                    }
                    ProtocolStatus::Overloaded => "overloaded",
                    ProtocolStatus::CantMpxConn => "cannot multiplex",
                    ProtocolStatus::UnknownRole => "unknown role",
                    ProtocolStatus::Other(_) => "unknown protocol status",
                };
                if self.got_response {
                    // Output came first: the script ran. Not a refusal, which
                    // would send the request to another backend.
                    return Err(
                        ConnError::Protocol(ProtocolError::RefusedAfterOutput(refused)).into(),
                    );
                }
                Err(ExchangeError::Refused(refused))
            }
            // UNKNOWN_TYPE answers a management record we never send
            // (a readiness check's answer is taken above): ignored
            // rather than failing the request.
            Record::GetValuesResult(_) | Record::UnknownType(_) => Ok(None),
        }
    }

    /// The answer to the check sent behind the exchange before this one on
    /// the connection: its worker came back to read this request then.
    fn check_answer(&mut self) {
        self.check_answered = true;
        if let Some(conn) = self.conn.as_mut().and_then(C::conn) {
            conn.check_answered();
        }
        if let Some(sent) = self.behind_check.take()
            && let Some(owner) = self.conn.as_mut()
        {
            owner.waited_for_script(sent.elapsed());
        }
    }

    fn log_stderr(&mut self, data: &[u8]) {
        if !self.got_stdout && self.stderr_records == 0 && is_primary_script_unknown(data) {
            // A client asking for a script that is not there: the handler
            // says so once, at info (a 404 any client can cause must not
            // flood the log at warn).
            self.script_unknown = true;
            self.stderr_records = 1;
            return;
        }
        self.stderr_records = self.stderr_records.saturating_add(1);
        let backend = self.conn.as_ref().map_or("", C::name);
        if self.stderr_records <= STDERR_LOG_LIMIT {
            let shown = &data[..data.len().min(STDERR_LOG_BYTES)];
            let text = escape_log_text(shown);
            tracing::warn!(backend = %backend, "FastCGI sent in stderr: {text}");
        } else if self.stderr_records == STDERR_LOG_LIMIT + 1 {
            tracing::warn!(backend = %backend, "more FastCGI stderr for this request is not logged");
        }
    }
}

/// Turns a read of the connection into a record or the exchange's error.
fn finish_read(
    read: Result<Option<(u16, Record)>, ConnError>,
) -> Result<(u16, Record), ExchangeError> {
    match read {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(ExchangeError::Closed),
        Err(e) => Err(ExchangeError::Read(e)),
    }
}

/// php-fpm's own "Primary script unknown" record, and nothing else: a
/// PHP warning that quotes those words (user input, say) is not it.
pub fn is_primary_script_unknown(stderr: &[u8]) -> bool {
    let line = stderr.strip_suffix(b"\n").unwrap_or(stderr);
    line == PRIMARY_SCRIPT_UNKNOWN
}

/// STDERR text for one log line: invalid UTF-8 replaced, trailing line ends
/// dropped, and every other control byte escaped (`\n`, `\u{1b}`), so a
/// script's output can never start a line of its own in the text log.
pub fn escape_log_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches(['\r', '\n']);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        // Control characters (C0, DEL, C1), and the line and paragraph
        // separators some log readers break lines at.
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// A peer's text for a log line or an error: escaped as
/// [`escape_log_text`], at most `max` characters, then the original size.
pub fn escape_log_text_within(bytes: &[u8], max: usize) -> String {
    let text = escape_log_text(bytes);
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}... ({} bytes)", &text[..cut], bytes.len()),
        None => text,
    }
}

/// The body length a head announces, its `Content-Length` headers made one:
/// repeated equal values are kept once; differing or malformed ones make the
/// response unusable (two lengths would let the client and a proxy between
/// frame the body differently).
fn declared_length(headers: &mut Vec<(HeaderName, HeaderValue)>) -> Result<Option<u64>, Unusable> {
    let mut declared: Option<u64> = None;
    let mut error = None;
    headers.retain(|(name, value)| {
        if name != http::header::CONTENT_LENGTH || error.is_some() {
            return true;
        }
        let parsed = value
            .to_str()
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok());
        match (parsed, declared) {
            (Some(n), None) => {
                declared = Some(n);
                true
            }
            (Some(n), Some(d)) if n == d => false,
            _ => {
                error = Some(Unusable::BadContentLength(
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                ));
                true
            }
        }
    });
    match error {
        Some(e) => Err(e),
        None => Ok(declared),
    }
}

/// BEGIN_REQUEST (keep the connection), PARAMS, and the whole STDIN when
/// `stdin` is given (a body already in memory, maybe empty), all for request
/// `id`: one buffer, so one write. With `stdin` None the caller streams the
/// body after it.
///
/// `check_ready`: a readiness check follows the whole STDIN (see
/// [`encode_ready_check`]).
fn encode_request_head(
    params: &ParamList,
    stdin: Option<&[u8]>,
    id: u16,
    check_ready: bool,
) -> Bytes {
    let body_len = stdin.map_or(0, <[u8]>::len);
    let mut head = BytesMut::with_capacity(
        512 + params.len() * 40 + body_len + body_len / 8 + READY_CHECK_LEN,
    );
    record::encode_begin_request(&mut head, id, record::FCGI_RESPONDER, true);
    record::encode_params(&mut head, id, params.iter());
    if let Some(body) = stdin {
        record::encode_stream(&mut head, RecordType::Stdin, id, body);
        record::encode_end_of_stream(&mut head, RecordType::Stdin, id);
        if check_ready {
            encode_ready_check(&mut head);
        }
    }
    head.freeze()
}

/// The bytes of [`encode_ready_check`]'s record: its header, and one name
/// of 15 bytes with an empty value (two length bytes).
const READY_CHECK_LEN: usize = record::HEADER_LEN + 17;

/// The readiness check sent behind a request's last STDIN record: a
/// GET_VALUES of one variable php-fpm knows. php-fpm reads it, and
/// answers, only when its worker comes back for the next request: after
/// the script has ended, not at its END_REQUEST, which
/// `fastcgi_finish_request()` (Symfony's `kernel.terminate`, Laravel's
/// terminable middleware) sends while the script works on (php-src#10335).
/// A kept connection whose answer has not come is not lent again: a
/// request sent on it would wait for that work.
pub(super) fn encode_ready_check(buf: &mut BytesMut) {
    record::encode_get_values(buf, &[b"FCGI_MPXS_CONNS"]);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::fastcgi::conn::Endpoint;

    /// Where a test's connection goes when an exchange gives it back.
    #[derive(Clone, Default)]
    struct Back(Arc<Mutex<Option<Connection>>>);

    impl Back {
        fn released(&self) -> bool {
            self.0.lock().unwrap().is_some()
        }
        fn take(&self) -> Connection {
            self.0
                .lock()
                .unwrap()
                .take()
                .expect("the connection was given back")
        }
    }

    /// A connection lent by a test.
    struct Lent {
        conn: Option<Connection>,
        back: Back,
        /// Waits reported through [`LentConn::waited_for_script`].
        waits: Arc<Mutex<u32>>,
    }

    impl LentConn for Lent {
        fn conn(&mut self) -> Option<&mut Connection> {
            self.conn.as_mut()
        }
        fn release(self) {
            *self.back.0.lock().unwrap() = self.conn;
        }
        fn name(&self) -> &str {
            "test"
        }
        fn waited_for_script(&mut self, _waited: Duration) {
            *self.waits.lock().unwrap() += 1;
        }
    }

    const TIMEOUTS: ExchangeTimeouts = ExchangeTimeouts {
        send: Duration::from_secs(5),
        read: Duration::from_secs(5),
    };

    fn stdout(id: u16, data: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        record::encode_stream(&mut out, RecordType::Stdout, id, data);
        out.to_vec()
    }

    fn stderr(id: u16, data: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        record::encode_stream(&mut out, RecordType::Stderr, id, data);
        out.to_vec()
    }

    fn end_request(id: u16) -> Vec<u8> {
        let [hi, lo] = id.to_be_bytes();
        vec![1, 3, hi, lo, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    }

    /// Reads one request, to the empty STDIN record that ends it; false
    /// when the connection closed first.
    async fn read_request(s: &mut tokio::net::TcpStream) -> bool {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(&[0, 0, 0, 0]) || got.len() < 16 {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        true
    }

    /// A backend that answers each request it reads with the next of
    /// `answers` (whatever bytes they are), on one kept connection.
    async fn backend(answers: Vec<Vec<u8>>) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for answer in answers {
                if !read_request(&mut s).await {
                    return;
                }
                s.write_all(&answer).await.unwrap();
            }
            let mut sink = [0u8; 64];
            while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
        });
        Endpoint::Tcp(addr)
    }

    async fn connect(endpoint: &Endpoint) -> Connection {
        Connection::connect(endpoint, Duration::from_secs(5))
            .await
            .unwrap()
    }

    async fn exchange(conn: Connection) -> (Exchange<Lent>, Back) {
        let back = Back::default();
        let lent = Lent {
            conn: Some(conn),
            back: back.clone(),
            waits: Arc::default(),
        };
        let mut ex = Exchange::new(lent, TIMEOUTS);
        ex.send_request(&ParamList::with_capacity(16, 1), Some(b""))
            .await
            .unwrap();
        (ex, back)
    }

    /// Output of this request taken in while a body was written, then the
    /// write failed (the worker killed mid-upload): the script ran, so the
    /// response counts as begun and the request is never sent again.
    #[tokio::test]
    async fn output_taken_in_before_a_failed_write_marks_the_response_begun() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::Tcp(listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut s = s;
            s.write_all(&stdout(1, b"Status: 200\r\n\r\npartial"))
                .await
                .unwrap();
            // Reads nothing; then goes as a killed worker does (a reset).
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            drop(s);
        });
        let conn = connect(&endpoint).await;
        let lent = Lent {
            conn: Some(conn),
            back: Back::default(),
            waits: Arc::default(),
        };
        let mut ex = Exchange::new(lent, TIMEOUTS);
        ex.send_request(&ParamList::with_capacity(16, 1), None)
            .await
            .unwrap();
        assert!(!ex.got_response());
        let body = vec![b'b'; 32 * 1024 * 1024];
        let sent = ex.send_stdin(&body).await;
        assert!(matches!(sent, Err(ExchangeError::Send(_))), "{sent:?}");
        assert!(ex.got_response());
    }

    /// php-fpm's answer to a readiness check.
    const CHECK_ANSWER: &[u8] =
        b"\x01\x0a\x00\x00\x00\x12\x06\x00\x0f\x01FCGI_MPXS_CONNS0\0\0\0\0\0\0";

    /// The answer to the check sent behind the exchange before comes first
    /// on a connection lent again: it is not part of the response, and the
    /// owner hears how long the request waited for it, unless the request's
    /// body was streamed (an upload's time is no wait for a worker).
    #[tokio::test]
    async fn a_check_answered_in_the_next_exchange_times_a_whole_request_only() {
        let response = || answer(&[CHECK_ANSWER.to_vec(), stdout(1, b"\r\nok"), end_request(1)]);
        for streamed in [false, true] {
            let endpoint = backend(vec![response()]).await;
            let mut conn = connect(&endpoint).await;
            conn.ready_check_sent();
            let waits = Arc::new(Mutex::new(0));
            let back = Back::default();
            let lent = Lent {
                conn: Some(conn),
                back: back.clone(),
                waits: Arc::clone(&waits),
            };
            let mut ex = Exchange::new(lent, TIMEOUTS);
            let params = ParamList::with_capacity(16, 1);
            if streamed {
                ex.send_request(&params, None).await.unwrap();
                ex.send_stdin(b"body").await.unwrap();
                ex.end_stdin().await.unwrap();
            } else {
                ex.send_request(&params, Some(b"body")).await.unwrap();
            }
            let (_, body) = read_all(&mut ex, false).await.unwrap();
            assert_eq!(body, b"ok");
            assert_eq!(
                *waits.lock().unwrap(),
                u32::from(!streamed),
                "streamed {streamed}"
            );
            assert_eq!(back.take().checks_pending(), 0);
        }
    }

    /// One exchange over a new connection to a backend answering `answer`.
    async fn one(answer: Vec<u8>) -> (Exchange<Lent>, Back) {
        let endpoint = backend(vec![answer]).await;
        exchange(connect(&endpoint).await).await
    }

    /// The whole body, read to the end.
    async fn read_all(
        ex: &mut Exchange<Lent>,
        no_body: bool,
    ) -> Result<(CgiHead, Vec<u8>), ExchangeError> {
        let start = ex.read_head(no_body).await?;
        let mut body = start.body.to_vec();
        while let Some(chunk) = ex.next_chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok((start.head, body))
    }

    fn answer(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    /// The readiness check goes behind the request's last STDIN record,
    /// and only when the whole body is in the head.
    #[test]
    fn the_readiness_check_follows_the_whole_request() {
        let params = ParamList::with_capacity(16, 1);
        let plain = encode_request_head(&params, Some(b"body"), 7, false);
        let checked = encode_request_head(&params, Some(b"body"), 7, true);
        assert_eq!(&checked[..plain.len()], &plain[..]);
        let mut check = BytesMut::from(&checked[plain.len()..]);
        assert_eq!(check.len(), READY_CHECK_LEN);
        assert_eq!(check[1], RecordType::GetValues as u8);
        assert_eq!(&check[2..4], &[0, 0], "a management record");
        check.clear();
        encode_ready_check(&mut check);
        assert_eq!(&checked[plain.len()..], &check[..]);
        // A streamed body: the check goes with its end, not its head.
        let head = encode_request_head(&params, None, 7, true);
        assert!(!head.windows(15).any(|w| w == b"FCGI_MPXS_CONNS"));
    }

    #[tokio::test]
    async fn a_body_that_fills_its_content_length_passes_and_the_connection_goes_back() {
        let (mut ex, released) = one(answer(&[
            stdout(1, b"Content-Length: 5\r\n\r\nhello"),
            end_request(1),
        ]))
        .await;
        let (head, body) = read_all(&mut ex, false).await.unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(body, b"hello");
        assert!(released.released());
    }

    /// A backend that reads one request and writes `parts`, each once its
    /// gate (if any) opens.
    async fn gated_backend(
        parts: Vec<(Option<tokio::sync::oneshot::Receiver<()>>, Vec<u8>)>,
    ) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            if !read_request(&mut s).await {
                return;
            }
            for (gate, bytes) in parts {
                if let Some(gate) = gate {
                    let _ = gate.await;
                }
                s.write_all(&bytes).await.unwrap();
            }
            let mut sink = [0u8; 64];
            while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
        });
        Endpoint::Tcp(addr)
    }

    /// An exchange with a backend that answers `first` at once and `rest`
    /// when the returned sender says so (the script working on between).
    async fn held_back(
        first: Vec<u8>,
        rest: Vec<u8>,
    ) -> (Exchange<Lent>, Back, tokio::sync::oneshot::Sender<()>) {
        let (go, gate) = tokio::sync::oneshot::channel();
        let endpoint = gated_backend(vec![(None, first), (Some(gate), rest)]).await;
        let (ex, back) = exchange(connect(&endpoint).await).await;
        (ex, back, go)
    }

    /// A connection whose owner watches for a first answer slow to come,
    /// and notes what it hears.
    struct Watching {
        conn: Option<Connection>,
        heard: Arc<Mutex<Vec<&'static str>>>,
    }

    impl LentConn for Watching {
        fn conn(&mut self) -> Option<&mut Connection> {
            self.conn.as_mut()
        }
        fn release(self) {}
        fn name(&self) -> &str {
            "test"
        }
        fn worker_patience(&self) -> Option<Duration> {
            Some(Duration::from_millis(20))
        }
        fn waiting_for_worker(&mut self, patience: Duration) {
            assert_eq!(patience, Duration::from_millis(20));
            self.heard.lock().unwrap().push("waiting");
        }
        fn worker_wait_over(&mut self) {
            self.heard.lock().unwrap().push("over");
        }
        fn response_started(&mut self) {
            self.heard.lock().unwrap().push("started");
        }
    }

    /// A first answer slower than twice the patience: the owner hears that
    /// the request may wait for a worker, then that it does not (a worker
    /// given back would have reached it by then), then the answer, which
    /// is read whole as any.
    #[tokio::test]
    async fn a_slow_first_answer_is_told_to_the_owner_then_the_wait_is_over() {
        let (go, gate) = tokio::sync::oneshot::channel();
        let endpoint = gated_backend(vec![(
            Some(gate),
            answer(&[stdout(1, b"Status: 200\r\n\r\nslow"), end_request(1)]),
        )])
        .await;
        let heard = Arc::new(Mutex::new(Vec::new()));
        let lent = Watching {
            conn: Some(connect(&endpoint).await),
            heard: Arc::clone(&heard),
        };
        let mut ex = Exchange::new(lent, TIMEOUTS);
        ex.send_request(&ParamList::with_capacity(16, 1), Some(b""))
            .await
            .unwrap();
        let reading = tokio::spawn(async move {
            let start = ex.read_head(false).await.map(|s| s.head.status);
            (start, ex)
        });
        for _ in 0..500 {
            if heard.lock().unwrap().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*heard.lock().unwrap(), ["waiting", "over"]);
        go.send(()).unwrap();
        let (status, _ex) = reading.await.unwrap();
        assert_eq!(status.unwrap(), 200);
        assert_eq!(*heard.lock().unwrap(), ["waiting", "over", "started"]);
    }

    /// A script that sends its whole Content-Length and works on: the
    /// response is whole after END_GRACE, with the head or as the last
    /// piece of a streamed body; `finish` then reads its END_REQUEST and
    /// gives the connection back.
    #[tokio::test]
    async fn a_whole_length_goes_out_while_the_script_works_on() {
        // Read with the head.
        let (mut ex, back, go) =
            held_back(stdout(1, b"Content-Length: 5\r\n\r\nhello"), end_request(1)).await;
        let start = ex.read_head(false).await.unwrap();
        assert!(start.complete);
        assert_eq!(&start.body[..], b"hello");
        assert!(ex.awaits_end() && !back.released());
        go.send(()).unwrap();
        ex.finish().await.unwrap();
        assert!(back.released());

        // The last piece of a streamed body.
        let (go_last, last) = tokio::sync::oneshot::channel();
        let (go_end, end) = tokio::sync::oneshot::channel();
        let endpoint = gated_backend(vec![
            (None, stdout(1, b"Content-Length: 10\r\n\r\nhello")),
            (Some(last), stdout(1, b"world")),
            (Some(end), end_request(1)),
        ])
        .await;
        let (mut ex, back) = exchange(connect(&endpoint).await).await;
        let start = ex.read_head(false).await.unwrap();
        assert!(!start.complete && !ex.awaits_end());
        go_last.send(()).unwrap();
        assert_eq!(&ex.next_chunk().await.unwrap().unwrap()[..], b"world");
        assert!(ex.awaits_end() && !back.released());
        go_end.send(()).unwrap();
        ex.finish().await.unwrap();
        assert!(back.released());
    }

    /// An answer with no body (HEAD here) whose script works on after its
    /// head: whole with its head; what the script writes next is dropped,
    /// and `finish` gives the connection back at END_REQUEST.
    #[tokio::test]
    async fn a_head_answer_goes_out_while_the_script_works_on() {
        let (mut ex, back, go) = held_back(
            stdout(1, b"Content-Length: 5\r\n\r\n"),
            answer(&[stdout(1, b"hello"), end_request(1)]),
        )
        .await;
        let start = ex.read_head(true).await.unwrap();
        assert!(start.complete && start.body.is_empty());
        assert!(ex.awaits_end() && !back.released());
        go.send(()).unwrap();
        ex.finish().await.unwrap();
        assert!(back.released());
    }

    /// Bytes past the length while the script works on fail `finish`: the
    /// connection is closed, not given back.
    #[tokio::test]
    async fn more_after_a_whole_length_closes_the_connection() {
        let (mut ex, back, go) = held_back(
            stdout(1, b"Content-Length: 5\r\n\r\nhello"),
            answer(&[stdout(1, b"!"), end_request(1)]),
        )
        .await;
        assert!(ex.read_head(false).await.unwrap().complete);
        go.send(()).unwrap();
        assert!(matches!(
            ex.finish().await,
            Err(ExchangeError::Unusable(Unusable::BodyLonger {
                declared: 5
            }))
        ));
        assert!(!back.released());
    }

    #[tokio::test]
    async fn a_body_past_its_content_length_is_unusable_before_it_is_held() {
        // One byte too many, and a megabyte too many: neither is buffered.
        for extra in [1usize, 1 << 20] {
            let mut body = b"Content-Length: 2\r\n\r\nhi".to_vec();
            body.extend(std::iter::repeat_n(b'x', extra));
            let (mut ex, released) = one(answer(&[stdout(1, &body), end_request(1)])).await;
            let err = read_all(&mut ex, false).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    ExchangeError::Unusable(Unusable::BodyLonger { declared: 2 })
                ),
                "{err}"
            );
            assert!(!released.released());
        }
    }

    #[tokio::test]
    async fn a_body_short_of_its_content_length_is_unusable() {
        let (mut ex, _) = one(answer(&[
            stdout(1, b"Content-Length: 10\r\n\r\nabc"),
            end_request(1),
        ]))
        .await;
        let err = read_all(&mut ex, false).await.unwrap_err();
        assert!(
            matches!(
                err,
                ExchangeError::Unusable(Unusable::BodyShorter {
                    declared: 10,
                    sent: 3
                })
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn content_lengths_must_be_one_number() {
        for (head, ok) in [
            (
                &b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"[..],
                true,
            ),
            (b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabc", false),
            (b"Content-Length: +3\r\n\r\nabc", false),
            (b"Content-Length: 3, 3\r\n\r\nabc", false),
            (b"Content-Length: 99999999999999999999999\r\n\r\nabc", false),
        ] {
            let (mut ex, _) = one(answer(&[stdout(1, head), end_request(1)])).await;
            let got = read_all(&mut ex, false).await;
            match got {
                Ok((head_out, body)) if ok => {
                    let lengths: Vec<_> = head_out
                        .headers
                        .iter()
                        .filter(|(n, _)| n == http::header::CONTENT_LENGTH)
                        .collect();
                    assert_eq!(lengths.len(), 1);
                    assert_eq!(body, b"abc");
                }
                Err(ExchangeError::Unusable(Unusable::BadContentLength(_))) if !ok => {}
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(head)),
            }
        }
    }

    #[tokio::test]
    async fn a_1xx_status_is_unusable() {
        for status in ["100", "101", "103"] {
            let head = format!("Status: {status}\r\n\r\n");
            let (mut ex, _) = one(answer(&[stdout(1, head.as_bytes()), end_request(1)])).await;
            let err = ex.read_head(false).await.unwrap_err();
            assert!(
                matches!(err, ExchangeError::Unusable(Unusable::Informational(_))),
                "{status}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn bodies_http_cannot_carry_are_read_and_dropped() {
        // A HEAD answer with a body, and a 304 with one: both end complete
        // and empty, the Content-Length left as the script gave it.
        for (status, no_body) in [("200", true), ("304", false), ("204", false)] {
            let head = format!("Status: {status}\r\nContent-Length: 5\r\n\r\nhello and more");
            let (mut ex, released) =
                one(answer(&[stdout(1, head.as_bytes()), end_request(1)])).await;
            let start = ex.read_head(no_body).await.unwrap();
            assert!(start.complete && start.body.is_empty(), "{status}");
            assert!(released.released(), "{status}");
        }
    }

    #[tokio::test]
    async fn a_record_of_another_request_fails_the_exchange() {
        // The second exchange on a kept connection has request id 2: an
        // answer with id 1 (a late record of the first) is not its answer.
        let ok = answer(&[stdout(1, b"\r\nfirst"), end_request(1)]);
        let stale = answer(&[stdout(1, b"\r\nstale"), end_request(1)]);
        let endpoint = backend(vec![ok, stale]).await;
        let conn = connect(&endpoint).await;
        let (mut ex, back) = exchange(conn).await;
        let (_, body) = read_all(&mut ex, false).await.unwrap();
        assert_eq!(body, b"first");
        // The connection, given back by the first exchange, goes on.
        let (mut second, _) = exchange(back.take()).await;
        let err = second.read_head(false).await.unwrap_err();
        assert!(
            matches!(
                err,
                ExchangeError::Read(ConnError::Protocol(ProtocolError::UnexpectedRequestId {
                    got: 1,
                    expected: 2
                }))
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn primary_script_unknown_is_php_fpms_record_only() {
        let not_found = b"Status: 404 Not Found\r\n\r\nFile not found.\n";
        let cases: [(Vec<u8>, bool); 4] = [
            (stderr(1, b"Primary script unknown"), true),
            (stderr(1, b"Primary script unknown\n"), true),
            (
                stderr(1, b"PHP message: bad input: Primary script unknown"),
                false,
            ),
            (stderr(1, b"Primary script unknown, said the script"), false),
        ];
        for (record, unknown) in cases {
            let (mut ex, _) = one(answer(&[
                record.clone(),
                stdout(1, not_found),
                end_request(1),
            ]))
            .await;
            read_all(&mut ex, false).await.unwrap();
            assert_eq!(
                ex.script_unknown,
                unknown,
                "{:?}",
                String::from_utf8_lossy(&record)
            );
        }
        // The words, but with a 200: a script's answer, not php-fpm's.
        let (mut ex, _) = one(answer(&[
            stderr(1, b"Primary script unknown"),
            stdout(1, b"\r\nok"),
            end_request(1),
        ]))
        .await;
        read_all(&mut ex, false).await.unwrap();
        assert!(!ex.script_unknown);
    }

    #[test]
    fn stderr_cannot_forge_log_lines() {
        let text = escape_log_text(b"one\nINFO fpmlb: forged\r\n\x1b[31mred\x00\n");
        assert!(!text.contains(['\n', '\r', '\x1b', '\0']), "{text}");
        assert_eq!(text, "one\\nINFO fpmlb: forged\\r\\n\\u{1b}[31mred\\0");
        // C1 controls (a CSI) and the Unicode line separators too.
        let text = escape_log_text("a\u{9b}31m b\u{2028}c\u{2029}d\u{85}e".as_bytes());
        assert_eq!(text, "a\\u{9b}31m b\\u{2028}c\\u{2029}d\\u{85}e");
    }

    /// STDERR right behind the head's first piece: the head comes back
    /// with what was buffered, without reading on (before, it waited for
    /// the script's next write, and gathered the whole body when every
    /// write ended with STDERR).
    #[tokio::test]
    async fn stderr_behind_the_head_does_not_hold_it_back() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::Tcp(listener.local_addr().unwrap());
        let (go_on, gate) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            assert!(read_request(&mut s).await);
            let first = answer(&[stdout(1, b"\r\none"), stderr(1, b"warning")]);
            s.write_all(&first).await.unwrap();
            // The rest only once the head was answered.
            if gate.await.is_ok() {
                let rest = answer(&[stdout(1, b"two"), stderr(1, b"again"), end_request(1)]);
                s.write_all(&rest).await.unwrap();
            }
            let mut sink = [0u8; 64];
            while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
        });
        let (mut ex, back) = exchange(connect(&endpoint).await).await;
        // A hang guard, not a timing: without the fix the head never comes.
        let start = tokio::time::timeout(Duration::from_secs(10), ex.read_head(false))
            .await
            .expect("the head came without the script writing more")
            .unwrap();
        assert_eq!(&start.body[..], b"one");
        assert!(!start.complete);
        go_on.send(()).unwrap();
        let mut rest = Vec::new();
        while let Some(chunk) = ex.next_chunk().await.unwrap() {
            rest.extend_from_slice(&chunk);
        }
        assert_eq!(rest, b"two");
        assert!(back.released());
    }

    /// END_REQUEST refusing the request once output came is a protocol
    /// error (the script ran: no other backend may take the request), and
    /// a refusal only before any output.
    #[tokio::test]
    async fn a_refusal_after_output_is_no_refusal() {
        let overloaded = |id: u16| {
            let [hi, lo] = id.to_be_bytes();
            vec![1, 3, hi, lo, 0, 8, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]
        };
        let (mut ex, _) = one(overloaded(1)).await;
        let refused = read_all(&mut ex, false).await.unwrap_err();
        assert!(
            matches!(refused, ExchangeError::Refused("overloaded")),
            "{refused:?}"
        );
        for first in [stdout(1, b"Status: 200\r\n"), stderr(1, b"warning")] {
            let (mut ex, back) = one(answer(&[first, overloaded(1)])).await;
            let failed = read_all(&mut ex, false).await.unwrap_err();
            assert!(
                matches!(
                    failed,
                    ExchangeError::Read(ConnError::Protocol(ProtocolError::RefusedAfterOutput(
                        "overloaded"
                    )))
                ),
                "{failed:?}"
            );
            assert!(!back.released());
        }
    }

    #[tokio::test]
    async fn each_exchange_on_a_connection_has_its_own_request_id() {
        let endpoint = backend(Vec::new()).await;
        let mut conn = connect(&endpoint).await;
        let ids: Vec<u16> = (0..3).map(|_| conn.next_request_id()).collect();
        assert_eq!(ids, [1, 2, 3]);
    }
}
