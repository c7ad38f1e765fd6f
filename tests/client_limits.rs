//! What a slow or odd client can and cannot do: no backend needed.

mod support;

use std::time::Duration;

use support::{nets, start_alone};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_cut_off() {
    // Nothing listens on the backend: these requests never get that far.
    let lb = start_alone(
        nets::LIMITS_HEADER_TIMEOUT,
        "timeouts:\n  client_header: 1s\n",
    );
    let mut s = tokio::net::TcpStream::connect(lb.addr).await.unwrap();
    s.write_all(b"GET /index.php HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .unwrap();
    // The server closes the connection (maybe after a 408): read to EOF, bounded.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "connection still open after 30 s");
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

#[tokio::test]
async fn pipelined_requests_get_their_answers_in_order() {
    let lb = start_alone(nets::LIMITS_PIPELINING, "");
    let mut s = tokio::net::TcpStream::connect(lb.addr).await.unwrap();
    // Three pipelined requests: 404 (no script), 400 (climbs above root), 404.
    s.write_all(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /../b.php HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, vec!["404", "400", "404"], "{text}");
    let log = lb.log_text();
    assert!(
        log.contains("climbs above the document root"),
        "the 400 is logged:\n{log}"
    );
}

#[tokio::test]
async fn half_a_pipelined_head_is_cut_off_too() {
    let lb = start_alone(
        nets::LIMITS_PIPELINED_HALF_HEAD,
        "timeouts:\n  client_header: 1s\n  client_idle: 2s\n",
    );
    let mut s = tokio::net::TcpStream::connect(lb.addr).await.unwrap();
    // The second head's start comes with the first request: read with it,
    // it is replayed to the next hyper connection, never read again.
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nX-Slow: ")
        .await
        .unwrap();
    let mut rest = Vec::new();
    assert_eq!(one_response(&mut s, &mut rest).await, "404");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "connection still open after 30 s");
    let text = String::from_utf8_lossy(&rest) + String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

/// Reads one response with a Content-Length (fpmlb's own answers have one)
/// from `s`, keeping what follows it in `rest`; its status.
async fn one_response(s: &mut tokio::net::TcpStream, rest: &mut Vec<u8>) -> String {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&rest[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a Content-Length");
            while rest.len() < end + 4 + length {
                let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
                    .await
                    .expect("the body within 30 s")
                    .unwrap();
                assert!(n > 0, "closed mid-body");
                rest.extend_from_slice(&buf[..n]);
            }
            rest.drain(..end + 4 + length);
            return head[9..12].to_string();
        }
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("an answer within 30 s")
            .unwrap();
        assert!(n > 0, "closed before an answer; got {rest:?}");
        rest.extend_from_slice(&buf[..n]);
    }
}

/// A keep-alive connection quiet for a while is parked (hyper's state
/// dropped, the socket kept): from the client's side nothing changes. It
/// serves the next request, pipelined requests, a head that arrives in
/// pieces, and closes when asked to.
#[tokio::test]
async fn a_parked_connection_serves_what_comes_next() {
    let lb = start_alone(nets::LIMITS_PARKED, "");
    let mut s = tokio::net::TcpStream::connect(lb.addr).await.unwrap();
    let mut rest = Vec::new();
    // Well past the 100 ms after which a quiet connection is parked.
    let quiet = Duration::from_millis(400);

    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(one_response(&mut s, &mut rest).await, "404");
    tokio::time::sleep(quiet).await;

    // Woken by the first byte; both pipelined requests are answered.
    s.write_all(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /../c.php HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(one_response(&mut s, &mut rest).await, "404");
    assert_eq!(one_response(&mut s, &mut rest).await, "400");
    tokio::time::sleep(quiet).await;

    // A head in pieces, with a pause longer than the parking delay inside.
    s.write_all(b"GET /d HTTP/1.1\r\nHo").await.unwrap();
    tokio::time::sleep(quiet).await;
    s.write_all(b"st: x\r\n\r\n").await.unwrap();
    assert_eq!(one_response(&mut s, &mut rest).await, "404");
    tokio::time::sleep(quiet).await;

    // A request that asks to close: answered, then the connection ends.
    s.write_all(b"GET /e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(one_response(&mut s, &mut rest).await, "404");
    let mut tail = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut tail))
        .await
        .expect("closed after Connection: close")
        .unwrap();
    assert!(rest.is_empty() && tail.is_empty(), "{rest:?} {tail:?}");
}

/// An HTTP/1.0 client without keep-alive reads its answer to EOF: fpmlb
/// closes after it even when the client is slow to read (it is never
/// parked instead).
#[tokio::test]
async fn an_http10_connection_is_closed_not_parked() {
    let lb = start_alone(nets::LIMITS_PARKED_HTTP10, "");
    let mut s = tokio::net::TcpStream::connect(lb.addr).await.unwrap();
    s.write_all(b"GET /a HTTP/1.0\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut all))
        .await
        .expect("closed after the answer")
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.starts_with("HTTP/1.") && text[9..].starts_with("404"),
        "{text}"
    );
}
