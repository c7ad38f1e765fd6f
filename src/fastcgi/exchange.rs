//! One request and its response over a FastCGI connection it is lent.
//!
//! The caller drives it in order: `send` the request head (BEGIN_REQUEST and
//! PARAMS, maybe the whole STDIN), `send_stdin` for a streamed body and
//! `end_stdin`, then `read_head` for the CGI head, then `next_chunk` until it
//! returns None, which is the moment END_REQUEST arrived and the connection
//! is given back to its owner ([`LentConn::release`]: upstream's pool).
//! Anything else (an error, a timeout, the caller dropping it) closes the
//! connection: its state is unknown, so it is never reused. A response that ends without END_REQUEST is an error, never a
//! short body that looks complete.
//!
//! STDERR records go to the log with the backend's name, bounded per request
//! so a script that floods STDERR costs log lines, not memory.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::fastcgi::cgi::{self, CgiError, CgiHead};
use crate::fastcgi::conn::{ConnError, Connection};
use crate::fastcgi::params::ParamList;
use crate::fastcgi::record::{self, ProtocolStatus, Record, RecordType};

/// The request id of every exchange: php-fpm does not multiplex, so one
/// connection carries one request at a time.
pub const REQUEST_ID: u16 = 1;

/// STDERR records logged per request; the rest are counted in one line.
const STDERR_LOG_LIMIT: u32 = 20;
/// Bytes of one STDERR record put in the log.
const STDERR_LOG_BYTES: usize = 2048;

/// php-fpm's answer when SCRIPT_FILENAME names no file.
pub const PRIMARY_SCRIPT_UNKNOWN: &[u8] = b"Primary script unknown";

/// What went wrong in one exchange, once it had a connection.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("sending the request: {0}")]
    Send(std::io::Error),
    #[error("no progress sending the request for {0:?}")]
    SendTimeout(Duration),
    #[error("reading the response: {0}")]
    Read(#[from] ConnError),
    #[error("no response for {0:?}")]
    ReadTimeout(Duration),
    #[error("connection closed before the response was complete")]
    Closed,
    #[error("bad response head: {0}")]
    BadHead(#[from] CgiError),
    #[error("backend refused the request: {0}")]
    Refused(&'static str),
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
    buf: BytesMut,
    /// Some response byte (STDOUT or STDERR) arrived.
    got_response: bool,
    stderr_records: u32,
    /// php-fpm said "Primary script unknown" on STDERR.
    pub script_unknown: bool,
    ended: bool,
}

impl<C: LentConn> Exchange<C> {
    pub fn new(conn: C, timeouts: ExchangeTimeouts) -> Exchange<C> {
        Exchange {
            conn: Some(conn),
            timeouts,
            buf: BytesMut::new(),
            got_response: false,
            stderr_records: 0,
            script_unknown: false,
            ended: false,
        }
    }

    /// Some byte of the response arrived: from here a retry is unsafe.
    pub fn got_response(&self) -> bool {
        self.got_response
    }

    /// Sends bytes already encoded as records (the request head).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), ExchangeError> {
        let timeout = self.timeouts.send;
        let conn = self
            .conn
            .as_mut()
            .and_then(C::conn)
            .ok_or(ExchangeError::Closed)?;
        match tokio::time::timeout(timeout, conn.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ExchangeError::Send(e)),
            Err(_) => Err(ExchangeError::SendTimeout(timeout)),
        }
    }

    /// Sends a piece of request body as STDIN records.
    pub async fn send_stdin(&mut self, data: &[u8]) -> Result<(), ExchangeError> {
        let mut out = std::mem::take(&mut self.buf);
        out.clear();
        record::encode_stream(&mut out, RecordType::Stdin, REQUEST_ID, data);
        let result = self.send(&out).await;
        self.buf = out;
        result
    }

    /// Sends the empty STDIN record that ends the body.
    pub async fn end_stdin(&mut self) -> Result<(), ExchangeError> {
        let mut out = BytesMut::with_capacity(record::HEADER_LEN);
        record::encode_end_of_stream(&mut out, RecordType::Stdin, REQUEST_ID);
        self.send(&out).await
    }

    /// Reads records until the CGI head is complete, then takes whatever
    /// else is already buffered without waiting, so a short response comes
    /// back whole and gets a Content-Length.
    pub async fn read_head(&mut self) -> Result<ResponseStart, ExchangeError> {
        let mut head_buf = BytesMut::new();
        let (head, first) = loop {
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
                        head_buf.extend_from_slice(&chunk);
                        cgi::parse_head(&head_buf)?
                            .map(|(head, start)| (head, head_buf.split_off(start).freeze()))
                    };
                    if let Some(done) = parsed {
                        break done;
                    }
                }
                None => {
                    // END_REQUEST with no complete head. php-fpm sends a head
                    // for every response it makes, so this is a broken one.
                    return Err(ExchangeError::BadHead(CgiError::Incomplete));
                }
            }
        };
        let mut body = first;
        let mut complete = false;
        let mut more: Option<BytesMut> = None;
        while !self.ended && self.has_buffered_record() {
            match self.next_record().await? {
                Some(chunk) => {
                    let acc = more.get_or_insert_with(|| BytesMut::from(&body[..]));
                    acc.extend_from_slice(&chunk);
                }
                None => complete = true,
            }
        }
        if let Some(acc) = more {
            body = acc.freeze();
        }
        // When the head says the body is all here (its Content-Length has
        // arrived, or a status that has no body), the client would take the
        // response as done at once: wait for END_REQUEST first, so that a
        // backend dying now gives a 502 rather than a response that looks
        // whole, and the connection can go back to the pool.
        if !complete && body_already_whole(&head, body.len()) {
            let mut acc = BytesMut::from(&body[..]);
            while let Some(chunk) = self.next_record().await? {
                acc.extend_from_slice(&chunk);
            }
            body = acc.freeze();
            complete = true;
        }
        Ok(ResponseStart {
            head,
            body,
            complete,
        })
    }

    fn has_buffered_record(&mut self) -> bool {
        self.conn
            .as_mut()
            .and_then(C::conn)
            .is_some_and(|c| c.has_buffered_record())
    }

    /// The next piece of body; None once END_REQUEST arrived (the connection
    /// is back in the pool then).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ExchangeError> {
        if self.ended {
            return Ok(None);
        }
        self.next_record().await
    }

    /// Reads records, logging STDERR, until STDOUT data or the end.
    async fn next_record(&mut self) -> Result<Option<Bytes>, ExchangeError> {
        loop {
            let timeout = self.timeouts.read;
            let conn = self
                .conn
                .as_mut()
                .and_then(C::conn)
                .ok_or(ExchangeError::Closed)?;
            let record = match tokio::time::timeout(timeout, conn.read_record()).await {
                Ok(Ok(Some((_, record)))) => record,
                Ok(Ok(None)) => return Err(ExchangeError::Closed),
                Ok(Err(e)) => return Err(ExchangeError::Read(e)),
                Err(_) => return Err(ExchangeError::ReadTimeout(timeout)),
            };
            match record {
                Record::Stdout(data) => {
                    self.got_response = true;
                    if data.is_empty() {
                        continue; // end of the STDOUT stream; END_REQUEST follows
                    }
                    return Ok(Some(data));
                }
                Record::Stderr(data) => {
                    self.got_response = true;
                    self.log_stderr(&data);
                }
                Record::EndRequest {
                    protocol_status, ..
                } => {
                    return match protocol_status {
                        ProtocolStatus::RequestComplete => {
                            self.ended = true;
                            if let Some(conn) = self.conn.take() {
                                conn.release();
                            }
                            Ok(None)
                        }
                        ProtocolStatus::Overloaded => Err(ExchangeError::Refused("overloaded")),
                        ProtocolStatus::CantMpxConn => {
                            Err(ExchangeError::Refused("cannot multiplex"))
                        }
                        ProtocolStatus::UnknownRole => Err(ExchangeError::Refused("unknown role")),
                        ProtocolStatus::Other(_) => {
                            Err(ExchangeError::Refused("unknown protocol status"))
                        }
                    };
                }
                // Answers to management records we never send on this
                // connection: ignore rather than fail the request.
                Record::GetValuesResult(_) | Record::UnknownType(_) => {}
            }
        }
    }

    fn log_stderr(&mut self, data: &[u8]) {
        if data
            .windows(PRIMARY_SCRIPT_UNKNOWN.len())
            .any(|w| w == PRIMARY_SCRIPT_UNKNOWN)
        {
            self.script_unknown = true;
        }
        self.stderr_records += 1;
        let backend = self.conn.as_ref().map_or("", C::name);
        if self.stderr_records <= STDERR_LOG_LIMIT {
            let shown = &data[..data.len().min(STDERR_LOG_BYTES)];
            let text = String::from_utf8_lossy(shown);
            tracing::warn!(backend = %backend, "FastCGI sent in stderr: {}", text.trim_end());
        } else if self.stderr_records == STDERR_LOG_LIMIT + 1 {
            tracing::warn!(backend = %backend, "more FastCGI stderr for this request is not logged");
        }
    }
}

/// BEGIN_REQUEST (keep the connection), PARAMS, and the whole STDIN when
/// `stdin` is given (a body already in memory, maybe empty): one buffer, so
/// one write. With `stdin` None the caller streams the body after it.
pub fn encode_request_head(params: &ParamList, stdin: Option<&[u8]>) -> Bytes {
    let body_len = stdin.map_or(0, <[u8]>::len);
    let mut head = BytesMut::with_capacity(512 + params.len() * 40 + body_len + body_len / 8);
    record::encode_begin_request(&mut head, REQUEST_ID, record::FCGI_RESPONDER, true);
    record::encode_params(&mut head, REQUEST_ID, params.iter());
    if let Some(body) = stdin {
        record::encode_stream(&mut head, RecordType::Stdin, REQUEST_ID, body);
        record::encode_end_of_stream(&mut head, RecordType::Stdin, REQUEST_ID);
    }
    head.freeze()
}

/// Whether `received` body bytes are all the body `head` announces.
fn body_already_whole(head: &CgiHead, received: usize) -> bool {
    if matches!(head.status, 204 | 304) {
        return true;
    }
    head.headers
        .iter()
        .find(|(name, _)| name == http::header::CONTENT_LENGTH)
        .and_then(|(_, v)| v.to_str().ok()?.trim().parse::<usize>().ok())
        .is_some_and(|declared| received >= declared)
}
