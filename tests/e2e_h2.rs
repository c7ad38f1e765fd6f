//! HTTP/2 at the edge, with raw frames (a client that breaks the rules on
//! purpose): the rapid reset (CVE-2023-44487) sent in one burst and paced,
//! a CONTINUATION flood, and one connection opening more streams than its
//! 128. Each is bounded: the connection is closed with GOAWAY or the excess
//! refused, php-fpm runs a bounded number of the requests, and other
//! clients are served throughout.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use support::{Cluster, Fpmlb, nets};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Mutex;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const CANCEL: u32 = 0x8;
const REFUSED_STREAM: u32 = 0x7;
const ENHANCE_YOUR_CALM: u32 = 0xb;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK string literal, no Huffman (lengths below 127).
fn literal(s: &str) -> Vec<u8> {
    assert!(s.len() < 127);
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

/// A GET's header block: :method GET, :scheme http (static table), :path
/// and :authority as literals without indexing.
fn get_block(path: &str, authority: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x04];
    b.extend(literal(path));
    b.push(0x01);
    b.extend(literal(authority));
    b
}

/// What the server said on a connection, read until it closed.
#[derive(Debug, Default)]
struct Seen {
    /// The GOAWAY's error code, if one came.
    goaway: Option<u32>,
    /// Per stream: the response status, or the RST_STREAM's code (as 1000 + code).
    outcome: HashMap<u32, u32>,
}

/// Reads frames until the server closes, or (`until`) that many streams
/// have an outcome; panics after `bound`. Answers SETTINGS and PINGs
/// through `writer`.
async fn read_frames(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    writer: Arc<Mutex<OwnedWriteHalf>>,
    bound: Duration,
    until: Option<usize>,
) -> Seen {
    let mut seen = Seen::default();
    let deadline = tokio::time::Instant::now() + bound;
    let mut head = [0u8; 9];
    loop {
        if until.is_some_and(|n| seen.outcome.len() >= n) {
            return seen;
        }
        match tokio::time::timeout_at(deadline, reader.read_exact(&mut head)).await {
            Err(_) => panic!("the server kept the connection open for {bound:?}: {seen:?}"),
            Ok(Err(_)) => return seen,
            Ok(Ok(_)) => {}
        }
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        if reader.read_exact(&mut payload).await.is_err() {
            return seen;
        }
        match kind {
            SETTINGS if flags & ACK == 0 => {
                let _ = writer
                    .lock()
                    .await
                    .write_all(&frame(SETTINGS, ACK, 0, &[]))
                    .await;
            }
            PING if flags & ACK == 0 => {
                let _ = writer
                    .lock()
                    .await
                    .write_all(&frame(PING, ACK, 0, &payload))
                    .await;
            }
            GOAWAY => {
                seen.goaway = Some(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
            }
            RST_STREAM => {
                let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                seen.outcome.insert(stream, 1000 + code);
            }
            HEADERS => {
                seen.outcome.insert(stream, status_of(&payload));
            }
            DATA => {}
            _ => {}
        }
    }
}

/// The :status of a response header block as hyper's encoder writes it:
/// indexed (0x88 is 200) or a literal with :status's name (index 8).
fn status_of(block: &[u8]) -> u32 {
    match block.first() {
        Some(0x88) => 200,
        Some(0x89) => 204,
        Some(0x8d) => 404,
        Some(0x8e) => 500,
        Some(&b) if (b & 0x3f == 8 && b & 0xc0 == 0x40) || (b & 0xf0 == 0 && b & 0x0f == 8) => {
            let n = usize::from(block[1] & 0x7f);
            std::str::from_utf8(&block[2..2 + n])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        }
        _ => 0,
    }
}

/// Connects, sends the preface and an empty SETTINGS; a reader task.
/// Sends `pads` (frames, may be none) and a GET of `path` on stream `id`,
/// then resets that stream 3 ms later, time for fpmlb to take it and send
/// it to php-fpm; false once the connection refuses a write.
async fn get_then_reset(
    w: &Mutex<OwnedWriteHalf>,
    mut pads: Vec<u8>,
    id: u32,
    path: &str,
    authority: &str,
) -> bool {
    pads.extend(frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        id,
        &get_block(path, authority),
    ));
    if w.lock().await.write_all(&pads).await.is_err() {
        return false;
    }
    tokio::time::sleep(Duration::from_millis(3)).await;
    let rst = frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes());
    w.lock().await.write_all(&rst).await.is_ok()
}

async fn h2_connect(
    addr: SocketAddr,
    bound: Duration,
    until: Option<usize>,
) -> (Arc<Mutex<OwnedWriteHalf>>, tokio::task::JoinHandle<Seen>) {
    let s = TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = s.into_split();
    w.write_all(PREFACE).await.unwrap();
    w.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    let w = Arc::new(Mutex::new(w));
    let reader = tokio::spawn(read_frames(r, Arc::clone(&w), bound, until));
    (w, reader)
}

async fn others_are_served(lb: &Fpmlb) {
    let c = support::client(false);
    for _ in 0..4 {
        let r = support::get(&c, &lb.url("/index.php")).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_and_continuation_floods_are_cut_short() {
    let cluster = Cluster::start(nets::H2_RAPID_RESET, &["--nodes", "2", "--children", "2"]);
    let lb = support::start_lb(&cluster, "");
    let authority = lb.addr.to_string();
    const STREAMS: u32 = 2000;

    // 1. HEADERS + RST_STREAM back to back, in one write: h2's own limit
    // on streams reset before they are accepted.
    let (w, reader) = h2_connect(lb.addr, Duration::from_secs(30), None).await;
    let mut burst = Vec::new();
    for i in 0..STREAMS {
        let id = 2 * i + 1;
        burst.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            id,
            &get_block("/ran.php?tag=burst", &authority),
        ));
        burst.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
    }
    let _ = w.lock().await.write_all(&burst).await;
    let seen = reader.await.unwrap();
    assert_eq!(seen.goaway, Some(ENHANCE_YOUR_CALM), "{seen:?}");
    lb.wait_log_line(&["HTTP/2:", "GOAWAY ENHANCE_YOUR_CALM"])
        .await;
    let burst_ran = cluster.ran("burst");

    // 2. Paced: each stream reset only after the server had time to take
    // it (and send it to php-fpm): fpmlb's count of cancelled requests.
    let (w, reader) = h2_connect(lb.addr, Duration::from_secs(60), None).await;
    let mut sent = 0;
    for i in 0..STREAMS {
        let id = 2 * i + 1;
        let path = "/ran.php?tag=paced";
        if reader.is_finished() || !get_then_reset(&w, Vec::new(), id, path, &authority).await {
            break;
        }
        sent += 1;
    }
    let seen = reader.await.unwrap();
    assert!(
        seen.goaway.is_some(),
        "no GOAWAY after {sent} resets: {seen:?}"
    );
    assert!(sent < STREAMS, "the connection took all {STREAMS} resets");
    lb.wait_log_line(&["the client cancelled", "GOAWAY"]).await;

    // 2b. Padded: two requests answered at once (a path with no script,
    // fpmlb's own 404) for each one reset after it went to php-fpm. The
    // share of cancels stays at a third, under the half that trips the
    // rule above; their rate (over 100 in 10 s) trips it all the same.
    let (w, reader) = h2_connect(lb.addr, Duration::from_secs(60), None).await;
    let mut padded = 0;
    for i in 0..STREAMS / 4 {
        let id = 6 * i + 1;
        let mut pads = Vec::new();
        for pad in [id, id + 2] {
            pads.extend(frame(
                HEADERS,
                END_STREAM | END_HEADERS,
                pad,
                &get_block("/no-script-here", &authority),
            ));
        }
        let path = "/slow.php?ms=200";
        if reader.is_finished() || !get_then_reset(&w, pads, id + 4, path, &authority).await {
            break;
        }
        padded += 1;
    }
    let seen = reader.await.unwrap();
    assert!(
        seen.goaway.is_some(),
        "no GOAWAY after {padded} padded resets: {seen:?}"
    );
    assert!(
        padded < STREAMS / 4,
        "the connection took all padded resets"
    );

    // 3. A CONTINUATION flood: one header block that never ends.
    let (w, reader) = h2_connect(lb.addr, Duration::from_secs(30), None).await;
    let mut flood = frame(HEADERS, END_STREAM, 1, &get_block("/index.php", &authority));
    for _ in 0..10_000 {
        flood.extend(frame(CONTINUATION, 0, 1, &[0x40, 0x01, b'x', 0x01, b'y']));
    }
    let _ = w.lock().await.write_all(&flood).await;
    let seen = reader.await.unwrap();
    assert_eq!(seen.goaway, Some(ENHANCE_YOUR_CALM), "{seen:?}");

    // Bounded work reached php-fpm, and everyone else is served.
    others_are_served(&lb).await;
    // Give php-fpm a moment to finish scripts already started.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let paced_ran = cluster.ran("paced");
    eprintln!(
        "streams sent: burst {STREAMS}, paced {sent}; ran: burst {burst_ran}, paced {paced_ran}"
    );
    assert!(burst_ran <= 200, "burst: {burst_ran} of {STREAMS} ran");
    assert!(paced_ran <= 400, "paced: {paced_ran} of {sent} ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_gets_128_streams_and_others_are_still_served() {
    let cluster = Cluster::start(nets::H2_MANY_STREAMS, &["--nodes", "2", "--children", "2"]);
    let lb = support::start_lb(&cluster, "");
    let authority = lb.addr.to_string();
    // 200 streams at once, each a script of 50 ms; 4 php-fpm workers.
    const STREAMS: u32 = 200;
    let (w, reader) = h2_connect(lb.addr, Duration::from_secs(60), Some(STREAMS as usize)).await;
    let mut all = Vec::new();
    for i in 0..STREAMS {
        all.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            2 * i + 1,
            &get_block("/slow.php?ms=50", &authority),
        ));
    }
    w.lock().await.write_all(&all).await.unwrap();
    // While they queue for the four workers, another client is served.
    others_are_served(&lb).await;
    let seen = reader.await.unwrap();
    let answered = seen.outcome.values().filter(|&&s| s == 200).count();
    let refused = seen
        .outcome
        .values()
        .filter(|&&s| s == 1000 + REFUSED_STREAM)
        .count();
    assert_eq!(
        (answered, refused),
        (128, 72),
        "128 streams served, the rest refused: {:?}",
        seen.outcome
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_client_grants_no_window_is_reset_after_client_send() {
    let cluster = Cluster::start(nets::H2_ZERO_WINDOW, &["--nodes", "1", "--children", "2"]);
    let lb = support::start_lb(
        &cluster,
        "timeouts:\n  client_send: 2s\n  client_idle: 120s\n",
    );
    let authority = lb.addr.to_string();
    // SETTINGS_INITIAL_WINDOW_SIZE 0: the streams may get no byte of DATA.
    // The connection stays up and answers PINGs, so nothing but the
    // streams' own clock can end them.
    let s = TcpStream::connect(lb.addr).await.unwrap();
    let (r, mut w) = s.into_split();
    w.write_all(PREFACE).await.unwrap();
    w.write_all(&frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0]))
        .await
        .unwrap();
    // A page PHP writes in 8 KiB pieces, read ahead of the client (1 MiB).
    let block = get_block("/big.php?bytes=1048576", &authority);
    w.write_all(&frame(HEADERS, END_STREAM | END_HEADERS, 1, &block))
        .await
        .unwrap();
    let w = Arc::new(Mutex::new(w));
    let reader = tokio::spawn(read_frames(
        r,
        Arc::clone(&w),
        Duration::from_secs(120),
        None,
    ));
    let reset = async {
        while !lb
            .log_text()
            .contains("took nothing of its response for 2s (timeouts.client_send): stream reset")
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), reset)
        .await
        .expect("a stream with no window was never reset");
    // The response is gone with its stream, and its worker is free.
    others_are_served(&lb).await;
    assert!(!lb.log_text().contains("panicked"));
    reader.abort();
}
