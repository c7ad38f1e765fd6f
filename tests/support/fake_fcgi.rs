//! An in-process fake FastCGI application for fault injection: it does on
//! demand what php-fpm will not (garbage, stalls, cut responses, protocol
//! violations).
//!
//! It parses requests with its own minimal record reader, not fpmlb's codec,
//! so a test never trusts the code under test to check itself. It records
//! every request it read in full (params and STDIN), then answers per a
//! scripted [`Behavior`]: the scripted queue first, then the default.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

const VERSION: u8 = 1;
const BEGIN_REQUEST: u8 = 1;
const END_REQUEST: u8 = 3;
const PARAMS: u8 = 4;
const STDIN: u8 = 5;
const STDOUT: u8 = 6;
const STDERR: u8 = 7;
const GET_VALUES: u8 = 9;
const GET_VALUES_RESULT: u8 = 10;
const KEEP_CONN: u8 = 1;
/// END_REQUEST protocol statuses.
const REQUEST_COMPLETE: u8 = 0;
const OVERLOADED: u8 = 2;
const MAX_CONTENT: usize = 65535;

/// What the fake does with one request once it has read it whole.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// STDERR records (if any), STDOUT records, the empty STDOUT record,
    /// END_REQUEST; the connection is kept when the request asked for it.
    Respond { stdout: Vec<u8>, stderr: Vec<u8> },
    /// Like `Respond` (no STDERR), but END_REQUEST follows the STDOUT
    /// records after `pause`, in a write of its own (as php-fpm's Nagle
    /// delay can make it).
    RespondLateEnd { stdout: Vec<u8>, pause: Duration },
    /// Writes these raw bytes, then closes.
    Garbage(Vec<u8>),
    /// Never answers; keeps the socket open until the peer closes it.
    Stall,
    /// Writes these STDOUT bytes as records, then closes without END_REQUEST.
    CloseAfter(Vec<u8>),
    /// `records` STDERR records of `bytes_each` bytes, then a normal response.
    StderrFlood {
        records: usize,
        bytes_each: usize,
        stdout: Vec<u8>,
    },
    /// STDOUT records, then an END_REQUEST whose content length is 4 (too
    /// short), all in one write; then waits for the peer to close.
    ShortEndRequest { stdout: Vec<u8> },
    /// END_REQUEST with protocol status FCGI_OVERLOADED, no STDOUT.
    Overloaded,
    /// Reads the request, then closes without a byte of answer.
    CloseBeforeResponse,
    /// A whole response (STDOUT, END_REQUEST) under request id `id`,
    /// whatever id the request had.
    RespondAsRequest { id: u16, stdout: Vec<u8> },
    /// A normal response; then, after `pause`, more STDOUT and another
    /// END_REQUEST for the same request: records after the end, which the
    /// next request on the kept connection must never take for its answer.
    RespondThenStray {
        stdout: Vec<u8>,
        stray: Vec<u8>,
        pause: Duration,
    },
}

impl Behavior {
    /// A normal 200 text/plain response with `body`.
    pub fn ok(body: &str) -> Behavior {
        Behavior::Respond {
            stdout: format!("Content-Type: text/plain\r\n\r\n{body}").into_bytes(),
            stderr: Vec::new(),
        }
    }
}

/// A request as the fake read it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Which accepted connection carried it (1 = the first).
    pub conn: usize,
    pub request_id: u16,
    pub role: u16,
    pub keep_conn: bool,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    pub stdin: Vec<u8>,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<String> {
        self.params
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

#[derive(Debug)]
struct Shared {
    script: Mutex<VecDeque<Behavior>>,
    default: Behavior,
    connections: AtomicUsize,
    requests: Mutex<Vec<Request>>,
    served: AtomicUsize,
    idle_closed: AtomicUsize,
    errors: Mutex<Vec<String>>,
    close_idle: watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn next_behavior(&self) -> Behavior {
        lock(&self.script)
            .pop_front()
            .unwrap_or_else(|| self.default.clone())
    }

    fn error(&self, what: String) {
        lock(&self.errors).push(what);
    }
}

/// A running fake; stops (with all its connections) when dropped.
pub struct FakeFcgi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeFcgi {
    /// Listens on `ip`, any free port.
    pub async fn start(ip: &str, default: Behavior) -> FakeFcgi {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind fake FastCGI");
        Self::serve(listener, default)
    }

    /// Listens on exactly `addr` (e.g. a backend address fpmlb already has).
    pub async fn start_at(addr: SocketAddr, default: Behavior) -> FakeFcgi {
        let listener = TcpListener::bind(addr).await.expect("bind fake FastCGI");
        Self::serve(listener, default)
    }

    fn serve(listener: TcpListener, default: Behavior) -> FakeFcgi {
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            default,
            connections: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            served: AtomicUsize::new(0),
            idle_closed: AtomicUsize::new(0),
            errors: Mutex::new(Vec::new()),
            close_idle: watch::channel(0).0,
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        FakeFcgi { addr, shared, task }
    }

    /// Queues behaviors for the next requests (before the default applies).
    pub fn script(&self, behaviors: impl IntoIterator<Item = Behavior>) {
        lock(&self.shared.script).extend(behaviors);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections that carried at least one request (a bare connect, as a
    /// health check makes, is not counted).
    pub fn request_connections(&self) -> usize {
        let mut conns: Vec<usize> = lock(&self.shared.requests).iter().map(|r| r.conn).collect();
        conns.sort_unstable();
        conns.dedup();
        conns.len()
    }

    /// Requests read in full so far.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// Requests answered with a complete END_REQUEST (REQUEST_COMPLETE).
    pub fn served(&self) -> usize {
        self.shared.served.load(Ordering::SeqCst)
    }

    /// Protocol violations the fake saw in what fpmlb sent.
    pub fn protocol_errors(&self) -> Vec<String> {
        lock(&self.shared.errors).clone()
    }

    /// Asks every connection waiting for its next request to close.
    pub fn close_idle_connections(&self) {
        self.shared.close_idle.send_modify(|g| *g += 1);
    }

    /// Idle connections closed by [`FakeFcgi::close_idle_connections`].
    pub fn idle_closed(&self) -> usize {
        self.shared.idle_closed.load(Ordering::SeqCst)
    }
}

impl Drop for FakeFcgi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Owned here, so aborting this task drops (aborts) every connection.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let n = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                conns.spawn(serve_conn(stream, n, Arc::clone(&shared)));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_conn(mut stream: TcpStream, conn: usize, shared: Arc<Shared>) {
    let mut close_idle = shared.close_idle.subscribe();
    loop {
        // Idle between requests: wait for the next one or for close_idle.
        // (peek, not readable(): tokio keeps a stale read readiness until a
        // read would block, so readable() may return with nothing to read.)
        let mut first = [0u8; 1];
        tokio::select! {
            peeked = stream.peek(&mut first) => if peeked.is_err() { return },
            _ = close_idle.changed() => {
                drop(stream);
                shared.idle_closed.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
        let mut req = match read_request(&mut stream).await {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(e) => {
                shared.error(format!("connection {conn}: {e}"));
                return;
            }
        };
        req.conn = conn;
        let (id, keep) = (req.request_id, req.keep_conn);
        lock(&shared.requests).push(req);
        match answer(&mut stream, id, shared.next_behavior()).await {
            Ok(true) => {
                shared.served.fetch_add(1, Ordering::SeqCst);
                if !keep {
                    return;
                }
            }
            Ok(false) | Err(_) => return,
        }
    }
}

/// Acts out `behavior`; true when a complete response was sent and the
/// connection may carry another request.
async fn answer(stream: &mut TcpStream, id: u16, behavior: Behavior) -> std::io::Result<bool> {
    let mut out = Vec::new();
    match behavior {
        Behavior::Respond { stdout, stderr } => {
            put_stream(&mut out, STDERR, id, &stderr);
            put_stream(&mut out, STDOUT, id, &stdout);
            put_record(&mut out, STDOUT, id, &[]);
            put_end_request(&mut out, id, REQUEST_COMPLETE);
            stream.write_all(&out).await?;
            Ok(true)
        }
        Behavior::RespondLateEnd { stdout, pause } => {
            put_stream(&mut out, STDOUT, id, &stdout);
            stream.write_all(&out).await?;
            tokio::time::sleep(pause).await;
            out.clear();
            put_record(&mut out, STDOUT, id, &[]);
            put_end_request(&mut out, id, REQUEST_COMPLETE);
            stream.write_all(&out).await?;
            Ok(true)
        }
        Behavior::Garbage(bytes) => {
            stream.write_all(&bytes).await?;
            stream.shutdown().await?;
            Ok(false)
        }
        Behavior::Stall => {
            drain_until_eof(stream).await;
            Ok(false)
        }
        Behavior::CloseAfter(stdout) => {
            put_stream(&mut out, STDOUT, id, &stdout);
            stream.write_all(&out).await?;
            stream.shutdown().await?;
            // As php-fpm closes: what fpmlb sent behind the request (its
            // readiness check) is read, so the close is a FIN behind the
            // data, not a reset that would drop what is still in flight.
            drain_until_eof(stream).await;
            Ok(false)
        }
        Behavior::StderrFlood {
            records,
            bytes_each,
            stdout,
        } => {
            let line = vec![b'E'; bytes_each];
            for batch in 0..records.div_ceil(64) {
                out.clear();
                for _ in batch * 64..records.min((batch + 1) * 64) {
                    put_stream(&mut out, STDERR, id, &line);
                }
                stream.write_all(&out).await?;
            }
            out.clear();
            put_stream(&mut out, STDOUT, id, &stdout);
            put_record(&mut out, STDOUT, id, &[]);
            put_end_request(&mut out, id, REQUEST_COMPLETE);
            stream.write_all(&out).await?;
            Ok(true)
        }
        Behavior::ShortEndRequest { stdout } => {
            put_stream(&mut out, STDOUT, id, &stdout);
            put_record(&mut out, END_REQUEST, id, &[0, 0, 0, 0]);
            stream.write_all(&out).await?;
            drain_until_eof(stream).await;
            Ok(false)
        }
        Behavior::Overloaded => {
            put_end_request(&mut out, id, OVERLOADED);
            stream.write_all(&out).await?;
            Ok(false)
        }
        Behavior::CloseBeforeResponse => {
            stream.shutdown().await?;
            Ok(false)
        }
        Behavior::RespondAsRequest { id: other, stdout } => {
            put_stream(&mut out, STDOUT, other, &stdout);
            put_record(&mut out, STDOUT, other, &[]);
            put_end_request(&mut out, other, REQUEST_COMPLETE);
            stream.write_all(&out).await?;
            Ok(true)
        }
        Behavior::RespondThenStray {
            stdout,
            stray,
            pause,
        } => {
            put_stream(&mut out, STDOUT, id, &stdout);
            put_record(&mut out, STDOUT, id, &[]);
            put_end_request(&mut out, id, REQUEST_COMPLETE);
            stream.write_all(&out).await?;
            tokio::time::sleep(pause).await;
            out.clear();
            put_stream(&mut out, STDOUT, id, &stray);
            put_end_request(&mut out, id, REQUEST_COMPLETE);
            stream.write_all(&out).await?;
            Ok(true)
        }
    }
}

async fn drain_until_eof(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
}

/// One record, padded to a multiple of 8 bytes as php-fpm does.
fn put_record(out: &mut Vec<u8>, kind: u8, id: u16, content: &[u8]) {
    let len = u16::try_from(content.len()).expect("record content too long");
    let padding = (8 - content.len() % 8) % 8;
    out.extend_from_slice(&[VERSION, kind]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[padding as u8, 0]);
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0u8, padding));
}

/// `data` as records of `kind` (nothing for empty data).
fn put_stream(out: &mut Vec<u8>, kind: u8, id: u16, data: &[u8]) {
    for chunk in data.chunks(MAX_CONTENT) {
        put_record(out, kind, id, chunk);
    }
}

fn put_end_request(out: &mut Vec<u8>, id: u16, protocol_status: u8) {
    put_record(
        out,
        END_REQUEST,
        id,
        &[0, 0, 0, 0, protocol_status, 0, 0, 0],
    );
}

/// (type, request id, content) of the next record; None on a clean EOF
/// before any header byte.
async fn read_record(stream: &mut TcpStream) -> std::io::Result<Option<(u8, u16, Vec<u8>)>> {
    let mut header = [0u8; 8];
    let mut got = 0;
    while got < header.len() {
        let n = stream.read(&mut header[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        got += n;
    }
    if header[0] != VERSION {
        return Err(std::io::Error::other(format!("bad version {}", header[0])));
    }
    let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let mut content = vec![0u8; len + usize::from(header[6])];
    stream.read_exact(&mut content).await?;
    content.truncate(len);
    Ok(Some((
        header[1],
        u16::from_be_bytes([header[2], header[3]]),
        content,
    )))
}

/// BEGIN_REQUEST, PARAMS until the empty one, STDIN until the empty one.
/// A GET_VALUES where a request begins (fpmlb's readiness check) is
/// answered there, as php-fpm does: once the last request was answered.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let bad = |what: String| Err(std::io::Error::other(what));
    let mut req = Request::default();
    let mut params = Vec::new();
    let (mut begun, mut params_done, mut stdin_done) = (false, false, false);
    while !(begun && params_done && stdin_done) {
        let Some((kind, id, content)) = read_record(stream).await? else {
            return if begun {
                bad("EOF in the middle of a request".into())
            } else {
                Ok(None)
            };
        };
        if begun && id != req.request_id {
            return bad(format!("request id {id} in request {}", req.request_id));
        }
        match kind {
            BEGIN_REQUEST if !begun && content.len() == 8 => {
                req.request_id = id;
                req.role = u16::from_be_bytes([content[0], content[1]]);
                req.keep_conn = content[2] & KEEP_CONN != 0;
                begun = true;
            }
            PARAMS if begun && !params_done => match content.is_empty() {
                true => params_done = true,
                false => params.extend_from_slice(&content),
            },
            STDIN if params_done && !stdin_done => match content.is_empty() {
                true => stdin_done = true,
                false => req.stdin.extend_from_slice(&content),
            },
            GET_VALUES if !begun && id == 0 => {
                let mut answer = Vec::new();
                let mut pairs = Vec::new();
                for (name, _) in decode_pairs(&content).unwrap_or_default() {
                    if name == b"FCGI_MPXS_CONNS" {
                        pairs.extend_from_slice(&[15, 1]);
                        pairs.extend_from_slice(&name);
                        pairs.push(b'0');
                    }
                }
                put_record(&mut answer, GET_VALUES_RESULT, 0, &pairs);
                stream.write_all(&answer).await?;
            }
            _ => {
                return bad(format!(
                    "unexpected record type {kind} ({} bytes)",
                    content.len()
                ));
            }
        }
    }
    match decode_pairs(&params) {
        Some(pairs) => req.params = pairs,
        None => return bad("malformed PARAMS".into()),
    }
    Ok(Some(req))
}

fn decode_pairs(mut bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    fn length(b: &[u8]) -> Option<(usize, &[u8])> {
        match b {
            [short, rest @ ..] if short & 0x80 == 0 => Some((usize::from(*short), rest)),
            [a, b, c, d, rest @ ..] => {
                let len = u32::from_be_bytes([a & 0x7f, *b, *c, *d]);
                Some((usize::try_from(len).ok()?, rest))
            }
            _ => None,
        }
    }
    let mut pairs = Vec::new();
    while !bytes.is_empty() {
        let (name_len, rest) = length(bytes)?;
        let (value_len, rest) = length(rest)?;
        if rest.len() < name_len + value_len {
            return None;
        }
        let (name, rest) = rest.split_at(name_len);
        let (value, rest) = rest.split_at(value_len);
        pairs.push((name.to_vec(), value.to_vec()));
        bytes = rest;
    }
    Some(pairs)
}
