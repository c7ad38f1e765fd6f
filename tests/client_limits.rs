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
